//! The user list behind `GET /licenses/users`: filters, order, an opaque keyset cursor bound to the
//! tenant and the query, and the CSV form of a page.
//!
//! The list is computed in memory from every stored user of the tenant (one partition query, pages
//! of 1,000): filtering by activity state or role and sorting by last activity cannot use a
//! DynamoDB index without one per combination, and a tenant's users are bounded by its Box seats
//! (a 100,000-user tenant is about 30 MB of items, well within a Lambda's memory). The cursor is
//! the sort key of the last user answered, so a page stays correct when users change in between.
//! The query is read in [`query`], the CSV form written in [`csv`].

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod csv;
pub mod index;
pub use index::{ListError, indexed_page};
mod query;

pub use csv::{CSV_HEADER, MAX_CSV_BYTES, csv_cell, to_csv};
use query::invalid;
pub use query::{
    DEFAULT_JSON_LIMIT, ListFormat, MAX_CSV_LIMIT, MAX_JSON_LIMIT, Order, QueryError, RoleFilter, SortField,
    UserParams, UserQuery,
};

use crate::boxapi::{Role, UserStatus};
use crate::ids::{BoxUserId, TenantId};
use crate::license::{Activity, ActivityOrigin, ActivitySignal, UsageState, UserKind, UserLicense};

/// The longest cursor accepted.
const MAX_CURSOR_LEN: usize = 1024;

/// Where a user stands, as the list shows it and `state=` filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityState {
    /// Active status, content activity within `inactive_days` (logged in or not: Box Drive and
    /// the mobile apps work without a login event).
    Working,
    /// Active status, logged in within `inactive_days` without content activity within them.
    LoginOnly,
    /// Only a filter value, kept for clients from before working and login-only were told
    /// apart: working or login-only. No row has it.
    Active,
    /// Not deactivated, no activity of either kind within `inactive_days`. As a filter: inactive
    /// by the tenant's activity signal, never-active users included.
    Inactive,
    /// Active status, no activity in the whole history read.
    Never,
    /// The SSO provider knows no identity for this user: unknown, never counted as inactive.
    NoData,
    /// Deactivated in Box (still holds a paid seat).
    Deactivated,
    /// No longer listed by Box.
    Removed,
}

impl ActivityState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::LoginOnly => "login_only",
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Never => "never",
            Self::NoData => "no_data",
            Self::Deactivated => "deactivated",
            Self::Removed => "removed",
        }
    }
}

/// One user as the list answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRow {
    pub box_user_id: BoxUserId,
    pub login: Option<String>,
    pub name: Option<String>,
    pub status: UserStatus,
    pub role: Option<Role>,
    pub kind: UserKind,
    pub owns_content: bool,
    /// The last activity by the tenant's activity signal (what `inactive` counts and
    /// `sort=last_activity` orders by), as before the two dates were told apart.
    pub last_activity_at: Option<DateTime<Utc>>,
    pub last_activity_source: Option<ActivityOrigin>,
    /// The last login (Box `LOGIN` event or SSO sign-in).
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_login_source: Option<ActivityOrigin>,
    /// The last content activity (upload, edit, preview…); null when none or not available.
    pub last_content_activity_at: Option<DateTime<Utc>>,
    pub last_content_source: Option<ActivityOrigin>,
    pub activity_state: ActivityState,
    pub first_seen_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
    /// The activity the row was sorted by, so [`cursor_after`] rebuilds the exact key (the
    /// dates above cannot tell "never" from "no data").
    #[serde(skip)]
    sort_activity: Activity,
}

/// A page of users.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserPage {
    pub users: Vec<UserRow>,
    /// Which signal `last_activity_at`, `state=inactive` and `sort=last_activity` follow (the
    /// tenant's setting; where a user's content activity is unknown, their login stands in).
    pub activity_signal: ActivitySignal,
    /// How many users match the query in all.
    pub total: usize,
    pub next_cursor: Option<String>,
}

/// The state of `user` when a user counts as inactive after `inactive_days` (by UTC day, exactly
/// as the license summary counts it).
pub fn activity_state(user: &UserLicense, inactive_days: u16, now: DateTime<Utc>) -> ActivityState {
    if user.removed_at.is_some() {
        return ActivityState::Removed;
    }
    if user.status == UserStatus::Inactive {
        return ActivityState::Deactivated;
    }
    match user.signals().state(i64::from(inactive_days), now) {
        UsageState::Working => ActivityState::Working,
        UsageState::LoginOnly => ActivityState::LoginOnly,
        UsageState::Inactive => ActivityState::Inactive,
        UsageState::Never => ActivityState::Never,
        UsageState::NoData => ActivityState::NoData,
    }
}

/// Whether `user` is in the list for `query`. Activity states other than `removed` are about
/// seat holders (managed users Box still lists), as the license report counts them. `inactive`
/// follows the tenant's `signal` exactly as the report and bulk criteria do (never-active users
/// in, users without data out), so with signal `content` a login-only user is in it; `active`
/// (old clients) is working or login-only. Without `state`, every user Box still lists.
fn matches(
    query: &UserQuery,
    user: &UserLicense,
    state: ActivityState,
    signal: ActivitySignal,
    inactive_days: u16,
    now: DateTime<Utc>,
) -> bool {
    if query.role.is_some() && user.role != query.role {
        return false;
    }
    if query.kind.is_some_and(|k| k != user.kind) {
        return false;
    }
    let seat_holder = user.holds_seat();
    match query.state {
        None => state != ActivityState::Removed,
        Some(ActivityState::Removed) => state == ActivityState::Removed,
        // Every seat holder not deactivated, as the report counts them: Box's restricted statuses
        // (`cannot_delete_edit`…) are active accounts too.
        Some(ActivityState::Inactive) => {
            seat_holder
                && user.status != UserStatus::Inactive
                && user.signals().inactive_by(signal, i64::from(inactive_days), now)
        }
        Some(ActivityState::Active) => {
            seat_holder && matches!(state, ActivityState::Working | ActivityState::LoginOnly)
        }
        Some(wanted) => seat_holder && state == wanted,
    }
}

/// The sort key of a user: the field's value, then the Box id (unique), so the order is total.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct SortKey(i64, String, String);

/// `activity`: the user's activity by the tenant's signal.
fn sort_key(sort: SortField, activity: Activity, login: Option<&str>, name: Option<&str>, id: &BoxUserId) -> SortKey {
    let id = id.as_str().to_owned();
    // As the user indexes key it (lowercase, control characters dropped), so both orders agree.
    let text = |v: Option<&str>| crate::storage::schema::text_key_prefix(v.unwrap_or_default());
    match sort {
        // Oldest activity first: never-active users before those without data, before dates.
        SortField::LastActivity => {
            let n = match activity {
                Activity::Never => i64::MIN,
                Activity::NoData => i64::MIN + 1,
                Activity::Seen { at, .. } => at.timestamp_micros(),
            };
            SortKey(n, String::new(), id)
        }
        SortField::Login => SortKey(0, text(login), id),
        SortField::Name => SortKey(0, text(name), id),
    }
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    /// The sort key of the last user answered.
    k: SortKey,
    /// Integrity check: SHA-256 over the binding and the key, so a cursor cannot be edited or
    /// used with another query or tenant. (It is not secret: it only names a position in the
    /// caller's own list.)
    h: String,
}

fn cursor_hash(binding: &str, key: &SortKey) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"seatsync users cursor v1\0");
    hasher.update(binding.as_bytes());
    hasher.update(b"\0");
    hasher.update(serde_json::to_vec(key).unwrap_or_default());
    hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_cursor(binding: &str, key: SortKey) -> String {
    let h = cursor_hash(binding, &key);
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&CursorBody { k: key, h }).unwrap_or_default())
}

fn decode_cursor(binding: &str, cursor: &str) -> Option<SortKey> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let body: CursorBody = serde_json::from_slice(&bytes).ok()?;
    let expected = cursor_hash(binding, &body.k);
    bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), body.h.as_bytes())).then_some(body.k)
}

/// The list position `query`'s cursor names (`None` without one), or why it is refused.
fn position_after(binding: &str, query: &UserQuery) -> Result<Option<SortKey>, QueryError> {
    query
        .cursor
        .as_deref()
        .map(|c| {
            decode_cursor(binding, c).ok_or_else(|| {
                invalid(
                    "cursor",
                    "`cursor` is not valid for this query: it is garbled, edited, or from another query; start again without it",
                )
            })
        })
        .transpose()
}

/// One page of `users` for `query`, with `inactive_days` resolved (the query's or the tenant's)
/// and the tenant's activity `signal`.
pub fn page(
    tenant: &TenantId,
    query: &UserQuery,
    inactive_days: u16,
    signal: ActivitySignal,
    users: impl IntoIterator<Item = UserLicense>,
    now: DateTime<Utc>,
) -> Result<UserPage, QueryError> {
    let binding = query.binding(tenant, signal);
    let after = position_after(&binding, query)?;
    let mut rows: Vec<(SortKey, UserLicense, ActivityState)> = users
        .into_iter()
        .filter_map(|u| {
            let state = activity_state(&u, inactive_days, now);
            matches(query, &u, state, signal, inactive_days, now).then(|| {
                let activity = u.signals().by_signal(signal);
                let key = sort_key(
                    query.sort,
                    activity,
                    u.login.as_deref(),
                    u.name.as_deref(),
                    &u.box_user_id,
                );
                (key, u, state)
            })
        })
        .collect();
    let order = |a: &SortKey, b: &SortKey| -> Ordering { if query.descending { b.cmp(a) } else { a.cmp(b) } };
    rows.sort_by(|a, b| order(&a.0, &b.0));
    let total = rows.len();
    let start = match &after {
        None => 0,
        Some(key) => rows.partition_point(|(k, _, _)| order(k, key) != Ordering::Greater),
    };
    let end = start.saturating_add(query.limit as usize).min(total);
    let next_cursor = (end < total && end > start).then(|| encode_cursor(&binding, rows[end - 1].0.clone()));
    let users = rows
        .drain(start..end)
        .map(|(_, u, state)| row(u, state, signal))
        .collect();
    Ok(UserPage {
        users,
        activity_signal: signal,
        total,
        next_cursor,
    })
}

/// The cursor that continues after `row` of a page answered with `signal` (for a CSV body cut
/// short by size): the same key [`page`] sorted the row by.
pub fn cursor_after(tenant: &TenantId, query: &UserQuery, signal: ActivitySignal, row: &UserRow) -> String {
    let key = sort_key(
        query.sort,
        row.sort_activity,
        row.login.as_deref(),
        row.name.as_deref(),
        &row.box_user_id,
    );
    encode_cursor(&query.binding(tenant, signal), key)
}

fn parts(a: Activity) -> (Option<DateTime<Utc>>, Option<ActivityOrigin>) {
    match a {
        Activity::Seen { at, origin } => (Some(at), Some(origin)),
        _ => (None, None),
    }
}

fn row(u: UserLicense, state: ActivityState, signal: ActivitySignal) -> UserRow {
    let signals = u.signals();
    let sort_activity = signals.by_signal(signal);
    let (at, source) = parts(sort_activity);
    let (login_at, login_source) = parts(signals.login);
    let (content_at, content_source) = parts(signals.content);
    UserRow {
        box_user_id: u.box_user_id,
        login: u.login,
        name: u.name,
        status: u.status,
        role: u.role,
        kind: u.kind,
        owns_content: u.owns_content,
        last_activity_at: at,
        last_activity_source: source,
        last_login_at: login_at,
        last_login_source: login_source,
        last_content_activity_at: content_at,
        last_content_source: content_source,
        activity_state: state,
        first_seen_at: u.first_seen_at,
        removed_at: u.removed_at,
        sort_activity,
    }
}

fn role_str(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Admin) => "admin",
        Some(Role::Coadmin) => "coadmin",
        Some(Role::User) => "user",
        Some(Role::Unknown) => "unknown",
        None => "",
    }
}

fn kind_str(kind: UserKind) -> &'static str {
    match kind {
        UserKind::Managed => "managed",
        UserKind::AppUser => "app_user",
        UserKind::External => "external",
    }
}

fn origin_str(origin: Option<ActivityOrigin>) -> &'static str {
    match origin {
        Some(ActivityOrigin::BoxLogin) => "box_login",
        Some(ActivityOrigin::Okta) => "okta",
        Some(ActivityOrigin::Entra) => "entra",
        Some(ActivityOrigin::EntraTenantWide) => "entra_tenant_wide",
        Some(ActivityOrigin::Google) => "google",
        Some(ActivityOrigin::BoxContent) => "box_content",
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn user(id: &str, login: &str, activity: Activity) -> UserLicense {
        UserLicense {
            box_user_id: BoxUserId::parse(id).unwrap(),
            login: Some(login.into()),
            name: Some(format!("Name {id}")),
            status: UserStatus::Active,
            role: Some(Role::User),
            kind: UserKind::Managed,
            created_at: None,
            owns_content: false,
            login_activity: activity,
            content_activity: Activity::NoData,
            first_seen_at: Utc::now(),
            last_seen_at: Utc::now(),
            removed_at: None,
        }
    }

    fn tenant(t: &str) -> TenantId {
        TenantId::parse(t).unwrap()
    }

    #[test]
    fn cursors_page_through_every_user_once_and_are_bound_to_query_and_tenant() {
        let now = Utc::now();
        let users: Vec<_> = (0..25)
            .map(|i| {
                let activity = match i % 5 {
                    0 => Activity::Never,
                    1 => Activity::NoData,
                    _ => Activity::Seen {
                        at: now - Duration::days(i),
                        origin: ActivityOrigin::BoxLogin,
                    },
                };
                user(&format!("{}", 100 + i), &format!("u{}@x.com", i % 7), activity)
            })
            .collect();
        for sort in ["last_activity", "login", "name"] {
            for order in ["asc", "desc"] {
                let mut query = query::read(&format!("sort={sort}&order={order}&limit=4"), false).unwrap();
                let mut seen = Vec::new();
                loop {
                    let p = page(&tenant("a"), &query, 60, ActivitySignal::Any, users.clone(), now).unwrap();
                    seen.extend(p.users.into_iter().map(|u| u.box_user_id));
                    match p.next_cursor {
                        Some(c) => query.cursor = Some(c),
                        None => break,
                    }
                }
                let mut unique = seen.clone();
                unique.sort();
                unique.dedup();
                assert_eq!((seen.len(), unique.len()), (25, 25), "{sort} {order}");
            }
        }
        let first = page(
            &tenant("a"),
            &query::read("limit=4", false).unwrap(),
            60,
            ActivitySignal::Any,
            users.clone(),
            now,
        )
        .unwrap();
        let cursor = first.next_cursor.unwrap();
        let other_tenant = query::read(&format!("limit=4&cursor={cursor}"), false).unwrap();
        assert!(page(&tenant("b"), &other_tenant, 60, ActivitySignal::Any, users.clone(), now).is_err());
        let other_query = query::read(&format!("sort=login&cursor={cursor}"), false).unwrap();
        assert!(page(&tenant("a"), &other_query, 60, ActivitySignal::Any, users.clone(), now).is_err());
        let same = query::read(&format!("limit=50&cursor={cursor}"), false).unwrap();
        assert_eq!(
            page(&tenant("a"), &same, 60, ActivitySignal::Any, users, now)
                .unwrap()
                .users
                .len(),
            21
        );
    }

    fn days_ago(now: DateTime<Utc>, days: i64, origin: ActivityOrigin) -> Activity {
        Activity::Seen {
            at: now - Duration::days(days),
            origin,
        }
    }

    /// A Drive-only user (content 2 days ago, login 200 days ago) and a login-only user (login 2
    /// days ago, no content activity).
    fn drive_and_login_only(now: DateTime<Utc>) -> Vec<UserLicense> {
        let mut drive = user("1", "drive@x.com", days_ago(now, 200, ActivityOrigin::BoxLogin));
        drive.content_activity = days_ago(now, 2, ActivityOrigin::BoxContent);
        let mut login_only = user("2", "login@x.com", days_ago(now, 2, ActivityOrigin::BoxLogin));
        login_only.content_activity = Activity::Never;
        vec![drive, login_only]
    }

    fn ids(tenant_signal: ActivitySignal, raw: &str, users: Vec<UserLicense>, now: DateTime<Utc>) -> Vec<String> {
        let q = query::read(raw, false).unwrap();
        page(&tenant("a"), &q, 30, tenant_signal, users, now)
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.box_user_id.as_str().to_owned())
            .collect()
    }

    #[test]
    fn rows_show_working_and_login_only_users_with_both_dates() {
        let now = Utc::now();
        let q = query::read("sort=login", false).unwrap();
        let p = page(
            &tenant("a"),
            &q,
            30,
            ActivitySignal::Any,
            drive_and_login_only(now),
            now,
        )
        .unwrap();
        let (drive, login) = (&p.users[0], &p.users[1]);
        assert_eq!(drive.activity_state, ActivityState::Working);
        assert_eq!(drive.last_login_at, Some(now - Duration::days(200)));
        assert_eq!(drive.last_content_activity_at, Some(now - Duration::days(2)));
        assert_eq!(drive.last_content_source, Some(ActivityOrigin::BoxContent));
        assert_eq!(
            drive.last_activity_at,
            Some(now - Duration::days(2)),
            "any: the later date"
        );
        assert_eq!(login.activity_state, ActivityState::LoginOnly);
        assert_eq!(login.last_login_at, Some(now - Duration::days(2)));
        assert_eq!(login.last_content_activity_at, None);
        let by_login = page(
            &tenant("a"),
            &q,
            30,
            ActivitySignal::Login,
            drive_and_login_only(now),
            now,
        )
        .unwrap();
        assert_eq!(by_login.users[0].last_activity_at, Some(now - Duration::days(200)));
        assert_eq!(by_login.activity_signal, ActivitySignal::Login);
    }

    #[test]
    fn the_inactive_filter_follows_the_tenants_signal() {
        let now = Utc::now();
        let users = drive_and_login_only(now);
        assert!(ids(ActivitySignal::Any, "state=inactive", users.clone(), now).is_empty());
        assert_eq!(
            ids(ActivitySignal::Content, "state=inactive", users.clone(), now),
            ["2"]
        );
        assert_eq!(ids(ActivitySignal::Login, "state=inactive", users.clone(), now), ["1"]);
        assert_eq!(ids(ActivitySignal::Content, "state=working", users.clone(), now), ["1"]);
        assert_eq!(
            ids(ActivitySignal::Content, "state=login_only", users.clone(), now),
            ["2"]
        );
        assert_eq!(
            ids(ActivitySignal::Any, "state=active&sort=login", users, now),
            ["1", "2"]
        );
    }

    #[test]
    fn sorting_by_last_activity_follows_the_tenants_signal() {
        let now = Utc::now();
        let mut users = drive_and_login_only(now);
        users[1].login_activity = days_ago(now, 5, ActivityOrigin::BoxLogin);
        assert_eq!(
            ids(ActivitySignal::Any, "sort=last_activity", users.clone(), now),
            ["2", "1"]
        );
        assert_eq!(
            ids(ActivitySignal::Login, "sort=last_activity", users.clone(), now),
            ["1", "2"]
        );
        assert_eq!(
            ids(ActivitySignal::Content, "sort=last_activity", users, now),
            ["2", "1"]
        );
    }

    #[test]
    fn a_cursor_is_bound_to_the_tenants_signal_and_rebuilt_from_a_row() {
        let now = Utc::now();
        let users: Vec<_> = (0..6)
            .map(|i| {
                let mut u = user(
                    &format!("{}", 10 + i),
                    "u@x.com",
                    days_ago(now, 100 + i, ActivityOrigin::BoxLogin),
                );
                u.content_activity = if i % 3 == 0 {
                    Activity::Never
                } else {
                    days_ago(now, i, ActivityOrigin::BoxContent)
                };
                u
            })
            .collect();
        let q = query::read("limit=2", false).unwrap();
        let first = page(&tenant("a"), &q, 30, ActivitySignal::Content, users.clone(), now).unwrap();
        let cursor = first.next_cursor.clone().unwrap();
        let rebuilt = cursor_after(&tenant("a"), &q, ActivitySignal::Content, &first.users[1]);
        assert_eq!(rebuilt, cursor, "the row gives back the key the page sorted by");
        let next = query::read(&format!("limit=2&cursor={cursor}"), false).unwrap();
        assert!(page(&tenant("a"), &next, 30, ActivitySignal::Any, users.clone(), now).is_err());
        assert_eq!(
            page(&tenant("a"), &next, 30, ActivitySignal::Content, users, now)
                .unwrap()
                .users
                .len(),
            2
        );
    }
}

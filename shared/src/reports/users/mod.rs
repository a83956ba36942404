//! The user list behind `GET /licenses/users`: filters, search, order, an opaque keyset cursor
//! bound to the tenant and the query, and the CSV form of a page.
//!
//! What the list is, is defined here, in memory: [`matches`] (who is in it), [`sort_key`] (in
//! which order) and [`page`] (one page of a given set of users). The API reads its pages from the
//! user indexes ([`index`], planned in `plan.rs`): a page reads about what it holds, and is the
//! page [`page`] would cut from the whole tenant (a property test holds the two equal). The
//! cursor is the sort key of the last user answered, so a page stays correct when users change
//! in between. The query is read in [`query`], the CSV form written in [`csv`].

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod csv;
pub mod index;
mod plan;
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
    /// How many users match the query in all; `None` where only reading every match would tell
    /// (see [`index::CountFrom`]).
    pub total: Option<usize>,
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
    if let Some(q) = &query.search
        && search_text(q, user.login.as_deref(), user.name.as_deref()).is_none()
    {
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

/// The text a search prefix `q` matches a user by (as the text keys write them): the login where
/// it matches, else the name, `None` where neither does. A search lists its matches in this
/// text's order, as merging the login index and the name-search index yields them.
pub(super) fn search_text(q: &str, login: Option<&str>, name: Option<&str>) -> Option<String> {
    let text = |v: Option<&str>| crate::storage::schema::text_key_prefix(v.unwrap_or_default());
    let (login, name) = (text(login), text(name));
    if login.starts_with(q) {
        Some(login)
    } else if name.starts_with(q) {
        Some(name)
    } else {
        None
    }
}

/// The sort key of a user in `query`'s list. `activity`: the user's activity by the tenant's signal.
fn sort_key(query: &UserQuery, activity: Activity, login: Option<&str>, name: Option<&str>, id: &BoxUserId) -> SortKey {
    let id = id.as_str().to_owned();
    if let Some(q) = &query.search {
        return SortKey(0, search_text(q, login, name).unwrap_or_default(), id);
    }
    // As the user indexes key it (lowercase, control characters dropped), so both orders agree.
    let text = |v: Option<&str>| crate::storage::schema::text_key_prefix(v.unwrap_or_default());
    match query.sort {
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

/// Why a cursor is refused: garbled, edited, another query's, or naming a position outside the
/// caller's own list.
fn invalid_cursor() -> QueryError {
    invalid(
        "cursor",
        "`cursor` is not valid for this query: it is garbled, edited, or from another query; start again without it",
    )
}

/// The list position `query`'s cursor names (`None` without one), or why it is refused.
fn position_after(binding: &str, query: &UserQuery) -> Result<Option<SortKey>, QueryError> {
    query
        .cursor
        .as_deref()
        .map(|c| decode_cursor(binding, c).ok_or_else(invalid_cursor))
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
                let key = sort_key(query, activity, u.login.as_deref(), u.name.as_deref(), &u.box_user_id);
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
        total: Some(total),
        next_cursor,
    })
}

/// The cursor that continues after `row` of a page answered with `signal` (for a CSV body cut
/// short by size): the same key [`page`] sorted the row by.
pub fn cursor_after(tenant: &TenantId, query: &UserQuery, signal: ActivitySignal, row: &UserRow) -> String {
    let key = sort_key(
        query,
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
mod tests;

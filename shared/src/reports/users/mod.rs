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
mod query;

pub use csv::{CSV_HEADER, MAX_CSV_BYTES, csv_cell, to_csv};
use query::invalid;
pub use query::{
    DEFAULT_JSON_LIMIT, ListFormat, MAX_CSV_LIMIT, MAX_JSON_LIMIT, Order, QueryError, RoleFilter, SortField,
    UserParams, UserQuery,
};

use crate::boxapi::{Role, UserStatus};
use crate::ids::{BoxUserId, TenantId};
use crate::license::{Activity, ActivityOrigin, UserKind, UserLicense};

/// The longest cursor accepted.
const MAX_CURSOR_LEN: usize = 1024;

/// Where a user stands, as the list shows it and `state=` filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityState {
    /// Active status, last activity within `inactive_days`.
    Active,
    /// Active status, last activity `inactive_days` or more ago.
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
    pub last_activity_at: Option<DateTime<Utc>>,
    pub last_activity_source: Option<ActivityOrigin>,
    pub activity_state: ActivityState,
    pub first_seen_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

/// A page of users.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserPage {
    pub users: Vec<UserRow>,
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
    match user.signals().strongest() {
        Activity::Never => ActivityState::Never,
        Activity::NoData => ActivityState::NoData,
        Activity::Seen { at, .. } => {
            if crate::license::inactive_for(at, i64::from(inactive_days), now) {
                ActivityState::Inactive
            } else {
                ActivityState::Active
            }
        }
    }
}

/// Whether `user` is in the list for `query`. Activity states other than `removed` are about
/// seat holders (managed users Box still lists), as the license report counts them; `inactive`
/// takes in users who never logged in, and never users without data. Without `state`, every user
/// Box still lists.
fn matches(query: &UserQuery, user: &UserLicense, state: ActivityState) -> bool {
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
        Some(ActivityState::Inactive) => seat_holder && matches!(state, ActivityState::Inactive | ActivityState::Never),
        Some(wanted) => seat_holder && state == wanted,
    }
}

/// The sort key of a user: the field's value, then the Box id (unique), so the order is total.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct SortKey(i64, String, String);

fn sort_key(sort: SortField, user: &UserLicense) -> SortKey {
    let id = user.box_user_id.as_str().to_owned();
    match sort {
        // Oldest activity first: never-active users before those without data, before dates.
        SortField::LastActivity => {
            let n = match user.signals().strongest() {
                Activity::Never => i64::MIN,
                Activity::NoData => i64::MIN + 1,
                Activity::Seen { at, .. } => at.timestamp_micros(),
            };
            SortKey(n, String::new(), id)
        }
        SortField::Login => SortKey(0, user.login.clone().unwrap_or_default().to_lowercase(), id),
        SortField::Name => SortKey(0, user.name.clone().unwrap_or_default().to_lowercase(), id),
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

/// One page of `users` for `query`, with `inactive_days` resolved (the query's or the tenant's).
pub fn page(
    tenant: &TenantId,
    query: &UserQuery,
    inactive_days: u16,
    users: impl IntoIterator<Item = UserLicense>,
    now: DateTime<Utc>,
) -> Result<UserPage, QueryError> {
    let binding = query.binding(tenant);
    let after = match &query.cursor {
        None => None,
        Some(c) => Some(decode_cursor(&binding, c).ok_or_else(|| {
            invalid(
                "cursor",
                "`cursor` is not valid for this query: it is garbled, edited, or from another query; start again without it",
            )
        })?),
    };
    let mut rows: Vec<(SortKey, UserLicense, ActivityState)> = users
        .into_iter()
        .filter_map(|u| {
            let state = activity_state(&u, inactive_days, now);
            matches(query, &u, state).then(|| (sort_key(query.sort, &u), u, state))
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
    let users = rows.drain(start..end).map(|(_, u, state)| row(u, state)).collect();
    Ok(UserPage {
        users,
        total,
        next_cursor,
    })
}

/// The cursor that continues after `row` (for a CSV body cut short by size).
pub fn cursor_after(tenant: &TenantId, query: &UserQuery, row: &UserRow) -> String {
    let user = UserLicense {
        box_user_id: row.box_user_id.clone(),
        login: row.login.clone(),
        name: row.name.clone(),
        status: row.status,
        role: row.role,
        kind: row.kind,
        created_at: None,
        owns_content: row.owns_content,
        login_activity: match (row.last_activity_at, row.last_activity_source) {
            (Some(at), Some(origin)) => Activity::Seen { at, origin },
            _ if row.activity_state == ActivityState::NoData => Activity::NoData,
            _ => Activity::Never,
        },
        content_activity: Activity::NoData,
        first_seen_at: row.first_seen_at,
        last_seen_at: row.first_seen_at,
        removed_at: row.removed_at,
    };
    encode_cursor(&query.binding(tenant), sort_key(query.sort, &user))
}

fn row(u: UserLicense, state: ActivityState) -> UserRow {
    let (at, source) = match u.signals().strongest() {
        Activity::Seen { at, origin } => (Some(at), Some(origin)),
        _ => (None, None),
    };
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
        activity_state: state,
        first_seen_at: u.first_seen_at,
        removed_at: u.removed_at,
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
                    let p = page(&tenant("a"), &query, 60, users.clone(), now).unwrap();
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
            users.clone(),
            now,
        )
        .unwrap();
        let cursor = first.next_cursor.unwrap();
        let other_tenant = query::read(&format!("limit=4&cursor={cursor}"), false).unwrap();
        assert!(page(&tenant("b"), &other_tenant, 60, users.clone(), now).is_err());
        let other_query = query::read(&format!("sort=login&cursor={cursor}"), false).unwrap();
        assert!(page(&tenant("a"), &other_query, 60, users.clone(), now).is_err());
        let same = query::read(&format!("limit=50&cursor={cursor}"), false).unwrap();
        assert_eq!(page(&tenant("a"), &same, 60, users, now).unwrap().users.len(), 21);
    }
}

//! The user list behind `GET /licenses/users`: filters, order, an opaque keyset cursor bound to the
//! tenant and the query, and the CSV form of a page.
//!
//! The list is computed in memory from every stored user of the tenant (one partition query, pages
//! of 1,000): filtering by activity state or role and sorting by last activity cannot use a
//! DynamoDB index without one per combination, and a tenant's users are bounded by its Box seats
//! (a 100,000-user tenant is about 30 MB of items, well within a Lambda's memory). The cursor is
//! the sort key of the last user answered, so a page stays correct when users change in between.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::boxapi::{Role, UserStatus};
use crate::ids::TenantId;
use crate::license::{Activity, ActivityOrigin, UserKind, UserLicense};

/// Rows per JSON page at most, and by default.
pub const MAX_JSON_LIMIT: u32 = 1_000;
pub const DEFAULT_JSON_LIMIT: u32 = 100;
/// Rows per CSV response at most (and by default): a Lambda answer is at most 6 MB.
pub const MAX_CSV_LIMIT: u32 = 10_000;
/// A CSV body stops growing past this many bytes (the rest comes with the `next` link), so rows
/// with very long names can never push an answer past Lambda's 6 MB.
pub const MAX_CSV_BYTES: usize = 5 * 1024 * 1024;
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
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "never" => Self::Never,
            "no_data" => Self::NoData,
            "deactivated" => Self::Deactivated,
            "removed" => Self::Removed,
            _ => return None,
        })
    }

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    LastActivity,
    Login,
    Name,
}

impl SortField {
    fn as_str(self) -> &'static str {
        match self {
            Self::LastActivity => "last_activity",
            Self::Login => "login",
            Self::Name => "name",
        }
    }
}

/// A validated `GET /licenses/users` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub state: Option<ActivityState>,
    /// `None`: the tenant's inactivity threshold.
    pub inactive_days: Option<u16>,
    pub role: Option<Role>,
    pub kind: Option<UserKind>,
    pub sort: SortField,
    pub descending: bool,
    pub limit: u32,
    pub cursor: Option<String>,
}

/// Why a query was refused; names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct QueryError {
    pub field: &'static str,
    pub detail: String,
}

fn invalid(field: &'static str, detail: impl Into<String>) -> QueryError {
    QueryError {
        field,
        detail: detail.into(),
    }
}

impl UserQuery {
    /// Parses the raw query string; `csv` selects the CSV limits. Unknown and repeated parameters
    /// are refused (a typo must not silently widen an export).
    pub fn parse(raw: Option<&str>, csv: bool) -> Result<Self, QueryError> {
        let (max, default) = if csv {
            (MAX_CSV_LIMIT, MAX_CSV_LIMIT)
        } else {
            (MAX_JSON_LIMIT, DEFAULT_JSON_LIMIT)
        };
        let mut query = UserQuery {
            state: None,
            inactive_days: None,
            role: None,
            kind: None,
            sort: SortField::LastActivity,
            descending: false,
            limit: default,
            cursor: None,
        };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let key = key.into_owned();
            let field: &'static str = match key.as_str() {
                "state" => "state",
                "inactive_days" => "inactive_days",
                "role" => "role",
                "kind" => "kind",
                "sort" => "sort",
                "order" => "order",
                "limit" => "limit",
                "cursor" => "cursor",
                other => {
                    return Err(invalid(
                        "query",
                        format!(
                            "unknown query parameter `{}`; use state, inactive_days, role, kind, sort, order, limit, cursor",
                            shorten(other)
                        ),
                    ));
                }
            };
            if seen.contains(&key) {
                return Err(invalid(field, format!("`{field}` is given more than once")));
            }
            seen.push(key);
            let value = value.as_ref();
            match field {
                "state" => {
                    query.state = Some(ActivityState::parse(value).ok_or_else(|| {
                        invalid(
                            "state",
                            "`state` must be one of active, inactive, never, no_data, deactivated, removed",
                        )
                    })?)
                }
                "inactive_days" => {
                    let days = value
                        .parse::<u16>()
                        .ok()
                        .filter(|d| (1..=365).contains(d))
                        .ok_or_else(|| {
                            invalid("inactive_days", "`inactive_days` must be a whole number from 1 to 365")
                        })?;
                    query.inactive_days = Some(days);
                }
                "role" => {
                    query.role = Some(match value {
                        "admin" => Role::Admin,
                        "coadmin" => Role::Coadmin,
                        "user" => Role::User,
                        _ => return Err(invalid("role", "`role` must be one of admin, coadmin, user")),
                    })
                }
                "kind" => {
                    query.kind = Some(match value {
                        "managed" => UserKind::Managed,
                        "app_user" => UserKind::AppUser,
                        "external" => UserKind::External,
                        _ => return Err(invalid("kind", "`kind` must be one of managed, app_user, external")),
                    })
                }
                "sort" => {
                    query.sort = match value {
                        "last_activity" => SortField::LastActivity,
                        "login" => SortField::Login,
                        "name" => SortField::Name,
                        _ => return Err(invalid("sort", "`sort` must be one of last_activity, login, name")),
                    }
                }
                "order" => {
                    query.descending = match value {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(invalid("order", "`order` must be asc or desc")),
                    }
                }
                "limit" => {
                    query.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| invalid("limit", format!("`limit` must be a whole number from 1 to {max}")))?;
                }
                _ => {
                    if value.is_empty() || value.len() > MAX_CURSOR_LEN {
                        return Err(invalid("cursor", "`cursor` is not a cursor this API issued"));
                    }
                    query.cursor = Some(value.to_owned());
                }
            }
        }
        Ok(query)
    }

    /// The query string of the next page: the same parameters and this cursor.
    pub fn next_query(&self, cursor: &str) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if let Some(state) = self.state {
            out.append_pair("state", state.as_str());
        }
        if let Some(days) = self.inactive_days {
            out.append_pair("inactive_days", &days.to_string());
        }
        if let Some(role) = self.role {
            out.append_pair("role", role_str(Some(role)));
        }
        if let Some(kind) = self.kind {
            out.append_pair("kind", kind_str(kind));
        }
        out.append_pair("sort", self.sort.as_str());
        out.append_pair("order", if self.descending { "desc" } else { "asc" });
        out.append_pair("limit", &self.limit.to_string());
        out.append_pair("cursor", cursor);
        out.finish()
    }

    /// What a cursor is bound to: the tenant and every parameter that changes the list (not the
    /// page size or the format).
    fn binding(&self, tenant: &TenantId) -> String {
        format!(
            "{}\0{}\0{}\0{}\0{}\0{}\0{}",
            tenant.as_str(),
            self.state.map_or("", ActivityState::as_str),
            self.inactive_days.map(|d| d.to_string()).unwrap_or_default(),
            self.role.map_or("", |r| role_str(Some(r))),
            self.kind.map_or("", kind_str),
            self.sort.as_str(),
            self.descending,
        )
    }
}

fn shorten(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// One user as the list answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRow {
    pub box_user_id: String,
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
    match user.activity {
        Activity::Never => ActivityState::Never,
        Activity::NoData => ActivityState::NoData,
        Activity::Seen { at, .. } => {
            if at.date_naive() < cutoff(inactive_days, now) {
                ActivityState::Inactive
            } else {
                ActivityState::Active
            }
        }
    }
}

fn cutoff(days: u16, now: DateTime<Utc>) -> NaiveDate {
    (now - Duration::days(i64::from(days))).date_naive()
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
    let id = user.box_user_id.clone();
    match sort {
        // Oldest activity first: never-active users before those without data, before dates.
        SortField::LastActivity => {
            let n = match user.activity {
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
        activity: match (row.last_activity_at, row.last_activity_source) {
            (Some(at), Some(origin)) => Activity::Seen { at, origin },
            _ if row.activity_state == ActivityState::NoData => Activity::NoData,
            _ => Activity::Never,
        },
        first_seen_at: row.first_seen_at,
        last_seen_at: row.first_seen_at,
        removed_at: row.removed_at,
    };
    encode_cursor(&query.binding(tenant), sort_key(query.sort, &user))
}

fn row(u: UserLicense, state: ActivityState) -> UserRow {
    let (at, source) = match u.activity {
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
        None => "",
    }
}

/// The CSV header row.
pub const CSV_HEADER: [&str; 12] = [
    "box_user_id",
    "login",
    "name",
    "status",
    "role",
    "kind",
    "owns_content",
    "last_activity_at",
    "last_activity_source",
    "activity_state",
    "first_seen_at",
    "removed_at",
];

/// One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break; a cell that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a
/// leading `'` so it stays text (OWASP "CSV injection").
pub fn csv_cell(value: &str, out: &mut String) {
    let guard = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = guard || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn csv_line(cells: &[&str], out: &mut String) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(cell, out);
    }
    out.push_str("\r\n");
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The CSV text of `rows` (header first), stopping before [`MAX_CSV_BYTES`]; returns the text and
/// how many rows it holds.
pub fn to_csv(rows: &[UserRow]) -> (String, usize) {
    let mut out = String::with_capacity(256 * (rows.len() + 1));
    csv_line(&CSV_HEADER, &mut out);
    let mut line = String::new();
    for (n, r) in rows.iter().enumerate() {
        line.clear();
        let status = r.status.as_str();
        let first_seen = time(Some(r.first_seen_at));
        let last = time(r.last_activity_at);
        let removed = time(r.removed_at);
        csv_line(
            &[
                &r.box_user_id,
                r.login.as_deref().unwrap_or_default(),
                r.name.as_deref().unwrap_or_default(),
                status,
                role_str(r.role),
                kind_str(r.kind),
                if r.owns_content { "true" } else { "false" },
                &last,
                origin_str(r.last_activity_source),
                r.activity_state.as_str(),
                &first_seen,
                &removed,
            ],
            &mut line,
        );
        if out.len() + line.len() > MAX_CSV_BYTES {
            return (out, n);
        }
        out.push_str(&line);
    }
    (out, rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, login: &str, activity: Activity) -> UserLicense {
        UserLicense {
            box_user_id: id.into(),
            login: Some(login.into()),
            name: Some(format!("Name {id}")),
            status: UserStatus::Active,
            role: Some(Role::User),
            kind: UserKind::Managed,
            created_at: None,
            owns_content: false,
            activity,
            first_seen_at: Utc::now(),
            last_seen_at: Utc::now(),
            removed_at: None,
        }
    }

    fn tenant(t: &str) -> TenantId {
        TenantId::parse(t).unwrap()
    }

    #[test]
    fn cells_are_quoted_and_formulas_neutralised() {
        let cell = |v: &str| {
            let mut s = String::new();
            csv_cell(v, &mut s);
            s
        };
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("-1+2"), "\"'-1+2\"");
    }

    #[test]
    fn queries_reject_unknown_repeated_and_out_of_range_parameters() {
        for (raw, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=x", "limit"),
            ("state=sleepy", "state"),
            ("inactive_days=0", "inactive_days"),
            ("inactive_days=366", "inactive_days"),
            ("role=owner", "role"),
            ("kind=robot", "kind"),
            ("sort=size", "sort"),
            ("order=up", "order"),
            ("limit=1&limit=2", "limit"),
            ("tenant=other", "query"),
        ] {
            assert_eq!(UserQuery::parse(Some(raw), false).unwrap_err().field, field, "{raw}");
        }
        assert_eq!(UserQuery::parse(Some("limit=10000"), true).unwrap().limit, 10_000);
        assert_eq!(UserQuery::parse(None, false).unwrap().limit, DEFAULT_JSON_LIMIT);
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
                let mut query = UserQuery::parse(Some(&format!("sort={sort}&order={order}&limit=4")), false).unwrap();
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
            &UserQuery::parse(Some("limit=4"), false).unwrap(),
            60,
            users.clone(),
            now,
        )
        .unwrap();
        let cursor = first.next_cursor.unwrap();
        let other_tenant = UserQuery::parse(Some(&format!("limit=4&cursor={cursor}")), false).unwrap();
        assert!(page(&tenant("b"), &other_tenant, 60, users.clone(), now).is_err());
        let other_query = UserQuery::parse(Some(&format!("sort=login&cursor={cursor}")), false).unwrap();
        assert!(page(&tenant("a"), &other_query, 60, users.clone(), now).is_err());
        let same = UserQuery::parse(Some(&format!("limit=50&cursor={cursor}")), false).unwrap();
        assert_eq!(page(&tenant("a"), &same, 60, users, now).unwrap().users.len(), 21);
    }
}

//! The single-table design, defined once.
//!
//! Every tenant-owned item has the partition key `TENANT#<tenant id>`, so a tenant's data is one
//! partition and no query can reach another tenant's items without naming that tenant. Keys are
//! only built through the functions below, never by string formatting elsewhere.
//!
//! | pk                     | sk                              | what                                      |
//! |------------------------|---------------------------------|-------------------------------------------|
//! | `TENANT#<t>`           | `CONNECTION#box`                | the Box connection record                 |
//! | `TENANT#<t>`           | `SETTINGS`                      | seats, price, threshold, SSO provider     |
//! | `TENANT#<t>`           | `SUMMARY`                       | the license summary of the last full sync |
//! | `TENANT#<t>`           | `USER#<box user id>`            | one Box user's license state              |
//! | `TENANT#<t>`           | `SYNC#<started at>#<run id>`    | sync history (expires after 90 days)      |
//! | `TENANT#<t>`           | `CHECKPOINT#sync`               | where an interrupted sync resumes         |
//! | `TENANT#<t>`           | `SYNCSCRATCH#<run>#<n>`         | a continued run's activity so far (2 days)|
//! | `TENANT#<t>`           | `SYNCLISTED#<run>#<n>`          | a continued run's listed ids (2 days)     |
//! | `TENANT#<t>`           | `SYNCDONE#<kind>#<slot>`        | a scheduled slot already synced           |
//! | `TENANT#<t>`           | `AUDIT#<time>#<id>`             | one audit record per attempted change     |
//! | `TENANT#<t>`           | `IDEMPOTENCY#<key>`             | a stored answer for an `Idempotency-Key`  |
//! | `TENANT#<t>`           | `LEASE#<name>`                  | a short lease (e.g. the token refresh)    |
//! | `TENANT#<t>`           | `REFRESH_CLAIM#<fingerprint>`   | who may spend one refresh token (expires) |
//! | `TENANT#<t>`           | `ACTIONS#<yyyy-mm-dd>`          | license changes that UTC day (3 days)     |
//! | `TENANT#<t>`           | `RATE#<window start epoch s>`   | API requests in one window (few windows)  |
//! | `OAUTH_STATE#<hash>`   | `OAUTH_STATE`                   | a pending OAuth `state` (expires, 10 min) |
//!
//! GSI `gsi1` (`gsi1pk`, `gsi1sk`) lists connections by status: `gsi1pk = CONNECTIONS#<status>`,
//! `gsi1sk = <tenant id>`, which is how the scheduled sync finds every connected tenant.
//! The attribute [`TTL_ATTRIBUTE`] holds an epoch-seconds expiry; DynamoDB deletes such items
//! within about two days, so readers also filter expired items themselves.
//!
//! ## User indexes (issue 12)
//!
//! Every user item (`USER#<id>`) also carries index attributes, computed from the user by one pure
//! function ([`crate::storage::user_index::user_index`]) on both user write paths, so they cannot drift:
//!
//! | GSI                     | partition `upk`                 | sort key      | sort key value                          |
//! |-------------------------|---------------------------------|---------------|-----------------------------------------|
//! | `users_by_any`          | `USERS#<t>#<segment>`           | `k_any`       | activity key of the strongest signal    |
//! | `users_by_login_at`     | `USERS#<t>#<segment>`           | `k_login`     | activity key of the last login          |
//! | `users_by_content_at`   | `USERS#<t>#<segment>`           | `k_content`   | activity key of the last content use    |
//! | `users_by_loginname`    | `USERS#<t>#<segment>`           | `k_loginname` | `lowercase(login) SEP id`               |
//! | `users_by_name`         | `USERS#<t>#<segment>`           | `k_name`      | `lowercase(name) SEP id`                |
//! | `users_by_name_search`  | `USERS#<t>#<segment>`           | `k_namesearch`| as `k_name`, where the login cannot stand in (sparse) |
//! | `users_by_role`         | `rpk` = `USERS#<t>#role:<role>` | `k_loginname` | admins and co-admins only (sparse)      |
//!
//! Segments: `seat` (holds a seat, not deactivated), `deactivated` (holds a seat, deactivated),
//! `removed` (gone from Box), `other` (app and external users). Activity key: `0 SEP id` never,
//! `1 SEP id` no data, `2<UTC %Y-%m-%dT%H:%M:%S%.6fZ> SEP id` seen; `SEP` is `\u{1}`, below every
//! printable character, so ascending key order is the in-memory sort order (value, then id).
//!
//! Why: the GSIs are sparse (only user items carry `upk`, only admins `rpk`) and keyed per tenant
//! and segment, so a list page reads only its own users, and the sort key *is* the list's order.
//! Time-dependent states are key ranges against a cutoff, never stored state: inactive 90 days by
//! signal S is `upk = USERS#<t>#seat` with `k_S` `begins_with "0"` (never), then `BETWEEN "2" AND
//! "2"<cutoff day>`; working or login-only by the strongest signal is `k_any >= "2"<cutoff day>`;
//! never is `begins_with "0"`; deactivated is `upk = USERS#<t>#deactivated`. A list over several
//! segments (no state filter: seat, deactivated and other) merges their partitions by key, each
//! read a part of the page at a time. A search merges `begins_with(prefix)` on `k_loginname` and
//! on `k_namesearch`: a name that is a prefix of its login (`Michael Smith`,
//! `michael.smith@…`, as text keys write them) finds nobody its login does not, so only the other
//! names are in the search index, and a page reads about one entry per user it lists; a user is
//! listed at their login where it matches, else at their name. Admins and
//! co-admins are few: their list reads the role partition and pages it in memory. An unchanged
//! re-sync writes no item, so no index entry; a changed user rewrites only its own item, and
//! DynamoDB moves its index entries (between segments and ranges) itself.

use crate::ids::TenantId;

/// Partition key attribute name.
pub const PK: &str = "pk";
/// Sort key attribute name.
pub const SK: &str = "sk";
/// The one global secondary index.
pub const GSI1: &str = "gsi1";
/// Partition key of [`GSI1`].
pub const GSI1_PK: &str = "gsi1pk";
/// Sort key of [`GSI1`].
pub const GSI1_SK: &str = "gsi1sk";
/// Epoch seconds after which DynamoDB may delete the item.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Optimistic-lock counter on items that several writers update.
pub const VERSION_ATTRIBUTE: &str = "version";

/// The table's key schema as `(attribute, key type)`; `infra/template.yaml` must declare the same.
pub const TABLE_KEY_SCHEMA: [(&str, &str); 2] = [(PK, "HASH"), (SK, "RANGE")];
/// The GSI's key schema as `(attribute, key type)`.
pub const GSI1_KEY_SCHEMA: [(&str, &str); 2] = [(GSI1_PK, "HASH"), (GSI1_SK, "RANGE")];

/// Partition key of every user GSI: `USERS#<tenant id>#<segment>` ([`users_upk`]).
pub const USERS_UPK: &str = "upk";
/// Sort key of [`USERS_BY_ANY`]: activity key of the strongest signal.
pub const K_ANY: &str = "k_any";
/// Sort key of [`USERS_BY_LOGIN_AT`]: activity key of the last login.
pub const K_LOGIN: &str = "k_login";
/// Sort key of [`USERS_BY_CONTENT_AT`]: activity key of the last content activity.
pub const K_CONTENT: &str = "k_content";
/// Sort key of [`USERS_BY_LOGINNAME`]: lowercase login, [`USER_INDEX_SEP`], id.
pub const K_LOGINNAME: &str = "k_loginname";
/// Sort key of [`USERS_BY_NAME`]: lowercase name, [`USER_INDEX_SEP`], id.
pub const K_NAME: &str = "k_name";
/// Sort key of [`USERS_BY_NAME_SEARCH`]: as [`K_NAME`], only where the name finds the user by a
/// prefix the login does not (see [`crate::storage::user_index::user_index`]).
pub const K_NAMESEARCH: &str = "k_namesearch";
/// Users by their strongest activity (the later of login and content), oldest first.
pub const USERS_BY_ANY: &str = "users_by_any";
/// Users by their last login, oldest first.
pub const USERS_BY_LOGIN_AT: &str = "users_by_login_at";
/// Users by their last content activity (the login where unknown), oldest first.
pub const USERS_BY_CONTENT_AT: &str = "users_by_content_at";
/// Users by lowercase login.
pub const USERS_BY_LOGINNAME: &str = "users_by_loginname";
/// Users by lowercase name.
pub const USERS_BY_NAME: &str = "users_by_name";
/// Users whose name finds them by a prefix their login does not (sparse): what a search reads
/// beside [`USERS_BY_LOGINNAME`].
pub const USERS_BY_NAME_SEARCH: &str = "users_by_name_search";
/// Partition key of [`USERS_BY_ROLE`]: `USERS#<tenant>#role:<admin|coadmin>`, only on the items
/// of admins and co-admins (sparse).
pub const USERS_RPK: &str = "rpk";
/// Admins and co-admins by role, then lowercase login.
pub const USERS_BY_ROLE: &str = "users_by_role";
/// Every user GSI as `(index name, partition key attribute, sort key attribute)`; each projects all.
pub const USER_INDEXES: [(&str, &str, &str); 7] = [
    (USERS_BY_ANY, USERS_UPK, K_ANY),
    (USERS_BY_LOGIN_AT, USERS_UPK, K_LOGIN),
    (USERS_BY_CONTENT_AT, USERS_UPK, K_CONTENT),
    (USERS_BY_LOGINNAME, USERS_UPK, K_LOGINNAME),
    (USERS_BY_NAME, USERS_UPK, K_NAME),
    (USERS_BY_NAME_SEARCH, USERS_UPK, K_NAMESEARCH),
    (USERS_BY_ROLE, USERS_RPK, K_LOGINNAME),
];
/// The key schema of a user GSI as `(attribute, key type)`.
pub const fn user_index_key_schema<'a>(partition: &'a str, sort: &'a str) -> [(&'a str, &'a str); 2] {
    [(partition, "HASH"), (sort, "RANGE")]
}
/// Every attribute the user indexes add to a user item (the adapter's, never the record's).
pub const USER_INDEX_ATTRIBUTES: [&str; 8] = [
    USERS_UPK,
    K_ANY,
    K_LOGIN,
    K_CONTENT,
    K_LOGINNAME,
    K_NAME,
    K_NAMESEARCH,
    USERS_RPK,
];
/// Separates a sort key's value from the user id: below every printable character, so `ann` sorts
/// before `ann lee` exactly as the tuple `(value, id)` does.
pub const USER_INDEX_SEP: &str = "\u{1}";
/// Activity key prefix of a user never active in the history read.
pub const ACTIVITY_NEVER: &str = "0";
/// Activity key prefix of a user the source has no data for.
pub const ACTIVITY_NO_DATA: &str = "1";
/// Activity key prefix of a user last active at a date (the date follows).
pub const ACTIVITY_SEEN: &str = "2";
/// Format of the date in an activity key: UTC, fixed width, so string order is time order.
pub const ACTIVITY_AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Which users a user-index partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserSegment {
    /// Holds a seat and is not deactivated.
    Seat,
    /// Holds a seat and is deactivated.
    Deactivated,
    /// No longer listed by Box.
    Removed,
    /// App users and external users (no seat).
    Other,
}

impl UserSegment {
    pub fn as_str(self) -> &'static str {
        match self {
            UserSegment::Seat => "seat",
            UserSegment::Deactivated => "deactivated",
            UserSegment::Removed => "removed",
            UserSegment::Other => "other",
        }
    }
}

/// Partition key of a user-index partition: `USERS#<tenant id>#<segment>`.
pub fn users_upk(tenant: &TenantId, segment: UserSegment) -> String {
    format!("USERS#{}#{}", tenant.as_str(), segment.as_str())
}

/// Partition key of the role index for `role` (`admin` or `coadmin`): `USERS#<tenant id>#role:<role>`.
pub fn users_rpk(tenant: &TenantId, role: &str) -> String {
    format!("USERS#{}#role:{role}", tenant.as_str())
}

/// An activity key: `0 SEP id`, `1 SEP id` or `2<at> SEP id`.
pub fn activity_key(activity: &crate::license::Activity, box_user_id: &str) -> String {
    use crate::license::Activity;
    match activity {
        Activity::Never => format!("{ACTIVITY_NEVER}{USER_INDEX_SEP}{box_user_id}"),
        Activity::NoData => format!("{ACTIVITY_NO_DATA}{USER_INDEX_SEP}{box_user_id}"),
        Activity::Seen { at, .. } => format!("{}{USER_INDEX_SEP}{box_user_id}", activity_seen_prefix(*at)),
    }
}

/// The prefix of the activity keys of users last active at `at`; users last active before `at` sort
/// below it, so "before the cutoff" is `BETWEEN "2" AND activity_seen_prefix(cutoff)` (exclusive
/// of the cutoff itself, whose keys sort above its prefix).
pub fn activity_seen_prefix(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{ACTIVITY_SEEN}{}", at.format(ACTIVITY_AT_FORMAT))
}

/// A text sort key: the text without control characters, lowercased, then `SEP id`.
pub fn text_key(text: Option<&str>, box_user_id: &str) -> String {
    format!(
        "{}{USER_INDEX_SEP}{box_user_id}",
        text_key_prefix(text.unwrap_or_default())
    )
}

/// How a text is written into a text sort key (and so how a search prefix must be written):
/// lowercase, without control characters, and `.`, `_` and `-` written as a space, so that
/// `Michael Smith` is a prefix of `michael.smith@example.com` as people read them.
pub fn text_key_prefix(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if matches!(c, '.' | '_' | '-') { ' ' } else { c })
        .collect();
    clean.to_lowercase()
}

/// The partition key of everything a tenant owns.
pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{}", tenant.as_str())
}

/// Sort key of the tenant's Box connection record.
pub const SK_CONNECTION_BOX: &str = "CONNECTION#box";
/// Sort key of the tenant's settings.
pub const SK_SETTINGS: &str = "SETTINGS";
/// Sort key of the tenant's license summary.
pub const SK_SUMMARY: &str = "SUMMARY";
/// Sort key of the tenant's sync checkpoint.
pub const SK_SYNC_CHECKPOINT: &str = "CHECKPOINT#sync";
/// Prefix of user items' sort keys.
pub const SK_USER_PREFIX: &str = "USER#";
/// Prefix of sync-history sort keys.
pub const SK_SYNC_PREFIX: &str = "SYNC#";
/// Prefix of a continued sync run's saved activity.
pub const SK_SYNC_SCRATCH_PREFIX: &str = "SYNCSCRATCH#";
/// Prefix of a continued sync run's saved listing.
pub const SK_SYNC_LISTED_PREFIX: &str = "SYNCLISTED#";
/// Prefix of audit-record sort keys.
pub const SK_AUDIT_PREFIX: &str = "AUDIT#";

/// Sort key of one Box user's license state.
pub fn user_sk(box_user_id: &str) -> String {
    format!("{SK_USER_PREFIX}{box_user_id}")
}

/// Sort key of a stored idempotent answer.
pub fn idempotency_sk(key: &str) -> String {
    format!("IDEMPOTENCY#{key}")
}

/// Sort key of the claim on one refresh token: whoever creates it is the only one ever to send
/// that refresh token to Box (`fingerprint` is a one-way hash, never the token).
pub fn refresh_claim_sk(fingerprint: &str) -> String {
    format!("REFRESH_CLAIM#{fingerprint}")
}

/// Sort key of a tenant's license-change counter for one UTC day (`ACTIONS#2026-11-28`): the
/// item holds `count` and expires a few days after its day.
pub fn actions_counter_sk(day: chrono::NaiveDate) -> String {
    format!("ACTIONS#{}", day.format("%Y-%m-%d"))
}

/// Sort key of a tenant's API request counter for the fixed window that starts at
/// `window_start` (epoch seconds, `RATE#1795824000`): the item holds `count` and expires a few
/// windows later.
pub fn rate_window_sk(window_start: i64) -> String {
    format!("RATE#{window_start}")
}

/// Sort key of a named lease.
pub fn lease_sk(name: &str) -> String {
    format!("LEASE#{name}")
}

/// Partition key of a pending OAuth state, by the hash of the state (the raw state is never stored).
pub fn oauth_state_pk(state_hash: &str) -> String {
    format!("OAUTH_STATE#{state_hash}")
}

/// Sort key of a pending OAuth state.
pub const SK_OAUTH_STATE: &str = "OAUTH_STATE";

/// GSI partition listing connections in one status (`connected`, `reauth_required`, `disconnected`).
pub fn connections_by_status_pk(status: &str) -> String {
    format!("CONNECTIONS#{status}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_actions_counter_is_keyed_by_its_utc_day() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(actions_counter_sk(day), "ACTIONS#2026-01-05");
        let next = day.succ_opt().unwrap();
        assert_ne!(actions_counter_sk(next), actions_counter_sk(day));
    }
}

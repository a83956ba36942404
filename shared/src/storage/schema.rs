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

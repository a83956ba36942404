//! A tenant's license state belongs to one Box enterprise. When a tenant connects an enterprise
//! other than the one its state came from, that state is deleted before the new connection is
//! stored: no user, activity date, summary or checkpoint of the previous enterprise can reach a
//! report or an action, and the first sync of the new enterprise runs a full back-fill.
//!
//! The audit trail, settings and idempotency records stay: they are the tenant's, not the
//! enterprise's. A sync of the previous enterprise that is still running holds the tenant's sync
//! lease; the reset takes that lease, so it never interleaves with one.

use std::time::Duration;

use crate::ids::TenantId;
use crate::storage::schema::{
    SK_SUMMARY, SK_SYNC_CHECKPOINT, SK_SYNC_LISTED_PREFIX, SK_SYNC_PREFIX, SK_SYNC_SCRATCH_PREFIX, SK_USER_PREFIX,
    tenant_pk,
};
use crate::storage::{LeaseOutcome, StoreError, Table};
use crate::sync::SYNC_LEASE_NAME;

/// Sort-key prefixes of everything derived from the enterprise.
const ENTERPRISE_STATE: [&str; 6] = [
    SK_USER_PREFIX,
    SK_SUMMARY,
    SK_SYNC_CHECKPOINT,
    SK_SYNC_PREFIX,
    SK_SYNC_SCRATCH_PREFIX,
    SK_SYNC_LISTED_PREFIX,
];

/// Why the state could not be reset.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// A sync of the previous enterprise is still running; connect again once it has stopped.
    #[error("a sync of the previously connected Box enterprise is still running")]
    SyncRunning,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Deletes the tenant's enterprise-derived state; returns how many items went.
pub async fn clear_enterprise_state(table: &Table, tenant: &TenantId) -> Result<usize, ResetError> {
    let pk = tenant_pk(tenant);
    let holder = format!("connect:{}", uuid::Uuid::new_v4());
    if let LeaseOutcome::HeldBy { .. } = table
        .try_acquire_lease(&pk, SYNC_LEASE_NAME, &holder, Duration::from_secs(60))
        .await?
    {
        return Err(ResetError::SyncRunning);
    }
    let mut deleted = 0;
    let mut result = Ok(());
    for prefix in ENTERPRISE_STATE {
        match table.delete_prefix(&pk, prefix).await {
            Ok(n) => deleted += n,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Err(e) = table.release_lease(&pk, SYNC_LEASE_NAME, &holder).await {
        tracing::warn!(error = %e, "could not release the sync lease after a reset; it expires by itself");
    }
    result?;
    tracing::info!(
        deleted,
        "cleared the license state of the previously connected enterprise"
    );
    Ok(deleted)
}

//! The claim on one refresh token: a DynamoDB item created with a conditional write before the
//! token is sent to Box. Whoever creates it is the only one ever to spend that refresh token
//! (checklist item 30: Box may revoke a whole grant when a rotated refresh token is reused).
//!
//! - A claim lasts [`super::TokenProviderOptions::claim_ttl`]. While it exists, everyone else waits
//!   for the new secret instead of spending the old refresh token, even after the refresh lease
//!   has run out (a holder slowed past its lease, item 11).
//! - A holder whose refreshed pair could not be stored extends its claim over the whole time it
//!   keeps retrying the write ([`super::TokenProviderOptions::write_horizon`]), so no one spends the
//!   old token while the only copy of the new one is in that holder's memory (item 31).
//! - Box answering with an error (`OAuth2Error`, 429) spent nothing: the claim is dropped at once.
//!   An ambiguous failure (no answer, 5xx) keeps it until it expires: Box may have rotated.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::TenantId;
use crate::storage::schema::{refresh_claim_sk, tenant_pk};
use crate::storage::{PutOutcome, StoreError, Table};

/// A one-way fingerprint of a refresh token (32 hex characters, domain-separated SHA-256).
pub fn fingerprint(refresh_token: &SecretString) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"seatsync refresh claim v1\0");
    hasher.update(refresh_token.expose_secret().as_bytes());
    hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimItem {
    holder: String,
    claimed_at: DateTime<Utc>,
    /// Epoch seconds ([`crate::storage::schema::TTL_ATTRIBUTE`]): expired claims count as none.
    expires_at: i64,
}

/// One refresh token's claim in one tenant's partition.
#[derive(Debug, Clone)]
pub struct RefreshClaim {
    table: Table,
    pk: String,
    sk: String,
    holder: String,
}

impl RefreshClaim {
    pub fn new(table: Table, tenant: &TenantId, refresh_token: &SecretString, holder: &str) -> Self {
        Self {
            table,
            pk: tenant_pk(tenant),
            sk: refresh_claim_sk(&fingerprint(refresh_token)),
            holder: holder.to_owned(),
        }
    }

    /// Creates the claim for `ttl`; `false` if someone else holds it (spent or spending the token).
    pub async fn take(&self, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.table.put_new(&self.pk, &self.sk, &self.item(ttl)).await? == PutOutcome::Created)
    }

    /// Keeps the claim for `ttl` from now (the holder still has an unstored refreshed pair).
    pub async fn extend(&self, ttl: Duration) -> Result<(), StoreError> {
        self.table.put(&self.pk, &self.sk, &self.item(ttl)).await
    }

    /// Drops the claim: Box answered, so the token was not spent and may be used again.
    pub async fn release(&self) {
        if let Err(e) = self.table.delete(&self.pk, &self.sk).await {
            // It expires by itself; others only wait a little longer.
            tracing::warn!(error = %e, "could not drop a refresh claim");
        }
    }

    fn item(&self, ttl: Duration) -> ClaimItem {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(2));
        ClaimItem {
            holder: self.holder.clone(),
            claimed_at: now,
            // Rounded up, so the item never reads as expired before `ttl` has passed.
            expires_at: (now + ttl).timestamp() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_distinct_and_reveal_nothing() {
        let a = fingerprint(&SecretString::from("refresh-AAAA"));
        assert_eq!(a, fingerprint(&SecretString::from("refresh-AAAA")));
        assert_ne!(a, fingerprint(&SecretString::from("refresh-AAAB")));
        assert_eq!(a.len(), 32);
        assert!(!a.contains("AAAA"));
        assert_ne!(
            a,
            crate::storage::request_token_from(&SecretString::from("refresh-AAAA"))[..32]
        );
    }
}

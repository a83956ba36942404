//! Leases: a short, exclusive hold on a name in one partition (a tenant's token refresh, its
//! sync), taken with a conditional write and given back by a conditional delete. A holder that
//! crashes keeps others out only until the lease expires.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::codec::{Item, key_item, number, string};
use super::{Key, StoreError, Table, sdk_error};
use crate::storage::schema::{PK, SK, TTL_ATTRIBUTE, lease_sk};

/// Attributes of a lease item (besides the keys and [`TTL_ATTRIBUTE`]).
const LEASE_HOLDER: &str = "holder";
/// Lease expiry in epoch milliseconds: [`TTL_ATTRIBUTE`] has only second precision.
const LEASE_UNTIL_MS: &str = "lease_until_ms";

/// The result of [`Table::try_acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease for the requested time (newly, or extended).
    Acquired,
    /// Someone else holds it until `expires_at`.
    HeldBy { holder: String, expires_at: DateTime<Utc> },
}

impl Table {
    /// Takes the lease `name` in partition `pk` for `ttl` if it is free, expired, or already held by
    /// `holder` (then it is extended). A holder that crashes keeps others out only until expiry.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn try_acquire_lease(
        &self,
        pk: &str,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let sk = lease_sk(name);
        // A lease released between our failed write and our read is free again: try again, a few times.
        for _ in 0..3 {
            let now = Utc::now();
            let ttl = chrono::Duration::from_std(ttl).context("lease ttl out of range")?;
            let until = now + ttl;
            let mut item = key_item(&Key::new(pk, &sk));
            item.insert(LEASE_HOLDER.to_owned(), string(holder));
            item.insert(LEASE_UNTIL_MS.to_owned(), number(until.timestamp_millis()));
            // Rounded up to the next second so the TTL sweep never deletes a live lease.
            item.insert(TTL_ATTRIBUTE.to_owned(), number(until.timestamp() + 1));
            let written = self
                .conditional_put(
                    item,
                    "attribute_not_exists(#pk) OR #until <= :now_ms OR #holder = :holder",
                    &[("#pk", PK), ("#until", LEASE_UNTIL_MS), ("#holder", LEASE_HOLDER)],
                    vec![(":now_ms", number(now.timestamp_millis())), (":holder", string(holder))],
                )
                .await?;
            let current = match written {
                Ok(()) => return Ok(LeaseOutcome::Acquired),
                Err(Some(old)) => Some(old),
                // Not every DynamoDB implementation returns the old item on a failed condition.
                Err(None) => self.get_lease_item(pk, &sk).await?,
            };
            if let Some(current) = current {
                return lease_holder(&current);
            }
        }
        Err(anyhow!("lease {name} kept changing hands while being acquired").into())
    }

    /// Releases the lease if `holder` holds it; returns whether it did. Releasing a lease held by
    /// someone else (or by nobody) changes nothing.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn release_lease(&self, pk: &str, name: &str, holder: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(PK, string(pk))
            .key(SK, string(lease_sk(name)))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", LEASE_HOLDER)
            .expression_attribute_values(":holder", string(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(e, "releasing a lease")),
        }
    }

    async fn get_lease_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(PK, string(pk))
            .key(SK, string(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(e, "reading a lease"))?;
        Ok(output.item)
    }
}

fn lease_holder(item: &Item) -> Result<LeaseOutcome, StoreError> {
    let holder = match item.get(LEASE_HOLDER) {
        Some(AttributeValue::S(holder)) => holder.clone(),
        _ => return Err(anyhow!("lease item without a holder").into()),
    };
    let until_ms: i64 = match item.get(LEASE_UNTIL_MS) {
        Some(AttributeValue::N(n)) => n.parse().context("parsing a lease expiry")?,
        _ => return Err(anyhow!("lease item without an expiry").into()),
    };
    let expires_at = DateTime::from_timestamp_millis(until_ms).ok_or_else(|| anyhow!("lease expiry out of range"))?;
    Ok(LeaseOutcome::HeldBy { holder, expires_at })
}

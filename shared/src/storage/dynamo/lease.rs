//! Leases: a short, exclusive hold on a name in one partition (a tenant's token refresh, its
//! sync), taken with a conditional write and given back by a conditional delete. A holder that
//! crashes keeps others out only until the lease expires.
//!
//! A lease item's layout is [`LeaseItem`], written and read through the table's codec; the
//! attribute names in the condition expressions are checked against it by a unit test.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, key_item, number, string};
use super::{Key, StoreError, Table, sdk_error};
use crate::storage::schema::{PK, lease_sk};

/// Attributes of a lease item (besides the keys and [`TTL_ATTRIBUTE`](crate::storage::schema::TTL_ATTRIBUTE)),
/// as named in condition expressions; [`LeaseItem`] must serialize to exactly these.
const LEASE_HOLDER: &str = "holder";
const LEASE_UNTIL_MS: &str = "lease_until_ms";

/// A lease as stored under `LEASE#<name>`.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseItem {
    /// Who holds it ([`LEASE_HOLDER`]).
    holder: String,
    /// Expiry in epoch milliseconds ([`LEASE_UNTIL_MS`]): the TTL attribute has only second precision.
    lease_until_ms: i64,
    /// The TTL attribute, in epoch seconds: rounded up to the next second so the TTL sweep never
    /// deletes a live lease.
    expires_at: i64,
}

impl LeaseItem {
    fn new(holder: &str, until: DateTime<Utc>) -> Self {
        Self {
            holder: holder.to_owned(),
            lease_until_ms: until.timestamp_millis(),
            expires_at: until.timestamp() + 1,
        }
    }

    fn held(self) -> Result<HeldLease, StoreError> {
        let expires_at =
            DateTime::from_timestamp_millis(self.lease_until_ms).ok_or_else(|| anyhow!("lease expiry out of range"))?;
        Ok(HeldLease {
            holder: self.holder,
            expires_at,
        })
    }
}

/// The result of [`Table::try_acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease for the requested time (newly, or extended).
    Acquired,
    /// Someone else holds it until `expires_at`.
    HeldBy { holder: String, expires_at: DateTime<Utc> },
}

/// A lease someone holds, as [`Table::current_lease`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    pub holder: String,
    pub expires_at: DateTime<Utc>,
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
            let item = encode(&Key::new(pk, &sk), &LeaseItem::new(holder, now + ttl))?;
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
                Err(None) => self.get_unfiltered(pk, &sk, "reading a lease").await?,
            };
            if let Some(current) = current {
                let HeldLease { holder, expires_at } = decode::<LeaseItem>(current)?.held()?;
                return Ok(LeaseOutcome::HeldBy { holder, expires_at });
            }
        }
        Err(anyhow!("lease {name} kept changing hands while being acquired").into())
    }

    /// Who holds the lease `name` in partition `pk` now, read without taking it (taking it, even
    /// briefly, could turn its real holder away). `None` when it is free or has expired.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn current_lease(&self, pk: &str, name: &str) -> Result<Option<HeldLease>, StoreError> {
        let Some(item) = self.get::<LeaseItem>(pk, &lease_sk(name)).await? else {
            return Ok(None);
        };
        let now_ms = Utc::now().timestamp_millis();
        if item.lease_until_ms <= now_ms {
            return Ok(None);
        }
        item.held().map(Some)
    }

    /// Releases the lease if `holder` holds it; returns whether it did. Releasing a lease held by
    /// someone else (or by nobody) changes nothing.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn release_lease(&self, pk: &str, name: &str, holder: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key_item(&Key::new(pk, lease_sk(name)))))
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
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::storage::schema::{SK, TTL_ATTRIBUTE};

    #[test]
    fn a_lease_item_has_exactly_the_attributes_its_conditions_name() {
        let until = DateTime::from_timestamp_millis(1_700_000_000_250).unwrap();
        let item = encode(
            &Key::new("TENANT#a", lease_sk("sync")),
            &LeaseItem::new("worker-a", until),
        )
        .unwrap();
        let names: BTreeSet<&str> = item.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from([PK, SK, LEASE_HOLDER, LEASE_UNTIL_MS, TTL_ATTRIBUTE])
        );
        assert_eq!(item[LEASE_HOLDER], string("worker-a"));
        assert_eq!(item[LEASE_UNTIL_MS], number(1_700_000_000_250_i64));
    }

    #[test]
    fn a_lease_expires_from_the_table_only_after_it_has_ended() {
        // The TTL sweep has second precision: rounding up keeps it from deleting a live lease.
        let until = DateTime::from_timestamp_millis(1_700_000_000_999).unwrap();
        let lease = LeaseItem::new("worker-a", until);
        assert!(lease.expires_at * 1000 > lease.lease_until_ms);
        assert_eq!(lease.expires_at, 1_700_000_001);
    }

    #[test]
    fn a_stored_lease_reads_back_as_its_holder_and_expiry() {
        let until = DateTime::from_timestamp_millis(1_700_000_000_250).unwrap();
        let item = encode(
            &Key::new("TENANT#a", lease_sk("sync")),
            &LeaseItem::new("worker-a", until),
        )
        .unwrap();
        let held = decode::<LeaseItem>(item).unwrap().held().unwrap();
        assert_eq!(
            held,
            HeldLease {
                holder: "worker-a".into(),
                expires_at: until
            }
        );
    }
}

//! Conditional writes: create-only, optimistic-lock versioned, single-use deletes and bounded
//! counters. A lost race is an outcome value, never an error.

use anyhow::anyhow;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{
    Item, decode, encode, encode_indexed, encode_with, key_item, now_epoch_seconds, number, string, version_of,
};
use super::{Gsi1Key, Key, StoreError, Table, sdk_error};
use crate::storage::schema::{PK, SK, TTL_ATTRIBUTE, VERSION_ATTRIBUTE};

/// The result of [`Table::put_new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    AlreadyExists,
}

/// The result of [`Table::put_versioned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionedOutcome {
    /// Stored; `version` is the item's new version (1 for a new item).
    Written { version: u64 },
    /// The stored version was not the expected one: re-read and try again.
    Conflict,
}

/// An item together with its optimistic-lock version (0 for an item never written by
/// [`Table::put_versioned`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedItem<T> {
    pub item: T,
    pub version: u64,
}

impl Table {
    /// Reads one item with its optimistic-lock version, for a later [`Table::put_versioned`].
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn get_versioned<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<VersionedItem<T>>, StoreError> {
        let Some(item) = self.get_raw(pk, sk).await? else {
            return Ok(None);
        };
        let version = version_of(&item)?;
        Ok(Some(VersionedItem {
            item: decode(item)?,
            version,
        }))
    }

    /// Writes an item only if none exists under its key (an expired one counts as none).
    #[tracing::instrument(skip(self, item), fields(table = %self.name))]
    pub async fn put_new<T: Serialize>(&self, pk: &str, sk: &str, item: &T) -> Result<PutOutcome, StoreError> {
        let item = encode(&Key::new(pk, sk), item)?;
        let written = self
            .conditional_put(
                item,
                "attribute_not_exists(#pk) OR #exp <= :now",
                &[("#pk", PK), ("#exp", TTL_ATTRIBUTE)],
                vec![(":now", number(now_epoch_seconds()))],
            )
            .await?;
        Ok(if written.is_ok() {
            PutOutcome::Created
        } else {
            PutOutcome::AlreadyExists
        })
    }

    /// Writes an item if its stored version is `expected_version` (`None`: the item must not
    /// exist), and stores it with the next version. Version 0 is an item written without a version.
    #[tracing::instrument(skip(self, item), fields(table = %self.name))]
    pub async fn put_versioned<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        item: &T,
        expected_version: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        self.put_versioned_item(encode(&Key::new(pk, sk), item)?, expected_version)
            .await
    }

    /// [`Table::put_versioned`] with adapter-managed index attributes beside the item (the
    /// user-index keys; see [`codec::encode_with`](super::codec)).
    #[tracing::instrument(skip(self, item, extra), fields(table = %self.name))]
    pub async fn put_versioned_with<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        item: &T,
        extra: &[(&'static str, &str)],
        expected_version: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        self.put_versioned_item(encode_with(&Key::new(pk, sk), item, extra)?, expected_version)
            .await
    }

    /// [`Table::put_versioned`] that also files the item under `index` in the GSI.
    #[tracing::instrument(skip(self, item), fields(table = %self.name))]
    pub async fn put_versioned_indexed<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        index: &Gsi1Key,
        item: &T,
        expected_version: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        self.put_versioned_item(encode_indexed(&Key::new(pk, sk), index, item)?, expected_version)
            .await
    }

    async fn put_versioned_item(
        &self,
        mut item: Item,
        expected_version: Option<u64>,
    ) -> Result<VersionedOutcome, StoreError> {
        let now = (":now", number(now_epoch_seconds()));
        let (version, condition, names, values) = match expected_version {
            None => (
                1,
                "attribute_not_exists(#pk) OR #exp <= :now",
                vec![("#pk", PK), ("#exp", TTL_ATTRIBUTE)],
                vec![now],
            ),
            Some(0) => (
                1,
                "attribute_exists(#pk) AND attribute_not_exists(#ver) AND NOT (#exp <= :now)",
                vec![("#pk", PK), ("#ver", VERSION_ATTRIBUTE), ("#exp", TTL_ATTRIBUTE)],
                vec![now],
            ),
            Some(expected) => (
                expected
                    .checked_add(1)
                    .ok_or_else(|| anyhow!("version counter overflow"))?,
                "#ver = :ver AND NOT (#exp <= :now)",
                vec![("#ver", VERSION_ATTRIBUTE), ("#exp", TTL_ATTRIBUTE)],
                vec![now, (":ver", number(expected))],
            ),
        };
        item.insert(VERSION_ATTRIBUTE.to_owned(), number(version));
        let written = self.conditional_put(item, condition, &names, values).await?;
        Ok(if written.is_ok() {
            VersionedOutcome::Written { version }
        } else {
            VersionedOutcome::Conflict
        })
    }

    /// Deletes an item if it exists and has not expired, returning it: of several concurrent
    /// callers exactly one gets `Some` (how single-use OAuth states are consumed).
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn delete_if_exists<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<T>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(PK, string(pk))
            .key(SK, string(sk))
            .condition_expression("attribute_exists(#pk) AND NOT (#exp <= :now)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", number(now_epoch_seconds()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .map(decode)
                .transpose()?
                .ok_or_else(|| anyhow!("conditional delete returned no old item").into())
                .map(Some),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(e, "deleting an item")),
        }
    }

    /// Adds one to a counter item if it stays at or below `limit` (e.g. a tenant's changes per
    /// day); the item expires at `expires_at` (epoch seconds). Returns the new count, or `None`
    /// when the limit is already reached (nothing changes then).
    pub async fn increment_below(
        &self,
        pk: &str,
        sk: &str,
        limit: u64,
        expires_at: i64,
    ) -> Result<Option<u64>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_item(&Key::new(pk, sk))))
            .update_expression("ADD #count :one SET #exp = :exp")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":limit", number(limit))
            .expression_attribute_values(":exp", number(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(updated_count(out.attributes())?)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(e, "incrementing a counter")),
        }
    }

    /// Adds one to a counter item, unconditionally and atomically, and returns the new count (1
    /// for a new item): of N concurrent callers on one item, each gets a different count from 1 to N.
    /// The item expires at `expires_at` (epoch seconds). One UpdateItem; e.g. a tenant's requests
    /// in one rate window.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn increment(&self, pk: &str, sk: &str, expires_at: i64) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_item(&Key::new(pk, sk))))
            .update_expression("ADD #count :one SET #exp = :exp")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":exp", number(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| sdk_error(e, "incrementing a counter"))?;
        updated_count(out.attributes())
    }

    /// Subtracts one from a counter (undoing an [`Table::increment_below`] whose change did not happen).
    pub async fn decrement(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_item(&Key::new(pk, sk))))
            .update_expression("ADD #count :minus")
            .condition_expression("#count > :zero")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":minus", number(-1))
            .expression_attribute_values(":zero", number(0))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception())
                {
                    Ok(())
                } else {
                    Err(sdk_error(e, "decrementing a counter"))
                }
            })
    }

    /// `Ok(Ok(()))` when written, `Ok(Err(old item if returned))` when the condition failed.
    pub(super) async fn conditional_put(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Result<(), Option<Item>>, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (placeholder, name) in names {
            put = put.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            put = put.expression_attribute_values(placeholder, value);
        }
        match put.send().await {
            Ok(_) => Ok(Ok(())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                let old = match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(failed) => failed.item,
                    _ => None,
                };
                Ok(Err(old))
            }
            Err(e) => Err(sdk_error(e, "writing an item conditionally")),
        }
    }
}

/// The `count` an UpdateItem with `ReturnValues=UPDATED_NEW` answered.
fn updated_count(attributes: Option<&Item>) -> Result<u64, StoreError> {
    attributes
        .and_then(|a| a.get("count"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Unexpected(anyhow!("the counter update returned no count")))
}

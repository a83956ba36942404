//! The single DynamoDB table: typed items (via `serde_dynamo`) stored under the keys of
//! [`schema`](super::schema).
//!
//! Races are values, not error strings: a conditional write that loses answers
//! [`PutOutcome::AlreadyExists`], [`VersionedOutcome::Conflict`] or [`LeaseOutcome::HeldBy`].
//! Items whose [`TTL_ATTRIBUTE`] lies in the past read as absent, because DynamoDB only deletes
//! them within about two days. Page cursors are opaque to callers and checked on the way back in,
//! so a forged cursor is a clean [`StoreError::InvalidCursor`] and can never leave its partition.
//! Spans name the table and keys but never record item contents.

mod lease;

pub use lease::LeaseOutcome;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TableStatus, TimeToLiveSpecification, WriteRequest,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::schema::{
    GSI1, GSI1_KEY_SCHEMA, GSI1_PK, GSI1_SK, PK, SK, TABLE_KEY_SCHEMA, TTL_ATTRIBUTE, VERSION_ATTRIBUTE,
};

/// A raw DynamoDB item.
type Item = HashMap<String, AttributeValue>;

/// Most items one `BatchWriteItem` call accepts.
pub const BATCH_WRITE_MAX: usize = 25;
/// Largest page a query returns, whatever the caller asks: bounds memory per call.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Longest cursor accepted back from a client; real ones are a few hundred bytes.
const MAX_CURSOR_LEN: usize = 2048;

/// What can go wrong talking to the table. Lost races are not errors; see the outcome types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB throttled the call and the SDK's bounded retries ran out.
    #[error("DynamoDB throttled {doing} and retries ran out")]
    Throttled { doing: &'static str },
    /// A page cursor that this adapter did not issue for this query.
    #[error("invalid page cursor")]
    InvalidCursor,
    /// An item's fields collide with an attribute that the adapter manages.
    #[error("attribute `{0}` is managed by the storage adapter and cannot be part of an item")]
    ReservedAttribute(&'static str),
    /// The same key appears twice in one batch (DynamoDB rejects that, and the result would be ambiguous).
    #[error("a batch contains the same key twice")]
    DuplicateKeyInBatch,
    /// `UnprocessedItems` was still not empty after the bounded number of attempts.
    #[error("batch write left {remaining} items unprocessed after {attempts} attempts")]
    Unprocessed { remaining: usize, attempts: u32 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl StoreError {
    /// Whether the same call may succeed later (a retryable failure, e.g. for a Lambda `Diagnostic`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unprocessed { .. })
    }
}

/// The primary key of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

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

/// One page of a query; pass `next_cursor` back to get the next one. A page can hold fewer than
/// `limit` items (expired items are dropped) and the last page can be empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// What a batch write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Items written (or deleted, for [`Table::batch_delete`]).
    pub items_written: usize,
    /// `BatchWriteItem` calls made, retries included.
    pub requests: usize,
    /// Calls that only resent `UnprocessedItems`.
    pub unprocessed_retries: usize,
}

/// Bounded exponential backoff for resending `UnprocessedItems`.
#[derive(Debug, Clone, Copy)]
pub struct BatchRetry {
    /// Calls per chunk, the first one included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for BatchRetry {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl BatchRetry {
    /// Delay before retry number `retry` (1-based): half of the exponential step plus up to as much
    /// again at random, so writers that were throttled together do not retry together.
    fn delay(&self, retry: u32) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = step / 2;
        let jitter_ms = rand::random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// The application's table.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
    batch_retry: BatchRetry,
}

impl Table {
    /// An adapter for an existing table.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            batch_retry: BatchRetry::default(),
        }
    }

    /// Replaces the backoff used for `UnprocessedItems`.
    pub fn with_batch_retry(mut self, batch_retry: BatchRetry) -> Self {
        self.batch_retry = batch_retry;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the table exactly as [`schema`](super::schema) describes it (on-demand billing, string
    /// keys, GSI `gsi1` projecting all attributes, TTL on [`TTL_ATTRIBUTE`]) and waits until it is
    /// active. For tests and the local demo; production tables come from the template.
    #[tracing::instrument(skip(client), fields(table = %name))]
    pub async fn create(client: Client, name: &str) -> Result<Self, StoreError> {
        let definitions = [PK, SK, GSI1_PK, GSI1_SK]
            .into_iter()
            .map(|attribute| {
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .context("building an attribute definition")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .set_key_schema(Some(key_schema(&GSI1_KEY_SCHEMA)?))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .context("building the GSI definition")?;
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(definitions))
            .set_key_schema(Some(key_schema(&TABLE_KEY_SCHEMA)?))
            .global_secondary_indexes(gsi)
            .send()
            .await
            .map_err(|e| sdk_error(e, "creating the table"))?;

        // Bounded wait: 60 × 0.5 s. moto is active at once; DynamoDB takes seconds.
        let mut active = false;
        for _ in 0..60 {
            let described = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| sdk_error(e, "describing the new table"))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                active = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !active {
            return Err(anyhow!("table {name} did not become active within 30 s").into());
        }

        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .context("building the TTL specification")?,
            )
            .send()
            .await
            .map_err(|e| sdk_error(e, "enabling TTL"))?;
        Ok(Self::new(client, name))
    }

    /// Reads one item (strongly consistent). Expired items read as `None`.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn get<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<T>, StoreError> {
        self.get_raw(pk, sk).await?.map(decode).transpose()
    }

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

    /// Writes an item, replacing whatever was there.
    #[tracing::instrument(skip(self, item), fields(table = %self.name))]
    pub async fn put<T: Serialize>(&self, pk: &str, sk: &str, item: &T) -> Result<(), StoreError> {
        let item = encode(&Key::new(pk, sk), item)?;
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error(e, "writing an item"))?;
        Ok(())
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
        let mut item = encode(&Key::new(pk, sk), item)?;
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

    /// Deletes an item unconditionally (no error if it does not exist).
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key(PK, string(pk))
            .key(SK, string(sk))
            .send()
            .await
            .map_err(|e| sdk_error(e, "deleting an item"))?;
        Ok(())
    }

    /// One page of the items in partition `pk` whose sort key starts with `sk_prefix` (an empty
    /// prefix lists the whole partition), in sort-key order. Strongly consistent.
    #[tracing::instrument(skip(self, cursor), fields(table = %self.name))]
    pub async fn query_prefix<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        self.query_prefix_ordered(pk, sk_prefix, limit, cursor, true).await
    }

    /// [`Table::query_prefix`] newest first (descending sort key), e.g. for the audit trail.
    pub async fn query_prefix_desc<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        self.query_prefix_ordered(pk, sk_prefix, limit, cursor, false).await
    }

    async fn query_prefix_ordered<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: u32,
        cursor: Option<&str>,
        ascending: bool,
    ) -> Result<Page<T>, StoreError> {
        let start = cursor
            .map(|c| decode_cursor(c, &CursorScope::Table { pk, sk_prefix }))
            .transpose()?;
        let mut query = self
            .client
            .query()
            .table_name(&self.name)
            .consistent_read(true)
            .scan_index_forward(ascending)
            .limit(page_size(limit))
            .set_exclusive_start_key(start)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", string(pk));
        query = if sk_prefix.is_empty() {
            query.key_condition_expression("#pk = :pk")
        } else {
            query
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":prefix", string(sk_prefix))
        };
        let output = query.send().await.map_err(|e| sdk_error(e, "querying a partition"))?;
        page(output.items, output.last_evaluated_key)
    }

    /// One page of the items whose `gsi1pk` is `gsi1pk`, in `gsi1sk` order (eventually consistent,
    /// as every GSI read is).
    #[tracing::instrument(skip(self, cursor), fields(table = %self.name))]
    pub async fn query_gsi1<T: DeserializeOwned>(
        &self,
        gsi1pk: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        let start = cursor
            .map(|c| decode_cursor(c, &CursorScope::Gsi1 { gsi1pk }))
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(GSI1)
            .limit(page_size(limit))
            .set_exclusive_start_key(start)
            .key_condition_expression("#g = :g")
            .expression_attribute_names("#g", GSI1_PK)
            .expression_attribute_values(":g", string(gsi1pk))
            .send()
            .await
            .map_err(|e| sdk_error(e, "querying gsi1"))?;
        page(output.items, output.last_evaluated_key)
    }

    /// Writes many items, 25 per `BatchWriteItem`, resending `UnprocessedItems` with bounded
    /// backoff. Not atomic: on error, earlier chunks stay written. Keys must be unique.
    #[tracing::instrument(skip(self, items), fields(table = %self.name, count = items.len()))]
    pub async fn batch_put<T: Serialize>(&self, items: &[(Key, T)]) -> Result<BatchStats, StoreError> {
        self.batch_put_stamped(items, None).await
    }

    /// [`Table::batch_put`] that also sets every item's optimistic-lock version to `version`
    /// (a batch write cannot be conditional; a new version makes a versioned writer that read
    /// before it see a conflict instead of overwriting it).
    #[tracing::instrument(skip(self, items), fields(table = %self.name, count = items.len()))]
    pub async fn batch_put_stamped<T: Serialize>(
        &self,
        items: &[(Key, T)],
        version: Option<u64>,
    ) -> Result<BatchStats, StoreError> {
        ensure_unique(items.iter().map(|(key, _)| key))?;
        let mut stats = BatchStats::default();
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let requests = chunk
                .iter()
                .map(|(key, item)| {
                    let mut item = encode(key, item)?;
                    if let Some(version) = version {
                        item.insert(VERSION_ATTRIBUTE.to_owned(), number(version));
                    }
                    let put = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .context("building a put request")?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            write_with_retries(requests, &self.batch_retry, &mut stats, |r| self.batch_write(r)).await?;
        }
        Ok(stats)
    }

    /// Deletes many items, 25 per `BatchWriteItem`, like [`Table::batch_put`]. Missing items are
    /// not an error (and count as deleted).
    #[tracing::instrument(skip(self, keys), fields(table = %self.name, count = keys.len()))]
    pub async fn batch_delete(&self, keys: &[Key]) -> Result<BatchStats, StoreError> {
        ensure_unique(keys.iter())?;
        let mut stats = BatchStats::default();
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let requests = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key_item(key)))
                        .build()
                        .context("building a delete request")?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            write_with_retries(requests, &self.batch_retry, &mut stats, |r| self.batch_write(r)).await?;
        }
        Ok(stats)
    }

    /// Deletes every item of partition `pk` whose sort key starts with `sk_prefix`, a page of keys
    /// at a time (only the keys are read). Returns how many were deleted.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn delete_prefix(&self, pk: &str, sk_prefix: &str) -> Result<usize, StoreError> {
        let mut deleted = 0;
        let mut start = None;
        // Bounded: each round deletes the page it read, so a partition of N items takes N / 1000 rounds.
        for _ in 0..100_000 {
            let output = self
                .client
                .query()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .projection_expression("#pk, #sk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", string(pk))
                .expression_attribute_values(":prefix", string(sk_prefix))
                .send()
                .await
                .map_err(|e| sdk_error(e, "listing keys to delete"))?;
            let keys = output
                .items
                .unwrap_or_default()
                .iter()
                .map(|item| match (item.get(PK), item.get(SK)) {
                    (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Ok(Key::new(pk, sk)),
                    _ => Err(anyhow!("an item without string keys").into()),
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            deleted += self.batch_delete(&keys).await?.items_written;
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(deleted),
            }
        }
        Err(anyhow!("deleting {sk_prefix}* did not finish").into())
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
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let count = out
                    .attributes()
                    .and_then(|a| a.get("count"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| StoreError::Unexpected(anyhow!("the counter update returned no count")))?;
                Ok(Some(count))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(e, "incrementing a counter")),
        }
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

    async fn get_raw(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(PK, string(pk))
            .key(SK, string(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(e, "reading an item"))?;
        let now = now_epoch_seconds();
        Ok(output.item.filter(|item| !is_expired(item, now)))
    }

    /// `Ok(Ok(()))` when written, `Ok(Err(old item if returned))` when the condition failed.
    async fn conditional_put(
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

    /// One `BatchWriteItem` call; returns the requests DynamoDB did not process.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<Vec<WriteRequest>, StoreError> {
        let output = self
            .client
            .batch_write_item()
            .request_items(&self.name, requests)
            .send()
            .await
            .map_err(|e| sdk_error(e, "writing a batch"))?;
        Ok(output
            .unprocessed_items
            .and_then(|mut unprocessed| unprocessed.remove(&self.name))
            .unwrap_or_default())
    }
}

/// Sends `requests` and resends what comes back unprocessed, with bounded exponential backoff;
/// an error once `policy.max_attempts` calls have left something unprocessed.
async fn write_with_retries<R, F, Fut>(
    mut pending: Vec<R>,
    policy: &BatchRetry,
    stats: &mut BatchStats,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<R>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        stats.requests += 1;
        let sent = pending.len();
        let unprocessed = send(pending).await?;
        stats.items_written += sent.saturating_sub(unprocessed.len());
        if unprocessed.is_empty() {
            return Ok(());
        }
        if attempt >= policy.max_attempts {
            tracing::warn!(
                remaining = unprocessed.len(),
                attempt,
                "batch write gave up on unprocessed items"
            );
            return Err(StoreError::Unprocessed {
                remaining: unprocessed.len(),
                attempts: attempt,
            });
        }
        stats.unprocessed_retries += 1;
        tracing::debug!(remaining = unprocessed.len(), attempt, "resending unprocessed items");
        tokio::time::sleep(policy.delay(attempt)).await;
        pending = unprocessed;
    }
}

fn ensure_unique<'a>(keys: impl Iterator<Item = &'a Key>) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for key in keys {
        if !seen.insert(key) {
            return Err(StoreError::DuplicateKeyInBatch);
        }
    }
    Ok(())
}

/// Maps an SDK failure: throttling becomes [`StoreError::Throttled`]; the rest keeps its cause chain.
fn sdk_error<E, R>(err: SdkError<E, R>, doing: &'static str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if matches!(
        err.code(),
        Some("ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded")
    ) {
        return StoreError::Throttled { doing };
    }
    StoreError::Unexpected(anyhow::Error::new(err).context(doing))
}

fn key_schema(schema: &[(&str, &str)]) -> Result<Vec<KeySchemaElement>, StoreError> {
    schema
        .iter()
        .map(|(attribute, key_type)| {
            KeySchemaElement::builder()
                .attribute_name(*attribute)
                .key_type(KeyType::from(*key_type))
                .build()
                .context("building a key schema element")
                .map_err(StoreError::from)
        })
        .collect()
}

fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn now_epoch_seconds() -> i64 {
    Utc::now().timestamp()
}

fn key_item(key: &Key) -> Item {
    HashMap::from([(PK.to_owned(), string(&key.pk)), (SK.to_owned(), string(&key.sk))])
}

/// The caller's attributes plus the key; the attributes the adapter manages may not come from the caller.
fn encode<T: Serialize>(key: &Key, value: &T) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(value).context("encoding an item")?;
    for reserved in [PK, SK, VERSION_ATTRIBUTE] {
        if item.contains_key(reserved) {
            return Err(StoreError::ReservedAttribute(reserved));
        }
    }
    item.extend(key_item(key));
    Ok(item)
}

/// The caller's attributes, without the ones the adapter manages.
fn decode<T: DeserializeOwned>(mut item: Item) -> Result<T, StoreError> {
    for reserved in [PK, SK, VERSION_ATTRIBUTE] {
        item.remove(reserved);
    }
    Ok(serde_dynamo::aws_sdk_dynamodb_1::from_item(item).context("decoding an item")?)
}

fn version_of(item: &Item) -> Result<u64, StoreError> {
    match item.get(VERSION_ATTRIBUTE) {
        None => Ok(0),
        Some(AttributeValue::N(n)) => Ok(n.parse().context("parsing an item's version")?),
        Some(_) => Err(anyhow!("an item's version attribute is not a number").into()),
    }
}

/// Expired when [`TTL_ATTRIBUTE`] is a number of epoch seconds not after `now`; matches the
/// condition `#exp <= :now` used by the conditional writes.
fn is_expired(item: &Item, now: i64) -> bool {
    match item.get(TTL_ATTRIBUTE) {
        Some(AttributeValue::N(n)) => n.parse::<f64>().is_ok_and(|at| at <= now as f64),
        _ => false,
    }
}

fn page_size(limit: u32) -> i32 {
    limit.clamp(1, MAX_PAGE_SIZE) as i32
}

fn page<T: DeserializeOwned>(items: Option<Vec<Item>>, last_key: Option<Item>) -> Result<Page<T>, StoreError> {
    let now = now_epoch_seconds();
    let items = items
        .unwrap_or_default()
        .into_iter()
        .filter(|item| !is_expired(item, now))
        .map(decode)
        .collect::<Result<Vec<T>, _>>()?;
    let next_cursor = last_key.map(|key| encode_cursor(&key)).transpose()?;
    Ok(Page { items, next_cursor })
}

/// What a cursor may point into.
enum CursorScope<'a> {
    Table { pk: &'a str, sk_prefix: &'a str },
    Gsi1 { gsi1pk: &'a str },
}

/// A cursor is base64url(JSON object of the string key attributes of `LastEvaluatedKey`).
fn encode_cursor(last_key: &Item) -> Result<String, StoreError> {
    let mut fields = BTreeMap::new();
    for (name, value) in last_key {
        let AttributeValue::S(value) = value else {
            return Err(anyhow!("LastEvaluatedKey attribute {name} is not a string").into());
        };
        fields.insert(name.as_str(), value.as_str());
    }
    let json = serde_json::to_vec(&fields).context("encoding a page cursor")?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Turns a cursor back into an `ExclusiveStartKey`, accepting only the exact key attributes of the
/// query and a position inside the queried partition (and prefix). Anything else is
/// [`StoreError::InvalidCursor`]; the cursor's content is never echoed into errors or logs.
fn decode_cursor(cursor: &str, scope: &CursorScope<'_>) -> Result<Item, StoreError> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(StoreError::InvalidCursor);
    }
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let fields: BTreeMap<String, String> = serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)?;
    let field = |name: &str| fields.get(name).map(String::as_str);
    let (expected, valid): (&[&str], bool) = match scope {
        CursorScope::Table { pk, sk_prefix } => (
            &[PK, SK],
            field(PK) == Some(*pk) && field(SK).is_some_and(|sk| sk.starts_with(sk_prefix)),
        ),
        CursorScope::Gsi1 { gsi1pk } => (
            &[PK, SK, GSI1_PK, GSI1_SK],
            field(GSI1_PK) == Some(*gsi1pk) && field(PK).is_some() && field(SK).is_some(),
        ),
    };
    let exact_keys = fields.len() == expected.len() && expected.iter().all(|name| fields.contains_key(*name));
    if !valid || !exact_keys {
        return Err(StoreError::InvalidCursor);
    }
    Ok(fields
        .into_iter()
        .map(|(name, value)| (name, AttributeValue::S(value)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_retry(max_attempts: u32) -> BatchRetry {
        BatchRetry {
            max_attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_items_are_resent_until_all_are_written() {
        // A fake BatchWriteItem that leaves the last two requests unprocessed on its first two calls.
        let mut calls = 0;
        let mut stats = BatchStats::default();
        let mut received = Vec::new();
        write_with_retries((0..25).collect::<Vec<u32>>(), &fast_retry(5), &mut stats, |batch| {
            calls += 1;
            let (done, left) = if calls <= 2 {
                batch.split_at(batch.len() - 2)
            } else {
                (&batch[..], &[][..])
            };
            received.extend_from_slice(done);
            let left = left.to_vec();
            async move { Ok(left) }
        })
        .await
        .unwrap();
        received.sort_unstable();
        assert_eq!(received, (0..25).collect::<Vec<_>>());
        assert_eq!(
            stats,
            BatchStats {
                items_written: 25,
                requests: 3,
                unprocessed_retries: 2
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_items_give_up_after_bounded_attempts() {
        let mut stats = BatchStats::default();
        let started = tokio::time::Instant::now();
        let err = write_with_retries(
            vec![1, 2, 3],
            &fast_retry(4),
            &mut stats,
            |batch| async move { Ok(batch) },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Unprocessed {
                    remaining: 3,
                    attempts: 4
                }
            ),
            "{err:?}"
        );
        assert_eq!(stats.requests, 4);
        assert_eq!(stats.unprocessed_retries, 3);
        // Backoff actually waited (at least half of each step: 5 + 10 + 20 ms).
        assert!(started.elapsed() >= Duration::from_millis(35));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = fast_retry(10);
        for retry in 1..=10 {
            let step = Duration::from_millis(10 * (1 << (retry - 1))).min(policy.max_delay);
            let delay = policy.delay(retry);
            assert!(delay >= step / 2 && delay <= step, "retry {retry}: {delay:?}");
        }
    }

    #[test]
    fn cursors_round_trip_within_their_partition_only() {
        let key = key_item(&Key::new("TENANT#a", "USER#42"));
        let cursor = encode_cursor(&key).unwrap();
        let scope = CursorScope::Table {
            pk: "TENANT#a",
            sk_prefix: "USER#",
        };
        assert_eq!(decode_cursor(&cursor, &scope).unwrap(), key);
        for other in [
            CursorScope::Table {
                pk: "TENANT#b",
                sk_prefix: "USER#",
            },
            CursorScope::Table {
                pk: "TENANT#a",
                sk_prefix: "AUDIT#",
            },
            CursorScope::Gsi1 { gsi1pk: "TENANT#a" },
        ] {
            assert!(matches!(decode_cursor(&cursor, &other), Err(StoreError::InvalidCursor)));
        }
    }

    #[test]
    fn malformed_cursors_are_rejected_without_panicking() {
        let scope = CursorScope::Table {
            pk: "TENANT#a",
            sk_prefix: "",
        };
        let extra = URL_SAFE_NO_PAD.encode(r#"{"pk":"TENANT#a","sk":"X","other":"1"}"#);
        let non_string = URL_SAFE_NO_PAD.encode(r#"{"pk":"TENANT#a","sk":1}"#);
        let long = "A".repeat(MAX_CURSOR_LEN + 1);
        for bad in [
            "",
            "!!!",
            "e30",
            "bnVsbA",
            extra.as_str(),
            non_string.as_str(),
            long.as_str(),
        ] {
            assert!(
                matches!(decode_cursor(bad, &scope), Err(StoreError::InvalidCursor)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn items_may_not_set_adapter_attributes() {
        #[derive(Serialize)]
        struct Sneaky {
            pk: String,
        }
        let err = encode(
            &Key::new("a", "b"),
            &Sneaky {
                pk: "TENANT#other".into(),
            },
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::ReservedAttribute("pk")));
    }

    #[test]
    fn expiry_is_inclusive_and_only_for_numbers() {
        let with = |v: AttributeValue| HashMap::from([(TTL_ATTRIBUTE.to_owned(), v)]);
        assert!(is_expired(&with(number(100)), 100));
        assert!(!is_expired(&with(number(101)), 100));
        assert!(!is_expired(&with(AttributeValue::Null(true)), 100));
        assert!(!is_expired(&HashMap::new(), 100));
    }
}

//! Batch writes: many puts or deletes, 25 per `BatchWriteItem`, resending `UnprocessedItems`
//! through the one retry engine ([`crate::retry`]): bounded, jittered backoff within a budget.

use std::collections::HashSet;
use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde::Serialize;

use super::codec::{Item, encode, encode_with, key_item, number, string};
use super::{Key, StoreError, Table, sdk_error};
use crate::retry::{Attempt, Effect, Retrier, RetryPolicy};
use crate::storage::schema::{PK, SK, VERSION_ATTRIBUTE};

/// String attributes the adapter writes beside an item (the user-index keys), as `(name, value)`.
pub type IndexAttributes<'a> = Vec<(&'static str, &'a str)>;

/// Most items one `BatchWriteItem` call accepts.
pub const BATCH_WRITE_MAX: usize = 25;

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

/// How `UnprocessedItems` are resent, through the one retry engine ([`crate::retry`]): up to 8
/// calls per chunk, 50 ms doubling to at most 2 s between them (jittered), within 30 s.
pub fn default_batch_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        max_elapsed: Duration::from_secs(30),
    }
}

impl Table {
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
        let encoded = items
            .iter()
            .map(|(key, item)| encode(key, item))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_put_items(encoded, version).await
    }

    /// [`Table::batch_put_stamped`] with adapter-managed index attributes beside each item (the
    /// user-index keys; see [`codec::encode_with`](super::codec)).
    #[tracing::instrument(skip(self, items), fields(table = %self.name, count = items.len()))]
    pub async fn batch_put_stamped_indexed<T: Serialize>(
        &self,
        items: &[(Key, T, IndexAttributes<'_>)],
        version: Option<u64>,
    ) -> Result<BatchStats, StoreError> {
        ensure_unique(items.iter().map(|(key, _, _)| key))?;
        let encoded = items
            .iter()
            .map(|(key, item, extra)| encode_with(key, item, extra))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_put_items(encoded, version).await
    }

    async fn batch_put_items(&self, items: Vec<Item>, version: Option<u64>) -> Result<BatchStats, StoreError> {
        let mut stats = BatchStats::default();
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let requests = chunk
                .iter()
                .map(|item| {
                    let mut item = item.clone();
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
    policy: &RetryPolicy,
    stats: &mut BatchStats,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<R>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, StoreError>>,
{
    let mut retrier = Retrier::new(policy, Effect::Idempotent);
    loop {
        let attempt = retrier.start().number;
        stats.requests += 1;
        let sent = pending.len();
        pending = send(pending).await?;
        stats.items_written += sent.saturating_sub(pending.len());
        let outcome = if pending.is_empty() {
            Attempt::Done(())
        } else {
            Attempt::Partial {
                error: StoreError::Unprocessed {
                    remaining: pending.len(),
                    attempts: attempt,
                },
            }
        };
        match retrier.settle(outcome).await {
            ControlFlow::Break(Ok(_)) => return Ok(()),
            ControlFlow::Break(Err(e)) => {
                tracing::warn!(
                    remaining = pending.len(),
                    attempt,
                    "batch write gave up on unprocessed items"
                );
                return Err(e);
            }
            ControlFlow::Continue(()) => {
                stats.unprocessed_retries += 1;
                tracing::debug!(remaining = pending.len(), attempt, "resent unprocessed items");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_retry(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            max_elapsed: Duration::from_secs(60),
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
}

//! The SQS adapter: JSON messages sent in batches of ten, the entries SQS did not take resent
//! through the retry engine ([`crate::retry`]) with jittered backoff, a bounded number of times.
//! The sync's queue ([`crate::sync::SyncQueue`]) is implemented over it in `sync/service.rs`.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::Serialize;

use crate::retry::{Attempt, Effect, Retrier, RetryPolicy};

/// SQS takes at most ten entries per `SendMessageBatch`.
const BATCH: usize = 10;

/// How the entries of a batch that SQS refused are resent: four sends in all, 200 ms, 400 ms and
/// 800 ms apart (× 0.5–1.5). The SDK retries whole calls that fail on its own.
pub const RESEND: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_backoff: Duration::from_millis(200),
    max_backoff: Duration::from_secs(2),
    max_elapsed: Duration::from_secs(10),
};

/// Why messages were not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("a message could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("building an SQS batch: {0}")]
    Build(String),
    #[error("sending to the sync queue failed: {0}")]
    Send(String),
    /// SQS kept refusing some entries of a batch.
    #[error("{0} sync messages were refused by SQS")]
    Refused(usize),
}

/// The SQS queue the schedule fans out to.
pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl SqsQueue {
    /// Sends every message as JSON, in batches of ten.
    pub async fn send_json<T: Serialize>(&self, messages: &[T]) -> Result<(), QueueError> {
        for chunk in messages.chunks(BATCH) {
            let pending = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| Ok((i.to_string(), serde_json::to_string(m)?)))
                .collect::<Result<Vec<_>, serde_json::Error>>()?;
            self.send_batch(pending).await?;
        }
        Ok(())
    }

    /// Sends one batch of `(id, body)` entries; the entries SQS did not take are resent.
    async fn send_batch(&self, mut pending: Vec<(String, String)>) -> Result<(), QueueError> {
        let mut retrier = Retrier::new(&RESEND, Effect::Idempotent);
        loop {
            retrier.start();
            let refused = self.send_once(&pending).await?;
            pending.retain(|(id, _)| refused.contains(id));
            let attempt = if pending.is_empty() {
                Attempt::Done(())
            } else {
                Attempt::Partial {
                    error: QueueError::Refused(pending.len()),
                }
            };
            if let ControlFlow::Break(out) = retrier.settle(attempt).await {
                return out.map(|_| ());
            }
        }
    }

    /// One `SendMessageBatch`; returns the ids of the entries SQS refused.
    async fn send_once(&self, pending: &[(String, String)]) -> Result<HashSet<String>, QueueError> {
        let entries = pending
            .iter()
            .map(|(id, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Build(e.to_string()))?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::Send(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(out.failed().iter().map(|f| f.id().to_owned()).collect())
    }
}

//! The usage-sync function's events: a schedule's fan-out order (EventBridge Scheduler input, or
//! a classic EventBridge scheduled event) and SQS batches of [`SyncMessage`]s, answered with
//! partial-batch failures so only transient failures are delivered again.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::SyncKind;
use super::service::{SyncMessage, SyncQueue, SyncService, TenantOutcome};
use crate::config::{ConfigError, Env, parsed_or, required};

/// What the scheduled rule sends: `{"action": "fan_out", "kind": "full", "slot": "<scheduled time>"}`.
#[derive(Debug, Deserialize)]
struct FanOut {
    action: String,
    kind: SyncKind,
    slot: String,
}

#[derive(Debug, Deserialize)]
struct SqsEvent {
    #[serde(rename = "Records")]
    records: Vec<SqsRecord>,
}

#[derive(Debug, Deserialize)]
struct SqsRecord {
    #[serde(rename = "messageId")]
    message_id: String,
    body: String,
}

/// A classic EventBridge scheduled event (`detail-type: Scheduled Event`): a full sync.
#[derive(Debug, Deserialize)]
struct ScheduledEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: String,
}

#[derive(Debug, Serialize)]
struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    item_identifier: String,
}

/// usage-sync's configuration.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// `SYNC_QUEUE_URL`: where fan-outs and continuations go.
    pub queue_url: String,
    /// `APP_SECRET_ID`: the Box app (token refreshes need it).
    pub app_secret_id: String,
    /// `BACKFILL_DAYS` (default 180, at most 365).
    pub backfill_days: u32,
    /// `SYNC_REQUESTS_PER_MINUTE` (default 900): the per-tenant budget under Box's ~1,000/min.
    pub requests_per_minute: u32,
}

impl SyncConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let backfill_days = parsed_or(env, "BACKFILL_DAYS", 180u32)?;
        if !(1..=365).contains(&backfill_days) {
            return Err(ConfigError::Invalid {
                name: "BACKFILL_DAYS",
                reason: "must be 1 to 365 (Box keeps 365 days)".into(),
            });
        }
        let requests_per_minute = parsed_or(env, "SYNC_REQUESTS_PER_MINUTE", 900u32)?;
        if !(1..=1000).contains(&requests_per_minute) {
            return Err(ConfigError::Invalid {
                name: "SYNC_REQUESTS_PER_MINUTE",
                reason: "must be 1 to 1000 (Box allows about 1,000 per minute per user)".into(),
            });
        }
        Ok(Self {
            queue_url: required(env, "SYNC_QUEUE_URL")?,
            app_secret_id: required(env, "APP_SECRET_ID")?,
            backfill_days,
            requests_per_minute,
        })
    }
}

/// Handles one invocation. Errors are for events that are not ours at all.
pub async fn handle(
    service: &SyncService,
    queue: &dyn SyncQueue,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Value, String> {
    if event.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event).map_err(|e| format!("not an SQS event: {e}"))?;
        let mut failures = Vec::new();
        for record in batch.records {
            let message: SyncMessage = match serde_json::from_str(&record.body) {
                Ok(m) => m,
                Err(e) => {
                    // Delivered again, then to the dead-letter queue, where someone will see it.
                    tracing::error!(message_id = %record.message_id, error = %e, "a sync message is malformed");
                    failures.push(ItemFailure {
                        item_identifier: record.message_id,
                    });
                    continue;
                }
            };
            match service.run(queue, &message, deadline).await {
                TenantOutcome::Done(run) => tracing::info!(tenant = %message.tenant, outcome = ?run.outcome, "synced"),
                TenantOutcome::Continued(_) => {
                    tracing::info!(tenant = %message.tenant, "sync continues in a new invocation")
                }
                TenantOutcome::Skipped(reason) => tracing::info!(tenant = %message.tenant, reason, "sync skipped"),
                TenantOutcome::Failed { retry: true, error } => {
                    tracing::warn!(tenant = %message.tenant, error, "sync failed; the message will be delivered again");
                    failures.push(ItemFailure {
                        item_identifier: record.message_id,
                    });
                }
                TenantOutcome::Failed { retry: false, error } => {
                    tracing::warn!(tenant = %message.tenant, error, "sync failed; recorded, not retried")
                }
            }
        }
        return Ok(json!({ "batchItemFailures": failures }));
    }
    if let Ok(order) = serde_json::from_value::<FanOut>(event.clone()) {
        if order.action != "fan_out" {
            return Err(format!("unknown action {:?}", order.action));
        }
        let queued = service
            .fan_out(queue, order.kind, &order.slot)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(json!({ "queued": queued, "kind": order.kind }));
    }
    if let Ok(scheduled) = serde_json::from_value::<ScheduledEvent>(event) {
        if scheduled.detail_type == "Scheduled Event" {
            let queued = service
                .fan_out(queue, SyncKind::Full, &scheduled.time)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(json!({ "queued": queued, "kind": SyncKind::Full }));
        }
    }
    Err("usage-sync received an event it does not handle (expected an SQS batch or a fan-out order)".into())
}

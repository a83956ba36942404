//! The usage-sync function's events: a schedule's fan-out order (EventBridge Scheduler input, or
//! a classic EventBridge scheduled event) and SQS batches of [`SyncMessage`]s, answered with
//! partial-batch failures so only transient failures are delivered again. The event shapes are
//! `aws_lambda_events`'; only the fan-out order is seatsync's own.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::SyncKind;
use super::service::{SyncMessage, SyncQueue, SyncService, TenantOutcome};
use crate::config::{ConfigError, Env, parsed_or, required};

/// What the schedule sends (EventBridge Scheduler's input, `infra/template.yaml`):
/// `{"action": "fan_out", "kind": "full", "slot": "<scheduled time>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FanOut {
    /// Only `fan_out` is known; kept as text so an unknown one is named in the error.
    pub action: String,
    pub kind: SyncKind,
    pub slot: String,
}

/// An event usage-sync takes, told apart by its shape.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SyncEvent {
    /// A batch of queued tenant syncs.
    Queue(SqsEvent),
    /// A fan-out order from EventBridge Scheduler.
    FanOut(FanOut),
    /// A classic EventBridge scheduled rule (`detail-type: Scheduled Event`): a full sync.
    Scheduled(EventBridgeEvent),
}

/// usage-sync's answer: the batch's failures (the partial-batch response), or what a fan-out queued.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SyncAnswer {
    Batch(SqsBatchResponse),
    FanOut { queued: usize, kind: SyncKind },
}

/// Why an invocation failed as a whole (one tenant's failure is a batch item failure instead).
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("usage-sync received an event it does not handle (expected an SQS batch or a fan-out order)")]
    NotOurs,
    /// An SQS record without its id or body.
    #[error("not an SQS event: a record has no {0}")]
    NotSqs(&'static str),
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    /// The fan-out could not read the tenants or queue their syncs.
    #[error("{0}")]
    FanOut(anyhow::Error),
    #[error("the answer could not be encoded: {0}")]
    Answer(serde_json::Error),
}

impl InvocationError {
    /// Whether the same event may succeed when delivered again (the fan-out's storage or queue
    /// was unavailable); the others are events that are not ours and never will be.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::FanOut(_))
    }
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
    /// `SYNC_REQUESTS_PER_MINUTE` (default 1000, Box's own limit): the ceiling of a tenant's
    /// pace. The pace backs off on Box's 429s by itself, so there is no need to stay under it.
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
        let requests_per_minute = parsed_or(env, "SYNC_REQUESTS_PER_MINUTE", 1000u32)?;
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

/// Handles one invocation's event as Lambda delivers it (JSON). Errors are for events that are
/// not ours at all, and for fan-outs that could not run.
pub async fn handle(
    service: &SyncService,
    queue: &dyn SyncQueue,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Value, InvocationError> {
    let event: SyncEvent = serde_json::from_value(event).map_err(|_| InvocationError::NotOurs)?;
    let answer = handle_event(service, queue, event, deadline).await?;
    serde_json::to_value(answer).map_err(InvocationError::Answer)
}

/// Handles one typed event.
pub async fn handle_event(
    service: &SyncService,
    queue: &dyn SyncQueue,
    event: SyncEvent,
    deadline: Option<Instant>,
) -> Result<SyncAnswer, InvocationError> {
    match event {
        SyncEvent::Queue(batch) => Ok(SyncAnswer::Batch(sync_batch(service, queue, batch, deadline).await?)),
        SyncEvent::FanOut(order) => {
            if order.action != "fan_out" {
                return Err(InvocationError::UnknownAction(order.action));
            }
            fan_out(service, queue, order.kind, &order.slot).await
        }
        SyncEvent::Scheduled(event) => match scheduled_slot(&event) {
            Some(slot) => fan_out(service, queue, SyncKind::Full, &slot).await,
            None => Err(InvocationError::NotOurs),
        },
    }
}

async fn fan_out(
    service: &SyncService,
    queue: &dyn SyncQueue,
    kind: SyncKind,
    slot: &str,
) -> Result<SyncAnswer, InvocationError> {
    let queued = service
        .fan_out(queue, kind, slot)
        .await
        .map_err(InvocationError::FanOut)?;
    Ok(SyncAnswer::FanOut { queued, kind })
}

/// Syncs each message of the batch; the ones to deliver again are the answer's item failures.
async fn sync_batch(
    service: &SyncService,
    queue: &dyn SyncQueue,
    batch: SqsEvent,
    deadline: Option<Instant>,
) -> Result<SqsBatchResponse, InvocationError> {
    let records = batch
        .records
        .into_iter()
        .map(|r| match (r.message_id, r.body) {
            (Some(id), Some(body)) => Ok((id, body)),
            (None, _) => Err(InvocationError::NotSqs("messageId")),
            (_, None) => Err(InvocationError::NotSqs("body")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut answer = SqsBatchResponse::default();
    for (message_id, body) in records {
        let message: SyncMessage = match serde_json::from_str(&body) {
            Ok(m) => m,
            Err(e) => {
                // Delivered again, then to the dead-letter queue, where someone will see it.
                tracing::error!(message_id = %message_id, error = %e, "a sync message is malformed");
                answer.add_failure(message_id);
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
                answer.add_failure(message_id);
            }
            TenantOutcome::Failed { retry: false, error } => {
                tracing::warn!(tenant = %message.tenant, error, "sync failed; recorded, not retried")
            }
        }
    }
    Ok(answer)
}

/// A classic scheduled event's slot: its time as EventBridge writes it (`2026-11-28T06:00:00Z`).
/// `None` for any other EventBridge event, or one without a time.
fn scheduled_slot(event: &EventBridgeEvent) -> Option<String> {
    if event.detail_type != "Scheduled Event" {
        return None;
    }
    event.time.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The invocation's deadline (the Lambda context's, a wall-clock time) on tokio's clock, which
/// the sync measures its time with.
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    Instant::now() + time_left(deadline, SystemTime::now())
}

/// Time from `now` to `deadline`; none once it has passed.
fn time_left(deadline: SystemTime, now: SystemTime) -> Duration {
    deadline.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(v: Value) -> SyncEvent {
        serde_json::from_value(v).expect("one of usage-sync's events")
    }

    #[test]
    fn an_sqs_batch_is_read_as_one_whatever_else_it_carries() {
        let e = event(json!({ "Records": [
            { "messageId": "m-1", "body": "{}", "eventSource": "aws:sqs", "attributes": null },
        ]}));
        let SyncEvent::Queue(batch) = e else {
            panic!("not read as a batch: {e:?}")
        };
        assert_eq!(batch.records[0].message_id.as_deref(), Some("m-1"));
    }

    #[test]
    fn the_schedulers_input_is_a_fan_out_order() {
        let e = event(json!({ "action": "fan_out", "kind": "incremental", "slot": "2026-11-28T06:15:00Z" }));
        let SyncEvent::FanOut(order) = e else {
            panic!("not read as a fan-out: {e:?}")
        };
        assert_eq!(
            order,
            FanOut {
                action: "fan_out".into(),
                kind: SyncKind::Incremental,
                slot: "2026-11-28T06:15:00Z".into()
            }
        );
    }

    #[test]
    fn a_scheduled_events_slot_is_its_time_as_eventbridge_wrote_it() {
        let e = event(json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-28T06:00:00Z", "region": "eu-west-1",
            "resources": [], "detail": {}
        }));
        let SyncEvent::Scheduled(scheduled) = e else {
            panic!("not read as a scheduled event: {e:?}")
        };
        assert_eq!(scheduled_slot(&scheduled).as_deref(), Some("2026-11-28T06:00:00Z"));
    }

    #[test]
    fn other_eventbridge_events_are_not_fan_outs() {
        let e = event(json!({
            "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
            "time": "2026-11-28T06:00:00Z", "detail": {}
        }));
        let SyncEvent::Scheduled(other) = e else {
            panic!("{e:?}")
        };
        assert_eq!(scheduled_slot(&other), None);
    }

    #[test]
    fn an_event_of_another_shape_is_not_ours() {
        assert!(serde_json::from_value::<SyncEvent>(json!({ "hello": "world" })).is_err());
    }

    #[test]
    fn the_batch_answer_is_lambdas_partial_batch_response() {
        let mut batch = SqsBatchResponse::default();
        batch.add_failure("m-1");
        assert_eq!(
            serde_json::to_string(&SyncAnswer::Batch(batch)).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"m-1"}]}"#
        );
        assert_eq!(
            serde_json::to_value(SyncAnswer::FanOut {
                queued: 3,
                kind: SyncKind::Full
            })
            .unwrap(),
            json!({ "queued": 3, "kind": "full" })
        );
    }

    #[test]
    fn only_a_failed_fan_out_is_retryable() {
        assert!(InvocationError::FanOut(anyhow::anyhow!("table unavailable")).is_retryable());
        assert!(!InvocationError::NotOurs.is_retryable());
        assert!(!InvocationError::UnknownAction("sweep".into()).is_retryable());
        assert!(!InvocationError::NotSqs("body").is_retryable());
    }

    #[test]
    fn the_time_left_is_the_gap_to_the_deadline_and_none_once_past() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            time_left(now + Duration::from_millis(1500), now),
            Duration::from_millis(1500)
        );
        assert_eq!(time_left(now - Duration::from_secs(1), now), Duration::ZERO);
    }

    #[test]
    fn the_sync_ceiling_defaults_to_boxs_limit_and_never_passes_it() {
        let base = [("SYNC_QUEUE_URL", "https://sqs.local/q"), ("APP_SECRET_ID", "app")];
        let with = |rate: Option<&'static str>| {
            let mut env: std::collections::HashMap<&str, &str> = base.into_iter().collect();
            if let Some(rate) = rate {
                env.insert("SYNC_REQUESTS_PER_MINUTE", rate);
            }
            SyncConfig::from_env(&env)
        };
        assert_eq!(with(None).unwrap().requests_per_minute, 1000);
        assert_eq!(with(Some("600")).unwrap().requests_per_minute, 600);
        for bad in ["0", "1001", "fast"] {
            let err = with(Some(bad)).unwrap_err();
            assert!(err.to_string().contains("SYNC_REQUESTS_PER_MINUTE"), "{bad}: {err}");
        }
    }
}

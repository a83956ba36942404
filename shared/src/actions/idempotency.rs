//! `Idempotency-Key`, at the HTTP edge: the first rendered answer to a write is stored under the tenant
//! (`IDEMPOTENCY#<key>`, 24 hours) with a hash of the request; a replay gets that answer again
//! without touching Box, the same key with another request gets 422, and a key whose first
//! request is still running gets 409 with `Retry-After`. A request that failed before any Box
//! write leaves no trace, so the client can simply retry.
//!
//! A running request holds its key on a lease that ends shortly after its invocation's deadline:
//! Lambda kills the invocation then, possibly between the Box write and the records. Past the
//! lease, the next attempt takes the key over (by version, so only one does) and runs again;
//! the pipeline reads the user from Box first and completes a change Box already shows.

use std::future::Future;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::http::Answer;
use super::{ActionsService, Call};
use crate::api::ApiError;
use crate::problem::Problem;
use crate::storage::VersionedOutcome;
use crate::storage::schema::{idempotency_sk, tenant_pk};

/// How long a stored answer is replayed.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// 1–128 characters of `[A-Za-z0-9_-]`.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The request identity a key is bound to: method, path and canonical body.
pub fn fingerprint(method: &str, path: &str, canonical_body: &str) -> String {
    let mut hash = Sha256::new();
    for part in [method, path, canonical_body] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    format!("{:x}", hash.finalize())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    InProgress,
    Done,
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    request_hash: String,
    state: State,
    created_at: chrono::DateTime<Utc>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    body: Option<String>,
    expires_at: i64,
    /// While `in_progress`: until when (epoch ms) the attempt may still be running.
    #[serde(default)]
    lease_until_ms: Option<i64>,
}

impl Item {
    /// The stored answer of a finished request, to replay as it was first given.
    fn stored_answer(&self) -> Option<Answer> {
        match (self.state, self.status, &self.body) {
            (State::Done, Some(status), Some(body)) => Some(Answer {
                status,
                content_type: self.content_type.clone().unwrap_or_else(|| "application/json".into()),
                body: body.clone(),
                retry_after: None,
            }),
            _ => None,
        }
    }
}

enum Begin {
    Run,
    Answer(Answer),
}

impl ActionsService {
    /// Runs `work` at most once per key. `work` answers (rendered) and says whether Box may have
    /// been written to (then the answer is kept even when it is an error). Dry runs change nothing
    /// and are not bound to a key.
    pub(super) async fn idempotent<Fut>(&self, call: &Call, dry_run: bool, fingerprint: &str, work: Fut) -> Answer
    where
        Fut: Future<Output = (Answer, bool)>,
    {
        if dry_run {
            return work.await.0;
        }
        let Some(key) = call.idempotency_key.as_deref() else {
            return Answer::error(&ApiError::bad_request(
                "an `Idempotency-Key` header (1 to 128 characters of A-Z, a-z, 0-9, `-`, `_`) is required for \
                 changes; send a new random key per change and the same key when retrying it",
            ));
        };
        let pk = tenant_pk(&call.tenant);
        let sk = idempotency_sk(key);
        match self.begin(call, &pk, &sk, fingerprint).await {
            Ok(Begin::Run) => {}
            Ok(Begin::Answer(answer)) => return answer,
            Err(e) => return Answer::error(&e),
        }
        let (answer, touched_box) = work.await;
        if touched_box || answer.status < 300 {
            let now = Utc::now();
            let done = Item {
                request_hash: fingerprint.to_owned(),
                state: State::Done,
                created_at: now,
                status: Some(answer.status),
                content_type: Some(answer.content_type.clone()),
                body: Some(answer.body.clone()),
                expires_at: (now + chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp(),
                lease_until_ms: None,
            };
            for attempt in 1..=2 {
                match self.table.put(&pk, &sk, &done).await {
                    Ok(()) => break,
                    Err(e) => tracing::error!(attempt, error = %e, "could not store the idempotent answer"),
                }
            }
        } else if let Err(e) = self.table.delete(&pk, &sk).await {
            tracing::warn!(error = %e, "could not release the idempotency key; it expires by itself");
        }
        answer
    }

    /// Until when an attempt of `call` that starts now may run (its deadline plus a grace).
    fn lease_until(&self, call: &Call) -> chrono::DateTime<Utc> {
        let left = self
            .deadline(call)
            .saturating_duration_since(tokio::time::Instant::now())
            + self.timings.lease_grace;
        Utc::now() + chrono::Duration::from_std(left).unwrap_or(chrono::Duration::MAX)
    }

    async fn begin(&self, call: &Call, pk: &str, sk: &str, fingerprint: &str) -> Result<Begin, ApiError> {
        let now = Utc::now();
        let item = Item {
            request_hash: fingerprint.to_owned(),
            state: State::InProgress,
            created_at: now,
            status: None,
            content_type: None,
            body: None,
            expires_at: (now + chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp(),
            lease_until_ms: Some(self.lease_until(call).timestamp_millis()),
        };
        let unexpected = |e: crate::storage::StoreError| ApiError::Unexpected(e.into());
        // A few times: a stored answer can expire (or be released, or taken over) between the
        // write and the read.
        for _ in 0..3 {
            if let VersionedOutcome::Written { .. } = self
                .table
                .put_versioned(pk, sk, &item, None)
                .await
                .map_err(unexpected)?
            {
                return Ok(Begin::Run);
            }
            let Some(found) = self.table.get_versioned::<Item>(pk, sk).await.map_err(unexpected)? else {
                continue;
            };
            let (version, found) = (found.version, found.item);
            if found.request_hash != fingerprint {
                return Err(ApiError::Unprocessable {
                    detail: "this Idempotency-Key was already used for a different request (another user, \
                             action or body); use a new key for a new change"
                        .into(),
                    field: Some("Idempotency-Key".into()),
                });
            }
            if let Some(answer) = found.stored_answer() {
                return Ok(Begin::Answer(answer));
            }
            // Items from before leases: the longest an invocation could have run.
            let lease_until = found.lease_until_ms.unwrap_or_else(|| {
                let longest = chrono::Duration::from_std(self.timings.without_deadline + self.timings.lease_grace)
                    .unwrap_or_default();
                (found.created_at + longest).timestamp_millis()
            });
            let left_ms = lease_until - Utc::now().timestamp_millis();
            if left_ms > 0 {
                let mut answer = Answer::problem(&Problem::of_status(
                    409,
                    "a request with this Idempotency-Key is still in progress; retry with the same key after \
                     the Retry-After seconds to read its answer (or to complete it, should it have been cut off)",
                ));
                answer.retry_after = Some(u64::try_from(left_ms).unwrap_or(1).div_ceil(1000).max(1));
                return Ok(Begin::Answer(answer));
            }
            // The attempt holding the key is dead: take it over (only one of racing retries can).
            if let VersionedOutcome::Written { .. } = self
                .table
                .put_versioned(pk, sk, &item, Some(version))
                .await
                .map_err(unexpected)?
            {
                tracing::warn!("taking over an Idempotency-Key whose attempt ended without an answer");
                return Ok(Begin::Run);
            }
        }
        Ok(Begin::Answer(Answer::problem(&Problem::of_status(
            409,
            "the Idempotency-Key kept changing state; retry with the same key",
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_and_plain() {
        assert!(valid_idempotency_key("a-B_9"));
        assert!(valid_idempotency_key(&"k".repeat(128)));
        for bad in ["", "a b", "a/b", "é", &"k".repeat(129)] {
            assert!(!valid_idempotency_key(bad), "{bad:?}");
        }
    }

    /// A finished record as the version before the typed outcomes stored it (attribute for
    /// attribute, as DynamoDB holds it): records written before a deploy replay after it.
    #[test]
    fn records_stored_before_the_typed_outcomes_replay_unchanged() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: &str| AttributeValue::N(v.to_owned());
        let body = r#"{"type":"https://seatsync.dev/problems/action-failed","title":"Bad Gateway","status":502,"detail":"Box refused the change"}"#;
        let record: std::collections::HashMap<String, AttributeValue> = [
            ("request_hash", s("abc123")),
            ("state", s("done")),
            ("created_at", s("2026-11-30T10:00:00.123456Z")),
            ("status", n("502")),
            ("content_type", s("application/problem+json")),
            ("body", s(body)),
            ("expires_at", n("1796205600")),
            ("lease_until_ms", AttributeValue::Null(true)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let item: Item = serde_dynamo::aws_sdk_dynamodb_1::from_item(record.clone()).expect("today's record decodes");
        let written: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::aws_sdk_dynamodb_1::to_item(&item).expect("an item encodes");
        assert_eq!(written, record, "the stored format is unchanged");
        assert_eq!(item.request_hash, "abc123");
        assert_eq!(
            item.stored_answer(),
            Some(Answer {
                status: 502,
                content_type: "application/problem+json".into(),
                body: body.into(),
                retry_after: None,
            })
        );
    }

    #[test]
    fn records_without_a_content_type_replay_as_json() {
        let item: Item = serde_json::from_value(serde_json::json!({
            "request_hash": "h", "state": "done", "created_at": "2026-11-30T10:00:00Z",
            "status": 200, "body": "{}", "expires_at": 1
        }))
        .expect("an item");
        let answer = item.stored_answer().expect("an answer");
        assert_eq!((answer.status, answer.content_type.as_str()), (200, "application/json"));
    }

    #[test]
    fn requests_still_in_progress_have_no_answer_to_replay() {
        let item: Item = serde_json::from_value(serde_json::json!({
            "request_hash": "h", "state": "in_progress", "created_at": "2026-11-30T10:00:00Z",
            "expires_at": 1, "lease_until_ms": 5
        }))
        .expect("an item");
        assert_eq!(item.stored_answer(), None);
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint("POST", "/a", "b"), fingerprint("POST", "/ab", ""));
        assert_eq!(fingerprint("POST", "/a", "{}"), fingerprint("POST", "/a", "{}"));
    }
}

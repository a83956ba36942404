//! `Idempotency-Key`: the first answer to a write is stored under the tenant
//! (`IDEMPOTENCY#<key>`, 24 hours) with a hash of the request; a replay gets that answer again
//! without touching Box, the same key with another request gets 422, and a key whose first
//! request is still running gets 409. A request that failed before any Box write leaves no
//! trace, so the client can simply retry.

use std::future::Future;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ActionsService, Answer, Call};
use crate::api::ApiError;
use crate::problem::Problem;
use crate::storage::PutOutcome;
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
}

enum Begin {
    Run,
    Answer(Answer),
}

impl ActionsService {
    /// Runs `work` at most once per key. `work` answers and says whether Box may have been
    /// written to (then the answer is kept even when it is an error). Dry runs change nothing
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
        match self.begin(&pk, &sk, fingerprint).await {
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

    async fn begin(&self, pk: &str, sk: &str, fingerprint: &str) -> Result<Begin, ApiError> {
        let now = Utc::now();
        let item = Item {
            request_hash: fingerprint.to_owned(),
            state: State::InProgress,
            created_at: now,
            status: None,
            content_type: None,
            body: None,
            expires_at: (now + chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp(),
        };
        // Twice: a stored answer can expire (or be released) between the write and the read.
        for _ in 0..2 {
            match self
                .table
                .put_new(pk, sk, &item)
                .await
                .map_err(|e| ApiError::Unexpected(e.into()))?
            {
                PutOutcome::Created => return Ok(Begin::Run),
                PutOutcome::AlreadyExists => {}
            }
            let Some(found) = self
                .table
                .get::<Item>(pk, sk)
                .await
                .map_err(|e| ApiError::Unexpected(e.into()))?
            else {
                continue;
            };
            if found.request_hash != fingerprint {
                return Err(ApiError::Unprocessable {
                    detail: "this Idempotency-Key was already used for a different request (another user, \
                             action or body); use a new key for a new change"
                        .into(),
                    field: Some("Idempotency-Key".into()),
                });
            }
            return match (found.state, found.status, found.body) {
                (State::Done, Some(status), Some(body)) => Ok(Begin::Answer(Answer {
                    status,
                    content_type: found.content_type.unwrap_or_else(|| "application/json".into()),
                    body,
                })),
                _ => Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still in progress; wait for its answer, then retry \
                     with the same key to read it"
                        .into(),
                )),
            };
        }
        Ok(Begin::Answer(Answer::problem(&Problem::new(
            409,
            "Conflict",
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

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint("POST", "/a", "b"), fingerprint("POST", "/ab", ""));
        assert_eq!(fingerprint("POST", "/a", "{}"), fingerprint("POST", "/a", "{}"));
    }
}

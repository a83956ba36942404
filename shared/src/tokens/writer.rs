//! Storing a refreshed pair after Box has already rotated the refresh token: the only copy of the
//! new pair is in memory until a write lands, so the write is retried, with the same
//! `ClientRequestToken`, for as long as the holder's claim lasts (checklist items 10 and 31).
//!
//! Every attempt after the first is fenced: it first reads the secret, and writes only while the
//! secret still holds the refresh token this refresh replaced. If the secret has moved on (a person
//! reconnected Box, or the write landed after all), a late writer stops instead of overwriting it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::TokenVault;
use super::claim::RefreshClaim;
use crate::ids::TenantId;
use crate::storage::{BoxTokenSet, request_token_from};

/// What a holder needs to keep trying to store a refreshed pair.
pub struct PendingWrite {
    pub vault: Arc<dyn TokenVault>,
    pub tenant: TenantId,
    pub tokens: BoxTokenSet,
    /// The refresh token the new pair replaces: it derives the request token and fences writes.
    pub old_refresh: SecretString,
    pub claim: RefreshClaim,
}

/// How a pending write retries.
#[derive(Debug, Clone, Copy)]
pub struct WritePolicy {
    /// Attempts made before the caller gets its token (the rest go on in the background).
    pub inline_attempts: u32,
    /// The longest pause between two attempts.
    pub max_delay: Duration,
    /// How long the holder keeps trying in all (its claim is extended as long).
    pub horizon: Duration,
}

/// What became of a pending write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Stored,
    /// The secret no longer holds the replaced refresh token: nothing was written.
    Superseded,
    /// Still failing; the background retries go on.
    Deferred,
}

impl PendingWrite {
    /// Tries the inline attempts. On failure, extends the claim over the horizon and goes on in a
    /// background task (listed in `pending` while it runs).
    pub async fn store(self, policy: WritePolicy, pending: Arc<Mutex<HashSet<TenantId>>>) -> WriteOutcome {
        let request_token = request_token_from(&self.old_refresh);
        for attempt in 1..=policy.inline_attempts.max(1) {
            match self.attempt(&request_token, attempt > 1).await {
                Some(outcome) => return outcome,
                None if attempt < policy.inline_attempts => {
                    tokio::time::sleep(backoff(attempt, policy.max_delay)).await
                }
                None => {}
            }
        }
        // Keep everyone else off the old refresh token while this instance keeps retrying.
        if let Err(e) = self.claim.extend(policy.horizon).await {
            tracing::error!(error = %e, "could not extend the refresh claim while the new token is unstored");
        }
        tracing::error!(
            retry_for_s = policy.horizon.as_secs(),
            "could not store the refreshed Box token yet; this instance keeps it in memory and keeps retrying"
        );
        lock(&pending).insert(self.tenant.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + policy.horizon;
            let mut attempt = policy.inline_attempts;
            let outcome = loop {
                attempt += 1;
                tokio::time::sleep(backoff(attempt, policy.max_delay)).await;
                if let Some(outcome) = self.attempt(&request_token, true).await {
                    break outcome;
                }
                if Instant::now() >= deadline {
                    tracing::error!(
                        attempts = attempt,
                        "gave up storing the refreshed Box token; it lives only in this instance's memory"
                    );
                    break WriteOutcome::Deferred;
                }
            };
            tracing::info!(outcome = ?outcome, attempts = attempt, "background store of the refreshed Box token ended");
            lock(&pending).remove(&self.tenant);
        });
        WriteOutcome::Deferred
    }

    /// One fenced write. `None`: it failed and may be retried.
    async fn attempt(&self, request_token: &str, fenced: bool) -> Option<WriteOutcome> {
        if fenced {
            match self.vault.read(&self.tenant).await {
                Ok(Some(current)) => {
                    let holds = |token: &Option<SecretString>, wanted: &SecretString| {
                        token.as_ref().map(|t| t.expose_secret()) == Some(wanted.expose_secret())
                    };
                    if self
                        .tokens
                        .refresh_token
                        .as_ref()
                        .is_some_and(|new| holds(&current.refresh_token, new))
                    {
                        return Some(WriteOutcome::Stored);
                    }
                    if !holds(&current.refresh_token, &self.old_refresh) {
                        tracing::warn!(
                            "the Box secret changed while a refreshed token waited to be stored; not overwriting it"
                        );
                        return Some(WriteOutcome::Superseded);
                    }
                }
                Ok(None) => {
                    tracing::warn!("the Box secret was deleted while a refreshed token waited to be stored");
                    return Some(WriteOutcome::Superseded);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the Box secret before storing the refreshed token");
                    return None;
                }
            }
        }
        match self.vault.write(&self.tenant, &self.tokens, request_token).await {
            Ok(()) => Some(WriteOutcome::Stored),
            Err(e) => {
                tracing::warn!(error = %e, "storing the refreshed Box token failed");
                None
            }
        }
    }
}

/// The pause before attempt `attempt + 1`: the retry engine's jittered exponential backoff from
/// 200 ms, capped at `max` (the writer keeps its own loop: fenced attempts, a claim to extend).
fn backoff(attempt: u32, max: Duration) -> Duration {
    crate::retry::RetryPolicy {
        base_backoff: Duration::from_millis(200),
        max_backoff: max,
        ..crate::retry::RetryPolicy::default()
    }
    .backoff(attempt)
}

fn lock(pending: &Mutex<HashSet<TenantId>>) -> std::sync::MutexGuard<'_, HashSet<TenantId>> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let max = Duration::from_secs(5);
        let within = |d: Duration, mean_ms: u64| {
            d >= Duration::from_millis(mean_ms / 2) && d <= Duration::from_millis(mean_ms * 3 / 2)
        };
        for _ in 0..50 {
            assert!(within(backoff(1, max), 200));
            assert!(within(backoff(2, max), 400));
            assert!(backoff(40, max) <= max);
        }
    }
}

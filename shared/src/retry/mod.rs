//! The one retry engine: Box, the SSO providers and SQS sends all retry through [`run`].
//!
//! The rules, as Box's own SDKs apply them (box-api.md):
//! - a bounded number of attempts, within a time budget that counts the requests and the waits;
//! - 5xx and lost answers back off exponentially with jitter (× 0.5–1.5), never past a cap;
//! - 429 waits at least as long as the server asked (`retry-after`); when it asks for more than
//!   the cap, or the wait would pass the budget, the call gives up with the rate-limited error;
//! - a write that must not run twice ([`Effect::NotIdempotent`]) is not sent again after an
//!   ambiguous answer (a 5xx, a timeout, a connection lost after the request went out): the server
//!   may have acted on it. A 429 or a connection that never opened is not ambiguous.
//! - a batch the server took only part of ([`Attempt::Partial`]) sends the rest again after a
//!   backoff: that is how SQS batch sends (and DynamoDB batch writes) resend unprocessed items.
//!
//! The engine neither sends nor logs requests: the caller's attempt closure does, and tells the
//! engine what came of it. Waits use `tokio::time`, so tests run it on paused time. [`run`] takes
//! the attempt as a closure; [`Retrier`] is the same engine for loops that keep state between
//! attempts (a batch's unprocessed items).

use std::ops::ControlFlow;
use std::time::Duration;

use http::HeaderMap;
use rand::Rng;
use tokio::time::Instant;

/// How many attempts and how long to wait between them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 means no retry.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time (× a random 0.5–1.5).
    pub base_backoff: Duration,
    /// Upper bound of any single wait. A `retry-after` longer than this is not shortened: the
    /// call gives up with the rate-limited error instead.
    pub max_backoff: Duration,
    /// Time budget of one call, all attempts and waits included. API functions keep it under
    /// API Gateway's 29 s; the sync, with 15 minutes, can afford more.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    /// For calls that must not be repeated (an authorization code lives 30 s and is single-use).
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// A policy for calls made while a person waits (API Gateway gives up after 29 s).
    pub fn interactive() -> Self {
        Self {
            max_attempts: 4,
            max_backoff: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(20),
            ..Self::default()
        }
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let jitter = rand::rng().random_range(0.5..1.5);
        exp.mul_f64(jitter).min(self.max_backoff)
    }

    /// The wait for a `retry-after` answer: what the server asked for, or a backoff when it did not say.
    pub fn retry_after(&self, asked: Option<Duration>, attempt: u32) -> Duration {
        asked.unwrap_or_else(|| self.backoff(attempt))
    }
}

/// Whether repeating a request is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads, and writes that end in the same state however often they run (PUT status).
    Idempotent,
    /// Writes that must not run twice (a content transfer, a token exchange).
    NotIdempotent,
}

/// What one attempt came to, as the caller read it. `E` is the error the call fails with if this
/// was the last attempt.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// An answer that is not retried (a success or a refusal): the call returns it.
    Done(T),
    /// A failure no retry can mend (a redirect, an answer too large): the call fails with it.
    Fatal(E),
    /// 429: the server asked to wait `asked` (or did not say). Not ambiguous.
    RateLimited { asked: Option<Duration>, error: E },
    /// 5xx: the server may have acted. Its `retry-after`, if any, is followed up to the cap.
    ServerError { retry_after: Option<Duration>, error: E },
    /// No answer. `sent`: the request may have reached the server (anything but a connection
    /// that never opened), which makes it ambiguous.
    NoAnswer { sent: bool, error: E },
    /// A batch of which the server took only part: the rest is sent again. Not ambiguous.
    Partial { error: E },
}

/// The answer of a call that succeeded, possibly after retries.
#[derive(Debug, PartialEq, Eq)]
pub struct Answered<T> {
    pub value: T,
    /// The answer came after an ambiguous one: an earlier attempt may have reached the server
    /// (a delete's 404 then means it worked).
    pub after_ambiguous: bool,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// What the attempt closure is told: which attempt this is, and how much of the budget is left
/// (the request's timeout should not outlast it).
#[derive(Debug, Clone, Copy)]
pub struct Try {
    /// Counts from 1.
    pub number: u32,
    pub remaining: Duration,
}

impl Try {
    /// `timeout`, shortened to what is left of the budget (never zero: a request needs a timeout).
    pub fn timeout(&self, timeout: Duration) -> Duration {
        timeout.min(self.remaining).max(Duration::from_millis(1))
    }
}

/// Why the engine stopped retrying: the caller's error of the last attempt is what the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Exhausted,
    AskedTooLong,
    Ambiguous,
    Budget,
}

/// Runs `attempt` until it is [`Attempt::Done`] or the rules above say stop; then the last
/// attempt's error is returned.
pub async fn run<T, E, F, Fut>(policy: &RetryPolicy, effect: Effect, mut attempt: F) -> Result<Answered<T>, E>
where
    F: FnMut(Try) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut retrier = Retrier::new(policy, effect);
    loop {
        let this = retrier.start();
        if let ControlFlow::Break(out) = retrier.settle(attempt(this).await).await {
            return out;
        }
    }
}

/// The engine as a state machine, for loops [`run`]'s closure does not fit: a loop that keeps
/// state between attempts, such as resending the items of a batch the server did not take:
///
/// ```ignore
/// let mut retrier = Retrier::new(&policy, Effect::Idempotent);
/// loop {
///     retrier.start();
///     pending = send(pending).await?; // the items refused
///     let attempt = if pending.is_empty() { Attempt::Done(()) } else { Attempt::Partial { error } };
///     if let ControlFlow::Break(out) = retrier.settle(attempt).await { return out; }
/// }
/// ```
#[derive(Debug)]
pub struct Retrier<'p> {
    policy: &'p RetryPolicy,
    effect: Effect,
    started: Instant,
    number: u32,
    ambiguous: bool,
}

impl<'p> Retrier<'p> {
    /// Starts the clock of the time budget.
    pub fn new(policy: &'p RetryPolicy, effect: Effect) -> Self {
        Self {
            policy,
            effect,
            started: Instant::now(),
            number: 0,
            ambiguous: false,
        }
    }

    /// Begins an attempt: its number and what is left of the budget.
    pub fn start(&mut self) -> Try {
        self.number += 1;
        Try {
            number: self.number,
            remaining: self.policy.max_elapsed.saturating_sub(self.started.elapsed()),
        }
    }

    /// What comes after the attempt: `Break` with the call's result, or `Continue` once the wait
    /// before the next attempt is over.
    pub async fn settle<T, E>(&mut self, attempt: Attempt<T, E>) -> ControlFlow<Result<Answered<T>, E>> {
        let policy = self.policy;
        let number = self.number.max(1);
        let last = number >= policy.max_attempts.max(1);
        let (wait, error, stop) = match attempt {
            Attempt::Done(value) => {
                return ControlFlow::Break(Ok(Answered {
                    value,
                    after_ambiguous: self.ambiguous,
                    attempts: number,
                }));
            }
            Attempt::Fatal(error) => return ControlFlow::Break(Err(error)),
            Attempt::RateLimited { asked, error } => {
                // Never retry sooner than asked: past the cap, give up instead.
                let stop = if asked.is_some_and(|a| a > policy.max_backoff) {
                    Some(Stop::AskedTooLong)
                } else {
                    last.then_some(Stop::Exhausted)
                };
                (policy.retry_after(asked, number), error, stop)
            }
            Attempt::ServerError { retry_after, error } => {
                self.ambiguous = true;
                let wait = retry_after
                    .map(|d| d.min(policy.max_backoff))
                    .unwrap_or_else(|| policy.backoff(number));
                (wait, error, stop_after(last, true, self.effect))
            }
            Attempt::NoAnswer { sent, error } => {
                self.ambiguous |= sent;
                (policy.backoff(number), error, stop_after(last, sent, self.effect))
            }
            Attempt::Partial { error } => (policy.backoff(number), error, last.then_some(Stop::Exhausted)),
        };
        let stop = stop.or_else(|| (self.started.elapsed() + wait >= policy.max_elapsed).then_some(Stop::Budget));
        if let Some(stop) = stop {
            if stop == Stop::Budget {
                tracing::warn!(attempt = number, budget = ?policy.max_elapsed, "retries would pass the time budget");
            }
            return ControlFlow::Break(Err(error));
        }
        tokio::time::sleep(wait).await;
        ControlFlow::Continue(())
    }
}

/// After a failure that may be ambiguous: stop when attempts are spent, or when a write that must
/// not run twice may already have run.
fn stop_after(last: bool, ambiguous: bool, effect: Effect) -> Option<Stop> {
    if last {
        Some(Stop::Exhausted)
    } else if ambiguous && effect == Effect::NotIdempotent {
        Some(Stop::Ambiguous)
    } else {
        None
    }
}

/// `Retry-After` as delta-seconds (Box's, Graph's and Entra's form; HTTP dates are not used), at
/// most an hour.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// Whether a status is a server error worth retrying.
pub fn is_retryable_5xx(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests;

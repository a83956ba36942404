//! Bounded retries as Box's own SDKs do them: 429 waits `retry-after`; 5xx and connection
//! failures back off exponentially with jitter; everything else is answered at once.

use std::time::Duration;

use rand::Rng;

/// How many attempts and how long to wait between them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 means no retry.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time (× a random 0.5–1.5).
    pub base_backoff: Duration,
    /// Upper bound of any single wait. A `retry-after` longer than this is not shortened: the
    /// call gives up with [`BoxError::RateLimited`](super::BoxError::RateLimited) instead.
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

    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let jitter = rand::rng().random_range(0.5..1.5);
        exp.mul_f64(jitter).min(self.max_backoff)
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

    /// The wait for a `retry-after` answer: what Box asked for, or a backoff when it did not say.
    pub fn retry_after(&self, asked: Option<Duration>, attempt: u32) -> Duration {
        asked.unwrap_or_else(|| self.backoff(attempt))
    }
}

/// Parses `retry-after` as delta-seconds (Box's form). HTTP dates are not used by Box.
pub(crate) fn parse_retry_after(value: Option<&http::HeaderValue>) -> Option<Duration> {
    let secs: f64 = value?.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let first = p.backoff(1);
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(150),
            "{first:?}"
        );
        let fourth = p.backoff(4);
        assert!(fourth >= Duration::from_millis(400), "{fourth:?}");
        assert!(p.backoff(30) <= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_honoured_not_shortened() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_after(Some(Duration::from_secs(2)), 1), Duration::from_secs(2));
        assert_eq!(
            parse_retry_after(Some(&http::HeaderValue::from_static("2"))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse_retry_after(Some(&http::HeaderValue::from_static("soon"))), None);
        assert_eq!(parse_retry_after(Some(&http::HeaderValue::from_static("-1"))), None);
    }
}

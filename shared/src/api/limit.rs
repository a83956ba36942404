//! Fairness between tenants: a per-tenant request limit on the HTTP APIs, so one tenant's heavy
//! reads cannot starve another's.
//!
//! [`TenantLimit`] counts each request of a verified [`Identity`]'s tenant in a fixed window (one
//! minute in production) shared by every Lambda instance: one counter item per tenant and window
//! in the table ([`rate_window_sk`]), raised by one atomic `ADD` per request ([`Table::increment`]),
//! so N concurrent requests against a limit of L admit exactly L. A request over the limit is
//! answered `429` problem+json with `Retry-After` ([`ApiError::TooManyRequests`]).
//!
//! - Only the verified identity's tenant is counted, never anything the caller chooses; a request
//!   without a valid identity is not counted (its handler answers 401, and the OAuth callback,
//!   which has no JWT, is never limited).
//! - Fail open: when the counter cannot be written (DynamoDB error, or no answer within
//!   [`COUNTER_TIMEOUT`]), the request is served and a warning logged. The limiter never takes
//!   the API down.
//!
//! [`TenantLimit::apply`] puts the limit in front of a function's router; every HTTP function
//! does this once in its `main.rs`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, Identity, TenantClaim};
use crate::ids::TenantId;
use crate::storage::schema::{rate_window_sk, tenant_pk};
use crate::storage::{StoreError, Table};

/// The production window: the limit is per minute (`TENANT_REQUESTS_PER_MINUTE`).
pub const WINDOW: Duration = Duration::from_secs(60);
/// The default limit per tenant and minute.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 600;
/// How long a request waits for its counter before it is served uncounted (fail open).
pub const COUNTER_TIMEOUT: Duration = Duration::from_secs(2);
/// A window's counter item expires this many windows after the window starts.
const EXPIRE_AFTER_WINDOWS: i64 = 3;

/// The current time in epoch seconds; injectable so tests can move between windows.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The fixed window that `now` (epoch seconds) falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Epoch seconds of the window's first second.
    pub start: i64,
    /// Whole seconds from `now` until the next window starts (1 to the window's length): never
    /// less than the true wait, since `now` is truncated to the second.
    pub retry_after_seconds: u64,
}

/// The fixed window of `window_seconds` (at least 1) that `now` falls in.
pub fn window_at(now: i64, window_seconds: u64) -> Window {
    let length = i64::try_from(window_seconds.max(1)).unwrap_or(i64::MAX);
    let into = now.rem_euclid(length);
    Window {
        start: now - into,
        retry_after_seconds: (length - into).unsigned_abs(),
    }
}

/// What the limit decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Served; `count` is the tenant's requests in this window so far, this one included.
    Admitted { count: u64 },
    /// Over the limit: refused until the next window.
    Limited { retry_after_seconds: u64 },
}

/// The per-tenant request limit of one HTTP function (see the module documentation).
#[derive(Clone)]
pub struct TenantLimit {
    table: Table,
    claim: TenantClaim,
    limit: NonZeroU32,
    window_seconds: u64,
    clock: Clock,
    timeout: Duration,
}

impl std::fmt::Debug for TenantLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLimit")
            .field("table", &self.table.name())
            .field("claim", &self.claim)
            .field("limit", &self.limit)
            .field("window_seconds", &self.window_seconds)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TenantLimit {
    /// `requests_per_minute` per tenant, counted in `table`, the tenant taken from `claim`.
    pub fn per_minute(table: Table, claim: TenantClaim, requests_per_minute: NonZeroU32) -> Self {
        Self {
            table,
            claim,
            limit: requests_per_minute,
            window_seconds: WINDOW.as_secs(),
            clock: Arc::new(|| chrono::Utc::now().timestamp()),
            timeout: COUNTER_TIMEOUT,
        }
    }

    /// Another clock (epoch seconds), for tests.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Another window length (whole seconds, at least 1), for tests.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window_seconds = window.as_secs().max(1);
        self
    }

    /// Another wait for the counter before failing open.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Counts one request of `tenant` in the current window (one UpdateItem) and decides. An
    /// error means the counter could not be written; the caller serves the request (fail open).
    pub async fn admit(&self, tenant: &TenantId) -> Result<Admission, StoreError> {
        let window = window_at((self.clock)(), self.window_seconds);
        let length = i64::try_from(self.window_seconds).unwrap_or(i64::MAX);
        let expires_at = window.start.saturating_add(length.saturating_mul(EXPIRE_AFTER_WINDOWS));
        let count = self
            .table
            .increment(&tenant_pk(tenant), &rate_window_sk(window.start), expires_at)
            .await?;
        Ok(if count <= u64::from(self.limit.get()) {
            Admission::Admitted { count }
        } else {
            Admission::Limited {
                retry_after_seconds: window.retry_after_seconds,
            }
        })
    }

    /// The 429 for a tenant over its limit: the limit and when to retry, nothing else.
    pub fn refusal(&self, retry_after_seconds: u64) -> ApiError {
        let per = if self.window_seconds == 60 {
            "minute".to_owned()
        } else {
            format!("{} seconds", self.window_seconds)
        };
        let unit = if retry_after_seconds == 1 { "second" } else { "seconds" };
        ApiError::TooManyRequests {
            detail: format!(
                "your organization has used its {} requests per {per} to this API; \
                 try again in {retry_after_seconds} {unit} (Retry-After)",
                self.limit
            ),
            retry_after_seconds,
        }
    }

    /// `router` behind this limit: every request with a verified identity is counted first.
    pub fn apply(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self, enforce))
    }
}

/// The middleware: count the verified tenant's request, refuse it over the limit, serve it
/// otherwise (also when the counter fails).
async fn enforce(State(limit): State<TenantLimit>, request: Request, next: Next) -> Response {
    let Ok(identity) = Identity::from_extensions(request.extensions(), &limit.claim.0) else {
        // Not counted: the handler answers 401 (or, for the OAuth callback, needs no identity).
        return next.run(request).await;
    };
    let decided = tokio::time::timeout(limit.timeout, limit.admit(&identity.tenant)).await;
    match decided {
        Ok(Ok(Admission::Admitted { .. })) => next.run(request).await,
        Ok(Ok(Admission::Limited { retry_after_seconds })) => {
            tracing::info!(tenant = %identity.tenant.as_str(), retry_after_seconds, "tenant over its request limit");
            super::routes::no_store(limit.refusal(retry_after_seconds).into_response()).await
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the tenant request counter could not be written; serving the request uncounted");
            next.run(request).await
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = limit.timeout.as_millis(),
                "the tenant request counter did not answer in time; serving the request uncounted"
            );
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_whole_seconds_left_in_the_window() {
        // 2026-11-28T00:00:00Z is a minute boundary.
        let minute = 1_795_824_000;
        assert_eq!(
            window_at(minute, 60),
            Window {
                start: minute,
                retry_after_seconds: 60
            }
        );
        assert_eq!(window_at(minute + 1, 60).retry_after_seconds, 59);
        assert_eq!(window_at(minute + 43, 60).retry_after_seconds, 17);
        assert_eq!(
            window_at(minute + 59, 60),
            Window {
                start: minute,
                retry_after_seconds: 1
            }
        );
        assert_eq!(window_at(minute + 60, 60).start, minute + 60);
        // Never 0, never more than the window.
        for now in minute..minute + 180 {
            let w = window_at(now, 60);
            assert!((1..=60).contains(&w.retry_after_seconds), "{now}: {w:?}");
            assert_eq!(
                (now + i64::try_from(w.retry_after_seconds).unwrap()) % 60,
                0,
                "{now}: {w:?}"
            );
            assert_eq!(w.start % 60, 0);
        }
        assert_eq!(window_at(-1, 60).start, -60);
        assert_eq!(window_at(7, 0).retry_after_seconds, 1);
    }
}

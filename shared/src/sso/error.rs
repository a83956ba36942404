//! What can go wrong reading sign-ins from an identity provider, as types. Messages name the provider,
//! the HTTP status and, for a known error code, seatsync's own description of it; they never carry
//! the provider's own text (it reaches the tenant through `last_sync.error`), a token or a secret
//! (request URLs are left out of transport errors).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// The API token, client secret or access token was refused (HTTP 401, `invalid_client`).
    #[error("{provider} rejected seatsync's credentials: {detail}")]
    Unauthorized { provider: &'static str, detail: String },
    /// The credentials are valid but lack a permission or scope (HTTP 403).
    #[error("{provider} refused the request: {reason}")]
    Forbidden { provider: &'static str, reason: String },
    /// The Entra tenant has no Entra ID P1/P2 licence, so its sign-in logs cannot be read
    /// (`Authentication_RequestFromNonPremiumTenantOrB2CTenant`).
    #[error("the Entra tenant lacks an Entra ID P1/P2 licence, so sign-in logs are unavailable: {detail}")]
    NotPremium { detail: String },
    /// Still rate limited after the bounded retries, or asked to wait longer than allowed.
    #[error("{provider} kept answering 429 after {attempts} attempts (last asked to wait {retry_after:?})")]
    RateLimited {
        provider: &'static str,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// 5xx or no answer after the bounded retries.
    #[error("{provider} is unavailable after {attempts} attempts: {detail}")]
    Unavailable {
        provider: &'static str,
        attempts: u32,
        detail: String,
    },
    /// Any other refusal (400, 404, ...): not retried.
    #[error("{provider} rejected the request (HTTP {status}): {detail}")]
    Rejected {
        provider: &'static str,
        status: u16,
        detail: String,
    },
    /// A 2xx answer whose body does not have the documented shape.
    #[error("unexpected response from {provider} for {operation}: {detail}")]
    Decode {
        provider: &'static str,
        operation: &'static str,
        detail: String,
    },
    /// A paging guard tripped: too many pages, a link that does not advance or points elsewhere.
    #[error("{provider} paging stopped: {detail}")]
    Paging { provider: &'static str, detail: String },
    /// The answer's body is larger than the client reads ([`super::HttpOptions::max_body_bytes`]).
    #[error("{provider}'s answer to {operation} is larger than {limit} bytes; seatsync did not read it")]
    TooLarge {
        provider: &'static str,
        operation: &'static str,
        limit: usize,
    },
    /// The stored SSO configuration cannot be used as it is.
    #[error("invalid SSO configuration: {0}")]
    Config(String),
}

impl SsoError {
    /// Whether a later attempt (the next sync) may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, SsoError::RateLimited { .. } | SsoError::Unavailable { .. })
    }

    /// Whether an administrator has to act (new credentials, permissions, licence, settings).
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            SsoError::Unauthorized { .. }
                | SsoError::Forbidden { .. }
                | SsoError::NotPremium { .. }
                | SsoError::Config(_)
        )
    }
}

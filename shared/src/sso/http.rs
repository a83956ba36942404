//! The request loop both providers share: a timeout on every request, 429 waits as long as the
//! provider asks (within a cap), 5xx and connection failures back off with jitter, all bounded by
//! attempts and by a time budget. Every call here is a read, so every failure may be retried.

use std::time::Duration;

use http::HeaderMap;

use super::{HttpOptions, SsoError};
use crate::boxapi::transport_detail;

/// An answer the loop did not retry: a 2xx or a refusal for the caller to map.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    pub options: HttpOptions,
    provider: &'static str,
}

impl Http {
    pub fn new(provider: &'static str, options: HttpOptions) -> Result<Http, SsoError> {
        let client = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("seatsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SsoError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            options,
            provider,
        })
    }

    /// Sends the request `build` makes until it gets an answer that is not retried. `rate_wait` reads
    /// the provider's own rate-limit headers of a 429 into the wait it asks for.
    pub async fn execute(
        &self,
        operation: &'static str,
        rate_wait: fn(&HeaderMap) -> Option<Duration>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, SsoError> {
        let policy = &self.options.retry;
        let provider = self.provider;
        let started = tokio::time::Instant::now();
        let max = policy.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = policy.max_elapsed.saturating_sub(started.elapsed());
            let timeout = self
                .options
                .request_timeout
                .min(remaining)
                .max(Duration::from_millis(1));
            let outcome = match build(&self.client).timeout(timeout).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok((status, headers, body.to_vec())),
                        Err(e) => Err(transport_detail(&e)),
                    }
                }
                Err(e) => Err(transport_detail(&e)),
            };
            let (wait, error) = match outcome {
                Ok((status, headers, body)) if status != 429 && !matches!(status, 500 | 502 | 503 | 504) => {
                    return Ok(Answer { status, headers, body });
                }
                Ok((429, headers, _)) => {
                    let asked = rate_wait(&headers);
                    tracing::warn!(provider, operation, attempt, ?asked, "rate limited");
                    let error = SsoError::RateLimited {
                        provider,
                        attempts: attempt,
                        retry_after: asked,
                    };
                    // Never retry sooner than asked: past the cap, give up instead.
                    if asked.is_some_and(|a| a > policy.max_backoff) {
                        return Err(error);
                    }
                    (asked.unwrap_or_else(|| policy.backoff(attempt)), error)
                }
                Ok((status, headers, _)) => {
                    tracing::warn!(provider, operation, attempt, status, "server error");
                    let wait = retry_after(&headers)
                        .map(|d| d.min(policy.max_backoff))
                        .unwrap_or_else(|| policy.backoff(attempt));
                    let error = SsoError::Unavailable {
                        provider,
                        attempts: attempt,
                        detail: format!("HTTP {status}"),
                    };
                    (wait, error)
                }
                Err(detail) => {
                    tracing::warn!(provider, operation, attempt, %detail, "no answer");
                    let error = SsoError::Unavailable {
                        provider,
                        attempts: attempt,
                        detail,
                    };
                    (policy.backoff(attempt), error)
                }
            };
            if attempt >= max || started.elapsed() + wait >= policy.max_elapsed {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// `Retry-After` as delta-seconds (Graph's and Entra's form).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// Whether `next` is on the same origin as `base`: a paging link elsewhere would carry the token
/// to another host.
pub(crate) fn same_origin(base: &url::Url, next: &url::Url) -> bool {
    base.scheme() == next.scheme()
        && base.host_str() == next.host_str()
        && base.port_or_known_default() == next.port_or_known_default()
}

/// `base` with `path` appended to its own path (a base may carry a path prefix).
pub(crate) fn join(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}{path}"));
    url.set_query(None);
    url
}

/// An OAuth token endpoint's answer.
#[derive(serde::Deserialize)]
pub(crate) struct TokenAnswer {
    pub access_token: secrecy::SecretString,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// One bearer token for the duration of its life; replaced on expiry, or when a 401 asks for renewal.
#[derive(Default)]
pub(crate) struct TokenCache(tokio::sync::Mutex<Option<(secrecy::SecretString, tokio::time::Instant)>>);

impl TokenCache {
    /// The cached token, or a new one from `fetch` (concurrent callers wait for that one fetch).
    pub(crate) async fn get_or_fetch<F, Fut>(&self, renew: bool, fetch: F) -> Result<secrecy::SecretString, SsoError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<TokenAnswer, SsoError>>,
    {
        let mut cached = self.0.lock().await;
        if !renew
            && let Some((token, expires)) = cached.as_ref()
            && *expires > tokio::time::Instant::now()
        {
            return Ok(token.clone());
        }
        let grant = fetch().await?;
        // Renew a minute early so a token never expires between check and use.
        let life = Duration::from_secs(grant.expires_in.unwrap_or(3599).saturating_sub(60).max(1));
        *cached = Some((grant.access_token.clone(), tokio::time::Instant::now() + life));
        Ok(grant.access_token)
    }
}

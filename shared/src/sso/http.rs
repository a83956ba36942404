//! The requests every provider makes: a timeout on every request, retried through the one retry
//! engine ([`crate::retry`]): 429 waits as long as the provider asks (within a cap), 5xx and
//! connection failures back off with jitter, all bounded by attempts and by a time budget. Every
//! call here is a read, so every failure may be retried.
//! No redirect is followed (a 3xx is a refusal), an answer's body is read up to
//! [`HttpOptions::max_body_bytes`] only, and in production names resolve to public addresses only
//! (see [`super::outbound`]).

use std::time::Duration;

use http::HeaderMap;

use super::{HttpOptions, SsoError};
use crate::boxapi::transport_detail;
pub(crate) use crate::retry::retry_after;
use crate::retry::{Attempt, Effect, Try, is_retryable_5xx};

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
        let mut builder = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("seatsync/", env!("CARGO_PKG_VERSION")));
        if !options.outbound.allows_loopback_simulators() {
            builder = builder.dns_resolver(super::outbound::PublicOnly);
        }
        let client = builder
            .build()
            .map_err(|e| SsoError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            options,
            provider,
        })
    }

    /// Sends the request `build` makes until it gets an answer that is not retried (through
    /// [`crate::retry::run`]; every call here is a read). `rate_wait` reads the provider's own
    /// rate-limit headers of a 429 into the wait it asks for.
    pub async fn execute(
        &self,
        operation: &'static str,
        rate_wait: fn(&HeaderMap) -> Option<Duration>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, SsoError> {
        let provider = self.provider;
        let build = &build;
        let answered = crate::retry::run(&self.options.retry, Effect::Idempotent, |attempt: Try| async move {
            let number = attempt.number;
            let request = build(&self.client).timeout(attempt.timeout(self.options.request_timeout));
            let (status, headers, body) = match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match read_capped(resp, self.options.max_body_bytes).await {
                        Ok(body) => (status, headers, body),
                        Err(Body::TooLarge) => {
                            tracing::warn!(provider, operation, status, "answer larger than the cap; not read");
                            return Attempt::Fatal(SsoError::TooLarge {
                                provider,
                                operation,
                                limit: self.options.max_body_bytes,
                            });
                        }
                        Err(Body::Transport(e)) => return self.no_answer(operation, number, transport_detail(&e)),
                    }
                }
                Err(e) => return self.no_answer(operation, number, transport_detail(&e)),
            };
            match status {
                300..=399 => {
                    // Never followed: a redirect could lead anywhere, credentials included.
                    tracing::warn!(provider, operation, status, "redirect not followed");
                    Attempt::Fatal(SsoError::Rejected {
                        provider,
                        status,
                        detail: "the provider answered with a redirect, which seatsync does not follow".into(),
                    })
                }
                429 => {
                    let asked = rate_wait(&headers);
                    tracing::warn!(provider, operation, attempt = number, ?asked, "rate limited");
                    Attempt::RateLimited {
                        asked,
                        error: SsoError::RateLimited {
                            provider,
                            attempts: number,
                            retry_after: asked,
                        },
                    }
                }
                status if is_retryable_5xx(status) => {
                    tracing::warn!(provider, operation, attempt = number, status, "server error");
                    Attempt::ServerError {
                        retry_after: retry_after(&headers),
                        error: SsoError::Unavailable {
                            provider,
                            attempts: number,
                            detail: format!("HTTP {status}"),
                        },
                    }
                }
                _ => Attempt::Done(Answer { status, headers, body }),
            }
        })
        .await?;
        Ok(answered.value)
    }

    /// No answer, logged. Every call here is a read, so whether it was sent does not matter.
    fn no_answer(&self, operation: &'static str, attempt: u32, detail: String) -> Attempt<Answer, SsoError> {
        let provider = self.provider;
        tracing::warn!(provider, operation, attempt, %detail, "no answer");
        Attempt::NoAnswer {
            sent: true,
            error: SsoError::Unavailable {
                provider,
                attempts: attempt,
                detail,
            },
        }
    }
}

enum Body {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body, read chunk by chunk up to `limit` bytes: a longer one is not read further.
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, Body> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Body::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Body::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(Body::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a refusal may say to the tenant: the status and, when the provider's error code is one of
/// `known`, that code with seatsync's own description. Nothing of the provider's text is passed on:
/// it would reach the tenant through `last_sync.error`.
pub(crate) fn refusal_detail(status: u16, code: Option<&str>, known: &[(&'static str, &'static str)]) -> String {
    match code.and_then(|c| known.iter().find(|(k, _)| *k == c)) {
        Some((code, meaning)) => format!("{code}: {meaning} (HTTP {status})"),
        None => format!("HTTP {status}"),
    }
}

/// What a JSON decoding error may say: its category and position, never serde's message, which
/// quotes the provider's values.
pub(crate) fn decode_detail(e: &serde_json::Error) -> String {
    format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column())
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
    /// Any JSON number (a provider may send a huge or fractional one); read through [`token_life`].
    #[serde(default)]
    pub expires_in: Option<serde_json::Number>,
}

/// A day: no provider token lives longer, and a longer claimed life is not believed.
const MAX_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// How long to use a token that claims `expires_in` seconds: a minute less (so it never expires
/// between check and use), at least a second, at most [`MAX_TOKEN_LIFE`]. Never overflows.
pub(crate) fn token_life(expires_in: Option<&serde_json::Number>) -> Duration {
    let secs = match expires_in {
        None => 3599,
        Some(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .map(|f| f.min(u64::MAX as f64) as u64)
            })
            .unwrap_or(0),
    };
    Duration::from_secs(secs.saturating_sub(60).max(1)).min(MAX_TOKEN_LIFE)
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
        let now = tokio::time::Instant::now();
        let life = token_life(grant.expires_in.as_ref());
        *cached = Some((grant.access_token.clone(), now.checked_add(life).unwrap_or(now)));
        Ok(grant.access_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_life_is_bounded_for_any_expires_in() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(token_life(None), Duration::from_secs(3539));
        assert_eq!(token_life(Some(&n("3599"))), Duration::from_secs(3539));
        assert_eq!(token_life(Some(&n("18446744073709551615"))), MAX_TOKEN_LIFE);
        assert_eq!(token_life(Some(&n("1e300"))), MAX_TOKEN_LIFE);
        assert_eq!(token_life(Some(&n("-5"))), Duration::from_secs(1));
        assert_eq!(token_life(Some(&n("0"))), Duration::from_secs(1));
        assert_eq!(token_life(Some(&n("90.5"))), Duration::from_secs(30));
    }
}

//! A typed client for the Box API calls seatsync makes.
//!
//! Every request has a timeout and goes through [`BoxClient::execute`], which retries 429 after
//! `retry-after` and 5xx/connection failures with jittered backoff, a bounded number of times,
//! through the one retry engine ([`crate::retry`]).
//! Tokens and client secrets only travel as [`secrecy::SecretString`] and are never logged.

mod budget;
mod error;
mod events;
mod oauth;
mod types;
mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{ConfigError, Env, url_or};
use crate::retry::Attempt;

pub(crate) use crate::retry::Effect;
pub use crate::retry::RetryPolicy;
pub use budget::RequestBudget;
pub use error::{BoxError, BoxErrorDetail, OAuthErrorKind};
pub use events::{ACTIVITY_EVENTS, EventsPage, EventsQuery, LOGIN_EVENT};
pub use oauth::{AppCredentials, TokenGrant, scopes};
pub use types::{
    ANONYMOUS_USER_ID, EnterpriseMini, Event, Role, TransferredFolder, USER_FIELDS, User, UserMini, UserStatus,
};
pub use users::{DeleteOptions, TransferOptions, UserListPage, UserType, parse_user_id};

/// Where Box lives. Both are configurable: tests and the demo point them at the simulator, and
/// Box Verified Enterprises use `ent.box.com` for the authorize page.
#[derive(Debug, Clone)]
pub struct BoxEndpoints {
    /// `BOX_API_BASE`, default `https://api.box.com` (the API under `/2.0`, OAuth under `/oauth2`).
    pub api_base: Url,
    /// `BOX_ACCOUNT_BASE`, default `https://account.box.com` (the authorize page).
    pub account_base: Url,
}

impl BoxEndpoints {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Self {
            api_base: url_or(env, "BOX_API_BASE", "https://api.box.com")?,
            account_base: url_or(env, "BOX_ACCOUNT_BASE", "https://account.box.com")?,
        })
    }

    /// Endpoints from two base URLs (e.g. a simulator's); panics never: errors name the input.
    pub fn new(api_base: &str, account_base: &str) -> Result<Self, url::ParseError> {
        Ok(Self {
            api_base: Url::parse(api_base)?,
            account_base: Url::parse(account_base)?,
        })
    }

    fn join(base: &Url, path: &str) -> Url {
        let mut url = base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    pub(crate) fn api(&self, path: &str) -> Url {
        Self::join(&self.api_base, path)
    }

    pub(crate) fn account(&self, path: &str) -> Url {
        Self::join(&self.account_base, path)
    }
}

/// Timeouts and retries of a [`BoxClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout, body included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// The Box API client. Cheap to clone; clones share the connection pool and the call counter.
#[derive(Clone)]
pub struct BoxClient {
    http: reqwest::Client,
    endpoints: Arc<BoxEndpoints>,
    options: Arc<ClientOptions>,
    calls: Arc<AtomicU64>,
    budget: Option<Arc<RequestBudget>>,
}

impl std::fmt::Debug for BoxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxClient")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// One answer that the retry loop did not swallow: a 2xx, or a refusal the caller maps.
pub(crate) struct Answer {
    pub status: u16,
    /// Read in full inside the retry loop, so a connection dropped mid-body is retried too.
    pub body: Vec<u8>,
    /// An earlier attempt may have reached Box (a 5xx or a lost answer came before this one).
    pub after_ambiguous: bool,
}

impl BoxClient {
    pub fn new(endpoints: BoxEndpoints, options: ClientOptions) -> Result<Self, BoxError> {
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("seatsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BoxError::Unavailable {
                attempts: 0,
                detail: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            endpoints: Arc::new(endpoints),
            options: Arc::new(options),
            calls: Arc::new(AtomicU64::new(0)),
            budget: None,
        })
    }

    pub fn endpoints(&self) -> &BoxEndpoints {
        &self.endpoints
    }

    /// A clone that paces its requests (all attempts) with `budget` and counts its calls on its
    /// own: one per tenant sync, so one tenant's pace never slows another's. Box's 429s reach
    /// the budget too ([`RequestBudget::on_rate_limited`]): the pace adapts to them.
    pub fn with_budget(&self, budget: Arc<RequestBudget>) -> Self {
        Self {
            budget: Some(budget),
            calls: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }

    /// HTTP requests sent to Box so far by this client and its clones, retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Sends a request built by `build`, retrying per `policy` within its time budget (through
    /// [`crate::retry::run`]). Returns the first answer that is not retried (2xx or a refusal), or
    /// the variant for exhausted retries.
    ///
    /// A [`Effect::NotIdempotent`] request is retried only when Box cannot have acted on it: a
    /// 429, or a connection that never opened. A 5xx, a timeout or a dropped answer may come after
    /// the change took effect (box-api.md), so those are returned to the caller instead.
    pub(crate) async fn execute(
        &self,
        operation: &'static str,
        policy: &RetryPolicy,
        effect: Effect,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, BoxError> {
        let build = &build;
        let answered = crate::retry::run(policy, effect, |attempt: crate::retry::Try| async move {
            let number = attempt.number;
            if let Some(budget) = &self.budget {
                budget.acquire().await;
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let request = build(&self.http).timeout(attempt.timeout(self.options.request_timeout));
            let (status, retry_after, body) = match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = crate::retry::retry_after(resp.headers());
                    match resp.bytes().await {
                        Ok(body) => (status, retry_after, body.to_vec()),
                        // The request went out: a dropped answer is ambiguous.
                        Err(e) => return no_answer(operation, number, true, transport_detail(&e)),
                    }
                }
                Err(e) => return no_answer(operation, number, !e.is_connect(), transport_detail(&e)),
            };
            if status == 429 {
                tracing::warn!(
                    operation,
                    attempt = number,
                    ?retry_after,
                    "Box rate limited the request"
                );
                // Every caller of this tenant holds until `retry-after` and the pace slows, so
                // the other slices do not spend calls on 429s of their own.
                if let Some(budget) = &self.budget {
                    budget.on_rate_limited(retry_after);
                }
                Attempt::RateLimited {
                    asked: retry_after,
                    error: BoxError::RateLimited {
                        attempts: number,
                        retry_after,
                    },
                }
            } else if crate::retry::is_retryable_5xx(status) {
                tracing::warn!(operation, attempt = number, status, "Box answered with a server error");
                Attempt::ServerError {
                    retry_after,
                    error: BoxError::Unavailable {
                        attempts: number,
                        detail: format!("HTTP {status}"),
                    },
                }
            } else {
                Attempt::Done((status, body))
            }
        })
        .await?;
        let (status, body) = answered.value;
        Ok(Answer {
            status,
            body,
            after_ambiguous: answered.after_ambiguous,
        })
    }

    /// A bearer-authorized API call; non-2xx answers become typed errors.
    pub(crate) async fn api_call(
        &self,
        operation: &'static str,
        token: &SecretString,
        effect: Effect,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, BoxError> {
        let answer = self.authorized(operation, token, effect, build).await?;
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            Err(error::from_api_response(answer.status, &answer.body))
        }
    }

    /// A bearer-authorized request whose answer the caller interprets.
    pub(crate) async fn authorized(
        &self,
        operation: &'static str,
        token: &SecretString,
        effect: Effect,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, BoxError> {
        self.execute(operation, &self.options.retry, effect, |http| {
            build(http).bearer_auth(token.expose_secret())
        })
        .await
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, BoxError> {
        serde_json::from_slice(body).map_err(|e| BoxError::Decode {
            operation,
            detail: e.to_string(),
        })
    }
}

/// A lost answer, logged; `sent`: the request may have reached Box.
fn no_answer<T>(operation: &'static str, attempt: u32, sent: bool, detail: String) -> Attempt<T, BoxError> {
    tracing::warn!(operation, attempt, %detail, "no answer from Box");
    Attempt::NoAnswer {
        sent,
        error: BoxError::Unavailable {
            attempts: attempt,
            detail,
        },
    }
}

/// A transport failure in words, without the URL (which is not secret, but is noise). The SSO
/// clients describe their failures the same way.
pub(crate) fn transport_detail(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "connection closed while reading the answer"
    } else {
        "connection error"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut root = String::new();
    while let Some(s) = source {
        root = s.to_string();
        source = s.source();
    }
    if root.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {root}")
    }
}

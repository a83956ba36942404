//! Okta System Log reader: `user.authentication.sso` events of the Box app instance, successful
//! ones only, keyed by the AppUser target's `alternateId` (the Box app user name), else the actor's.
//!
//! Pitfalls handled (sso-activity.md): every query is bounded by `until`, because a polling query's
//! next link never ends; paging stops on an empty page or when the next link is missing; `since`
//! is raised to the 90-day retention; 429 waits until `X-Rate-Limit-Reset`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use http::HeaderMap;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{Http, decode_detail, join, refusal_detail, same_origin};
use super::{ActivityProvider, HttpOptions, Service, SignIn, Signal, SsoError, clamp_window, keep_latest};

const PROVIDER: &str = "okta";
pub const OKTA_RETENTION_DAYS: i64 = 90;
const SSO_EVENT: &str = "user.authentication.sso";
const PAGE_LIMIT: u32 = 1000;

pub struct OktaProvider {
    http: Http,
    base_url: Url,
    app_instance_id: String,
    api_token: SecretString,
}

impl std::fmt::Debug for OktaProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaProvider")
            .field("base_url", &self.base_url.as_str())
            .field("app_instance_id", &self.app_instance_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEvent {
    published: DateTime<Utc>,
    event_type: String,
    #[serde(default)]
    actor: Option<Actor>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    target: Option<Vec<Target>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor {
    #[serde(default)]
    alternate_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Outcome {
    #[serde(default)]
    result: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    alternate_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaErrorBody {
    #[serde(default)]
    error_code: Option<String>,
}

/// Okta error codes seatsync explains; any other is reported by its HTTP status only.
const KNOWN_ERRORS: &[(&str, &str)] = &[
    ("E0000001", "Okta refused the query"),
    ("E0000003", "Okta could not read the request"),
    ("E0000004", "authentication failed"),
    ("E0000005", "invalid session"),
    ("E0000006", "the API token lacks the permission to read the System Log"),
    ("E0000007", "not found (is the org URL right?)"),
    ("E0000011", "the API token is invalid or revoked"),
    ("E0000015", "the org or the token may not use this feature"),
    ("E0000047", "the API rate limit is exhausted"),
];

impl OktaProvider {
    pub fn new(
        base_url: Url,
        app_instance_id: String,
        api_token: SecretString,
        options: HttpOptions,
    ) -> Result<OktaProvider, SsoError> {
        options
            .outbound
            .check(Service::Okta, &base_url)
            .map_err(|reason| SsoError::Config(format!("the Okta org URL is not allowed: {reason}")))?;
        if app_instance_id.trim().is_empty() || app_instance_id.contains('"') {
            return Err(SsoError::Config(
                "the Okta Box app instance id is empty or malformed".into(),
            ));
        }
        Ok(OktaProvider {
            http: Http::new(PROVIDER, options)?,
            base_url,
            app_instance_id,
            api_token,
        })
    }

    fn first_page(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Url {
        let mut url = join(&self.base_url, "/api/v1/logs");
        url.query_pairs_mut()
            .append_pair(
                "filter",
                &format!(
                    "eventType eq \"{SSO_EVENT}\" and target.id eq \"{}\"",
                    self.app_instance_id
                ),
            )
            .append_pair("since", &since.to_rfc3339_opts(SecondsFormat::Millis, true))
            .append_pair("until", &until.to_rfc3339_opts(SecondsFormat::Millis, true))
            .append_pair("limit", &PAGE_LIMIT.to_string())
            .append_pair("sortOrder", "ASCENDING");
        url
    }

    /// The successful Box sign-in an event records, as (Box login, time), if it is one.
    fn sign_in_of<'e>(&self, event: &'e LogEvent) -> Option<(&'e str, DateTime<Utc>)> {
        if event.event_type != SSO_EVENT {
            return None;
        }
        if event.outcome.as_ref()?.result.as_deref() != Some("SUCCESS") {
            return None;
        }
        let targets = event.target.as_deref().unwrap_or_default();
        // The filter already asks for this app; checking again costs nothing and keeps a lax
        // server (or a changed filter) from crediting another app's sign-ins to Box.
        let is_box = targets.iter().any(|t| {
            t.kind.as_deref() == Some("AppInstance") && t.id.as_deref() == Some(self.app_instance_id.as_str())
        });
        if !is_box {
            return None;
        }
        let app_user = targets
            .iter()
            .find(|t| t.kind.as_deref() == Some("AppUser"))
            .and_then(|t| t.alternate_id.as_deref())
            .filter(|s| !s.trim().is_empty());
        let login = app_user.or_else(|| event.actor.as_ref()?.alternate_id.as_deref())?;
        Some((login, event.published))
    }
}

/// The wait Okta asks for: until `X-Rate-Limit-Reset` (epoch seconds), measured against the
/// answer's own `Date` so clock skew between us and Okta does not matter, plus a little jitter.
fn okta_rate_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset: i64 = headers.get("x-rate-limit-reset")?.to_str().ok()?.trim().parse().ok()?;
    let now = headers
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map(|d| d.timestamp())
        .unwrap_or_else(|| Utc::now().timestamp());
    let secs = (reset - now).clamp(0, 3600) as u64;
    Some(Duration::from_secs(secs) + Duration::from_millis(rand::rng().random_range(50..300)))
}

/// The `rel="next"` target of one or more `Link` headers.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let is_next = params
                .split(';')
                .any(|p| matches!(p.trim().replace(' ', "").as_str(), "rel=\"next\"" | "rel=next"));
            is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
        })
}

fn okta_error(status: u16, body: &[u8]) -> SsoError {
    let parsed: OktaErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let detail = refusal_detail(status, parsed.error_code.as_deref(), KNOWN_ERRORS);
    match status {
        401 => SsoError::Unauthorized {
            provider: PROVIDER,
            detail,
        },
        403 => SsoError::Forbidden {
            provider: PROVIDER,
            reason: detail,
        },
        _ => SsoError::Rejected {
            provider: PROVIDER,
            status,
            detail,
        },
    }
}

#[async_trait]
impl ActivityProvider for OktaProvider {
    fn source(&self) -> &'static str {
        PROVIDER
    }

    fn coverage_starts_at(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        clamp_window(since, now, TimeDelta::days(OKTA_RETENTION_DAYS), now).0
    }

    #[tracing::instrument(skip(self), fields(source = PROVIDER, app = %self.app_instance_id))]
    async fn last_sign_ins(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, SignIn>, SsoError> {
        let (since, until) = clamp_window(since, until, TimeDelta::days(OKTA_RETENTION_DAYS), Utc::now());
        let mut found = HashMap::new();
        if since >= until {
            return Ok(found);
        }
        let mut url = self.first_page(since, until);
        let mut pages = 0u32;
        let mut events = 0u64;
        loop {
            pages += 1;
            if pages > self.http.options.max_pages {
                return Err(SsoError::Paging {
                    provider: PROVIDER,
                    detail: format!("more than {} pages of System Log events", self.http.options.max_pages),
                });
            }
            let answer = self
                .http
                .execute("list System Log events", okta_rate_wait, |c| {
                    c.get(url.clone())
                        .header(http::header::ACCEPT, "application/json")
                        .header(
                            http::header::AUTHORIZATION,
                            format!("SSWS {}", self.api_token.expose_secret()),
                        )
                })
                .await?;
            let (status, headers, body) = (answer.status, answer.headers, answer.body);
            if !(200..300).contains(&status) {
                return Err(okta_error(status, &body));
            }
            let page: Vec<LogEvent> = serde_json::from_slice(&body).map_err(|e| SsoError::Decode {
                provider: PROVIDER,
                operation: "list System Log events",
                detail: decode_detail(&e),
            })?;
            if page.is_empty() {
                break;
            }
            events += page.len() as u64;
            for event in &page {
                if let Some((login, at)) = self.sign_in_of(event) {
                    let signal = Signal::AppSignIn;
                    keep_latest(&mut found, login, SignIn { at, signal });
                }
            }
            let Some(next) = next_link(&headers) else { break };
            let next = Url::parse(&next).map_err(|e| SsoError::Paging {
                provider: PROVIDER,
                detail: format!("unparsable next link: {e}"),
            })?;
            if !same_origin(&self.base_url, &next) {
                return Err(SsoError::Paging {
                    provider: PROVIDER,
                    detail: "the next link points at another host".into(),
                });
            }
            if next == url {
                return Err(SsoError::Paging {
                    provider: PROVIDER,
                    detail: "the next link repeats the current page".into(),
                });
            }
            url = next;
        }
        tracing::info!(pages, events, people = found.len(), "read Okta sign-ins");
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OktaProvider {
        OktaProvider::new(
            Url::parse("https://acme.okta.com").unwrap(),
            "0oabox".into(),
            SecretString::from("tok"),
            HttpOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn app_user_name_is_preferred_over_the_okta_login_and_failures_are_skipped() {
        let events: Vec<LogEvent> = serde_json::from_str(
            r#"[
            {"published":"2026-01-01T10:00:00.000Z","eventType":"user.authentication.sso",
             "actor":{"alternateId":"jdoe@acme.okta.com"},"outcome":{"result":"SUCCESS"},
             "target":[{"id":"0oabox","type":"AppInstance","alternateId":"Box"},
                       {"id":"0ua1","type":"AppUser","alternateId":"Jane.Doe@acme.com"}]},
            {"published":"2026-01-01T11:00:00.000Z","eventType":"user.authentication.sso",
             "actor":{"alternateId":"ann@acme.com"},"outcome":{"result":"SUCCESS"},
             "target":[{"id":"0oabox","type":"AppInstance","alternateId":"Box"}]},
            {"published":"2026-01-01T12:00:00.000Z","eventType":"user.authentication.sso",
             "actor":{"alternateId":"bob@acme.com"},"outcome":{"result":"FAILURE"},
             "target":[{"id":"0oabox","type":"AppInstance"},{"type":"AppUser","alternateId":"bob@acme.com"}]},
            {"published":"2026-01-01T13:00:00.000Z","eventType":"user.authentication.sso",
             "actor":{"alternateId":"cy@acme.com"},"outcome":{"result":"SUCCESS"},
             "target":[{"id":"0oaslack","type":"AppInstance"},{"type":"AppUser","alternateId":"cy@acme.com"}]}
        ]"#,
        )
        .unwrap();
        let p = provider();
        let got: Vec<_> = events.iter().map(|e| p.sign_in_of(e).map(|(l, _)| l)).collect();
        assert_eq!(got, vec![Some("Jane.Doe@acme.com"), Some("ann@acme.com"), None, None]);
    }

    #[test]
    fn next_link_is_found_among_several_link_headers() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::LINK,
            "<https://a/api/v1/logs?x=1>; rel=\"self\"".parse().unwrap(),
        );
        h.append(
            http::header::LINK,
            "<https://a/api/v1/logs?after=abc>; rel=\"next\"".parse().unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://a/api/v1/logs?after=abc"));
        let mut only_self = HeaderMap::new();
        only_self.append(http::header::LINK, "<https://a/x>; rel=\"self\"".parse().unwrap());
        assert_eq!(next_link(&only_self), None);
    }

    #[test]
    fn rate_limit_wait_runs_to_the_reset_by_the_answer_date() {
        let mut h = HeaderMap::new();
        h.insert(http::header::DATE, "Sat, 28 Nov 2026 03:00:00 GMT".parse().unwrap());
        let reset = DateTime::parse_from_rfc3339("2026-11-28T03:00:07Z")
            .unwrap()
            .timestamp();
        h.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
        let wait = okta_rate_wait(&h).unwrap();
        assert!(
            wait >= Duration::from_secs(7) && wait < Duration::from_secs(8),
            "{wait:?}"
        );
    }
}

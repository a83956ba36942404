//! Google Workspace reader through the Admin SDK Reports API: a service account with domain-wide
//! delegation signs an RS256 assertion impersonating an admin, trades it for an access token, then
//! reads the SAML app's `login_success` events for Box, keyed by the actor's email.
//!
//! Pitfalls handled (sso-activity.md): every query is bounded by `endTime`; `since` is raised to the
//! 180-day look-back; paging follows `nextPageToken` within the page guard and stops on a repeated
//! token; `login_failure` events and other SAML apps are skipped even if the server's filter let them
//! through; 403 `rateLimitExceeded` (Google's other way of saying 429) is a transient rate limit, not
//! a missing permission. The private key never leaves the signer: errors name the claim or the reason
//! Google gave, never the assertion.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{Http, TokenAnswer, TokenCache, decode_detail, join, refusal_detail, retry_after};
use super::{ActivityProvider, HttpOptions, Service, SignIn, Signal, SsoError, clamp_window, keep_latest};

const PROVIDER: &str = "google";
/// The one scope seatsync asks for; the admin console's domain-wide delegation must grant it.
pub const REPORTS_SCOPE: &str = "https://www.googleapis.com/auth/admin.reports.audit.readonly";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The SAML app name Google records for the Box catalog app (`application_name` parameter).
pub const BOX_APPLICATION_NAME: &str = "Box";
const LOGIN_SUCCESS: &str = "login_success";
/// Reports API activities are kept 180 days.
pub const GOOGLE_RETENTION_DAYS: i64 = 180;
const PAGE_SIZE: u32 = 1000;
/// Google allows assertions of at most an hour.
const ASSERTION_LIFE_SECS: i64 = 3600;

/// Where the tenant is and how seatsync signs in to it.
#[derive(Clone)]
pub struct GoogleSettings {
    pub token_uri: Url,
    pub reports_base: Url,
    pub service_account_email: String,
    /// The service account's private key, PEM (PKCS#8 as in Google's JSON key file, or PKCS#1).
    pub private_key: SecretString,
    /// The admin the service account impersonates (domain-wide delegation).
    pub subject: String,
    /// `customerId` of the Workspace account; `None` means the subject's own account.
    pub customer_id: Option<String>,
}

pub struct GoogleProvider {
    http: Http,
    settings: GoogleSettings,
    key: RsaKeyPair,
    token: TokenCache,
}

impl std::fmt::Debug for GoogleProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleProvider")
            .field("reports_base", &self.settings.reports_base.as_str())
            .field("service_account_email", &self.settings.service_account_email)
            .field("subject", &self.settings.subject)
            .field("customer_id", &self.settings.customer_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
}

/// OAuth errors of Google's token endpoint seatsync explains. `invalid_grant` is a bad signature,
/// an unknown service account or subject, or bad times; `unauthorized_client` is a missing
/// domain-wide delegation of the scope.
const KNOWN_TOKEN_ERRORS: &[(&str, &str)] = &[
    (
        "unauthorized_client",
        "Google refused the service account (is domain-wide delegation of the Reports scope granted to it?)",
    ),
    (
        "invalid_grant",
        "Google refused the signed assertion (is the key current, and the subject an existing admin?)",
    ),
    ("invalid_client", "Google does not know this service account or key"),
    ("access_denied", "access denied"),
    ("invalid_scope", "the Reports scope was refused"),
    ("invalid_request", "Google refused the token request"),
];

/// Reports API error reasons seatsync explains.
const KNOWN_API_REASONS: &[(&str, &str)] = &[
    (
        "forbidden",
        "the subject may not read reports (is it an admin with the Reports privilege?)",
    ),
    ("insufficientPermissions", "the token lacks the Reports scope"),
    ("authError", "the access token was refused"),
    ("badRequest", "Google refused the query"),
    (
        "invalid",
        "Google refused a query parameter (is the customer id right?)",
    ),
    ("notFound", "not found (is the customer id right?)"),
    ("rateLimitExceeded", "rate limit exceeded"),
    ("userRateLimitExceeded", "the per-user rate limit is exceeded"),
    ("quotaExceeded", "the quota is exhausted"),
];

#[derive(Debug, Default, Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    errors: Vec<ApiErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ApiErrorItem {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activities {
    /// Absent, not empty, when a page has no activity.
    #[serde(default)]
    items: Vec<Activity>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Activity {
    id: ActivityId,
    #[serde(default)]
    actor: Option<Actor>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct ActivityId {
    time: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Actor {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(Debug, Deserialize)]
struct Parameter {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

fn decode<T: serde::de::DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, SsoError> {
    serde_json::from_slice(body).map_err(|e| SsoError::Decode {
        provider: PROVIDER,
        operation,
        detail: decode_detail(&e),
    })
}

/// The DER inside a PEM key, and whether it is PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
/// Accepts the `\n` escapes of a key copied out of Google's JSON key file.
fn pem_der(pem: &str) -> Option<(Vec<u8>, bool)> {
    let pem = pem.replace("\\n", "\n");
    let mut kind = None;
    let mut b64 = String::new();
    for line in pem.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            kind = Some(label.to_owned());
        } else if line.starts_with("-----END ") {
            break;
        } else if kind.is_some() {
            b64.push_str(line);
        }
    }
    let pkcs8 = match kind?.as_str() {
        "PRIVATE KEY" => true,
        "RSA PRIVATE KEY" => false,
        _ => return None,
    };
    Some((STANDARD.decode(b64).ok()?, pkcs8))
}

fn parse_key(pem: &SecretString) -> Result<RsaKeyPair, SsoError> {
    let invalid = || SsoError::Config("the Google service account private key is not an RSA private key in PEM".into());
    let (der, pkcs8) = pem_der(pem.expose_secret()).ok_or_else(invalid)?;
    let key = if pkcs8 {
        RsaKeyPair::from_pkcs8(&der)
    } else {
        RsaKeyPair::from_der(&der)
    };
    key.map_err(|_| invalid())
}

/// Maps a refused token request.
fn token_error(status: u16, body: &[u8]) -> SsoError {
    let parsed: OAuthError = serde_json::from_slice(body).unwrap_or_default();
    let error = parsed.error.unwrap_or_default();
    let detail = refusal_detail(status, Some(&error), KNOWN_TOKEN_ERRORS);
    match (status, error.as_str()) {
        (_, "invalid_grant" | "unauthorized_client" | "invalid_client") | (401, _) => SsoError::Unauthorized {
            provider: PROVIDER,
            detail,
        },
        (403, _) => SsoError::Forbidden {
            provider: PROVIDER,
            reason: detail,
        },
        (status, _) => SsoError::Rejected {
            provider: PROVIDER,
            status,
            detail,
        },
    }
}

/// Maps a refused Reports API request. Google also signals quota exhaustion with 403 and reason
/// `rateLimitExceeded`/`userRateLimitExceeded`/`quotaExceeded`: a transient rate limit, not a
/// missing permission.
fn api_error(status: u16, body: &[u8], attempts: u32) -> SsoError {
    let parsed: ApiErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let error = parsed.error.unwrap_or_default();
    let reason = error.errors.iter().find_map(|e| e.reason.clone()).unwrap_or_default();
    let detail = refusal_detail(status, Some(&reason), KNOWN_API_REASONS);
    match status {
        403 if is_rate_reason(&reason) => SsoError::RateLimited {
            provider: PROVIDER,
            attempts,
            retry_after: None,
        },
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

fn is_rate_reason(reason: &str) -> bool {
    matches!(reason, "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl GoogleProvider {
    pub fn new(settings: GoogleSettings, options: HttpOptions) -> Result<GoogleProvider, SsoError> {
        if !settings.service_account_email.contains('@') {
            return Err(SsoError::Config(
                "the Google service account email is empty or malformed".into(),
            ));
        }
        if !settings.subject.contains('@') {
            return Err(SsoError::Config(
                "the Google subject (the admin to impersonate) must be an email address".into(),
            ));
        }
        if settings
            .customer_id
            .as_deref()
            .is_some_and(|c| c.trim().is_empty() || !c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        {
            return Err(SsoError::Config("the Google customer id is malformed".into()));
        }
        for (what, url) in [
            ("token URI", &settings.token_uri),
            ("Reports API base", &settings.reports_base),
        ] {
            options
                .outbound
                .check(Service::Google, url)
                .map_err(|reason| SsoError::Config(format!("the Google {what} is not allowed: {reason}")))?;
        }
        let key = parse_key(&settings.private_key)?;
        Ok(GoogleProvider {
            http: Http::new(PROVIDER, options)?,
            settings,
            key,
            token: TokenCache::default(),
        })
    }

    /// The signed service-account assertion (RFC 7523) for `now`.
    fn assertion(&self, now: DateTime<Utc>) -> Result<SecretString, SsoError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let iat = now.timestamp();
        let claims = serde_json::json!({
            "iss": self.settings.service_account_email,
            "scope": REPORTS_SCOPE,
            "aud": self.settings.token_uri.as_str(),
            "sub": self.settings.subject,
            "iat": iat,
            "exp": iat + ASSERTION_LIFE_SECS,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| SsoError::Config("cannot sign with the Google service account key".into()))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }

    /// A valid access token: the cached one, or a new one for a fresh assertion.
    async fn token(&self, renew: bool) -> Result<SecretString, SsoError> {
        self.token.get_or_fetch(renew, || self.fetch_token()).await
    }

    async fn fetch_token(&self) -> Result<TokenAnswer, SsoError> {
        let assertion = self.assertion(Utc::now())?;
        let url = self.settings.token_uri.clone();
        let answer = self
            .http
            .execute("get a Google token", retry_after, |c| {
                c.post(url.clone())
                    .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.expose_secret())])
            })
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(token_error(answer.status, &answer.body));
        }
        decode("get a Google token", &answer.body)
    }

    /// A Reports API GET with the bearer token; a 401 renews the token once, and a 403 quota answer
    /// is retried like a 429 (backoff, bounded by the retry policy).
    async fn api_get(&self, operation: &'static str, url: &Url) -> Result<Vec<u8>, SsoError> {
        let policy = &self.http.options.retry;
        let started = tokio::time::Instant::now();
        let mut renewed = false;
        let mut quota_attempts = 0u32;
        loop {
            let token = self.token(renewed).await?;
            let answer = self
                .http
                .execute(operation, retry_after, |c| {
                    c.get(url.clone())
                        .header(http::header::ACCEPT, "application/json")
                        .bearer_auth(token.expose_secret())
                })
                .await?;
            match answer.status {
                200..=299 => return Ok(answer.body),
                401 if !renewed => renewed = true,
                status => {
                    let error = api_error(status, &answer.body, quota_attempts + 1);
                    let SsoError::RateLimited { .. } = error else {
                        return Err(error);
                    };
                    quota_attempts += 1;
                    let wait = policy.backoff(quota_attempts);
                    tracing::warn!(
                        provider = PROVIDER,
                        operation,
                        attempt = quota_attempts,
                        "quota exceeded (403)"
                    );
                    if quota_attempts >= policy.max_attempts.max(1) || started.elapsed() + wait >= policy.max_elapsed {
                        return Err(error);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn first_page(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Url {
        let mut url = join(
            &self.settings.reports_base,
            "/admin/reports/v1/activity/users/all/applications/saml",
        );
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("eventName", LOGIN_SUCCESS)
                .append_pair("filters", &format!("application_name=={BOX_APPLICATION_NAME}"))
                .append_pair("startTime", &rfc3339(since))
                .append_pair("endTime", &rfc3339(until))
                .append_pair("maxResults", &PAGE_SIZE.to_string());
            if let Some(customer) = &self.settings.customer_id {
                q.append_pair("customerId", customer);
            }
        }
        url
    }
}

/// The successful Box sign-in an activity records, as (email, time), if it is one.
fn sign_in_of(activity: &Activity) -> Option<(&str, DateTime<Utc>)> {
    // The query already asks for these; checking again keeps a lax server (or a changed query)
    // from crediting a failure or another app's sign-in to Box.
    let is_box_success = activity.events.iter().any(|e| {
        e.name.as_deref() == Some(LOGIN_SUCCESS)
            && e.parameters.iter().any(|p| {
                p.name == "application_name"
                    && p.value
                        .as_deref()
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case(BOX_APPLICATION_NAME))
            })
    });
    if !is_box_success {
        return None;
    }
    let email = activity.actor.as_ref()?.email.as_deref()?;
    Some((email, activity.id.time))
}

#[async_trait]
impl ActivityProvider for GoogleProvider {
    fn source(&self) -> &'static str {
        PROVIDER
    }

    fn coverage_starts_at(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        clamp_window(since, now, TimeDelta::days(GOOGLE_RETENTION_DAYS), now).0
    }

    #[tracing::instrument(skip(self), fields(source = PROVIDER, subject = %self.settings.subject))]
    async fn last_sign_ins(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, SignIn>, SsoError> {
        let (since, until) = clamp_window(since, until, TimeDelta::days(GOOGLE_RETENTION_DAYS), Utc::now());
        let mut found = HashMap::new();
        if since >= until {
            return Ok(found);
        }
        let first = self.first_page(since, until);
        let mut url = first.clone();
        let mut previous_token: Option<String> = None;
        let (mut pages, mut activities) = (0u32, 0u64);
        loop {
            pages += 1;
            if pages > self.http.options.max_pages {
                return Err(SsoError::Paging {
                    provider: PROVIDER,
                    detail: format!("more than {} pages of SAML activities", self.http.options.max_pages),
                });
            }
            let body = self.api_get("list SAML activities", &url).await?;
            let page: Activities = decode("list SAML activities", &body)?;
            activities += page.items.len() as u64;
            for activity in &page.items {
                if let Some((email, at)) = sign_in_of(activity)
                    && at >= since
                    && at < until
                {
                    keep_latest(
                        &mut found,
                        email,
                        SignIn {
                            at,
                            signal: Signal::AppSignIn,
                        },
                    );
                }
            }
            let Some(token) = page.next_page_token.filter(|t| !t.is_empty()) else {
                break;
            };
            if previous_token.as_deref() == Some(token.as_str()) {
                return Err(SsoError::Paging {
                    provider: PROVIDER,
                    detail: "nextPageToken repeats the current page".into(),
                });
            }
            url = first.clone();
            url.query_pairs_mut().append_pair("pageToken", &token);
            previous_token = Some(token);
        }
        tracing::info!(pages, activities, people = found.len(), "read Google SAML sign-ins");
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_box_login_successes_count() {
        let page: Activities = serde_json::from_str(
            r#"{"kind":"admin#reports#activities","items":[
              {"id":{"time":"2026-01-01T10:00:00.123Z","uniqueQualifier":"1","applicationName":"saml"},
               "actor":{"email":"Ann@Acme.com","profileId":"1"},
               "events":[{"type":"login","name":"login_success","parameters":[
                 {"name":"application_name","value":"Box"},{"name":"initiated_by","value":"idp"}]}]},
              {"id":{"time":"2026-01-01T11:00:00Z","uniqueQualifier":"2","applicationName":"saml"},
               "actor":{"email":"bob@acme.com"},
               "events":[{"type":"login","name":"login_failure","parameters":[
                 {"name":"application_name","value":"Box"},{"name":"failure_type","value":"failure_app_not_configured_for_user"}]}]},
              {"id":{"time":"2026-01-01T12:00:00Z","uniqueQualifier":"3","applicationName":"saml"},
               "actor":{"email":"cy@acme.com"},
               "events":[{"type":"login","name":"login_success","parameters":[
                 {"name":"application_name","value":"Slack"}]}]},
              {"id":{"time":"2026-01-01T13:00:00Z","uniqueQualifier":"4","applicationName":"saml"},
               "actor":{"callerType":"USER"},
               "events":[{"type":"login","name":"login_success","parameters":[
                 {"name":"application_name","value":"Box"}]}]}
            ],"nextPageToken":"A:1"}"#,
        )
        .unwrap();
        let got: Vec<_> = page.items.iter().map(|a| sign_in_of(a).map(|(e, _)| e)).collect();
        assert_eq!(got, vec![Some("Ann@Acme.com"), None, None, None]);
        assert_eq!(page.next_page_token.as_deref(), Some("A:1"));
        let empty: Activities = serde_json::from_str(r#"{"kind":"admin#reports#activities"}"#).unwrap();
        assert!(empty.items.is_empty() && empty.next_page_token.is_none());
    }

    #[test]
    fn quota_403_is_a_rate_limit_and_other_403s_are_forbidden() {
        let quota =
            br#"{"error":{"code":403,"message":"Quota exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#;
        assert!(matches!(api_error(403, quota, 1), SsoError::RateLimited { .. }));
        let denied = br#"{"error":{"code":403,"message":"Not Authorized to access this resource/api","errors":[{"reason":"forbidden"}],"status":"PERMISSION_DENIED"}}"#;
        match api_error(403, denied, 1) {
            SsoError::Forbidden { reason, .. } => {
                assert!(
                    reason.contains("forbidden") && !reason.contains("Not Authorized"),
                    "{reason}"
                )
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn token_refusals_are_unauthorized_with_a_hint() {
        let body = br#"{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}"#;
        match token_error(401, body) {
            SsoError::Unauthorized { detail, .. } => assert!(detail.contains("domain-wide delegation"), "{detail}"),
            e => panic!("{e:?}"),
        }
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert!(matches!(token_error(400, body), SsoError::Unauthorized { .. }));
        assert!(matches!(token_error(400, b"{}"), SsoError::Rejected { .. }));
    }

    #[test]
    fn a_key_that_is_not_pem_is_a_config_error_without_the_key() {
        let err = parse_key(&SecretString::from("not-a-key-s3cr3t")).unwrap_err();
        assert!(matches!(err, SsoError::Config(_)));
        assert!(!format!("{err} {err:?}").contains("s3cr3t"));
        let garbage = "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n";
        assert!(matches!(
            parse_key(&SecretString::from(garbage)),
            Err(SsoError::Config(_))
        ));
        assert_eq!(pem_der(garbage).map(|(d, p)| (d.len(), p)), Some((3, true)));
    }
}

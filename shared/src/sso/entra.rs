//! Microsoft Entra ID reader through Microsoft Graph: a client-credentials token, then the Box app's
//! sign-in logs (`status.errorCode == 0` only), keyed by `userPrincipalName`.
//!
//! A tenant without Entra ID P1/P2 cannot read sign-in logs (403
//! `Authentication_RequestFromNonPremiumTenantOrB2CTenant`, [`SsoError::NotPremium`]); the provider
//! then falls back to each user's tenant-wide `signInActivity.lastSuccessfulSignInDateTime`, labelled
//! [`Signal::TenantWideSignIn`]. `lastSignInDateTime` is never used: it counts failed sign-ins.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{Http, TokenAnswer, TokenCache, decode_detail, join, refusal_detail, retry_after, same_origin};
use super::{ActivityProvider, HttpOptions, Service, SignIn, Signal, SsoError, clamp_window, keep_latest};

const PROVIDER: &str = "entra";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const NON_PREMIUM: &str = "Authentication_RequestFromNonPremiumTenantOrB2CTenant";
/// Sign-in logs are kept 30 days with P1/P2.
pub const ENTRA_RETENTION_DAYS: i64 = 30;

/// Where the tenant is and how seatsync signs in to it.
#[derive(Clone)]
pub struct EntraSettings {
    pub login_base: Url,
    pub graph_base: Url,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub box_app_id: String,
}

pub struct EntraProvider {
    http: Http,
    settings: EntraSettings,
    token: TokenCache,
}

impl std::fmt::Debug for EntraProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraProvider")
            .field("graph_base", &self.settings.graph_base.as_str())
            .field("tenant_id", &self.settings.tenant_id)
            .field("client_id", &self.settings.client_id)
            .field("box_app_id", &self.settings.box_app_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
struct AadError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct GraphErrorBody {
    #[serde(default)]
    error: Option<GraphError>,
}

#[derive(Debug, Default, Deserialize)]
struct GraphError {
    #[serde(default)]
    code: Option<String>,
}

/// OAuth errors of the token endpoint seatsync explains.
const KNOWN_TOKEN_ERRORS: &[(&str, &str)] = &[
    ("invalid_client", "the client id or secret was refused"),
    (
        "unauthorized_client",
        "the app registration may not use client credentials",
    ),
    (
        "invalid_request",
        "the token request was refused (is the tenant id right?)",
    ),
    ("invalid_scope", "the Graph scope was refused"),
    ("invalid_grant", "the grant was refused"),
];

/// `AADSTS` codes seatsync explains; the code sits at the start of `error_description`.
const KNOWN_AADSTS: &[(&str, &str)] = &[
    (
        "AADSTS7000215",
        "invalid client secret (use the secret's value, not its id)",
    ),
    ("AADSTS7000222", "the client secret has expired"),
    ("AADSTS700016", "the application (client id) is not in this tenant"),
    ("AADSTS7000112", "the application is disabled"),
    ("AADSTS90002", "the tenant was not found"),
    ("AADSTS900023", "the tenant id is not a valid tenant name or id"),
];

/// Graph error codes seatsync explains.
const KNOWN_GRAPH_ERRORS: &[(&str, &str)] = &[
    (
        NON_PREMIUM,
        "the tenant has no Entra ID P1/P2 licence, so its sign-in logs cannot be read",
    ),
    (
        "Authorization_RequestDenied",
        "insufficient privileges (grant AuditLog.Read.All with admin consent)",
    ),
    ("InvalidAuthenticationToken", "the access token was refused"),
    (
        "Authentication_MSGraphPermissionMissing",
        "a Graph permission is missing",
    ),
    ("Request_UnsupportedQuery", "Graph does not support this query"),
];

/// The `AADSTS<digits>` code a description starts with, if any.
fn aadsts_code(description: &str) -> Option<&str> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| &description.trim_start()[..6 + digits])
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInRecord {
    created_date_time: DateTime<Utc>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
    status: SignInStatus,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInStatus {
    error_code: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRecord {
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    sign_in_activity: Option<SignInActivity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInActivity {
    #[serde(default)]
    last_successful_sign_in_date_time: Option<DateTime<Utc>>,
}

fn graph_error(status: u16, body: &[u8]) -> SsoError {
    let parsed: GraphErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = parsed.error.and_then(|e| e.code).unwrap_or_default();
    let detail = refusal_detail(status, Some(&code), KNOWN_GRAPH_ERRORS);
    match status {
        403 if code == NON_PREMIUM => SsoError::NotPremium { detail },
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

fn decode<T: serde::de::DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, SsoError> {
    serde_json::from_slice(body).map_err(|e| SsoError::Decode {
        provider: PROVIDER,
        operation,
        detail: decode_detail(&e),
    })
}

fn graph_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl EntraProvider {
    pub fn new(settings: EntraSettings, options: HttpOptions) -> Result<EntraProvider, SsoError> {
        for (what, service, url) in [
            ("login base", Service::EntraLogin, &settings.login_base),
            ("Graph base", Service::EntraGraph, &settings.graph_base),
        ] {
            options
                .outbound
                .check(service, url)
                .map_err(|reason| SsoError::Config(format!("the Entra {what} URL is not allowed: {reason}")))?;
        }
        if settings.box_app_id.trim().is_empty() || settings.box_app_id.contains('\'') {
            return Err(SsoError::Config("the Entra Box app id is empty or malformed".into()));
        }
        if settings.tenant_id.trim().is_empty() || settings.tenant_id.contains('/') {
            return Err(SsoError::Config("the Entra tenant id is empty or malformed".into()));
        }
        Ok(EntraProvider {
            http: Http::new(PROVIDER, options)?,
            settings,
            token: TokenCache::default(),
        })
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    async fn token(&self, renew: bool) -> Result<SecretString, SsoError> {
        self.token.get_or_fetch(renew, || self.fetch_token()).await
    }

    async fn fetch_token(&self) -> Result<TokenAnswer, SsoError> {
        let url = join(
            &self.settings.login_base,
            &format!("/{}/oauth2/v2.0/token", self.settings.tenant_id),
        );
        let answer = self
            .http
            .execute("get a Graph token", retry_after, |c| {
                c.post(url.clone()).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", self.settings.client_id.as_str()),
                    ("client_secret", self.settings.client_secret.expose_secret()),
                    ("scope", GRAPH_SCOPE),
                ])
            })
            .await?;
        if !(200..300).contains(&answer.status) {
            let parsed: AadError = serde_json::from_slice(&answer.body).unwrap_or_default();
            let description = parsed.error_description.unwrap_or_default();
            let mut detail = refusal_detail(answer.status, parsed.error.as_deref(), KNOWN_TOKEN_ERRORS);
            if let Some((code, meaning)) =
                aadsts_code(&description).and_then(|c| KNOWN_AADSTS.iter().find(|(k, _)| *k == c))
            {
                detail = format!("{detail}; {code}: {meaning}");
            }
            return Err(match (answer.status, parsed.error.as_deref()) {
                (_, Some("invalid_client" | "unauthorized_client")) | (401, _) => SsoError::Unauthorized {
                    provider: PROVIDER,
                    detail,
                },
                (status, _) => SsoError::Rejected {
                    provider: PROVIDER,
                    status,
                    detail,
                },
            });
        }
        decode("get a Graph token", &answer.body)
    }

    /// A Graph GET with the bearer token; a 401 renews the token once.
    async fn graph_get(&self, operation: &'static str, url: &Url) -> Result<Vec<u8>, SsoError> {
        let mut renewed = false;
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
                status => return Err(graph_error(status, &answer.body)),
            }
        }
    }

    /// Follows `@odata.nextLink` from `url`, handing each page to `fold`, within the page guard.
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        mut url: Url,
        mut fold: impl FnMut(Vec<T>),
    ) -> Result<u32, SsoError> {
        let mut pages = 0u32;
        loop {
            pages += 1;
            if pages > self.http.options.max_pages {
                return Err(SsoError::Paging {
                    provider: PROVIDER,
                    detail: format!("more than {} pages for {operation}", self.http.options.max_pages),
                });
            }
            let body = self.graph_get(operation, &url).await?;
            let page: Page<T> = decode(operation, &body)?;
            let empty = page.value.is_empty();
            fold(page.value);
            let Some(next) = page.next_link.filter(|_| !empty) else {
                return Ok(pages);
            };
            let next = Url::parse(&next).map_err(|e| SsoError::Paging {
                provider: PROVIDER,
                detail: format!("unparsable @odata.nextLink: {e}"),
            })?;
            if !same_origin(&self.settings.graph_base, &next) || next == url {
                return Err(SsoError::Paging {
                    provider: PROVIDER,
                    detail: "@odata.nextLink points elsewhere or repeats the page".into(),
                });
            }
            url = next;
        }
    }

    /// The Box app's successful sign-ins in `[since, until]` from the sign-in logs (P1/P2 only).
    #[tracing::instrument(skip(self), fields(source = PROVIDER))]
    pub async fn app_sign_ins(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, SignIn>, SsoError> {
        let mut url = join(&self.settings.graph_base, "/v1.0/auditLogs/signIns");
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!(
                    "appId eq '{}' and createdDateTime ge {} and createdDateTime le {}",
                    self.settings.box_app_id,
                    graph_time(since),
                    graph_time(until)
                ),
            )
            .append_pair("$top", "1000");
        let mut found = HashMap::new();
        let app_id = self.settings.box_app_id.as_str();
        let pages = self
            .pages("list sign-ins", url, |records: Vec<SignInRecord>| {
                for r in records {
                    let is_box = r.app_id.as_deref().is_none_or(|a| a.eq_ignore_ascii_case(app_id));
                    if r.status.error_code == 0
                        && is_box
                        && let Some(upn) = r.user_principal_name.as_deref()
                    {
                        let sign_in = SignIn {
                            at: r.created_date_time,
                            signal: Signal::AppSignIn,
                        };
                        keep_latest(&mut found, upn, sign_in);
                    }
                }
            })
            .await?;
        tracing::info!(pages, people = found.len(), "read Entra sign-in logs");
        Ok(found)
    }

    /// Every user's tenant-wide latest successful sign-in up to `until`, keyed by UPN and by mail.
    #[tracing::instrument(skip(self), fields(source = PROVIDER))]
    pub async fn tenant_wide_sign_ins(&self, until: DateTime<Utc>) -> Result<HashMap<String, SignIn>, SsoError> {
        let mut url = join(&self.settings.graph_base, "/v1.0/users");
        url.query_pairs_mut()
            .append_pair("$select", "userPrincipalName,mail,signInActivity")
            // Graph serves at most 120 users a page when signInActivity is selected.
            .append_pair("$top", "120");
        let mut found = HashMap::new();
        let pages = self
            .pages("list users with signInActivity", url, |users: Vec<UserRecord>| {
                for u in users {
                    let Some(at) = u
                        .sign_in_activity
                        .and_then(|a| a.last_successful_sign_in_date_time)
                        .filter(|at| *at <= until)
                    else {
                        continue;
                    };
                    let sign_in = SignIn {
                        at,
                        signal: Signal::TenantWideSignIn,
                    };
                    for login in [u.user_principal_name.as_deref(), u.mail.as_deref()]
                        .into_iter()
                        .flatten()
                    {
                        keep_latest(&mut found, login, sign_in);
                    }
                }
            })
            .await?;
        tracing::info!(pages, people = found.len(), "read Entra signInActivity");
        Ok(found)
    }
}

#[async_trait]
impl ActivityProvider for EntraProvider {
    fn source(&self) -> &'static str {
        PROVIDER
    }

    fn coverage_starts_at(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        clamp_window(since, now, TimeDelta::days(ENTRA_RETENTION_DAYS), now).0
    }

    async fn last_sign_ins(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, SignIn>, SsoError> {
        let (since, until) = clamp_window(since, until, TimeDelta::days(ENTRA_RETENTION_DAYS), Utc::now());
        if since >= until {
            return Ok(HashMap::new());
        }
        match self.app_sign_ins(since, until).await {
            Err(SsoError::NotPremium { detail }) => {
                tracing::warn!(
                    %detail,
                    "Entra tenant lacks P1/P2: falling back to tenant-wide signInActivity (weaker signal)"
                );
                self.tenant_wide_sign_ins(until).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_premium_403_is_its_own_variant() {
        let body =
            br#"{"error":{"code":"Authentication_RequestFromNonPremiumTenantOrB2CTenant","message":"no premium"}}"#;
        assert!(matches!(graph_error(403, body), SsoError::NotPremium { .. }));
        let other = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}"#;
        let unknown = br#"{"error":{"code":"SomethingElse","message":"free text from the provider"}}"#;
        match graph_error(400, unknown) {
            SsoError::Rejected { detail, .. } => assert_eq!(detail, "HTTP 400"),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            aadsts_code("AADSTS7000215: Invalid client secret"),
            Some("AADSTS7000215")
        );
        assert_eq!(aadsts_code("AADSTSx"), None);
        match graph_error(403, other) {
            SsoError::Forbidden { reason, .. } => assert!(reason.contains("Authorization_RequestDenied")),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn sign_in_activity_ignores_last_sign_in_date_time() {
        let u: UserRecord = serde_json::from_str(
            r#"{"userPrincipalName":"a@x","signInActivity":{"lastSignInDateTime":"2026-01-05T00:00:00Z","lastSuccessfulSignInDateTime":null}}"#,
        )
        .unwrap();
        assert_eq!(u.sign_in_activity.unwrap().last_successful_sign_in_date_time, None);
    }
}

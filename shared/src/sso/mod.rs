//! Last use of Box from the company's identity provider, for tenants whose Box event stream answers
//! 403 (Business plans): the latest successful SSO sign-in to the Box app per person, from Okta's
//! System Log, Microsoft Entra ID's sign-in logs or Google Workspace's SAML activity reports (see
//! `sso-activity.md`).
//!
//! Every provider answers the same question through [`ActivityProvider`]: per person, keyed by the
//! lower-cased login that matches Box's `login`, the latest successful Box sign-in in a window, with
//! the [`Signal`] saying how direct it is. Memory is bounded by the number of people, not events: pages
//! are folded into the map one at a time. Credentials only travel as [`SecretString`].

mod entra;
mod error;
mod google;
mod http;
mod okta;
pub mod outbound;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::boxapi::RetryPolicy;

pub use entra::{ENTRA_RETENTION_DAYS, EntraProvider, EntraSettings};
pub use error::SsoError;
pub use google::{GOOGLE_RETENTION_DAYS, GoogleProvider, GoogleSettings};
pub use okta::{OKTA_RETENTION_DAYS, OktaProvider};
pub use outbound::{OutboundPolicy, Service};

/// One person's latest successful sign-in, and what kind of evidence it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignIn {
    pub at: DateTime<Utc>,
    pub signal: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A successful sign-in to the Box app itself: the real thing.
    AppSignIn,
    /// Entra's tenant-wide `signInActivity.lastSuccessfulSignInDateTime` (any app, may lag hours):
    /// weaker, to be labelled as such. A person's Box use is at most this recent.
    TenantWideSignIn,
}

/// What the sync asks of an identity provider.
#[async_trait]
pub trait ActivityProvider: Send + Sync {
    /// `"okta"`, `"entra"` or `"google"`: recorded as the source of every date it gives.
    fn source(&self) -> &'static str;

    /// Where the provider's data begins for a window starting at `since`, at `now`: later than
    /// `since` when the provider keeps less history (Okta 90 days, Entra 30). Absence of a sign-in
    /// before this instant says nothing.
    fn coverage_starts_at(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc>;

    /// Per person (lower-cased Box login), the latest successful Box sign-in in `[since, until)`.
    /// A `since` older than the provider's retention is raised to [`Self::coverage_starts_at`].
    /// [`Signal::TenantWideSignIn`] values (Entra without P1/P2) are the latest ever up to `until`.
    async fn last_sign_ins(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, SignIn>, SsoError>;
}

/// A tenant's identity provider and the credentials to read its sign-ins. Stored by the caller as a
/// secret; `Debug` never shows a credential.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum SsoConfig {
    Okta {
        /// The Okta org URL, e.g. `https://acme.okta.com`.
        #[serde(with = "url_str")]
        base_url: Url,
        /// The Box app instance id (`0oa…`): `target.id` of the System Log events.
        box_app_instance_id: String,
        /// An API token with read access to the System Log (`Authorization: SSWS …`).
        #[serde(serialize_with = "expose")]
        api_token: SecretString,
    },
    Entra {
        #[serde(default = "default_login_base", with = "url_str")]
        login_base: Url,
        #[serde(default = "default_graph_base", with = "url_str")]
        graph_base: Url,
        tenant_id: String,
        /// An app registration with the `AuditLog.Read.All` application permission.
        client_id: String,
        #[serde(serialize_with = "expose")]
        client_secret: SecretString,
        /// The `appId` of the Box enterprise application.
        box_app_id: String,
    },
    Google {
        #[serde(default = "default_google_token_uri", with = "url_str")]
        token_uri: Url,
        #[serde(default = "default_google_reports_base", with = "url_str")]
        reports_base: Url,
        /// A service account with domain-wide delegation of the `admin.reports.audit.readonly` scope.
        service_account_email: String,
        /// The service account's private key, PEM (`private_key` of its JSON key file).
        #[serde(serialize_with = "expose")]
        private_key: SecretString,
        /// The admin the service account impersonates (`sub` of the assertion).
        subject: String,
        /// The Workspace `customerId`; absent means the subject's own account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_id: Option<String>,
    },
}

fn default_login_base() -> Url {
    Url::parse("https://login.microsoftonline.com").expect("constant URL")
}

fn default_graph_base() -> Url {
    Url::parse("https://graph.microsoft.com").expect("constant URL")
}

fn default_google_token_uri() -> Url {
    Url::parse("https://oauth2.googleapis.com/token").expect("constant URL")
}

fn default_google_reports_base() -> Url {
    Url::parse("https://admin.googleapis.com").expect("constant URL")
}

/// URLs as strings (the workspace builds `url` without its serde feature). Any scheme parses: which
/// URLs may be called is [`OutboundPolicy`]'s decision, checked when the settings are put and again
/// before every use, so a refusal names the field.
mod url_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use url::Url;

    pub fn serialize<S: Serializer>(url: &Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(url.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
        let raw = String::deserialize(d)?;
        Url::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Serialising is for storing the configuration in Secrets Manager, the one place a secret goes.
fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

impl std::fmt::Debug for SsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SsoConfig::Okta {
                base_url,
                box_app_instance_id,
                ..
            } => f
                .debug_struct("Okta")
                .field("base_url", &base_url.as_str())
                .field("box_app_instance_id", box_app_instance_id)
                .field("api_token", &"[redacted]")
                .finish(),
            SsoConfig::Entra {
                login_base,
                graph_base,
                tenant_id,
                client_id,
                box_app_id,
                ..
            } => f
                .debug_struct("Entra")
                .field("login_base", &login_base.as_str())
                .field("graph_base", &graph_base.as_str())
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("client_secret", &"[redacted]")
                .field("box_app_id", box_app_id)
                .finish(),
            SsoConfig::Google {
                token_uri,
                reports_base,
                service_account_email,
                subject,
                customer_id,
                ..
            } => f
                .debug_struct("Google")
                .field("token_uri", &token_uri.as_str())
                .field("reports_base", &reports_base.as_str())
                .field("service_account_email", service_account_email)
                .field("private_key", &"[redacted]")
                .field("subject", subject)
                .field("customer_id", customer_id)
                .finish(),
        }
    }
}

/// A configured URL the [`OutboundPolicy`] refuses: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRefused {
    /// The field of the credentials: `base_url`, `login_base`, `graph_base`, `token_uri`, `reports_base`.
    pub field: &'static str,
    /// Why, and which hosts are allowed; never the URL itself.
    pub reason: String,
}

impl SsoConfig {
    pub fn source(&self) -> &'static str {
        match self {
            SsoConfig::Okta { .. } => "okta",
            SsoConfig::Entra { .. } => "entra",
            SsoConfig::Google { .. } => "google",
        }
    }

    /// The configured URLs, each with its field name and the service it must be.
    pub fn endpoints(&self) -> Vec<(&'static str, Service, &Url)> {
        match self {
            SsoConfig::Okta { base_url, .. } => vec![("base_url", Service::Okta, base_url)],
            SsoConfig::Entra {
                login_base, graph_base, ..
            } => vec![
                ("login_base", Service::EntraLogin, login_base),
                ("graph_base", Service::EntraGraph, graph_base),
            ],
            SsoConfig::Google {
                token_uri,
                reports_base,
                ..
            } => vec![
                ("token_uri", Service::Google, token_uri),
                ("reports_base", Service::Google, reports_base),
            ],
        }
    }

    /// Whether every configured URL may be called under `policy`; the first that may not, named.
    pub fn check_endpoints(&self, policy: &OutboundPolicy) -> Result<(), EndpointRefused> {
        for (field, service, url) in self.endpoints() {
            policy
                .check(service, url)
                .map_err(|reason| EndpointRefused { field, reason })?;
        }
        Ok(())
    }
}

/// Timeouts, retries and the paging guard of a provider client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Whole-request timeout, body included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// At most this many pages in one `last_sign_ins` call, then [`SsoError::Paging`].
    pub max_pages: u32,
    /// An answer's body is read up to this many bytes; a longer one is [`SsoError::TooLarge`].
    pub max_body_bytes: usize,
    /// Where requests may go. The default is production's; only tests and `seatsync-local` set
    /// [`OutboundPolicy::with_loopback_simulators`].
    pub outbound: OutboundPolicy,
}

/// A page of 1,000 Okta events or Entra sign-ins is a few MiB; this leaves room, and bounds memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

impl HttpOptions {
    /// The production options with requests to the loopback simulators allowed: for tests and
    /// `tools/seatsync-local` only (see [`OutboundPolicy::with_loopback_simulators`]).
    pub fn for_loopback_simulators() -> HttpOptions {
        HttpOptions {
            outbound: OutboundPolicy::with_loopback_simulators(),
            ..HttpOptions::default()
        }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            // 10 million Okta events, 2.4 million Entra users: far beyond any one tenant.
            max_pages: 10_000,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            outbound: OutboundPolicy::PROVIDERS_ONLY,
        }
    }
}

/// The provider client for a stored configuration. Its URLs are checked against
/// `options.outbound` first: stored settings are not trusted to have passed the check when put.
pub fn provider(config: &SsoConfig, options: HttpOptions) -> Result<Box<dyn ActivityProvider>, SsoError> {
    config
        .check_endpoints(&options.outbound)
        .map_err(|r| SsoError::Config(format!("`{}` is not allowed: {}", r.field, r.reason)))?;
    Ok(match config {
        SsoConfig::Okta {
            base_url,
            box_app_instance_id,
            api_token,
        } => Box::new(OktaProvider::new(
            base_url.clone(),
            box_app_instance_id.clone(),
            api_token.clone(),
            options,
        )?),
        SsoConfig::Entra {
            login_base,
            graph_base,
            tenant_id,
            client_id,
            client_secret,
            box_app_id,
        } => Box::new(EntraProvider::new(
            entra::EntraSettings {
                login_base: login_base.clone(),
                graph_base: graph_base.clone(),
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                box_app_id: box_app_id.clone(),
            },
            options,
        )?),
        SsoConfig::Google {
            token_uri,
            reports_base,
            service_account_email,
            private_key,
            subject,
            customer_id,
        } => Box::new(GoogleProvider::new(
            GoogleSettings {
                token_uri: token_uri.clone(),
                reports_base: reports_base.clone(),
                service_account_email: service_account_email.clone(),
                private_key: private_key.clone(),
                subject: subject.clone(),
                customer_id: customer_id.clone(),
            },
            options,
        )?),
    })
}

/// Keeps the later of two sign-ins for `login`.
pub(crate) fn keep_latest(map: &mut HashMap<String, SignIn>, login: &str, sign_in: SignIn) {
    let key = login.trim().to_lowercase();
    if key.is_empty() {
        return;
    }
    match map.get_mut(&key) {
        Some(existing) if existing.at >= sign_in.at => {}
        Some(existing) => *existing = sign_in,
        None => {
            map.insert(key, sign_in);
        }
    }
}

/// `since` raised to the provider's retention (plus a minute, so a query never starts just before
/// the edge), and `until` lowered to now.
pub(crate) fn clamp_window(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    retention: TimeDelta,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let oldest = now - retention + TimeDelta::minutes(1);
    (since.max(oldest), until.min(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_redacts_and_serde_round_trips() {
        let json =
            r#"{"provider":"entra","tenant_id":"t","client_id":"c","client_secret":"s3cr3t-value","box_app_id":"b"}"#;
        let config: SsoConfig = serde_json::from_str(json).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        match &config {
            SsoConfig::Entra {
                login_base, graph_base, ..
            } => {
                assert_eq!(login_base.as_str(), "https://login.microsoftonline.com/");
                assert_eq!(graph_base.as_str(), "https://graph.microsoft.com/");
            }
            other => panic!("{other:?}"),
        }
        let back: SsoConfig = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(back.source(), "entra");

        let okta = r#"{"provider":"okta","base_url":"https://acme.okta.com","box_app_instance_id":"0oa1","api_token":"00tok"}"#;
        let okta: SsoConfig = serde_json::from_str(okta).unwrap();
        assert!(!format!("{okta:?}").contains("00tok"));
        assert_eq!(okta.source(), "okta");
    }

    #[test]
    fn google_config_debug_redacts_and_defaults_the_endpoints() {
        let json = r#"{"provider":"google","service_account_email":"sa@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nS3CR3TKEY\n-----END PRIVATE KEY-----\n","subject":"admin@acme.com"}"#;
        let config: SsoConfig = serde_json::from_str(json).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("S3CR3TKEY"), "{debug}");
        match &config {
            SsoConfig::Google {
                token_uri,
                reports_base,
                customer_id,
                ..
            } => {
                assert_eq!(token_uri.as_str(), "https://oauth2.googleapis.com/token");
                assert_eq!(reports_base.as_str(), "https://admin.googleapis.com/");
                assert_eq!(customer_id, &None);
            }
            other => panic!("{other:?}"),
        }
        let stored = serde_json::to_string(&config).unwrap();
        assert!(stored.contains("S3CR3TKEY"), "the stored form keeps the key");
        let back: SsoConfig = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.source(), "google");
        // The key is not a real key: building the provider fails without echoing it.
        let Err(err) = provider(&back, HttpOptions::default()) else {
            panic!("a fake key was accepted")
        };
        assert!(
            matches!(err, SsoError::Config(_)) && !err.to_string().contains("S3CR3TKEY"),
            "{err}"
        );
    }

    #[test]
    fn latest_sign_in_wins_case_insensitively() {
        let t = |s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut map = HashMap::new();
        let sign_in = |at| SignIn {
            at,
            signal: Signal::AppSignIn,
        };
        keep_latest(&mut map, "Ann@Acme.com", sign_in(t("2026-01-02T00:00:00Z")));
        keep_latest(&mut map, "ann@acme.com", sign_in(t("2026-01-01T00:00:00Z")));
        keep_latest(&mut map, "ANN@ACME.COM ", sign_in(t("2026-01-03T00:00:00Z")));
        assert_eq!(map.len(), 1);
        assert_eq!(map["ann@acme.com"].at, t("2026-01-03T00:00:00Z"));
    }
}

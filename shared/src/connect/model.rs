//! What the connect API speaks: its configuration, inputs, outcomes, refusals and the connection as
//! `GET /connections/box` shows it. `super` (the service) and `http.rs` (the routes) use these.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{ConfigError, Env, http_url, or_default, required};
use crate::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus};
use crate::ids::{BoxUserId, EnterpriseId, TenantId};

/// How long a started connection may take to come back from Box.
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(600);

/// The connect function's own configuration, parsed once at cold start.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// `OAUTH_REDIRECT_URI`: sent to Box byte for byte as given.
    pub redirect_uri: String,
    /// `CONNECT_RETURN_URL`: where the browser lands after the callback (never taken from the request).
    pub return_url: Url,
    /// `TENANT_CLAIM` (default `tenant_id`).
    pub tenant_claim: String,
    /// `APP_SECRET_ID`: the secret holding the Box app and the cookie key.
    pub app_secret_id: String,
    /// Lifetime of a pending state and its cookie (10 minutes; tests shorten it).
    pub state_ttl: Duration,
}

impl ConnectConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let redirect_uri = required(env, "OAUTH_REDIRECT_URI")?;
        http_url("OAUTH_REDIRECT_URI", &redirect_uri)?;
        let return_url = http_url("CONNECT_RETURN_URL", &required(env, "CONNECT_RETURN_URL")?)?;
        let tenant_claim = or_default(env, "TENANT_CLAIM", "tenant_id");
        Ok(Self {
            redirect_uri,
            return_url,
            tenant_claim,
            app_secret_id: required(env, "APP_SECRET_ID")?,
            state_ttl: DEFAULT_STATE_TTL,
        })
    }
}

/// Why a connect request failed; each maps to one HTTP answer (see `http.rs`).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The callback cannot be trusted (state missing, forged, expired, used, or from another browser).
    #[error("{0}")]
    InvalidCallback(&'static str),
    #[error("{detail}")]
    InvalidInput { field: &'static str, detail: String },
    /// Box refused the app's client credentials.
    #[error("{0}")]
    CredentialsRefused(String),
    #[error("{0}")]
    ConnectedToAnotherEnterprise(String),
    #[error("{0}")]
    BoxUnavailable(String),
    /// A sync of the previous enterprise still holds the tenant's state: connect again shortly.
    #[error("{0}")]
    SyncRunning(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a callback ended without a connection: the `reason` of the redirect to `CONNECT_RETURN_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The person clicked "Deny" at Box.
    AccessDenied,
    /// Box sent another error instead of a code.
    BoxRefused,
    /// The code expired or was already used (codes live 30 s): connect again.
    CodeExpired,
    /// Box did not answer in time: connect again later.
    BoxUnavailable,
    /// The person is not an admin or co-admin of a Box enterprise.
    NotAdmin,
    /// The tenant is connected to another Box enterprise: disconnect it first.
    ConnectedToAnotherEnterprise,
    /// seatsync could not store the connection: connect again.
    ConnectFailed,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::BoxRefused => "box_refused",
            Self::CodeExpired => "code_expired",
            Self::BoxUnavailable => "box_unavailable",
            Self::NotAdmin => "not_admin",
            Self::ConnectedToAnotherEnterprise => "connected_to_another_enterprise",
            Self::ConnectFailed => "connect_failed",
        }
    }

    pub const ALL: [RefusalReason; 7] = [
        Self::AccessDenied,
        Self::BoxRefused,
        Self::CodeExpired,
        Self::BoxUnavailable,
        Self::NotAdmin,
        Self::ConnectedToAnotherEnterprise,
        Self::ConnectFailed,
    ];
}

/// How a trusted callback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    Connected { tenant: TenantId },
    Refused(RefusalReason),
}

/// What a new connection asks Box for. `Default`: the base scopes only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Also ask for `root_readwrite`, which moving a deleted user's content needs.
    pub content_transfer: bool,
}

/// A started connection: where to send the browser, and the cookie that binds it.
pub struct StartedConnect {
    /// Carries the state: as sensitive as it, never logged.
    pub authorize_url: Url,
    pub expires_at: DateTime<Utc>,
    /// `<nonce>.<HMAC-SHA256(cookie_key, nonce)>`, both base64url.
    pub cookie_value: SecretString,
    pub max_age: Duration,
}

/// What the callback request brought.
#[derive(Default)]
pub struct CallbackInput {
    pub state: Option<SecretString>,
    pub code: Option<SecretString>,
    pub error: Option<String>,
    pub cookie: Option<SecretString>,
}

/// A server app's credentials, as a tenant admin submits them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsInput {
    pub client_id: String,
    pub client_secret: SecretString,
    pub enterprise_id: String,
}

impl std::fmt::Debug for ClientCredentialsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentialsInput")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("enterprise_id", &self.enterprise_id)
            .finish()
    }
}

/// The connection as `GET /connections/box` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionView {
    pub status: ConnectionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<EnterpriseView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_source: Option<ActivitySource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<ConnectMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_by: Option<ConnectedBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnterpriseView {
    pub id: EnterpriseId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectedBy {
    pub box_user_id: BoxUserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

impl ConnectionView {
    pub fn disconnected() -> Self {
        Self {
            status: ConnectionStatus::Disconnected,
            reason: None,
            since: None,
            enterprise: None,
            activity_source: None,
            method: None,
            connected_at: None,
            connected_by: None,
            last_sync_at: None,
        }
    }

    pub fn from_record(record: &ConnectionRecord) -> Self {
        Self {
            status: record.status,
            reason: record.status_reason.clone(),
            since: Some(record.status_since),
            enterprise: Some(EnterpriseView {
                id: record.enterprise_id.clone(),
                name: record.enterprise_name.clone(),
            }),
            activity_source: Some(record.activity_source),
            method: Some(record.method),
            connected_at: Some(record.connected_at),
            connected_by: Some(ConnectedBy {
                box_user_id: record.connected_by_box_id.clone(),
                login: record.connected_by_login.clone(),
            }),
            last_sync_at: record.last_sync_at,
        }
    }
}

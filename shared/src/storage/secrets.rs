//! Secrets Manager: one JSON secret per tenant holding its Box tokens ([`BoxTokenSet`]).
//!
//! Writes carry a `ClientRequestToken`, so a retried write (Box answered, then the secret write
//! failed or timed out) stores the value once; [`request_token_from`] derives that token from the
//! refresh token being replaced. Reads always ask for the `AWSCURRENT` stage. Secret values only
//! ever appear inside the secret JSON: `Debug` redacts them, spans skip them, and errors (including
//! JSON errors, whose messages can quote input) never contain them.

use anyhow::{Context as _, anyhow};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{EnterpriseId, TenantId};

/// Prefix of every secret name unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "seatsync/";
/// The stage that names the current value of a secret.
const AWSCURRENT: &str = "AWSCURRENT";

/// What can go wrong with a secret. A missing secret is not an error (`read_json` answers `None`).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager throttled the call and the SDK's bounded retries ran out.
    #[error("Secrets Manager throttled {doing} and retries ran out")]
    Throttled { doing: &'static str },
    /// The stored value is not the JSON expected. The message gives the position, never content.
    #[error("secret {name} does not hold the expected JSON ({category} error at line {line}, column {column})")]
    Malformed {
        name: String,
        category: &'static str,
        line: usize,
        column: usize,
    },
    /// A `ClientRequestToken` must be 32 to 64 characters.
    #[error("a client request token must be 32 to 64 characters long")]
    InvalidRequestToken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl SecretError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. })
    }
}

/// A secret's value and the id of the version it came from.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version_id: String,
}

/// The secrets of this deployment, all named under one prefix.
#[derive(Debug, Clone)]
pub struct SecretStore {
    client: Client,
    prefix: String,
}

impl SecretStore {
    /// A store with the [`DEFAULT_PREFIX`].
    pub fn new(client: Client) -> Self {
        Self::with_prefix(client, DEFAULT_PREFIX)
    }

    /// A store naming its secrets under `prefix` (tests use one prefix per test).
    pub fn with_prefix(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name of a tenant's Box token secret: `<prefix>tenants/<tenant>/box`. [`TenantId`] cannot
    /// hold `/`, so one tenant's name can never reach another tenant's secret.
    pub fn box_secret_name(&self, tenant: &TenantId) -> String {
        format!("{}tenants/{}/box", self.prefix, tenant.as_str())
    }

    /// The name of a tenant's SSO provider credentials: `<prefix>tenants/<tenant>/sso`.
    pub fn sso_secret_name(&self, tenant: &TenantId) -> String {
        format!("{}tenants/{}/sso", self.prefix, tenant.as_str())
    }

    /// The `AWSCURRENT` value of a secret as JSON, or `None` if the secret does not exist.
    #[tracing::instrument(skip(self))]
    pub async fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<Versioned<T>>, SecretError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_stage(AWSCURRENT)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(sdk_error(e, "reading a secret")),
        };
        let version_id = output
            .version_id
            .clone()
            .ok_or_else(|| anyhow!("secret {name} has no version id"))?;
        let json = output
            .secret_string()
            .ok_or_else(|| anyhow!("secret {name} holds no string value"))?;
        let value = serde_json::from_str(json).map_err(|e| malformed(name, &e))?;
        Ok(Some(Versioned { value, version_id }))
    }

    /// Stores `value` as the secret's new `AWSCURRENT` version, creating the secret if needed.
    /// Idempotent per `client_request_token`: a retry with the same token stores nothing new.
    /// Returns the version id.
    #[tracing::instrument(skip(self, value, client_request_token))]
    pub async fn write_json<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        client_request_token: &str,
    ) -> Result<String, SecretError> {
        if !(32..=64).contains(&client_request_token.len()) {
            return Err(SecretError::InvalidRequestToken);
        }
        // Serialization of our own types does not fail on content, and serde_json's serialization
        // errors do not quote values.
        let json = SecretString::from(serde_json::to_string(value).context("encoding a secret value")?);
        // Most writes replace an existing secret, so try that first.
        match self.put_value(name, &json, client_request_token).await {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            other => return other.map_err(|e| sdk_error(e, "writing a secret value")),
        }
        let created = self
            .client
            .create_secret()
            .name(name)
            .secret_string(json.expose_secret())
            .client_request_token(client_request_token)
            .send()
            .await;
        match created {
            Ok(output) => Ok(output
                .version_id
                .ok_or_else(|| anyhow!("CreateSecret returned no version id"))?),
            // Another writer created it between our two calls: write our value as a new version.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_exists_exception()) => self
                .put_value(name, &json, client_request_token)
                .await
                .map_err(|e| sdk_error(e, "writing a secret value after a concurrent create")),
            Err(e) => Err(sdk_error(e, "creating a secret")),
        }
    }

    /// Deletes a secret at once, without the recovery window. Deleting a missing secret is fine.
    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, name: &str) -> Result<(), SecretError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(e, "deleting a secret")),
        }
    }

    async fn put_value(
        &self,
        name: &str,
        json: &SecretString,
        token: &str,
    ) -> Result<String, SdkError<aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError>> {
        let output = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(json.expose_secret())
            .client_request_token(token)
            .send()
            .await?;
        // PutSecretValue moves AWSCURRENT to the new version by default.
        Ok(output.version_id.unwrap_or_default())
    }
}

/// A `ClientRequestToken` (64 hex characters) derived from `seed`, e.g. the refresh token a
/// refresh replaces: every retry of the same refresh writes with the same token. The value is a
/// domain-separated SHA-256, so the token reveals nothing about the seed.
pub fn request_token_from(seed: &SecretString) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"seatsync secret write v1\0");
    hasher.update(seed.expose_secret().as_bytes());
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How the tenant's Box tokens were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Authorization-code flow; Box rotates the refresh token on every use.
    #[serde(rename = "oauth")]
    OAuth,
    /// Client-credentials grant (server authentication); no refresh token.
    ClientCredentials,
}

/// The per-tenant Box secret. Serializing writes the secret values (only ever into the secret's
/// JSON); `Debug` redacts them.
#[derive(Clone, Serialize, Deserialize)]
pub struct BoxTokenSet {
    pub kind: TokenKind,
    #[serde(serialize_with = "expose::secret")]
    pub access_token: SecretString,
    pub access_expires_at: DateTime<Utc>,
    #[serde(serialize_with = "expose::optional_secret", default)]
    pub refresh_token: Option<SecretString>,
    pub obtained_at: DateTime<Utc>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(serialize_with = "expose::optional_secret", default)]
    pub client_secret: Option<SecretString>,
    #[serde(default)]
    pub enterprise_id: Option<EnterpriseId>,
}

impl std::fmt::Debug for BoxTokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |present: bool| if present { "[REDACTED]" } else { "None" };
        f.debug_struct("BoxTokenSet")
            .field("kind", &self.kind)
            .field("access_token", &format_args!("{}", redacted(true)))
            .field("access_expires_at", &self.access_expires_at)
            .field(
                "refresh_token",
                &format_args!("{}", redacted(self.refresh_token.is_some())),
            )
            .field("obtained_at", &self.obtained_at)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &format_args!("{}", redacted(self.client_secret.is_some())),
            )
            .field("enterprise_id", &self.enterprise_id)
            .finish()
    }
}

/// `serialize_with` helpers: the only place secret values are handed to a serializer.
mod expose {
    use secrecy::{ExposeSecret, SecretString};
    use serde::Serializer;

    pub fn secret<S: Serializer>(value: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value.expose_secret())
    }

    pub fn optional_secret<S: Serializer>(value: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_some(value.expose_secret()),
            None => serializer.serialize_none(),
        }
    }
}

/// A JSON error described by position only: serde_json's messages can quote the offending value.
fn malformed(name: &str, err: &serde_json::Error) -> SecretError {
    let category = match err.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "truncated input",
    };
    SecretError::Malformed {
        name: name.to_owned(),
        category,
        line: err.line(),
        column: err.column(),
    }
}

/// Maps an SDK failure: throttling becomes [`SecretError::Throttled`]; the rest keeps its cause
/// chain (SDK errors carry the service's message, never the request body).
fn sdk_error<E, R>(err: SdkError<E, R>, doing: &'static str) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if matches!(
        err.code(),
        Some("ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException")
    ) {
        return SecretError::Throttled { doing };
    }
    SecretError::Unexpected(anyhow::Error::new(err).context(doing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> BoxTokenSet {
        BoxTokenSet {
            kind: TokenKind::OAuth,
            access_token: SecretString::from("access-AAAA-1111"),
            access_expires_at: DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
            refresh_token: Some(SecretString::from("refresh-BBBB-2222")),
            obtained_at: DateTime::from_timestamp(1_899_996_400, 0).unwrap(),
            client_id: Some("client-id".into()),
            client_secret: Some(SecretString::from("csecret-CCCC-3333")),
            enterprise_id: Some(EnterpriseId::parse("42").unwrap()),
        }
    }

    #[test]
    fn token_sets_serialize_secrets_and_round_trip() {
        let json = serde_json::to_string(&tokens()).unwrap();
        assert!(json.contains("\"kind\":\"oauth\""), "{json}");
        let back: BoxTokenSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back.access_token.expose_secret(), "access-AAAA-1111");
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "refresh-BBBB-2222");
        assert_eq!(back.client_secret.unwrap().expose_secret(), "csecret-CCCC-3333");
        assert_eq!(back.access_expires_at, tokens().access_expires_at);
    }

    #[test]
    fn debug_redacts_every_secret() {
        let debug = format!("{:?} {:#?}", tokens(), tokens());
        for secret in ["access-AAAA", "refresh-BBBB", "csecret-CCCC"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("REDACTED"));
    }

    #[test]
    fn malformed_secret_errors_do_not_quote_the_value() {
        let json = r#"{"kind":"refresh-BBBB-2222","access_token":"a"}"#;
        let raw = serde_json::from_str::<BoxTokenSet>(json).unwrap_err();
        assert!(raw.to_string().contains("BBBB"), "serde_json quotes the value: {raw}");
        let err = malformed("n", &raw);
        assert!(!format!("{err} {err:?}").contains("BBBB"), "{err}");
    }

    #[test]
    fn request_tokens_are_stable_valid_and_distinct() {
        let a = request_token_from(&SecretString::from("old-refresh-token"));
        assert_eq!(a, request_token_from(&SecretString::from("old-refresh-token")));
        assert_ne!(a, request_token_from(&SecretString::from("other-refresh-token")));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn box_secret_names_are_per_tenant_under_the_prefix() {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .build();
        let store = SecretStore::new(Client::from_conf(config));
        let tenant = TenantId::parse("acme").unwrap();
        assert_eq!(store.box_secret_name(&tenant), "seatsync/tenants/acme/box");
    }
}

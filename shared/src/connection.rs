//! A tenant's Box connection: the record in DynamoDB (who connected which enterprise, how, and
//! whether seatsync may still call Box for it) and the app configuration every function loads.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::boxapi::AppCredentials;
use crate::ids::{BoxUserId, EnterpriseId, TenantId};
use crate::storage::schema::{SK_CONNECTION_BOX, connections_by_status_pk, tenant_pk};
use crate::storage::{Gsi1Key, Page, SecretError, SecretStore, StoreError, Table, VersionedOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    /// Box refused the stored grant: a person must connect again. No Box calls until then.
    ReauthRequired,
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::ReauthRequired => "reauth_required",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

/// Where last-activity dates come from for this tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    /// Box's enterprise event stream (`LOGIN` events).
    BoxEvents,
    /// The event stream answered 403 (Business plan, or no report rights): the SSO provider.
    Sso,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMethod {
    /// An admin clicked through Box's OAuth consent; Box rotates the refresh token on every use.
    #[serde(rename = "oauth")]
    OAuth,
    /// A server app authorized in the Box Admin Console; tokens are minted on demand.
    ClientCredentials,
}

/// The tenant's Box connection (`TENANT#<t>` / `CONNECTION#box`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub status: ConnectionStatus,
    pub method: ConnectMethod,
    pub enterprise_id: EnterpriseId,
    pub enterprise_name: Option<String>,
    /// The Box user who authorized the connection (for client credentials: the service account).
    pub connected_by_box_id: BoxUserId,
    pub connected_by_login: Option<String>,
    /// The seatsync identity (`sub`) who connected.
    pub connected_by_sub: String,
    pub scopes: Vec<String>,
    pub connected_at: DateTime<Utc>,
    pub activity_source: ActivitySource,
    /// Why the status is what it is (e.g. why re-authorization is required).
    pub status_reason: Option<String>,
    pub status_since: DateTime<Utc>,
    /// Last completed sync, written by the sync.
    #[serde(default)]
    pub last_sync_at: Option<DateTime<Utc>>,
}

/// Reads and writes connection records; every write files the record in the GSI under its
/// status ([`connections_by_status_pk`]), so a status change moves it there too.
#[derive(Debug, Clone)]
pub struct Connections {
    table: Table,
}

/// Attempts at a read-modify-write before giving up on a contended record.
const UPDATE_ATTEMPTS: u32 = 5;

impl Connections {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    pub async fn get(&self, tenant: &TenantId) -> Result<Option<ConnectionRecord>, StoreError> {
        self.table.get(&tenant_pk(tenant), SK_CONNECTION_BOX).await
    }

    /// Writes the record as given (a new connection replaces whatever was there).
    pub async fn save(&self, tenant: &TenantId, record: &ConnectionRecord) -> Result<(), StoreError> {
        self.table
            .put_indexed(&tenant_pk(tenant), SK_CONNECTION_BOX, &index(tenant, record), record)
            .await
    }

    /// One page of the tenants whose connection is in `status`, with their records (eventually
    /// consistent, from the GSI). Pass `next_cursor` back for the next page. An index entry that
    /// does not name a valid tenant is skipped.
    pub async fn page_by_status(
        &self,
        status: ConnectionStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<(TenantId, ConnectionRecord)>, StoreError> {
        let page = self
            .table
            .query_gsi1_indexed::<ConnectionRecord>(&connections_by_status_pk(status.as_str()), limit, cursor)
            .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .filter_map(|found| Some((TenantId::parse(&found.index.sk).ok()?, found.item)))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Changes the status of an existing record (no-op when there is none). Returns the new record.
    pub async fn set_status(
        &self,
        tenant: &TenantId,
        status: ConnectionStatus,
        reason: Option<String>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        // Whether this call changed the status (the last attempt's answer, after a conflict).
        let transition = std::sync::atomic::AtomicBool::new(false);
        self.update(tenant, |record| {
            transition.store(false, std::sync::atomic::Ordering::Relaxed);
            if record.status == status && record.status_reason == reason {
                return false;
            }
            transition.store(record.status != status, std::sync::atomic::Ordering::Relaxed);
            record.status = status;
            record.status_reason = reason.clone();
            record.status_since = Utc::now();
            true
        })
        .await
        .inspect(|_| {
            // One line per transition, with a stable field: the template's ReauthRequired alarm counts it.
            if status == ConnectionStatus::ReauthRequired && transition.load(std::sync::atomic::Ordering::Relaxed) {
                let reason = reason.as_deref().unwrap_or_default();
                tracing::warn!(event = "reauth_required", tenant = %tenant, reason, "the Box connection needs an admin to connect again");
            }
        })
    }

    /// Records a completed sync on the connection.
    pub async fn set_last_sync(&self, tenant: &TenantId, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.update(tenant, |record| {
            record.last_sync_at = Some(at);
            true
        })
        .await
        .map(|_| ())
    }

    /// Read-modify-write of an existing record with an optimistic lock, so a concurrent change is
    /// re-read rather than overwritten. `change` returns false when nothing needs writing.
    async fn update(
        &self,
        tenant: &TenantId,
        change: impl Fn(&mut ConnectionRecord) -> bool,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let pk = tenant_pk(tenant);
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(current) = self
                .table
                .get_versioned::<ConnectionRecord>(&pk, SK_CONNECTION_BOX)
                .await?
            else {
                return Ok(None);
            };
            let mut record = current.item;
            if !change(&mut record) {
                return Ok(Some(record));
            }
            match self
                .table
                .put_versioned_indexed(
                    &pk,
                    SK_CONNECTION_BOX,
                    &index(tenant, &record),
                    &record,
                    Some(current.version),
                )
                .await?
            {
                VersionedOutcome::Written { .. } => return Ok(Some(record)),
                VersionedOutcome::Conflict => continue,
            }
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "the connection record kept changing during {UPDATE_ATTEMPTS} attempts"
        )))
    }
}

/// Where a record is filed in the GSI: under its status, by tenant.
fn index(tenant: &TenantId, record: &ConnectionRecord) -> Gsi1Key {
    Gsi1Key::new(connections_by_status_pk(record.status.as_str()), tenant.as_str())
}

/// The deployment's Box app and cookie-signing key, from the secret named by `APP_SECRET_ID`.
#[derive(Clone)]
pub struct AppConfig {
    pub box_app: AppCredentials,
    /// Signs the browser-binding cookie of the OAuth flow.
    pub cookie_key: SecretString,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("box_app", &self.box_app)
            .field("cookie_key", &"[redacted]")
            .finish()
    }
}

#[derive(Deserialize)]
struct AppSecret {
    client_id: String,
    client_secret: SecretString,
    cookie_key: SecretString,
}

/// Why the app configuration could not be loaded; names the secret, never its content.
#[derive(Debug, thiserror::Error)]
pub enum AppConfigError {
    #[error("the app secret {0} does not exist")]
    Missing(String),
    #[error("the app secret {name} is not usable: {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl AppConfig {
    /// Loads the app secret once per cold start. Its JSON is
    /// `{"client_id": …, "client_secret": …, "cookie_key": …}` (cookie key: at least 32 characters).
    pub async fn load(secrets: &SecretStore, secret_id: &str) -> Result<Self, AppConfigError> {
        use secrecy::ExposeSecret;
        let Some(found) = secrets.read_json::<AppSecret>(secret_id).await? else {
            return Err(AppConfigError::Missing(secret_id.to_owned()));
        };
        let secret = found.value;
        let invalid = |reason| AppConfigError::Invalid {
            name: secret_id.to_owned(),
            reason,
        };
        if secret.client_id.trim().is_empty() || secret.client_id == "REPLACE_ME" {
            return Err(invalid("client_id is not set"));
        }
        if secret.client_secret.expose_secret().trim().is_empty()
            || secret.client_secret.expose_secret() == "REPLACE_ME"
        {
            return Err(invalid("client_secret is not set"));
        }
        if secret.cookie_key.expose_secret().len() < 32 {
            return Err(invalid("cookie_key must be at least 32 characters"));
        }
        Ok(Self {
            box_app: AppCredentials {
                client_id: secret.client_id,
                client_secret: secret.client_secret,
            },
            cookie_key: secret.cookie_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `CONNECTION#box` item as connect has stored it since the ids were plain strings.
    const STORED_CONNECTION: &str = r#"{"status":"connected","method":"oauth","enterprise_id":"81723516","enterprise_name":"Acme Inc.","connected_by_box_id":"20000000001","connected_by_login":"admin@acme.example","connected_by_sub":"person-of-acme","scopes":["manage_managed_users"],"connected_at":"2026-11-01T08:00:00Z","activity_source":"box_events","status_reason":null,"status_since":"2026-11-01T08:00:00Z","last_sync_at":"2026-11-30T02:00:00Z"}"#;

    #[test]
    fn stored_connection_records_still_decode_and_encode_byte_for_byte() {
        let record: ConnectionRecord = serde_json::from_str(STORED_CONNECTION).unwrap();
        assert_eq!(record.enterprise_id, EnterpriseId::parse("81723516").unwrap());
        assert_eq!(record.connected_by_box_id, BoxUserId::parse("20000000001").unwrap());
        assert_eq!(serde_json::to_string(&record).unwrap(), STORED_CONNECTION);
    }

    #[test]
    fn a_stored_connection_whose_enterprise_id_is_not_a_box_id_is_refused() {
        let forged = STORED_CONNECTION.replace("81723516", "../81723516");
        assert!(serde_json::from_str::<ConnectionRecord>(&forged).is_err());
    }
}

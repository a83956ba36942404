//! The token provider: a valid Box access token for a tenant, forever, without ever losing
//! Box's single-use refresh token — even when many Lambda instances need one at the same moment.
//!
//! - A warm instance keeps the token in memory until [`TokenProviderOptions::refresh_margin`]
//!   before it expires.
//! - Refreshing happens under a DynamoDB lease (a conditional write): the holder re-reads the
//!   secret first and refreshes only if still needed; everyone else waits for the new secret.
//! - The new pair is written with a `ClientRequestToken` derived from the old refresh token, so a
//!   retried write stores the same value exactly once.
//! - `invalid_grant`: if another instance rotated the token meanwhile, its new token is used;
//!   otherwise the connection is marked `reauth_required` and Box is not called again for it.
//! - A 401 from Box forces one refresh and one retry ([`TokenProvider::with_token`]), no more.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::boxapi::{AppCredentials, BoxClient, BoxError, OAuthErrorKind, TokenGrant};
use crate::connection::{ConnectionStatus, Connections};
use crate::ids::TenantId;
use crate::storage::schema::tenant_pk;
use crate::storage::{
    BoxTokenSet, LeaseOutcome, SecretError, SecretStore, StoreError, Table, TokenKind, request_token_from,
};

/// Where a tenant's Box tokens are kept (Secrets Manager in production).
#[async_trait]
pub trait TokenVault: Send + Sync {
    async fn read(&self, tenant: &TenantId) -> Result<Option<BoxTokenSet>, SecretError>;
    /// Writes `tokens`; the same `request_token` with the same value stores one version only.
    async fn write(&self, tenant: &TenantId, tokens: &BoxTokenSet, request_token: &str) -> Result<(), SecretError>;
    async fn delete(&self, tenant: &TenantId) -> Result<(), SecretError>;
}

#[async_trait]
impl TokenVault for SecretStore {
    async fn read(&self, tenant: &TenantId) -> Result<Option<BoxTokenSet>, SecretError> {
        Ok(self
            .read_json::<BoxTokenSet>(&self.box_secret_name(tenant))
            .await?
            .map(|v| v.value))
    }

    async fn write(&self, tenant: &TenantId, tokens: &BoxTokenSet, request_token: &str) -> Result<(), SecretError> {
        self.write_json(&self.box_secret_name(tenant), tokens, request_token)
            .await
            .map(|_| ())
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), SecretError> {
        SecretStore::delete(self, &self.box_secret_name(tenant)).await
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the tenant has no Box connection")]
    NotConnected,
    /// A person must connect Box again; seatsync does not call Box for this tenant until then.
    #[error("the Box connection must be authorized again: {reason}")]
    ReauthRequired { reason: String },
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error("token storage failed: {0}")]
    Storage(String),
    /// Another instance held the refresh lease for longer than we wait.
    #[error("another instance is refreshing the Box token and did not finish in time")]
    Busy,
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        TokenError::Storage(e.to_string())
    }
}

impl From<SecretError> for TokenError {
    fn from(e: SecretError) -> Self {
        TokenError::Storage(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct TokenProviderOptions {
    /// Tokens are refreshed this long before they expire.
    pub refresh_margin: Duration,
    /// How long a refresh lease lasts if its holder dies.
    pub lease_ttl: Duration,
    /// How often a waiting instance re-reads the secret.
    pub poll_interval: Duration,
    /// How long an instance waits for another one's refresh before giving up.
    pub max_wait: Duration,
    /// Attempts at storing a refreshed pair (same request token each time).
    pub write_attempts: u32,
}

impl Default for TokenProviderOptions {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(5 * 60),
            lease_ttl: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            max_wait: Duration::from_secs(70),
            write_attempts: 4,
        }
    }
}

/// The name of the refresh lease in the tenant's partition.
pub const REFRESH_LEASE: &str = "box-token";

pub struct TokenProvider {
    vault: Arc<dyn TokenVault>,
    table: Table,
    connections: Connections,
    box_api: BoxClient,
    app: AppCredentials,
    options: TokenProviderOptions,
    holder: String,
    cache: Mutex<HashMap<TenantId, (SecretString, DateTime<Utc>)>>,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    pub fn new(
        vault: Arc<dyn TokenVault>,
        table: Table,
        box_api: BoxClient,
        app: AppCredentials,
        options: TokenProviderOptions,
    ) -> Self {
        Self {
            vault,
            connections: Connections::new(table.clone()),
            table,
            box_api,
            app,
            options,
            holder: uuid::Uuid::new_v4().to_string(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A valid access token for the tenant.
    #[tracing::instrument(skip(self), fields(tenant = %tenant))]
    pub async fn access_token(&self, tenant: &TenantId) -> Result<SecretString, TokenError> {
        self.token(tenant, None).await
    }

    /// Runs a Box call with the tenant's token; a 401 forces one refresh and one retry.
    pub async fn with_token<T, F, Fut>(&self, tenant: &TenantId, call: F) -> Result<T, TokenError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, BoxError>>,
    {
        let token = self.token(tenant, None).await?;
        match call(token.clone()).await {
            Err(BoxError::Unauthorized(_)) => {
                tracing::info!(tenant = %tenant, "Box rejected the access token; refreshing once");
                let fresh = self.token(tenant, Some(&token)).await?;
                Ok(call(fresh).await?)
            }
            other => Ok(other?),
        }
    }

    /// Drops the instance's cached token (e.g. after a disconnect).
    pub fn forget(&self, tenant: &TenantId) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(tenant);
    }

    fn cached(&self, tenant: &TenantId) -> Option<SecretString> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(tenant)
            .filter(|(_, exp)| self.fresh(*exp))
            .map(|(t, _)| t.clone())
    }

    fn remember(&self, tenant: &TenantId, token: &SecretString, expires_at: DateTime<Utc>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(tenant.clone(), (token.clone(), expires_at));
    }

    fn fresh(&self, expires_at: DateTime<Utc>) -> bool {
        let margin = chrono::Duration::from_std(self.options.refresh_margin).unwrap_or(chrono::Duration::minutes(5));
        expires_at - margin > Utc::now()
    }

    /// Stored tokens usable as they are: fresh, and not the one Box just rejected.
    fn usable(&self, stored: &BoxTokenSet, rejected: Option<&SecretString>) -> bool {
        self.fresh(stored.access_expires_at)
            && rejected.is_none_or(|r| r.expose_secret() != stored.access_token.expose_secret())
    }

    async fn token(&self, tenant: &TenantId, rejected: Option<&SecretString>) -> Result<SecretString, TokenError> {
        if rejected.is_some() {
            self.forget(tenant);
        } else if let Some(token) = self.cached(tenant) {
            return Ok(token);
        }
        let connection = self.connections.get(tenant).await?.ok_or(TokenError::NotConnected)?;
        match connection.status {
            ConnectionStatus::Connected => {}
            ConnectionStatus::Disconnected => return Err(TokenError::NotConnected),
            ConnectionStatus::ReauthRequired => {
                return Err(TokenError::ReauthRequired {
                    reason: connection
                        .status_reason
                        .unwrap_or_else(|| "Box refused the stored grant".into()),
                });
            }
        }
        let rounds = (self.options.max_wait.as_millis() / self.options.poll_interval.as_millis().max(1)).max(1) as u64;
        for _ in 0..=rounds {
            let stored = self.vault.read(tenant).await?.ok_or(TokenError::NotConnected)?;
            if self.usable(&stored, rejected) {
                self.remember(tenant, &stored.access_token, stored.access_expires_at);
                return Ok(stored.access_token);
            }
            if stored.kind == TokenKind::ClientCredentials {
                return self.mint(tenant, stored).await;
            }
            let pk = tenant_pk(tenant);
            match self
                .table
                .try_acquire_lease(&pk, REFRESH_LEASE, &self.holder, self.options.lease_ttl)
                .await?
            {
                LeaseOutcome::Acquired => {
                    let result = self.refresh_under_lease(tenant, rejected).await;
                    if let Err(e) = self.table.release_lease(&pk, REFRESH_LEASE, &self.holder).await {
                        // The lease expires by itself; waiting instances only lose a little time.
                        tracing::warn!(error = %e, "could not release the token refresh lease");
                    }
                    return result;
                }
                LeaseOutcome::HeldBy { .. } => tokio::time::sleep(self.options.poll_interval).await,
            }
        }
        Err(TokenError::Busy)
    }

    async fn refresh_under_lease(
        &self,
        tenant: &TenantId,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, TokenError> {
        // Another instance may have refreshed between our read and our lease.
        let stored = self.vault.read(tenant).await?.ok_or(TokenError::NotConnected)?;
        if self.usable(&stored, rejected) {
            self.remember(tenant, &stored.access_token, stored.access_expires_at);
            return Ok(stored.access_token);
        }
        let Some(old_refresh) = stored.refresh_token.clone() else {
            return Err(self
                .require_reauth(tenant, "no refresh token is stored for this connection")
                .await);
        };
        match self.box_api.refresh(&self.app, &old_refresh).await {
            Ok(grant) => {
                let tokens = BoxTokenSet {
                    access_token: grant.access_token.clone(),
                    access_expires_at: grant.expires_at,
                    refresh_token: grant.refresh_token.clone().or(Some(old_refresh.clone())),
                    obtained_at: Utc::now(),
                    ..stored
                };
                self.store_refreshed(tenant, &tokens, &old_refresh).await?;
                tracing::info!(expires_at = %grant.expires_at, "refreshed the Box token");
                self.remember(tenant, &grant.access_token, grant.expires_at);
                Ok(grant.access_token)
            }
            Err(BoxError::OAuth {
                kind: OAuthErrorKind::InvalidGrant,
                description,
                ..
            }) => {
                let again = self.vault.read(tenant).await?.ok_or(TokenError::NotConnected)?;
                let rotated =
                    again.refresh_token.as_ref().map(|t| t.expose_secret()) != Some(old_refresh.expose_secret());
                if rotated && self.fresh(again.access_expires_at) {
                    self.remember(tenant, &again.access_token, again.access_expires_at);
                    return Ok(again.access_token);
                }
                Err(self
                    .require_reauth(
                        tenant,
                        &format!("Box refused the stored refresh token (invalid_grant: {description})"),
                    )
                    .await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a refreshed pair. Box has already spent the old refresh token, so this retries
    /// with the same request token (one stored version however often it runs).
    async fn store_refreshed(
        &self,
        tenant: &TenantId,
        tokens: &BoxTokenSet,
        old_refresh: &SecretString,
    ) -> Result<(), TokenError> {
        let request_token = request_token_from(old_refresh);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.vault.write(tenant, tokens, &request_token).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < self.options.write_attempts => {
                    tracing::warn!(attempt, error = %e, "storing the refreshed Box token failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not store the refreshed Box token; this instance keeps it in memory");
                    return Err(e.into());
                }
            }
        }
    }

    /// Client-credentials tenants: mint a new token with the tenant's own app credentials.
    async fn mint(&self, tenant: &TenantId, stored: BoxTokenSet) -> Result<SecretString, TokenError> {
        let (Some(client_id), Some(client_secret), Some(enterprise_id)) = (
            stored.client_id.clone(),
            stored.client_secret.clone(),
            stored.enterprise_id.clone(),
        ) else {
            return Err(self
                .require_reauth(tenant, "the stored client-credentials connection is incomplete")
                .await);
        };
        let app = AppCredentials {
            client_id,
            client_secret,
        };
        let grant: TokenGrant = match self.box_api.client_credentials(&app, &enterprise_id).await {
            Ok(grant) => grant,
            Err(BoxError::OAuth {
                kind: OAuthErrorKind::InvalidGrant | OAuthErrorKind::InvalidClient,
                description,
                ..
            }) => {
                return Err(self
                    .require_reauth(
                        tenant,
                        &format!("Box refused the app's client credentials: {description}"),
                    )
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        let tokens = BoxTokenSet {
            access_token: grant.access_token.clone(),
            access_expires_at: grant.expires_at,
            obtained_at: Utc::now(),
            ..stored
        };
        // Minting spends nothing, so a failed write loses nothing: the next call mints again.
        if let Err(e) = self
            .vault
            .write(tenant, &tokens, &request_token_from(&grant.access_token))
            .await
        {
            tracing::warn!(error = %e, "could not store the minted Box token");
        }
        self.remember(tenant, &grant.access_token, grant.expires_at);
        Ok(grant.access_token)
    }

    async fn require_reauth(&self, tenant: &TenantId, reason: &str) -> TokenError {
        tracing::warn!(tenant = %tenant, reason, "Box connection needs to be authorized again");
        self.forget(tenant);
        if let Err(e) = self
            .connections
            .set_status(tenant, ConnectionStatus::ReauthRequired, Some(reason.to_owned()))
            .await
        {
            tracing::error!(error = %e, "could not mark the connection reauth_required");
        }
        TokenError::ReauthRequired {
            reason: reason.to_owned(),
        }
    }
}

/// Anything that hands out a tenant's Box access token; `rejected` is a token Box just answered
/// 401 to, which must not be handed out again.
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self, tenant: &TenantId, rejected: Option<&SecretString>) -> Result<SecretString, TokenError>;
}

#[async_trait]
impl TokenSource for TokenProvider {
    async fn token(&self, tenant: &TenantId, rejected: Option<&SecretString>) -> Result<SecretString, TokenError> {
        TokenProvider::token(self, tenant, rejected).await
    }
}

/// A fixed token (a developer token, or a benchmark's): 401 cannot be repaired.
pub struct StaticToken(pub SecretString);

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self, _tenant: &TenantId, rejected: Option<&SecretString>) -> Result<SecretString, TokenError> {
        match rejected {
            Some(_) => Err(TokenError::ReauthRequired {
                reason: "Box rejected the fixed access token".into(),
            }),
            None => Ok(self.0.clone()),
        }
    }
}

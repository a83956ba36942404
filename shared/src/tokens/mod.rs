//! The token provider: a valid Box access token for a tenant, forever, without ever losing
//! Box's single-use refresh token — even when many tasks and Lambda instances need one at once.
//!
//! - A warm instance keeps the token in memory until [`TokenProviderOptions::refresh_margin`]
//!   before it expires.
//! - Within one instance, one task per tenant refreshes (an in-process single flight); the others
//!   wait for it and take its token from memory.
//! - Across instances, refreshing happens under a DynamoDB lease (a conditional write, one holder id
//!   per attempt): the holder re-reads the secret first and refreshes only if still needed;
//!   everyone else waits for the new secret.
//! - Before sending a refresh token to Box the holder creates that token's claim
//!   ([`claim::RefreshClaim`]): a refresh token is sent to Box at most once, even by a second
//!   instance that took over a lease its slow holder outlived.
//! - The new pair is kept in memory first, then written with a `ClientRequestToken` derived from
//!   the old refresh token, so a retried write stores the same value exactly once; if Secrets
//!   Manager keeps refusing, the holder keeps retrying (fenced) in the background ([`writer`]).
//! - `invalid_grant`: if another instance rotated the token meanwhile, its new token is used;
//!   otherwise the connection is marked `reauth_required` and Box is not called again for it.
//! - A 401 from Box forces one refresh and one retry ([`TokenProvider::with_token`]), no more.

pub mod claim;
pub mod writer;

use std::collections::{HashMap, HashSet};
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
use claim::RefreshClaim;
use writer::{PendingWrite, WritePolicy};

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
    /// Attempts at storing a refreshed pair before the caller gets its token (same request token
    /// each time); later attempts go on in the background.
    pub write_attempts: u32,
    /// The longest pause between two attempts at storing a refreshed pair.
    pub write_retry_max_delay: Duration,
    /// How long a holder keeps trying to store a refreshed pair (its claim lasts as long).
    pub write_horizon: Duration,
    /// How long a refresh token's claim keeps others from spending it after an ambiguous failure
    /// (Box may have rotated it without our hearing the answer).
    pub claim_ttl: Duration,
}

impl Default for TokenProviderOptions {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(5 * 60),
            lease_ttl: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            max_wait: Duration::from_secs(20),
            write_attempts: 3,
            write_retry_max_delay: Duration::from_secs(10),
            write_horizon: Duration::from_secs(15 * 60),
            claim_ttl: Duration::from_secs(2 * 60),
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
    /// This instance's id; each refresh attempt holds the lease as `<instance>:<attempt>`.
    holder: String,
    cache: Mutex<HashMap<TenantId, (SecretString, DateTime<Utc>)>>,
    /// One refresh per tenant at a time in this instance.
    flights: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
    /// Tenants whose refreshed pair this instance is still trying to store.
    pending_writes: Arc<Mutex<HashSet<TenantId>>>,
}

/// What an attempt under the lease came to.
enum Attempt {
    Token(SecretString),
    /// Someone else has claimed the stored refresh token: wait for their new secret.
    Wait,
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
            flights: Mutex::new(HashMap::new()),
            pending_writes: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The same provider with other options (tests and tools tune timings).
    pub fn with_options(mut self, options: TokenProviderOptions) -> Self {
        self.options = options;
        self
    }

    /// Whether this instance holds a refreshed pair it has not managed to store yet.
    pub fn has_pending_write(&self, tenant: &TenantId) -> bool {
        self.pending_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(tenant)
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

    /// The tenant's single-flight lock in this instance.
    fn flight(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.entry(tenant.clone()).or_default().clone()
    }

    async fn token(&self, tenant: &TenantId, rejected: Option<&SecretString>) -> Result<SecretString, TokenError> {
        let not_rejected = |t: &SecretString| rejected.is_none_or(|r| r.expose_secret() != t.expose_secret());
        if let Some(token) = self.cached(tenant).filter(not_rejected) {
            return Ok(token);
        }
        // One task per tenant goes on; the others take its token from memory when it is done.
        let flight = self.flight(tenant);
        let _flight = flight.lock().await;
        if let Some(token) = self.cached(tenant).filter(not_rejected) {
            return Ok(token);
        }
        if rejected.is_some() {
            self.forget(tenant);
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
        let holder = format!("{}:{}", self.holder, uuid::Uuid::new_v4());
        let pk = tenant_pk(tenant);
        let deadline = tokio::time::Instant::now() + self.options.max_wait;
        loop {
            let stored = self.vault.read(tenant).await?.ok_or(TokenError::NotConnected)?;
            if self.usable(&stored, rejected) {
                self.remember(tenant, &stored.access_token, stored.access_expires_at);
                return Ok(stored.access_token);
            }
            if stored.kind == TokenKind::ClientCredentials {
                return self.mint(tenant, stored).await;
            }
            match self
                .table
                .try_acquire_lease(&pk, REFRESH_LEASE, &holder, self.options.lease_ttl)
                .await?
            {
                LeaseOutcome::Acquired => {
                    let attempt = self.refresh_under_lease(tenant, rejected, &holder).await;
                    if let Err(e) = self.table.release_lease(&pk, REFRESH_LEASE, &holder).await {
                        // The lease expires by itself; waiting instances only lose a little time.
                        tracing::warn!(error = %e, "could not release the token refresh lease");
                    }
                    match attempt? {
                        Attempt::Token(token) => return Ok(token),
                        Attempt::Wait => {}
                    }
                }
                LeaseOutcome::HeldBy { .. } => {}
            }
            if tokio::time::Instant::now() + self.options.poll_interval > deadline {
                return Err(TokenError::Busy);
            }
            tokio::time::sleep(self.options.poll_interval).await;
        }
    }

    async fn refresh_under_lease(
        &self,
        tenant: &TenantId,
        rejected: Option<&SecretString>,
        holder: &str,
    ) -> Result<Attempt, TokenError> {
        // Another instance may have refreshed between our read and our lease.
        let stored = self.vault.read(tenant).await?.ok_or(TokenError::NotConnected)?;
        if self.usable(&stored, rejected) {
            self.remember(tenant, &stored.access_token, stored.access_expires_at);
            return Ok(Attempt::Token(stored.access_token));
        }
        let Some(old_refresh) = stored.refresh_token.clone() else {
            return Err(self
                .require_reauth(tenant, "no refresh token is stored for this connection")
                .await);
        };
        // The refresh token goes to Box at most once, whoever holds the lease now.
        let claim = RefreshClaim::new(self.table.clone(), tenant, &old_refresh, holder);
        if !claim.take(self.options.claim_ttl).await? {
            tracing::info!("this refresh token was already sent to Box by another attempt; waiting for its result");
            return Ok(Attempt::Wait);
        }
        match self.box_api.refresh(&self.app, &old_refresh).await {
            Ok(grant) => {
                // Kept in memory before anything else can fail: Box has spent the old token.
                self.remember(tenant, &grant.access_token, grant.expires_at);
                tracing::info!(expires_at = %grant.expires_at, "refreshed the Box token");
                let pending = PendingWrite {
                    vault: self.vault.clone(),
                    tenant: tenant.clone(),
                    tokens: BoxTokenSet {
                        access_token: grant.access_token.clone(),
                        access_expires_at: grant.expires_at,
                        refresh_token: grant.refresh_token.clone().or(Some(old_refresh.clone())),
                        obtained_at: Utc::now(),
                        ..stored
                    },
                    old_refresh,
                    claim,
                };
                let policy = WritePolicy {
                    inline_attempts: self.options.write_attempts,
                    max_delay: self.options.write_retry_max_delay,
                    horizon: self.options.write_horizon,
                };
                pending.store(policy, self.pending_writes.clone()).await;
                Ok(Attempt::Token(grant.access_token))
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
                    return Ok(Attempt::Token(again.access_token));
                }
                Err(self
                    .require_reauth(
                        tenant,
                        &format!("Box refused the stored refresh token (invalid_grant: {description})"),
                    )
                    .await)
            }
            Err(e @ (BoxError::OAuth { .. } | BoxError::RateLimited { .. })) => {
                // Box answered and spent nothing: the token may be sent again.
                claim.release().await;
                Err(e.into())
            }
            // No clear answer: Box may have rotated the token. The claim stays until it expires.
            Err(e) => Err(e.into()),
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

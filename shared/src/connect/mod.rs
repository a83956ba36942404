//! Connecting a tenant's Box enterprise: the OAuth start and callback, the connection status,
//! disconnecting, and connecting with a server app's client credentials.
//!
//! The OAuth `state` is 256 random bits, stored only as its SHA-256 under a TTL, consumed with a
//! conditional delete (single use) and bound to the browser that started the flow by a signed
//! cookie whose nonce hash is stored with it. A code is exchanged once, never retried. Anyone who
//! is not an admin or co-admin of a Box enterprise is refused with nothing stored (their new
//! token is revoked). [`ConnectService`] is the domain; [`router`] is its HTTP API.

mod client_credentials;
mod http;
mod model;
pub mod reset;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::boxapi::{AppCredentials, BoxClient, BoxError, EventsQuery, OAuthErrorKind, TokenGrant, User, scopes};
use crate::connection::{ActivitySource, AppConfig, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use crate::ids::{BoxUserId, EnterpriseId, TenantId};
use crate::storage::schema::{SK_OAUTH_STATE, oauth_state_pk};
use crate::storage::{BoxTokenSet, PutOutcome, Table, TokenKind, request_token_from};
use crate::tokens::TokenVault;

pub use http::{COOKIE_NAME, ROUTES, Route, router};
pub use model::*;

/// A pending OAuth state (`OAUTH_STATE#<sha256(state)>` / `OAUTH_STATE`); the raw state is never stored.
#[derive(Debug, Serialize, Deserialize)]
struct PendingState {
    tenant: TenantId,
    sub: String,
    /// SHA-256 (hex) of the browser nonce in the cookie.
    nonce_hash: String,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    /// TTL attribute, epoch seconds.
    expires_at: i64,
}

/// Connects, shows and disconnects a tenant's Box enterprise.
pub struct ConnectService {
    config: ConnectConfig,
    app: AppConfig,
    table: Table,
    connections: Connections,
    vault: Arc<dyn TokenVault>,
    box_api: BoxClient,
}

impl std::fmt::Debug for ConnectService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ConnectService {
    pub fn new(
        config: ConnectConfig,
        app: AppConfig,
        table: Table,
        vault: Arc<dyn TokenVault>,
        box_api: BoxClient,
    ) -> Self {
        Self {
            config,
            app,
            connections: Connections::new(table.clone()),
            table,
            vault,
            box_api,
        }
    }

    pub fn config(&self) -> &ConnectConfig {
        &self.config
    }

    /// Starts a connection for `tenant`, started by `sub`.
    #[tracing::instrument(skip_all, fields(tenant = %tenant, content_transfer = options.content_transfer))]
    pub async fn start(
        &self,
        tenant: &TenantId,
        sub: &str,
        options: StartOptions,
    ) -> Result<StartedConnect, ConnectError> {
        let state = SecretString::from(random_token());
        let nonce = random_token();
        let mut wanted: Vec<&str> = scopes::BASE.to_vec();
        if options.content_transfer {
            wanted.push(scopes::ROOT_READWRITE);
        }
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.config.state_ttl).map_err(anyhow::Error::from)?;
        let expires_at = now + ttl;
        let pending = PendingState {
            tenant: tenant.clone(),
            sub: sub.to_owned(),
            nonce_hash: sha256_hex(nonce.as_bytes()),
            scopes: wanted.iter().map(|s| (*s).to_owned()).collect(),
            created_at: now,
            expires_at: expires_at.timestamp(),
        };
        let pk = oauth_state_pk(&sha256_hex(state.expose_secret().as_bytes()));
        match self
            .table
            .put_new(&pk, SK_OAUTH_STATE, &pending)
            .await
            .map_err(anyhow::Error::from)?
        {
            PutOutcome::Created => {}
            PutOutcome::AlreadyExists => {
                return Err(anyhow::anyhow!("a freshly drawn OAuth state already exists").into());
            }
        }
        let authorize_url =
            self.box_api
                .authorize_url(&self.app.box_app.client_id, &self.config.redirect_uri, &state, &wanted);
        let signature = self.sign(&nonce);
        tracing::info!("connection started");
        Ok(StartedConnect {
            authorize_url,
            expires_at,
            cookie_value: SecretString::from(format!("{nonce}.{signature}")),
            max_age: self.config.state_ttl,
        })
    }

    /// Handles Box's redirect back. `Err` means the callback itself cannot be trusted (answered
    /// 400, and Box is not called); a trusted callback ends in a [`CallbackOutcome`].
    #[tracing::instrument(skip_all)]
    pub async fn callback(&self, input: CallbackInput) -> Result<CallbackOutcome, ConnectError> {
        const START_AGAIN: &str = "this sign-in link is not valid any more (it is used, expired, or was opened in another browser); start the connection again from seatsync";
        let Some(state) = input
            .state
            .filter(|s| !s.expose_secret().is_empty() && s.expose_secret().len() <= 512)
        else {
            tracing::info!(reason = "missing_state", "callback refused");
            return Err(ConnectError::InvalidCallback(
                "the callback has no `state`; start the connection again from seatsync",
            ));
        };
        let Some(nonce) = input.cookie.as_ref().and_then(|c| self.verified_nonce(c)) else {
            tracing::info!(reason = "cookie", "callback refused");
            return Err(ConnectError::InvalidCallback(
                "this browser did not start the connection (its seatsync cookie is missing or invalid); start the connection again from seatsync",
            ));
        };
        let pk = oauth_state_pk(&sha256_hex(state.expose_secret().as_bytes()));
        // Consumed before anything else: single use, also when the rest fails.
        let Some(pending) = self
            .table
            .delete_if_exists::<PendingState>(&pk, SK_OAUTH_STATE)
            .await
            .map_err(anyhow::Error::from)?
        else {
            tracing::info!(reason = "unknown_state", "callback refused");
            return Err(ConnectError::InvalidCallback(START_AGAIN));
        };
        let presented = sha256_hex(nonce.as_bytes());
        if !bool::from(presented.as_bytes().ct_eq(pending.nonce_hash.as_bytes())) {
            tracing::warn!(tenant = %pending.tenant, reason = "cookie_mismatch", "callback refused");
            return Err(ConnectError::InvalidCallback(START_AGAIN));
        }
        let tenant = pending.tenant.clone();
        if let Some(error) = input.error {
            let reason = if error == "access_denied" {
                RefusalReason::AccessDenied
            } else {
                RefusalReason::BoxRefused
            };
            tracing::info!(tenant = %tenant, reason = reason.as_str(), "Box did not grant access");
            return Ok(CallbackOutcome::Refused(reason));
        }
        let Some(code) = input.code.filter(|c| !c.expose_secret().is_empty()) else {
            tracing::info!(tenant = %tenant, reason = "missing_code", "callback refused");
            return Err(ConnectError::InvalidCallback(
                "Box sent no authorization code; start the connection again from seatsync",
            ));
        };
        let outcome = self.finish_oauth(&pending, &code).await;
        match &outcome {
            CallbackOutcome::Connected { .. } => tracing::info!(tenant = %tenant, "Box connected"),
            CallbackOutcome::Refused(reason) => {
                tracing::info!(tenant = %tenant, reason = reason.as_str(), "connection refused")
            }
        }
        Ok(outcome)
    }

    async fn finish_oauth(&self, pending: &PendingState, code: &SecretString) -> CallbackOutcome {
        let tenant = &pending.tenant;
        let grant = match self
            .box_api
            .exchange_code(&self.app.box_app, code, &self.config.redirect_uri)
            .await
        {
            Ok(grant) => grant,
            Err(BoxError::OAuth {
                kind: OAuthErrorKind::InvalidGrant,
                ..
            }) => {
                return CallbackOutcome::Refused(RefusalReason::CodeExpired);
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "code exchange failed");
                return CallbackOutcome::Refused(RefusalReason::BoxUnavailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Box refused the code exchange");
                return CallbackOutcome::Refused(RefusalReason::BoxRefused);
            }
        };
        let me = match self.box_api.me(&grant.access_token).await {
            Ok(me) => me,
            Err(e) => {
                tracing::warn!(error = %e, "reading the connecting user failed");
                let reason = if e.is_transient() {
                    RefusalReason::BoxUnavailable
                } else {
                    RefusalReason::BoxRefused
                };
                return self.refuse(&grant, reason).await;
            }
        };
        let Some(enterprise) = me.enterprise.clone().filter(|_| me.role.is_some_and(|r| r.is_admin())) else {
            return self.refuse(&grant, RefusalReason::NotAdmin).await;
        };
        let Some(ids) = BoxIds::of(&me, &enterprise) else {
            tracing::warn!("Box answered with a user or enterprise id that is not digits");
            return self.refuse(&grant, RefusalReason::BoxRefused).await;
        };
        match self.other_enterprise(tenant, &ids.enterprise).await {
            Ok(None) => {}
            Ok(Some(_)) => return self.refuse(&grant, RefusalReason::ConnectedToAnotherEnterprise).await,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "reading the connection failed");
                return self.refuse(&grant, RefusalReason::ConnectFailed).await;
            }
        }
        let activity_source = match self.probe_events(&grant.access_token).await {
            Ok(source) => source,
            Err(ConnectError::BoxUnavailable(_)) => return self.refuse(&grant, RefusalReason::BoxUnavailable).await,
            Err(_) => return self.refuse(&grant, RefusalReason::BoxRefused).await,
        };
        let now = Utc::now();
        let tokens = BoxTokenSet {
            kind: TokenKind::OAuth,
            access_token: grant.access_token.clone(),
            access_expires_at: grant.expires_at,
            refresh_token: grant.refresh_token.clone(),
            obtained_at: now,
            client_id: None,
            client_secret: None,
            enterprise_id: Some(ids.enterprise.clone()),
        };
        let record = record_for(
            ConnectMethod::OAuth,
            &me,
            &enterprise,
            ids,
            &pending.sub,
            pending.scopes.clone(),
            activity_source,
        );
        if let Err(e) = self.store(tenant, &tokens, &request_token_from(code), &record).await {
            tracing::error!(error = format!("{e:#}"), "storing the connection failed");
            return self.refuse(&grant, RefusalReason::ConnectFailed).await;
        }
        CallbackOutcome::Connected { tenant: tenant.clone() }
    }

    /// The tenant's connection as the API shows it.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn status(&self, tenant: &TenantId) -> Result<ConnectionView, ConnectError> {
        let record = self.connections.get(tenant).await.map_err(anyhow::Error::from)?;
        Ok(record
            .as_ref()
            .map(ConnectionView::from_record)
            .unwrap_or_else(ConnectionView::disconnected))
    }

    /// Revokes the tenant's token at Box, deletes the secret and marks the connection
    /// disconnected. Repeating it is harmless. Box unavailable → nothing changes.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn disconnect(&self, tenant: &TenantId, sub: &str) -> Result<(), ConnectError> {
        let stored = self.vault.read(tenant).await.map_err(anyhow::Error::from)?;
        if let Some(tokens) = stored {
            match self.revoke_stored(&tokens).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "Box is unavailable; nothing was disconnected");
                    return Err(ConnectError::BoxUnavailable(
                        "Box did not answer, so the token could not be revoked and nothing was changed; try again in a few minutes".into(),
                    ));
                }
                // Box refused the revocation (e.g. the tenant's own app was removed): the token
                // is unusable by us either way, so the local disconnect goes ahead.
                Err(e) => tracing::warn!(error = %e, "Box refused to revoke the token; disconnecting anyway"),
            }
            self.vault.delete(tenant).await.map_err(anyhow::Error::from)?;
        }
        let current = self.connections.get(tenant).await.map_err(anyhow::Error::from)?;
        if current.is_some_and(|r| r.status != ConnectionStatus::Disconnected) {
            self.connections
                .set_status(
                    tenant,
                    ConnectionStatus::Disconnected,
                    Some(format!("disconnected by {sub}")),
                )
                .await
                .map_err(anyhow::Error::from)?;
        }
        tracing::info!("Box disconnected");
        Ok(())
    }

    /// The enterprise the tenant is connected (or awaiting re-authorization) to, when it is not `enterprise_id`.
    async fn other_enterprise(
        &self,
        tenant: &TenantId,
        enterprise_id: &EnterpriseId,
    ) -> Result<Option<EnterpriseId>, ConnectError> {
        let existing = self.connections.get(tenant).await.map_err(anyhow::Error::from)?;
        Ok(existing
            .filter(|r| r.status != ConnectionStatus::Disconnected && r.enterprise_id != *enterprise_id)
            .map(|r| r.enterprise_id))
    }

    /// One look at the admin event stream: readable → last logins come from Box; 403 → from SSO.
    async fn probe_events(&self, token: &SecretString) -> Result<ActivitySource, ConnectError> {
        let now = Utc::now();
        let query = EventsQuery {
            event_types: Vec::new(),
            created_after: Some(now - chrono::Duration::hours(24)),
            created_before: Some(now),
            stream_position: None,
            limit: 1,
        };
        let first = self.box_api.admin_event_pages(token.clone(), query).next().await;
        match first {
            None | Some(Ok(_)) => Ok(ActivitySource::BoxEvents),
            Some(Err(BoxError::Forbidden(_))) => Ok(ActivitySource::Sso),
            Some(Err(e)) if e.is_transient() => Err(box_unavailable(e)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "probing the admin event stream failed");
                Err(ConnectError::BoxUnavailable(format!(
                    "Box refused to show the admin event stream: {e}"
                )))
            }
        }
    }

    /// Revokes a stored grant at Box with the credentials it was issued to.
    async fn revoke_stored(&self, tokens: &BoxTokenSet) -> Result<(), BoxError> {
        match tokens.kind {
            TokenKind::OAuth => {
                let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
                self.box_api.revoke(&self.app.box_app, token).await
            }
            TokenKind::ClientCredentials => match (tokens.client_id.clone(), tokens.client_secret.clone()) {
                (Some(client_id), Some(client_secret)) => {
                    let app = AppCredentials {
                        client_id,
                        client_secret,
                    };
                    self.box_api.revoke(&app, &tokens.access_token).await
                }
                _ => Ok(()),
            },
        }
    }

    /// Stores a new connection. The state of another enterprise is cleared first; the grant the
    /// new one replaces is revoked once the new one is stored (best effort: Box answers for it).
    async fn store(
        &self,
        tenant: &TenantId,
        tokens: &BoxTokenSet,
        request_token: &str,
        record: &ConnectionRecord,
    ) -> Result<(), ConnectError> {
        let previous = self.connections.get(tenant).await.map_err(anyhow::Error::from)?;
        let replaced = self.vault.read(tenant).await.map_err(anyhow::Error::from)?;
        if previous
            .as_ref()
            .is_none_or(|p| p.enterprise_id != record.enterprise_id)
        {
            reset::clear_enterprise_state(&self.table, tenant)
                .await
                .map_err(|e| match e {
                    reset::ResetError::SyncRunning => ConnectError::SyncRunning(
                        "a sync of the previously connected Box enterprise is still finishing; connect again in a few minutes".into(),
                    ),
                    reset::ResetError::Store(e) => anyhow::Error::from(e).context("clearing the previous enterprise's state").into(),
                })?;
        }
        self.store_new(tenant, tokens, request_token, record).await?;
        if let Some(old) = replaced {
            let same = |a: &SecretString, b: &SecretString| a.expose_secret() == b.expose_secret();
            if !same(&old.access_token, &tokens.access_token) {
                match self.revoke_stored(&old).await {
                    Ok(()) => tracing::info!("revoked the Box grant this connection replaces"),
                    Err(e) => tracing::warn!(error = %e, "could not revoke the replaced Box grant"),
                }
            }
        }
        Ok(())
    }

    async fn store_new(
        &self,
        tenant: &TenantId,
        tokens: &BoxTokenSet,
        request_token: &str,
        record: &ConnectionRecord,
    ) -> Result<(), ConnectError> {
        self.vault
            .write(tenant, tokens, request_token)
            .await
            .map_err(anyhow::Error::from)?;
        if let Err(e) = self.connections.save(tenant, record).await {
            // Without a record the secret is an orphan: remove it so nothing half-connected remains.
            if let Err(cleanup) = self.vault.delete(tenant).await {
                tracing::error!(error = %cleanup, "removing the secret after a failed save failed");
            }
            return Err(anyhow::Error::from(e).context("saving the connection record").into());
        }
        Ok(())
    }

    async fn refuse(&self, grant: &TokenGrant, reason: RefusalReason) -> CallbackOutcome {
        self.revoke_grant(grant).await;
        CallbackOutcome::Refused(reason)
    }

    /// Best effort: a refused connection must not leave a live grant at Box.
    async fn revoke_grant(&self, grant: &TokenGrant) {
        let token = grant.refresh_token.as_ref().unwrap_or(&grant.access_token);
        if let Err(e) = self.box_api.revoke(&self.app.box_app, token).await {
            tracing::warn!(error = %e, "revoking the refused connection's token failed");
        }
    }

    fn sign(&self, nonce: &str) -> String {
        let mut mac = self.mac();
        mac.update(nonce.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.app.cookie_key.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
    }

    /// The nonce of a cookie whose signature is ours (checked in constant time).
    fn verified_nonce(&self, cookie: &SecretString) -> Option<String> {
        let (nonce, signature) = cookie.expose_secret().split_once('.')?;
        if nonce.is_empty() || nonce.len() > 128 {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(nonce.as_bytes());
        mac.verify_slice(&signature).ok()?;
        Some(nonce.to_owned())
    }
}

/// The connecting user's and enterprise's ids from Box's answer, checked once (Box ids are digits).
struct BoxIds {
    user: BoxUserId,
    enterprise: EnterpriseId,
}

impl BoxIds {
    fn of(me: &User, enterprise: &crate::boxapi::EnterpriseMini) -> Option<Self> {
        Some(Self {
            user: BoxUserId::parse(&me.id).ok()?,
            enterprise: EnterpriseId::parse(&enterprise.id).ok()?,
        })
    }
}

fn record_for(
    method: ConnectMethod,
    me: &User,
    enterprise: &crate::boxapi::EnterpriseMini,
    ids: BoxIds,
    sub: &str,
    scopes: Vec<String>,
    activity_source: ActivitySource,
) -> ConnectionRecord {
    let now = Utc::now();
    ConnectionRecord {
        status: ConnectionStatus::Connected,
        method,
        enterprise_id: ids.enterprise,
        enterprise_name: enterprise.name.clone(),
        connected_by_box_id: ids.user,
        connected_by_login: me.login.clone(),
        connected_by_sub: sub.to_owned(),
        scopes,
        connected_at: now,
        activity_source,
        status_reason: None,
        status_since: now,
        last_sync_at: None,
    }
}

fn box_unavailable(e: BoxError) -> ConnectError {
    tracing::warn!(error = %e, "Box call failed");
    ConnectError::BoxUnavailable(format!(
        "Box did not answer as expected ({e}); nothing was changed, try again in a few minutes"
    ))
}

/// 256 random bits, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_bits_and_differ() {
        let a = random_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, random_token());
    }

    #[test]
    fn config_requires_the_connect_variables() {
        let env: std::collections::HashMap<&str, &str> = [
            ("OAUTH_REDIRECT_URI", "https://api.example/oauth/box/callback"),
            ("APP_SECRET_ID", "app"),
        ]
        .into();
        let err = ConnectConfig::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("CONNECT_RETURN_URL"), "{err}");
    }
}

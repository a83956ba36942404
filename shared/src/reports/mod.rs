//! What a tenant reads and sets: the license report with the Box facts a buyer needs, the user
//! list (JSON or CSV), the audit trail, the settings (SSO credentials go to Secrets Manager and
//! never come back), and a manual sync. [`ReportsService`] is the domain; [`router`] is its HTTP
//! API (the `licenses-api` function). Every call is for the caller's tenant only: the tenant comes
//! from the verified JWT claim and is the partition of every read.

mod http;
mod settings;
pub mod users;

use std::sync::Arc;

use chrono::{DateTime, DurationRound as _, Utc};
use secrecy::SecretString;
use serde::Serialize;

use crate::audit::{AuditLog, AuditRecord};
use crate::config::{ConfigError, Env, or_default, required};
use crate::connection::{ActivitySource, ConnectionStatus, Connections};
use crate::ids::TenantId;
use crate::license::ActivitySignal;
use crate::settings::{SettingsStore, SsoProviderKind, TenantSettings};
use crate::sso::{OutboundPolicy, SsoConfig};
use crate::storage::schema::tenant_pk;
use crate::storage::{SecretStore, StoreError, Table, request_token_from};
use crate::sync::{LicenseReport, LicenseStore, SyncKind, SyncMessage, SyncOutcome, SyncQueue};

pub use http::{ROUTES, Route, router};
pub use settings::{SettingsUpdate, SsoChange, parse_settings, parse_settings_with};
pub use users::{UserPage, UserQuery, UserRow};

/// The Box facts every license answer carries, because buyers assume otherwise (box-api.md).
pub const FACT_DEACTIVATED_HOLD_SEATS: &str =
    "Deactivated Box users still hold paid seats: deactivation stops access, not billing.";
pub const FACT_DELETE_FREES_SEAT: &str =
    "Deleting a Box user frees the seat for someone else; it does not lower the bill.";
pub const FACT_SEATS_DROP_AT_RENEWAL: &str = "The bill drops only when the subscription's seat count is reduced, at renewal; Box has no API to downgrade a license.";
pub const FACT_NO_SEATS_API: &str =
    "Box has no API for the number of seats purchased or their price: enter them in settings (PUT /settings).";
pub const FACT_WORKING_AND_LOGIN_ONLY: &str = "Working means content activity in Box (upload, edit, preview, download, \
     share; also through Box Drive, the mobile apps or integrations) within the threshold; login-only means a login \
     within it but no content activity. The inactive counts follow the tenant's `activity_signal` (any, login or \
     content; shown in the summary); whatever it is, seatsync refuses to change a user with recent activity of \
     either kind.";

/// The largest values settings accept.
pub const MAX_SEATS: u32 = 10_000_000;
pub const MAX_PRICE_MINOR: u64 = 1_000_000_000;
pub const MAX_DAILY_ACTION_CAP: u32 = 10_000;
pub const MAX_PROTECTED_LOGINS: usize = 1_000;

/// The licenses API's configuration, parsed once at cold start.
#[derive(Debug, Clone)]
pub struct ReportsConfig {
    /// `TENANT_CLAIM` (default `tenant_id`).
    pub tenant_claim: String,
    /// `SYNC_QUEUE_URL`: where `POST /syncs` queues a tenant's sync.
    pub sync_queue_url: String,
}

impl ReportsConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Self {
            tenant_claim: or_default(env, "TENANT_CLAIM", "tenant_id"),
            sync_queue_url: required(env, "SYNC_QUEUE_URL")?,
        })
    }
}

/// Why a request failed; each maps to one HTTP answer (see `http.rs`).
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    #[error("{detail}")]
    InvalidInput { field: String, detail: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for ReportsError {
    fn from(e: StoreError) -> Self {
        Self::Unexpected(anyhow::Error::from(e))
    }
}

fn invalid(field: &str, detail: impl Into<String>) -> ReportsError {
    ReportsError::InvalidInput {
        field: field.to_owned(),
        detail: detail.into(),
    }
}

/// `GET /licenses`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicensesView {
    /// `None` until a complete (full) sync has stored a summary.
    pub summary: Option<LicenseReport>,
    /// Why `summary` is null, and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub connection_status: ConnectionStatus,
    pub last_sync: Option<LastSync>,
    pub activity: ActivityView,
    pub box_facts: BoxFacts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastSync {
    pub kind: SyncKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: SyncOutcome,
    pub box_calls: u64,
    pub items_written: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityView {
    /// `box_events` or `sso`; `None` while not connected.
    pub source: Option<ActivitySource>,
    /// `box`, `okta`, `entra` or `google`.
    pub provider: Option<String>,
    /// The earliest activity the source covered: "never" means "not since then".
    pub history_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoxFacts {
    pub deactivated_users_hold_seats: &'static str,
    pub deleting_frees_a_seat_not_the_bill: &'static str,
    pub seats_drop_only_at_renewal: &'static str,
    pub seats_purchased_not_in_box_api: &'static str,
    pub working_and_login_only: &'static str,
}

impl BoxFacts {
    pub const ALL: BoxFacts = BoxFacts {
        deactivated_users_hold_seats: FACT_DEACTIVATED_HOLD_SEATS,
        deleting_frees_a_seat_not_the_bill: FACT_DELETE_FREES_SEAT,
        seats_drop_only_at_renewal: FACT_SEATS_DROP_AT_RENEWAL,
        seats_purchased_not_in_box_api: FACT_NO_SEATS_API,
        working_and_login_only: FACT_WORKING_AND_LOGIN_ONLY,
    };
}

/// `GET /audit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

/// `GET /settings` and the answer to `PUT /settings`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingsView {
    pub seats_purchased: Option<u32>,
    pub price_per_seat_year_minor: Option<u64>,
    pub currency: Option<String>,
    pub inactivity_threshold_days: u16,
    /// Which activity the inactivity threshold counts: `any`, `login` or `content`.
    pub activity_signal: ActivitySignal,
    pub daily_action_cap: u32,
    pub protected_logins: Vec<String>,
    pub content_transfer: bool,
    pub sso: SsoView,
}

/// The SSO provider and whether credentials are stored; never the credentials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SsoView {
    pub provider: Option<SsoProviderKind>,
    pub configured: bool,
}

/// `POST /syncs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncQueued {
    pub queued: bool,
    pub slot: String,
}

/// Reads a tenant's license state and settings, and writes its settings.
pub struct ReportsService {
    config: ReportsConfig,
    table: Table,
    store: Arc<dyn LicenseStore>,
    settings: SettingsStore,
    connections: Connections,
    audit: AuditLog,
    secrets: SecretStore,
    queue: Arc<dyn SyncQueue>,
    /// Which SSO URLs `PUT /settings` accepts: production's unless a test or `seatsync-local`
    /// says otherwise ([`ReportsService::with_sso_outbound`]).
    sso_outbound: OutboundPolicy,
}

impl std::fmt::Debug for ReportsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportsService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ReportsService {
    pub fn new(config: ReportsConfig, table: Table, secrets: SecretStore, queue: Arc<dyn SyncQueue>) -> Self {
        Self {
            config,
            store: Arc::new(table.clone()),
            settings: SettingsStore::new(table.clone()),
            connections: Connections::new(table.clone()),
            audit: AuditLog::new(table.clone()),
            table,
            secrets,
            queue,
            sso_outbound: OutboundPolicy::PROVIDERS_ONLY,
        }
    }

    /// Accepts SSO URLs under `policy` instead of production's rule: for tests and
    /// `tools/seatsync-local` ([`OutboundPolicy::with_loopback_simulators`]); no function calls it.
    pub fn with_sso_outbound(mut self, policy: OutboundPolicy) -> Self {
        self.sso_outbound = policy;
        self
    }

    pub fn sso_outbound(&self) -> &OutboundPolicy {
        &self.sso_outbound
    }

    pub fn config(&self) -> &ReportsConfig {
        &self.config
    }

    /// The license report evaluated now, the last sync, and the Box facts.
    #[tracing::instrument(skip(self), fields(tenant = %tenant))]
    pub async fn licenses(&self, tenant: &TenantId) -> Result<LicensesView, ReportsError> {
        let (summary, settings, checkpoint, connection) = tokio::try_join!(
            self.store.get_summary(tenant),
            self.settings.get(tenant),
            self.store.get_checkpoint(tenant),
            self.connections.get(tenant),
        )?;
        let now = Utc::now();
        let connection_status = connection.as_ref().map_or(ConnectionStatus::Disconnected, |c| c.status);
        let last_sync = checkpoint.as_ref().and_then(|c| c.last_run.as_ref()).map(|r| LastSync {
            kind: r.kind,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome,
            box_calls: r.box_calls,
            items_written: r.items_written,
            error: r.error.clone(),
        });
        let activity = match &summary {
            Some(s) => ActivityView {
                source: Some(s.activity_source),
                provider: Some(s.activity_provider.clone()),
                history_since: s.history_since,
            },
            None => ActivityView {
                source: connection.as_ref().map(|c| c.activity_source),
                provider: connection.as_ref().map(|c| match c.activity_source {
                    ActivitySource::BoxEvents => "box".to_owned(),
                    ActivitySource::Sso => settings
                        .sso_provider
                        .map_or("sso (no provider set)", provider_str)
                        .to_owned(),
                }),
                history_since: checkpoint.as_ref().and_then(|c| c.history_since),
            },
        };
        let detail = summary.is_none().then(|| match connection_status {
            ConnectionStatus::Connected => "a sync has not completed yet for this tenant (Box connection: connected); \
                 the scheduled sync runs every 6 hours, or start one now with POST /syncs"
                .to_owned(),
            ConnectionStatus::ReauthRequired => "a sync has not completed yet, and the Box connection must be \
                 authorized again (Box connection: reauth_required); connect Box again, then a sync runs"
                .to_owned(),
            ConnectionStatus::Disconnected => "a sync has not completed yet: Box is not connected \
                 (Box connection: disconnected); connect Box first (POST /connections/box/start)"
                .to_owned(),
        });
        Ok(LicensesView {
            summary: summary.map(|s| s.report(&settings, now)),
            detail,
            connection_status,
            last_sync,
            activity,
            box_facts: BoxFacts::ALL,
        })
    }

    /// A page of the tenant's users, read from the user indexes: a page reads what it holds, not
    /// the tenant (see [`users::index`]).
    #[tracing::instrument(skip(self, query), fields(tenant = %tenant))]
    pub async fn users(&self, tenant: &TenantId, query: &UserQuery) -> Result<UserPage, ReportsError> {
        let settings = self.settings.get(tenant).await?;
        let inactive_days = query.inactive_days.unwrap_or(settings.inactivity_threshold_days);
        let signal = settings.activity_signal;
        let now = Utc::now();
        let counted = users::index::plan(query, signal, inactive_days, now).counted();
        // The summary only where it gives the total.
        let summary = if counted {
            self.store.get_summary(tenant).await?
        } else {
            None
        };
        match users::indexed_page(&self.table, tenant, query, inactive_days, signal, summary.as_ref(), now).await {
            Ok((page, items_read)) => {
                tracing::debug!(items_read, users = page.users.len(), "users page");
                Ok(page)
            }
            Err(users::ListError::Query(e)) => Err(invalid(e.field, e.detail)),
            Err(users::ListError::Store(e)) => Err(e.into()),
        }
    }

    /// The tenant's audit trail, newest first.
    #[tracing::instrument(skip(self, cursor), fields(tenant = %tenant))]
    pub async fn audit(&self, tenant: &TenantId, limit: u32, cursor: Option<&str>) -> Result<AuditPage, ReportsError> {
        match self.audit.list(tenant, limit, cursor).await {
            Ok(page) => Ok(AuditPage {
                records: page.items,
                next_cursor: page.next_cursor,
            }),
            Err(StoreError::InvalidCursor) => Err(invalid(
                "cursor",
                "`cursor` is not valid here: it is garbled or was issued for another list; start again without it",
            )),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(skip(self), fields(tenant = %tenant))]
    pub async fn settings(&self, tenant: &TenantId) -> Result<SettingsView, ReportsError> {
        let settings = self.settings.get(tenant).await?;
        let configured = self.sso_configured(tenant).await?;
        Ok(view(settings, configured))
    }

    /// Replaces the tenant's settings; stores, replaces or deletes the SSO credentials.
    #[tracing::instrument(skip(self, update), fields(tenant = %tenant))]
    pub async fn put_settings(&self, tenant: &TenantId, update: SettingsUpdate) -> Result<SettingsView, ReportsError> {
        let mut settings = update.settings;
        let current = self.settings.get(tenant).await?;
        let name = self.secrets.sso_secret_name(tenant);
        let configured = match update.sso {
            SsoChange::Keep => {
                settings.sso_provider = current.sso_provider;
                None
            }
            SsoChange::Remove => {
                self.secrets.delete(&name).await.map_err(anyhow::Error::from)?;
                settings.sso_provider = None;
                tracing::info!("SSO credentials deleted");
                Some(false)
            }
            SsoChange::Set(config) => {
                let previous = self
                    .secrets
                    .read_json::<serde::de::IgnoredAny>(&name)
                    .await
                    .map_err(anyhow::Error::from)?
                    .map(|v| v.version_id)
                    .unwrap_or_default();
                let json = serde_json::to_string(&*config).map_err(anyhow::Error::from)?;
                // Derived from the content and the version it replaces: the SDK's retries of this
                // write store it once, and setting A, then B, then A again still makes A current.
                let token = request_token_from(&SecretString::from(format!("{}\0{previous}\0{json}", tenant.as_str())));
                self.secrets
                    .write_json(&name, &*config, &token)
                    .await
                    .map_err(anyhow::Error::from)?;
                settings.sso_provider = Some(config_provider(&config));
                tracing::info!(provider = ?settings.sso_provider, "SSO credentials stored");
                Some(true)
            }
        };
        self.settings.put(tenant, &settings).await?;
        let configured = match configured {
            Some(c) => c,
            None => self.sso_configured(tenant).await?,
        };
        Ok(view(settings, configured))
    }

    /// Queues a full sync of the tenant now, unless one is running or Box is not connected.
    #[tracing::instrument(skip(self), fields(tenant = %tenant))]
    pub async fn start_sync(&self, tenant: &TenantId) -> Result<SyncQueued, ReportsError> {
        match self.connections.get(tenant).await? {
            Some(c) if c.status == ConnectionStatus::Connected => {}
            Some(c) if c.status == ConnectionStatus::ReauthRequired => {
                return Err(ReportsError::Conflict(
                    "the Box connection must be authorized again before a sync can run; connect Box again".into(),
                ));
            }
            _ => {
                return Err(ReportsError::Conflict(
                    "Box is not connected for this tenant; connect Box first (POST /connections/box/start)".into(),
                ));
            }
        }
        let now = Utc::now();
        // The sync's own lease, read without taking it: taking it, even briefly, could turn a
        // scheduled sync away.
        let lease = self
            .table
            .current_lease(&tenant_pk(tenant), crate::sync::SYNC_LEASE_NAME)
            .await?;
        if lease.is_some() {
            return Err(ReportsError::Conflict(
                "a sync is already running for this tenant; its results appear in GET /licenses when it ends".into(),
            ));
        }
        let slot = manual_slot(now);
        let message = SyncMessage {
            tenant: tenant.clone(),
            kind: SyncKind::Full,
            slot: slot.clone(),
            continuation: false,
        };
        self.queue.enqueue(std::slice::from_ref(&message)).await?;
        tracing::info!(slot, "manual sync queued");
        Ok(SyncQueued { queued: true, slot })
    }

    async fn sso_configured(&self, tenant: &TenantId) -> Result<bool, ReportsError> {
        // Only whether it exists: the value is read into a type that keeps nothing.
        Ok(self
            .secrets
            .read_json::<serde::de::IgnoredAny>(&self.secrets.sso_secret_name(tenant))
            .await
            .map_err(anyhow::Error::from)?
            .is_some())
    }
}

/// `manual-<UTC time rounded down to 5 minutes>`: requests within the same 5 minutes are one sync
/// (the sync runs each slot once).
pub fn manual_slot(now: DateTime<Utc>) -> String {
    let rounded = now.duration_trunc(chrono::Duration::minutes(5)).unwrap_or(now);
    format!("manual-{}", rounded.format("%Y-%m-%dT%H:%MZ"))
}

fn view(s: TenantSettings, configured: bool) -> SettingsView {
    SettingsView {
        seats_purchased: s.seats_purchased,
        price_per_seat_year_minor: s.price_per_seat_year_minor,
        currency: s.currency,
        inactivity_threshold_days: s.inactivity_threshold_days,
        activity_signal: s.activity_signal,
        daily_action_cap: s.daily_action_cap,
        protected_logins: s.protected_logins,
        content_transfer: s.content_transfer,
        sso: SsoView {
            provider: s.sso_provider,
            configured,
        },
    }
}

fn provider_str(p: SsoProviderKind) -> &'static str {
    match p {
        SsoProviderKind::Okta => "okta",
        SsoProviderKind::Entra => "entra",
        SsoProviderKind::Google => "google",
    }
}

fn config_provider(config: &SsoConfig) -> SsoProviderKind {
    match config {
        SsoConfig::Okta { .. } => SsoProviderKind::Okta,
        SsoConfig::Entra { .. } => SsoProviderKind::Entra,
        SsoConfig::Google { .. } => SsoProviderKind::Google,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_slots_round_down_to_five_minutes() {
        let t = DateTime::parse_from_rfc3339("2026-11-28T03:24:59Z").unwrap().to_utc();
        assert_eq!(manual_slot(t), "manual-2026-11-28T03:20Z");
    }
}

//! Syncs as the usage-sync function runs them: a schedule fans out one queue message per
//! connected tenant; each message syncs one tenant, at most one sync per tenant at a time, one
//! effective sync per scheduled slot however often the message is delivered, and a run that
//! reaches its deadline continues through a new message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::engine::{SsoSource, SyncError, SyncPlan, Syncer};
use super::sso::ProviderSource;
use super::{SyncKind, SyncOutcome, SyncRun};
use crate::connection::{ActivitySource, ConnectionRecord, ConnectionStatus, Connections};
use crate::ids::TenantId;
use crate::settings::SettingsStore;
use crate::sso::{HttpOptions, SsoConfig};
pub use crate::storage::queue::SqsQueue;
use crate::storage::schema::tenant_pk;
use crate::storage::{LeaseOutcome, PutOutcome, SecretStore, Table};
use crate::tokens::TokenError;

/// One queued sync of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage {
    pub tenant: TenantId,
    pub kind: SyncKind,
    /// The scheduled time slot (or a request id): the same slot syncs once.
    pub slot: String,
    /// Set when a run continues after its deadline.
    #[serde(default)]
    pub continuation: bool,
}

/// Where sync messages go (SQS in production).
#[async_trait]
pub trait SyncQueue: Send + Sync {
    async fn enqueue(&self, messages: &[SyncMessage]) -> anyhow::Result<()>;
}

/// What happened to one message.
#[derive(Debug)]
pub enum TenantOutcome {
    Done(SyncRun),
    /// Stopped at the deadline; a continuation message was queued.
    Continued(SyncRun),
    Skipped(String),
    /// `retry`: the failure is transient, so the message should be delivered again.
    Failed {
        retry: bool,
        error: String,
    },
}

/// How long a tenant's sync lease lasts when the invocation has no deadline: longer than
/// Lambda's 15 minutes.
const SYNC_LEASE: Duration = Duration::from_secs(16 * 60);
/// With a deadline, the lease ends this long after it: Lambda stops an invocation at its
/// deadline, so a lease still held after that belongs to a run that was killed, and the
/// message's next delivery (after the queue's visibility timeout, longer than the function's
/// timeout) takes it over and resumes the run. The grace covers clock skew between hosts.
pub const SYNC_LEASE_GRACE: Duration = Duration::from_secs(5);
/// How long "this slot is done" is remembered: longer than SQS keeps a message.
const SLOT_MEMORY_DAYS: i64 = 15;

#[derive(Serialize, Deserialize)]
struct SlotDone {
    run_id: String,
    expires_at: i64,
}

pub struct SyncService {
    pub table: Table,
    pub connections: Connections,
    pub settings: SettingsStore,
    pub secrets: SecretStore,
    pub syncer: Syncer,
    pub sso_http: HttpOptions,
}

impl SyncService {
    /// Queues one message per connected tenant (incremental passes: only tenants whose activity
    /// comes from Box's event stream). Returns how many were queued.
    #[tracing::instrument(skip(self, queue))]
    pub async fn fan_out(&self, queue: &dyn SyncQueue, kind: SyncKind, slot: &str) -> anyhow::Result<usize> {
        let mut cursor: Option<String> = None;
        let mut queued = 0;
        // Bounded: 10,000 pages of 500 tenants.
        for _ in 0..10_000 {
            let page = self
                .connections
                .page_by_status(ConnectionStatus::Connected, 500, cursor.as_deref())
                .await?;
            let messages: Vec<SyncMessage> = page
                .items
                .into_iter()
                .filter(|(_, c)| kind == SyncKind::Full || c.activity_source == ActivitySource::BoxEvents)
                .map(|(tenant, _)| SyncMessage {
                    tenant,
                    kind,
                    slot: slot.to_owned(),
                    continuation: false,
                })
                .collect();
            queue.enqueue(&messages).await?;
            queued += messages.len();
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => {
                    tracing::info!(queued, "sync fan-out done");
                    return Ok(queued);
                }
            }
        }
        anyhow::bail!("more than 10,000 pages of connected tenants")
    }

    /// Syncs the message's tenant; queues a continuation when the run stops at its deadline.
    #[tracing::instrument(skip(self, queue, message), fields(tenant = %message.tenant, kind = ?message.kind))]
    pub async fn run(&self, queue: &dyn SyncQueue, message: &SyncMessage, deadline: Option<Instant>) -> TenantOutcome {
        match self.run_inner(queue, message, deadline).await {
            Ok(outcome) => outcome,
            Err(e) => {
                let retry = is_transient(&e);
                tracing::warn!(error = %e, retry, "tenant sync failed");
                TenantOutcome::Failed {
                    retry,
                    error: e.to_string(),
                }
            }
        }
    }

    async fn run_inner(
        &self,
        queue: &dyn SyncQueue,
        message: &SyncMessage,
        deadline: Option<Instant>,
    ) -> Result<TenantOutcome, SyncError> {
        let tenant = &message.tenant;
        if message.slot.is_empty() || message.slot.len() > 80 || message.slot.contains('#') {
            return Ok(TenantOutcome::Failed {
                retry: false,
                error: "the message's slot is malformed".into(),
            });
        }
        let pk = tenant_pk(tenant);
        let done_sk = format!("SYNCDONE#{:?}#{}", message.kind, message.slot);
        if !message.continuation && self.table.get::<SlotDone>(&pk, &done_sk).await?.is_some() {
            return Ok(TenantOutcome::Skipped(
                "this scheduled sync already ran (duplicate delivery)".into(),
            ));
        }
        let connection = match self.connections.get(tenant).await? {
            Some(c) if c.status == ConnectionStatus::Connected => c,
            Some(c) if c.status == ConnectionStatus::ReauthRequired => {
                let reason = format!(
                    "the Box connection must be authorized again: {}",
                    c.status_reason.unwrap_or_else(|| "Box refused the stored grant".into())
                );
                self.syncer.record_skip(tenant, message.kind, &reason).await?;
                return Ok(TenantOutcome::Skipped(reason));
            }
            _ => return Ok(TenantOutcome::Skipped("the tenant has no Box connection".into())),
        };
        let holder = uuid::Uuid::new_v4().to_string();
        let lease = deadline.map_or(SYNC_LEASE, |d| {
            (d.saturating_duration_since(Instant::now()) + SYNC_LEASE_GRACE).min(SYNC_LEASE)
        });
        if let LeaseOutcome::HeldBy { expires_at, .. } = self
            .table
            .try_acquire_lease(&pk, super::SYNC_LEASE_NAME, &holder, lease)
            .await?
        {
            if message.kind == SyncKind::Incremental {
                // Nothing is lost: the next pass, 15 minutes on, reads on from the same stream
                // position. Retrying it would only fill the DLQ while a long full sync runs.
                return Ok(TenantOutcome::Skipped(format!(
                    "another sync of this tenant is running (its lease ends at {expires_at}); the next \
                     incremental pass reads these events"
                )));
            }
            // A live run: this delivery must wait for it, not vanish. SQS delivers the message
            // again after its visibility timeout (then, after maxReceiveCount, to the DLQ).
            return Ok(TenantOutcome::Failed {
                retry: true,
                error: format!(
                    "another sync of this tenant is running (its lease ends at {expires_at}); delivered again later"
                ),
            });
        }
        let result = self.sync_connected(message, &connection, deadline).await;
        if let Err(e) = self.table.release_lease(&pk, super::SYNC_LEASE_NAME, &holder).await {
            tracing::warn!(error = %e, "could not release the sync lease; it expires by itself");
        }
        let run = result?;
        match run.outcome {
            SyncOutcome::Continued => {
                let next = SyncMessage {
                    continuation: true,
                    ..message.clone()
                };
                // Queued before this message is acknowledged; if it cannot be, the message is
                // delivered again and resumes the run from its saved progress.
                if let Err(e) = queue.enqueue(std::slice::from_ref(&next)).await {
                    return Ok(TenantOutcome::Failed {
                        retry: true,
                        error: format!("the run's continuation could not be queued: {e:#}"),
                    });
                }
                Ok(TenantOutcome::Continued(run))
            }
            _ => {
                let expires_at = (Utc::now() + chrono::Duration::days(SLOT_MEMORY_DAYS)).timestamp();
                let done = SlotDone {
                    run_id: run.run_id.clone(),
                    expires_at,
                };
                if let PutOutcome::AlreadyExists = self.table.put_new(&pk, &done_sk, &done).await? {
                    tracing::info!("the slot was completed by another delivery too");
                }
                if message.kind == SyncKind::Full {
                    self.connections.set_last_sync(tenant, run.finished_at).await?;
                }
                Ok(TenantOutcome::Done(run))
            }
        }
    }

    async fn sync_connected(
        &self,
        message: &SyncMessage,
        connection: &ConnectionRecord,
        deadline: Option<Instant>,
    ) -> Result<SyncRun, SyncError> {
        let settings = self.settings.get(&message.tenant).await?;
        let sso = match self.sso_source(&message.tenant, connection.activity_source).await {
            Ok(sso) => sso,
            Err(e) => {
                // A setting the tenant must fix: say so where the tenant looks (`last_sync`).
                if !is_transient(&e)
                    && let Err(record) = self
                        .syncer
                        .record_skip(&message.tenant, message.kind, &e.to_string())
                        .await
                {
                    tracing::warn!(error = %record, "could not record why the sync could not start");
                }
                return Err(e);
            }
        };
        let plan = SyncPlan {
            tenant: message.tenant.clone(),
            kind: message.kind,
            source: connection.activity_source,
            settings,
            sso,
            deadline,
        };
        self.syncer.sync(&plan).await
    }
}

impl SyncService {
    /// The tenant's SSO provider when Box's events are closed to it; its stored endpoints are checked
    /// against the providers' hosts again here (settings written before that rule existed).
    async fn sso_source(
        &self,
        tenant: &TenantId,
        source: ActivitySource,
    ) -> Result<Option<Arc<dyn SsoSource>>, SyncError> {
        if source == ActivitySource::BoxEvents {
            return Ok(None);
        }
        let name = self.secrets.sso_secret_name(tenant);
        let config = self
            .secrets
            .read_json::<SsoConfig>(&name)
            .await
            .map_err(|e| SyncError::Sso(e.to_string()))?
            .ok_or_else(|| {
                SyncError::Precondition(
                    "Box's event stream is closed for this tenant and no SSO provider credentials are stored \
                     (set them in the tenant's settings)"
                        .into(),
                )
            })?
            .value;
        let provider =
            crate::sso::provider(&config, self.sso_http.clone()).map_err(|e| SyncError::Sso(e.to_string()))?;
        Ok(Some(Arc::new(ProviderSource(provider))))
    }
}

fn is_transient(e: &SyncError) -> bool {
    match e {
        SyncError::Box(b) => b.is_transient(),
        SyncError::Token(TokenError::Box(b)) => b.is_transient(),
        SyncError::Token(TokenError::Busy | TokenError::Storage(_)) => true,
        SyncError::Store(_) => true,
        SyncError::Token(_) | SyncError::Sso(_) | SyncError::Precondition(_) => false,
    }
}

/// The sync's queue is the SQS adapter (`storage/queue.rs`).
#[async_trait]
impl SyncQueue for SqsQueue {
    async fn enqueue(&self, messages: &[SyncMessage]) -> anyhow::Result<()> {
        Ok(self.send_json(messages).await?)
    }
}

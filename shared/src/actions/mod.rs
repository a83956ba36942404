//! License actions: deactivating, reactivating and deleting Box users on a tenant's request,
//! with safety rails checked before any Box write, dry runs, `Idempotency-Key` replays, a
//! per-tenant daily cap, one audit record per attempt, and the license state updated in the
//! same step as the Box change. [`ActionsService`] is the domain and answers typed outcomes
//! ([`SingleOutcome`], [`BulkOutcome`]); [`router`] is its HTTP API, which alone decides statuses.
//!
//! The rooms: `rails.rs` (the safety rails, pure), `pipeline.rs` (one user: rails, dry run, daily
//! cap, Box, audit), `change.rs` (the Box steps: read right before the write, start nothing that
//! cannot finish before the invocation's deadline, complete a change Box already shows without
//! writing again, store the license state by version), `failure.rs` (what a failed step means),
//! `summary.rs` (how the summary moves), `outcome.rs` (the typed results), `http.rs` (routes,
//! rendering, status mapping) and `idempotency.rs` (`Idempotency-Key` replays of rendered answers).

mod change;
mod failure;
mod http;
mod idempotency;
mod outcome;
mod pipeline;
mod rails;
mod summary;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::{AuditAction, AuditLog};
use crate::boxapi::{BoxClient, UserStatus};
use crate::connection::{ConnectionRecord, Connections};
use crate::ids::{BoxUserId, TenantId};
use crate::license::ActivitySignal;
use crate::license::UserLicense;
use crate::settings::{SettingsStore, TenantSettings};
use crate::storage::Table;
use crate::tokens::TokenProvider;

pub use failure::Fault;
pub use http::{ROUTES, Route, router};
pub use idempotency::{IDEMPOTENCY_TTL_HOURS, valid_idempotency_key};
pub use outcome::{ActionsError, BulkOutcome, SingleOutcome, Unfinished, UserOutcome, UserResult};
pub use rails::Refusal;
use summary::SummaryDelta;

/// The most users one bulk request may name or select.
pub const MAX_BULK_USERS: usize = 500;
/// The longest `reason` accepted.
pub const MAX_REASON_CHARS: usize = 500;
/// Bulk work stops starting new users after this long, to answer within API Gateway's 29 s.
const BULK_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);
/// Users of one bulk request worked on at the same time.
const BULK_CONCURRENCY: usize = 4;

/// What Box does and does not do when a user is deleted; every delete answer says it.
pub const DELETE_BILLING_NOTE: &str = "Deleting a user frees their seat for someone else, but does not lower the \
     bill: seats drop only when the Box subscription's seat count is reduced (at renewal).";
/// Box moves large content in the background with no completion signal.
pub const TRANSFER_NOTE: &str = "The content was moved into a folder owned by the receiving user. Large transfers \
     finish later at Box (after about 10 minutes) and Box sends no completion signal.";

/// How an attempt budgets its time against the invocation's deadline.
#[derive(Debug, Clone)]
pub struct ActionTimings {
    /// What a change needs once started, in the worst case this function accepts: the Box status
    /// write, ending the sessions, the stored state and the audit record. With less time left, the
    /// change is not started (refused as out of time; the caller retries).
    pub write_budget: std::time::Duration,
    /// Kept free at the end for the stored state, the audit record and the answer: Box calls
    /// still running then are cut and recorded as not answered.
    pub record_reserve: std::time::Duration,
    /// The deadline when the invocation's is unknown: API Gateway gives up after 29 s.
    pub without_deadline: std::time::Duration,
    /// An `in_progress` key's lease lasts until its invocation's deadline plus this; past it the
    /// invocation is dead and another attempt may take the key over.
    pub lease_grace: std::time::Duration,
}

impl Default for ActionTimings {
    fn default() -> Self {
        Self {
            write_budget: std::time::Duration::from_secs(8),
            record_reserve: std::time::Duration::from_secs(2),
            without_deadline: std::time::Duration::from_secs(29),
            lease_grace: std::time::Duration::from_secs(2),
        }
    }
}

/// The actions function's configuration, parsed once at cold start.
#[derive(Debug, Clone)]
pub struct ActionsConfig {
    /// `TENANT_CLAIM` (default `tenant_id`).
    pub tenant_claim: String,
    /// `APP_SECRET_ID`: the secret holding the Box app (for refreshing tenants' tokens).
    pub app_secret_id: String,
}

impl ActionsConfig {
    pub fn from_env(env: &dyn crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            tenant_claim: crate::config::or_default(env, "TENANT_CLAIM", "tenant_id"),
            app_secret_id: crate::config::required(env, "APP_SECRET_ID")?,
        })
    }
}

/// Which change to make to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deactivate,
    Reactivate,
    /// Delete, first moving owned content to `transfer_to` when given.
    Delete {
        transfer_to: Option<BoxUserId>,
    },
}

impl Action {
    fn audit_action(&self) -> AuditAction {
        match self {
            Action::Deactivate => AuditAction::Deactivate,
            Action::Reactivate => AuditAction::Reactivate,
            Action::Delete { transfer_to: None } => AuditAction::Delete,
            Action::Delete { transfer_to: Some(_) } => AuditAction::TransferAndDelete,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Action::Deactivate => "deactivate",
            Action::Reactivate => "reactivate",
            Action::Delete { .. } => "delete",
        }
    }

    /// The status Box should show afterwards (`None`: the user is gone).
    fn target_status(&self) -> Option<UserStatus> {
        match self {
            Action::Deactivate => Some(UserStatus::Inactive),
            Action::Reactivate => Some(UserStatus::Active),
            Action::Delete { .. } => None,
        }
    }

    /// Removing access is what the recent-activity rail guards; giving it back is not.
    fn removes_access(&self) -> bool {
        !matches!(self, Action::Reactivate)
    }
}

/// Who asked, within which request; taken at the HTTP edge.
#[derive(Debug, Clone)]
pub struct Call {
    pub tenant: TenantId,
    /// The person (`sub`).
    pub actor: String,
    /// API Gateway's `requestContext.requestId`.
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// When the invocation ends (Lambda's deadline); `None`: unknown, see [`ActionTimings`].
    pub deadline: Option<tokio::time::Instant>,
}

/// The caller's choices for one attempt.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub reason: Option<String>,
    pub dry_run: bool,
    pub override_recent_activity: bool,
}

/// What every attempt of one request shares: who, the connection and the settings.
struct Context<'a> {
    call: &'a Call,
    options: &'a Options,
    connection: Option<ConnectionRecord>,
    settings: TenantSettings,
    now: DateTime<Utc>,
    /// When this attempt must have answered.
    deadline: tokio::time::Instant,
}

/// The license actions.
pub struct ActionsService {
    config: ActionsConfig,
    table: Table,
    tokens: Arc<TokenProvider>,
    box_api: BoxClient,
    connections: Connections,
    settings: SettingsStore,
    audit: AuditLog,
    timings: ActionTimings,
}

impl std::fmt::Debug for ActionsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionsService").finish_non_exhaustive()
    }
}

impl ActionsService {
    /// `box_api` should be built with [`crate::boxapi::RetryPolicy::interactive`] (API Gateway's 29 s).
    pub fn new(config: ActionsConfig, table: Table, tokens: Arc<TokenProvider>, box_api: BoxClient) -> Self {
        Self {
            config,
            connections: Connections::new(table.clone()),
            settings: SettingsStore::new(table.clone()),
            audit: AuditLog::new(table.clone()),
            table,
            tokens,
            box_api,
            timings: ActionTimings::default(),
        }
    }

    /// Other time budgets than [`ActionTimings::default`].
    pub fn with_timings(mut self, timings: ActionTimings) -> Self {
        self.timings = timings;
        self
    }

    /// When `call` must have answered: its invocation's deadline, or API Gateway's limit.
    fn deadline(&self, call: &Call) -> tokio::time::Instant {
        let limit = tokio::time::Instant::now() + self.timings.without_deadline;
        call.deadline.map_or(limit, |d| d.min(limit))
    }

    pub fn config(&self) -> &ActionsConfig {
        &self.config
    }

    async fn context<'a>(&self, call: &'a Call, options: &'a Options) -> Result<Context<'a>, ActionsError> {
        let (connection, settings) = tokio::join!(self.connections.get(&call.tenant), self.settings.get(&call.tenant));
        Ok(Context {
            call,
            options,
            connection: connection.map_err(|e| ActionsError::Internal(e.into()))?,
            settings: settings.map_err(|e| ActionsError::Internal(e.into()))?,
            now: Utc::now(),
            deadline: self.deadline(call),
        })
    }

    /// One user: deactivate, reactivate or delete. `Err` only for seatsync's own failures before
    /// Box was written to.
    pub async fn single(
        &self,
        call: &Call,
        user: BoxUserId,
        action: Action,
        options: Options,
    ) -> Result<SingleOutcome, ActionsError> {
        let ctx = self.context(call, &options).await?;
        let (result, delta) = self.act(&ctx, &user, &action).await?;
        if let Err(e) = self.apply_summary(&call.tenant, &delta).await {
            tracing::error!(error = %e, "the change is done but the summary could not be adjusted");
        }
        Ok(SingleOutcome {
            action,
            dry_run: options.dry_run,
            result,
        })
    }

    /// Many users: by id, or every active seat holder inactive for at least `inactive_days`.
    pub async fn bulk(&self, call: &Call, selection: Selection, options: Options) -> Result<BulkOutcome, Unfinished> {
        let unfinished = |error: ActionsError| Unfinished {
            error,
            touched_box: false,
        };
        let ctx = self.context(call, &options).await.map_err(unfinished)?;
        let (targets, more_matching) = self
            .select(&call.tenant, &selection, ctx.settings.activity_signal, ctx.now)
            .await
            .map_err(unfinished)?;
        let started = tokio::time::Instant::now();
        let ctx = &ctx;
        let results: Vec<Result<(UserResult, SummaryDelta), ActionsError>> =
            futures::StreamExt::collect(futures::StreamExt::buffered(
                futures::stream::iter(targets.into_iter().map(|(id, listed)| async move {
                    if started.elapsed() > BULK_TIME_BUDGET {
                        return Ok(self.not_attempted(ctx, &id, listed.as_ref()).await);
                    }
                    // Judged by a strongly consistent read of the user, never by the index
                    // copy that selected them (a GSI can lag a sync that just saw them active).
                    self.act(ctx, &id, &Action::Deactivate).await
                })),
                BULK_CONCURRENCY,
            ))
            .await;
        let mut delta = SummaryDelta::default();
        let mut rows = Vec::with_capacity(results.len());
        let mut touched_box = false;
        for r in results {
            match r {
                Ok((row, d)) => {
                    touched_box |= row.outcome.touched_box();
                    delta.merge(d);
                    rows.push(row);
                }
                Err(error) => {
                    // A storage failure mid-way: the request fails, but what was done stays replayable.
                    let _ = self.apply_summary(&call.tenant, &delta).await;
                    return Err(Unfinished { error, touched_box });
                }
            }
        }
        if let Err(e) = self.apply_summary(&call.tenant, &delta).await {
            tracing::error!(error = %e, "changes are done but the summary could not be adjusted");
        }
        Ok(BulkOutcome {
            dry_run: options.dry_run,
            rows,
            more_matching,
        })
    }

    /// The users a bulk request is about, each with the copy that selected it, if any (for the
    /// record of a user not attempted; the change itself reads the user again).
    async fn select(
        &self,
        tenant: &TenantId,
        selection: &Selection,
        signal: ActivitySignal,
        now: DateTime<Utc>,
    ) -> Result<(Vec<(BoxUserId, Option<UserLicense>)>, usize), ActionsError> {
        match selection {
            Selection::Ids(ids) => Ok((ids.iter().map(|id| (id.clone(), None)).collect(), 0)),
            Selection::InactiveDays(days) => {
                // The longest idle first (never active before anyone), so a capped run takes the
                // clearest cases; read from the activity index, as the inactive list is.
                let days = u16::try_from(*days).unwrap_or(u16::MAX);
                let (chosen, more) = crate::reports::users::index::oldest_inactive(
                    &self.table,
                    tenant,
                    signal,
                    days,
                    MAX_BULK_USERS as u32,
                    now,
                    |u| rails::selected_as_inactive(u, signal, u32::from(days), now),
                )
                .await
                .map_err(|e| ActionsError::Internal(e.into()))?;
                let targets = chosen.into_iter().map(|u| (u.box_user_id.clone(), Some(u))).collect();
                Ok((targets, more))
            }
        }
    }
}

/// Which users a bulk request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Ids(Vec<BoxUserId>),
    InactiveDays(u32),
}

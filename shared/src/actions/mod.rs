//! License actions: deactivating, reactivating and deleting Box users on a tenant's request,
//! with safety rails checked before any Box write, dry runs, `Idempotency-Key` replays, a
//! per-tenant daily cap, one audit record per attempt, and the license state updated in the
//! same step as the Box change. [`ActionsService`] is the domain; [`router`] is its HTTP API.
//!
//! One pipeline ([`ActionsService::act`]) decides and performs the change for one user; the
//! single-user routes map its result to an HTTP answer, the bulk route collects one result per user.
//! Its steps after the rails ([`change`]) read the user from Box right before the write, start
//! nothing that cannot finish before the invocation's deadline, complete a change Box already
//! shows (a retry after a cut attempt) without writing again, and write the license state by
//! version so no concurrent writer's change is lost.

mod change;
mod http;
mod idempotency;

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::audit::{AuditAction, AuditLog, AuditOutcome, AuditRecord};
use crate::boxapi::{BoxClient, UserStatus};
use crate::connection::{ConnectionRecord, ConnectionStatus, Connections};
use crate::ids::{BoxUserId, TenantId};
use crate::license::{Activity, UserKind, UserLicense};
use crate::problem::Problem;
use crate::settings::{SettingsStore, TenantSettings};
use crate::storage::Table;
use crate::storage::schema::tenant_pk;
use crate::sync::{LicenseStore, LicenseSummary};
use crate::tokens::TokenProvider;

use change::box_rails;
pub use http::{ROUTES, Route, router};
pub use idempotency::{IDEMPOTENCY_TTL_HOURS, valid_idempotency_key};

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
    /// change is not started (503 with `Retry-After`).
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

/// An HTTP answer, as stored for idempotent replays.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            body: body.to_string(),
            retry_after: None,
        }
    }

    pub fn problem(problem: &Problem) -> Self {
        Self {
            status: problem.status,
            content_type: crate::problem::CONTENT_TYPE.into(),
            body: serde_json::to_string(problem).unwrap_or_else(|_| "{}".into()),
            retry_after: None,
        }
    }

    pub fn error(e: &ApiError) -> Self {
        if let ApiError::Unexpected(cause) = e {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        Self::problem(&e.problem())
    }
}

/// Why a safety rail (or the state of things) stopped a change before Box changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not in this tenant's license state (or removed from Box since).
    NotFound,
    NotManaged(UserKind),
    Admin,
    /// Box's answer has no role seatsync knows: it may be an administrator.
    UnknownRole,
    /// Box says the user belongs to another enterprise than the connected one (state left from an
    /// earlier connection).
    OtherEnterprise,
    /// Too little of the invocation is left to finish a change; nothing was started.
    OutOfTime,
    /// Reading the user from Box right before the write failed: (HTTP status, what happened).
    BoxRead(u16, String),
    ConnectedAccount,
    ProtectedLogin,
    RecentlyActive {
        days: i64,
        threshold: u16,
    },
    /// The connection cannot be used: (status, what to do).
    NotConnected(String),
    OwnsContent,
    /// `transfer_to` cannot receive the content.
    BadTransferTarget(String),
    DailyCap(u32),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotFound => 404,
            Refusal::BadTransferTarget(_) => 422,
            Refusal::DailyCap(_) => 429,
            Refusal::OutOfTime => 503,
            Refusal::BoxRead(status, _) => *status,
            _ => 409,
        }
    }

    pub fn detail(&self, user: &str, action: &Action) -> String {
        let verb = action.verb();
        match self {
            Refusal::NotFound => format!(
                "Box user {user} is not in this tenant's license state (never synced, or no longer in Box); \
                 run a sync if the user was added recently"
            ),
            Refusal::NotManaged(kind) => format!(
                "Box user {user} is {} and holds no seat of this enterprise; seatsync does not {verb} such accounts",
                match kind {
                    UserKind::AppUser => "an app user (a custom app's service identity)",
                    UserKind::External => "an external collaborator",
                    UserKind::Managed => "a managed user",
                }
            ),
            Refusal::Admin => format!(
                "Box user {user} is an admin or co-admin of the enterprise; seatsync never changes administrators. \
                 Change their role in the Box Admin Console first"
            ),
            Refusal::UnknownRole => format!(
                "Box did not say which role user {user} has (or named one seatsync does not know); they may be \
                 an administrator, and seatsync never changes administrators. Nothing was changed"
            ),
            Refusal::OtherEnterprise => format!(
                "Box user {user} belongs to another Box enterprise than the one this tenant is connected to; \
                 seatsync acts only on users of the connected enterprise. Nothing was changed"
            ),
            Refusal::OutOfTime => format!(
                "this request had too little time left to {verb} Box user {user} safely; nothing was started. \
                 Retry with the same Idempotency-Key"
            ),
            Refusal::BoxRead(_, detail) => detail.clone(),
            Refusal::ConnectedAccount => format!(
                "Box user {user} is the account seatsync is connected through; changing it would cut seatsync off. \
                 Connect with another admin first"
            ),
            Refusal::ProtectedLogin => format!(
                "Box user {user} has a protected login (tenant settings `protected_logins`); remove it from the \
                 list to {verb} this user"
            ),
            Refusal::RecentlyActive { days, threshold } => format!(
                "Box user {user} was active {days} day(s) ago, within the tenant's inactivity threshold of \
                 {threshold} days; to {verb} them anyway, send `override_recent_activity: true` with a `reason`"
            ),
            Refusal::NotConnected(why) => why.clone(),
            Refusal::OwnsContent => format!(
                "Box user {user} still owns files or folders, and Box refuses to delete a user who owns content \
                 (deleting it would lose the files). Nothing was changed. Move the content to another user \
                 first: repeat the request with `?transfer_to=<box user id>`"
            ),
            Refusal::BadTransferTarget(why) => why.clone(),
            Refusal::DailyCap(cap) => format!(
                "the tenant's daily cap of {cap} user changes is reached (UTC day); try again tomorrow or raise \
                 `daily_action_cap` in the settings"
            ),
        }
    }
}

/// The result of one attempt on one user.
#[derive(Debug, Clone, Serialize)]
pub struct UserResult {
    pub box_user_id: String,
    pub login: Option<String>,
    pub outcome: AuditOutcome,
    pub before: Option<&'static str>,
    pub after: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip)]
    pub http_status: u16,
    #[serde(skip)]
    pub audit_id: String,
    #[serde(skip)]
    pub sessions_ended: bool,
    #[serde(skip)]
    pub transfer_folder: Option<String>,
}

/// What the summary must change by after successful changes.
#[derive(Debug, Clone, Default)]
struct SummaryDelta {
    deactivated: i64,
    admins: i64,
    seat_holders: i64,
    content_owners: i64,
    histogram_add: Vec<Activity>,
    histogram_remove: Vec<Activity>,
}

impl SummaryDelta {
    fn is_empty(&self) -> bool {
        self.deactivated == 0
            && self.admins == 0
            && self.seat_holders == 0
            && self.content_owners == 0
            && self.histogram_add.is_empty()
            && self.histogram_remove.is_empty()
    }

    fn merge(&mut self, other: SummaryDelta) {
        self.deactivated += other.deactivated;
        self.admins += other.admins;
        self.seat_holders += other.seat_holders;
        self.content_owners += other.content_owners;
        self.histogram_add.extend(other.histogram_add);
        self.histogram_remove.extend(other.histogram_remove);
    }

    fn apply(&self, summary: &mut LicenseSummary) {
        let adjust = |v: &mut u32, d: i64| *v = (i64::from(*v) + d).clamp(0, i64::from(u32::MAX)) as u32;
        adjust(&mut summary.deactivated, self.deactivated);
        adjust(&mut summary.admins, self.admins);
        adjust(&mut summary.seat_holders, self.seat_holders);
        adjust(&mut summary.content_owners, self.content_owners);
        for a in &self.histogram_remove {
            summary.histogram.remove(a);
        }
        for a in &self.histogram_add {
            summary.histogram.add(a);
        }
    }
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

/// Sort key of a tenant's change counter for one UTC day.
fn daily_counter_sk(day: chrono::NaiveDate) -> String {
    format!("ACTIONS#{}", day.format("%Y-%m-%d"))
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

    async fn context<'a>(&self, call: &'a Call, options: &'a Options) -> Result<Context<'a>, ApiError> {
        let (connection, settings) = tokio::join!(self.connections.get(&call.tenant), self.settings.get(&call.tenant));
        Ok(Context {
            call,
            options,
            connection: connection.map_err(|e| ApiError::Unexpected(e.into()))?,
            settings: settings.map_err(|e| ApiError::Unexpected(e.into()))?,
            now: Utc::now(),
            deadline: self.deadline(call),
        })
    }

    /// One user: deactivate, reactivate or delete. `fingerprint` identifies the request for
    /// idempotency (method, path, canonical body).
    pub async fn single(
        &self,
        call: &Call,
        user: BoxUserId,
        action: Action,
        options: Options,
        fingerprint: &str,
    ) -> Answer {
        let work = async {
            let ctx = match self.context(call, &options).await {
                Ok(ctx) => ctx,
                Err(e) => return (Answer::error(&e), false),
            };
            let (result, delta) = match self.act(&ctx, &user, &action, None).await {
                Ok(r) => r,
                Err(e) => return (Answer::error(&e), false),
            };
            let touched = result.outcome == AuditOutcome::Done || result.outcome == AuditOutcome::Failed;
            if let Err(e) = self.apply_summary(&call.tenant, &delta).await {
                tracing::error!(error = %e, "the change is done but the summary could not be adjusted");
            }
            (single_answer(&result, &action, options.dry_run), touched)
        };
        self.idempotent(call, options.dry_run, fingerprint, work).await
    }

    /// Many users: by id, or every active seat holder inactive for at least `inactive_days`.
    pub async fn bulk(&self, call: &Call, selection: Selection, options: Options, fingerprint: &str) -> Answer {
        let work = async {
            let ctx = match self.context(call, &options).await {
                Ok(ctx) => ctx,
                Err(e) => return (Answer::error(&e), false),
            };
            let (targets, more_matching) = match self.select(&call.tenant, &selection, ctx.now).await {
                Ok(t) => t,
                Err(e) => return (Answer::error(&e), false),
            };
            let started = tokio::time::Instant::now();
            let ctx = &ctx;
            let results: Vec<Result<(UserResult, SummaryDelta), ApiError>> =
                futures::StreamExt::collect(futures::StreamExt::buffered(
                    futures::stream::iter(targets.into_iter().map(|(id, preloaded)| async move {
                        if started.elapsed() > BULK_TIME_BUDGET {
                            return Ok(self.not_attempted(ctx, &id, preloaded.as_ref()).await);
                        }
                        self.act(ctx, &id, &Action::Deactivate, preloaded).await
                    })),
                    BULK_CONCURRENCY,
                ))
                .await;
            let mut delta = SummaryDelta::default();
            let mut rows = Vec::with_capacity(results.len());
            let mut touched = false;
            for r in results {
                match r {
                    Ok((row, d)) => {
                        touched |= matches!(row.outcome, AuditOutcome::Done | AuditOutcome::Failed);
                        delta.merge(d);
                        rows.push(row);
                    }
                    Err(e) => {
                        // A storage failure mid-way: answer 500, but keep what was done replayable.
                        let _ = self.apply_summary(&call.tenant, &delta).await;
                        return (Answer::error(&e), touched);
                    }
                }
            }
            if let Err(e) = self.apply_summary(&call.tenant, &delta).await {
                tracing::error!(error = %e, "changes are done but the summary could not be adjusted");
            }
            (bulk_answer(&rows, options.dry_run, more_matching), touched)
        };
        self.idempotent(call, options.dry_run, fingerprint, work).await
    }

    /// The users a bulk request is about, each with its stored state when already loaded.
    async fn select(
        &self,
        tenant: &TenantId,
        selection: &Selection,
        now: DateTime<Utc>,
    ) -> Result<(Vec<(BoxUserId, Option<UserLicense>)>, usize), ApiError> {
        match selection {
            Selection::Ids(ids) => Ok((ids.iter().map(|id| (id.clone(), None)).collect(), 0)),
            Selection::InactiveDays(days) => {
                let users = LicenseStore::load_users(&self.table, tenant)
                    .await
                    .map_err(|e| ApiError::Unexpected(e.into()))?;
                let cutoff = now - Duration::days(i64::from(*days));
                let mut chosen: Vec<UserLicense> = users
                    .into_values()
                    .filter(|u| u.holds_seat() && u.status == UserStatus::Active)
                    .filter(|u| match u.activity {
                        Activity::Seen { at, .. } => at < cutoff,
                        Activity::Never => true,
                        Activity::NoData => false,
                    })
                    .collect();
                // The longest idle first (never active before anyone), so a capped run takes the clearest cases.
                chosen.sort_by(|a, b| {
                    a.activity
                        .at()
                        .cmp(&b.activity.at())
                        .then_with(|| a.box_user_id.cmp(&b.box_user_id))
                });
                let more = chosen.len().saturating_sub(MAX_BULK_USERS);
                chosen.truncate(MAX_BULK_USERS);
                let targets = chosen
                    .into_iter()
                    .filter_map(|u| BoxUserId::parse(&u.box_user_id).ok().map(|id| (id, Some(u))))
                    .collect();
                Ok((targets, more))
            }
        }
    }

    async fn not_attempted(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: Option<&UserLicense>,
    ) -> (UserResult, SummaryDelta) {
        let detail = "not attempted: this request ran out of time; send this user again".to_owned();
        let result = self
            .record(
                ctx,
                user,
                stored,
                &Action::Deactivate,
                AuditOutcome::Refused,
                None,
                Some(detail),
                503,
            )
            .await;
        (result, SummaryDelta::default())
    }

    /// The whole pipeline for one user: rails, dry run, daily cap, Box, license state, audit.
    /// `Err` only for seatsync's own storage failures.
    async fn act(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        action: &Action,
        preloaded: Option<UserLicense>,
    ) -> Result<(UserResult, SummaryDelta), ApiError> {
        let tenant = &ctx.call.tenant;
        let stored = match preloaded {
            Some(u) => Some(u),
            None => LicenseStore::get_user(&self.table, tenant, user.as_str())
                .await
                .map_err(|e| ApiError::Unexpected(e.into()))?,
        };
        let transfer_target = match action {
            Action::Delete { transfer_to: Some(to) } => LicenseStore::get_user(&self.table, tenant, to.as_str())
                .await
                .map_err(|e| ApiError::Unexpected(e.into()))?,
            _ => None,
        };
        if let Some(refusal) = self.rails(ctx, user, stored.as_ref(), action, transfer_target.as_ref()) {
            return Ok((
                self.refuse(ctx, user, stored.as_ref(), action, refusal).await,
                SummaryDelta::default(),
            ));
        }
        // The rails refuse users that are not stored; should that ever change, fail cleanly.
        let Some(stored) = stored else {
            return Err(ApiError::Unexpected(anyhow::anyhow!(
                "a user passed the rails without a stored license state"
            )));
        };
        let planned_after = action.target_status();
        if ctx.options.dry_run {
            let detail = match action {
                Action::Delete { transfer_to: Some(to) } => format!(
                    "would move the content of {} to {to}, then delete the user. {DELETE_BILLING_NOTE}",
                    user.as_str()
                ),
                Action::Delete { transfer_to: None } => {
                    format!("would delete the user. {DELETE_BILLING_NOTE}")
                }
                Action::Deactivate => "would set the user inactive at Box and end their sessions".into(),
                Action::Reactivate => "would set the user active at Box".into(),
            };
            let result = self
                .record(
                    ctx,
                    user,
                    Some(&stored),
                    action,
                    AuditOutcome::Planned,
                    planned_after,
                    Some(detail),
                    200,
                )
                .await;
            return Ok((result, SummaryDelta::default()));
        }
        // Start only what can finish before the invocation ends.
        if self.time_left(ctx) < self.timings.write_budget {
            return Ok((
                self.refuse(ctx, user, Some(&stored), action, Refusal::OutOfTime).await,
                SummaryDelta::default(),
            ));
        }
        // The user as Box has them now (only a full sync refreshes the stored role and status).
        let fresh = match self.read_from_box(ctx, user, action).await {
            Ok(fresh) => fresh,
            Err(refusal) => {
                return Ok((
                    self.refuse(ctx, user, Some(&stored), action, refusal).await,
                    SummaryDelta::default(),
                ));
            }
        };
        let (stored, mut delta) = match &fresh {
            Some(box_user) => self.refresh(ctx, &stored, box_user).await?,
            None => (stored, SummaryDelta::default()),
        };
        let enterprise = ctx.connection.as_ref().map(|c| c.enterprise_id.as_str());
        if let Some(refusal) = fresh.as_ref().and_then(|u| box_rails(u, enterprise)) {
            return Ok((self.refuse(ctx, user, Some(&stored), action, refusal).await, delta));
        }
        // Box already shows the outcome (a cut earlier attempt, or a change made in Box): complete
        // the records and the answer without writing to Box again.
        let reconciled = match (&fresh, action.target_status()) {
            (None, None) => true,
            (Some(box_user), Some(target)) => box_user.status == target,
            _ => false,
        };
        let changed = if reconciled {
            self.reconcile(ctx, user, &stored, action).await
        } else {
            if self.time_left(ctx) < self.timings.write_budget {
                return Ok((
                    self.refuse(ctx, user, Some(&stored), action, Refusal::OutOfTime).await,
                    delta,
                ));
            }
            if !self.take_slot(ctx).await? {
                let refusal = Refusal::DailyCap(ctx.settings.daily_action_cap);
                return Ok((self.refuse(ctx, user, Some(&stored), action, refusal).await, delta));
            }
            let changed = match action {
                Action::Deactivate | Action::Reactivate => self.change_status(ctx, user, &stored, action).await,
                Action::Delete { transfer_to } => {
                    self.delete(ctx, user, &stored, transfer_to.as_ref(), transfer_target.as_ref())
                        .await
                }
            };
            if changed.is_err() {
                self.give_back_slot(ctx).await;
            }
            changed
        };
        match changed {
            Ok((result, d)) => {
                delta.merge(d);
                Ok((result, delta))
            }
            Err(failure) => Ok((failure.record(self, ctx, user, &stored, action).await?, delta)),
        }
    }

    /// The safety rails, in order; the first that applies says no.
    fn rails(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: Option<&UserLicense>,
        action: &Action,
        transfer_target: Option<&UserLicense>,
    ) -> Option<Refusal> {
        let Some(u) = stored.filter(|u| u.removed_at.is_none()) else {
            return Some(Refusal::NotFound);
        };
        if u.kind != UserKind::Managed {
            return Some(Refusal::NotManaged(u.kind));
        }
        if u.role.is_some_and(|r| r.is_admin()) {
            return Some(Refusal::Admin);
        }
        if ctx
            .connection
            .as_ref()
            .is_some_and(|c| c.connected_by_box_id == user.as_str())
        {
            return Some(Refusal::ConnectedAccount);
        }
        if u.login.as_deref().is_some_and(|login| {
            ctx.settings
                .protected_logins
                .iter()
                .any(|p| p.trim().eq_ignore_ascii_case(login.trim()))
        }) {
            return Some(Refusal::ProtectedLogin);
        }
        if action.removes_access()
            && let Activity::Seen { at, .. } = u.activity
        {
            let threshold = ctx.settings.inactivity_threshold_days;
            let idle = ctx.now - at;
            let overridden = ctx.options.override_recent_activity
                && ctx.options.reason.as_deref().is_some_and(|r| !r.trim().is_empty());
            if idle < Duration::days(i64::from(threshold)) && !overridden {
                return Some(Refusal::RecentlyActive {
                    days: idle.num_days().max(0),
                    threshold,
                });
            }
        }
        if let Action::Delete { transfer_to } = action {
            match transfer_to {
                None if u.owns_content => return Some(Refusal::OwnsContent),
                None => {}
                Some(to) => {
                    let bad = |why: String| Some(Refusal::BadTransferTarget(why));
                    if to == user {
                        return bad(format!(
                            "`transfer_to` must name another user than the one being deleted ({to})"
                        ));
                    }
                    match transfer_target.filter(|t| t.removed_at.is_none()) {
                        None => {
                            return bad(format!(
                                "`transfer_to` user {to} is not in this tenant's license state; name a managed, \
                                 active user of this enterprise"
                            ));
                        }
                        Some(t) if t.kind != UserKind::Managed || t.status != UserStatus::Active => {
                            return bad(format!(
                                "`transfer_to` user {to} must be a managed, active user of this enterprise \
                                 (it is {} and {})",
                                match t.kind {
                                    UserKind::Managed => "managed",
                                    UserKind::AppUser => "an app user",
                                    UserKind::External => "external",
                                },
                                t.status.as_str()
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        let connection_problem = match ctx.connection.as_ref().map(|c| c.status) {
            Some(ConnectionStatus::Connected) => None,
            Some(ConnectionStatus::ReauthRequired) => Some(format!(
                "the Box connection must be authorized again ({}); a Box admin must reconnect \
                 (POST /connections/box/start) before users can be changed",
                ctx.connection
                    .as_ref()
                    .and_then(|c| c.status_reason.clone())
                    .unwrap_or_else(|| "Box refused the stored grant".into())
            )),
            Some(ConnectionStatus::Disconnected) | None => Some(
                "this tenant has no Box connection; a Box admin must connect (POST /connections/box/start) \
                 before users can be changed"
                    .into(),
            ),
        };
        connection_problem.map(Refusal::NotConnected)
    }

    async fn refuse(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: Option<&UserLicense>,
        action: &Action,
        refusal: Refusal,
    ) -> UserResult {
        let mut detail = refusal.detail(user.as_str(), action);
        if ctx.options.dry_run {
            detail = format!("dry run: would be refused: {detail}");
        }
        // A user of another tenant (or none) is not named back beyond the id the caller sent.
        let stored = stored.filter(|_| refusal != Refusal::NotFound);
        self.record(
            ctx,
            user,
            stored,
            action,
            AuditOutcome::Refused,
            None,
            Some(detail),
            refusal.status(),
        )
        .await
    }

    /// Writes the one audit record of an attempt and returns its result.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: Option<&UserLicense>,
        action: &Action,
        outcome: AuditOutcome,
        after: Option<UserStatus>,
        detail: Option<String>,
        http_status: u16,
    ) -> UserResult {
        let before = stored.map(|u| u.status);
        let record = AuditRecord {
            id: uuid::Uuid::new_v4().to_string(),
            at: Utc::now(),
            tenant: ctx.call.tenant.clone(),
            actor: ctx.call.actor.clone(),
            action: action.audit_action(),
            target_box_user_id: user.as_str().to_owned(),
            target_login: stored.and_then(|u| u.login.clone()),
            before_status: before,
            after_status: after,
            reason: ctx.options.reason.clone(),
            request_id: ctx.call.request_id.clone(),
            idempotency_key: ctx.call.idempotency_key.clone(),
            outcome,
            detail: detail.clone(),
        };
        if let Err(e) = self.audit.append(&record).await {
            // The change (if any) stands; losing its record is logged loudly with everything in it.
            tracing::error!(error = %e, record = ?record, "could not write the audit record");
        }
        let after_label = match (outcome, action) {
            (AuditOutcome::Done | AuditOutcome::Planned, Action::Delete { .. }) => Some("deleted"),
            _ => after.map(UserStatus::as_str).or(before.map(UserStatus::as_str)),
        };
        UserResult {
            box_user_id: user.as_str().to_owned(),
            login: record.target_login,
            outcome,
            before: before.map(UserStatus::as_str),
            after: after_label,
            detail,
            http_status,
            audit_id: record.id,
            sessions_ended: false,
            transfer_folder: None,
        }
    }

    /// One slot of the tenant's daily cap; `false` when none is left.
    async fn take_slot(&self, ctx: &Context<'_>) -> Result<bool, ApiError> {
        let day = ctx.now.date_naive();
        let expires_at = (day + Duration::days(3)).and_time(NaiveTime::MIN).and_utc().timestamp();
        let taken = self
            .table
            .increment_below(
                &tenant_pk(&ctx.call.tenant),
                &daily_counter_sk(day),
                u64::from(ctx.settings.daily_action_cap),
                expires_at,
            )
            .await
            .map_err(|e| ApiError::Unexpected(e.into()))?;
        Ok(taken.is_some())
    }

    async fn give_back_slot(&self, ctx: &Context<'_>) {
        let sk = daily_counter_sk(ctx.now.date_naive());
        if let Err(e) = self.table.decrement(&tenant_pk(&ctx.call.tenant), &sk).await {
            tracing::warn!(error = %e, "could not give back a daily-cap slot");
        }
    }
}

/// Which users a bulk request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Ids(Vec<BoxUserId>),
    InactiveDays(u32),
}

fn status_json(label: Option<&str>) -> Value {
    json!({ "status": label })
}

fn single_answer(result: &UserResult, action: &Action, dry_run: bool) -> Answer {
    match result.outcome {
        AuditOutcome::Done | AuditOutcome::Planned => {
            let mut body = json!({
                "user": {
                    "box_user_id": result.box_user_id,
                    "login": result.login,
                    "before": status_json(result.before),
                    "after": status_json(result.after),
                },
                "audit_id": result.audit_id,
                "dry_run": dry_run,
                "sessions_ended": result.sessions_ended,
            });
            if let Some(detail) = &result.detail {
                body["detail"] = json!(detail);
            }
            if let Action::Delete { transfer_to } = action {
                body["deleted"] = json!(result.outcome == AuditOutcome::Done);
                body["billing"] = json!(DELETE_BILLING_NOTE);
                if let Some(to) = transfer_to {
                    body["transfer"] = json!({
                        "to_box_user_id": to.as_str(),
                        "folder_id": result.transfer_folder,
                        "note": TRANSFER_NOTE,
                    });
                }
            }
            Answer::json(200, &body)
        }
        AuditOutcome::Refused | AuditOutcome::Failed => {
            let status = result.http_status;
            let title = match status {
                404 => "Not Found",
                409 => "Conflict",
                422 => "Unprocessable Content",
                429 => "Too Many Requests",
                500 => "Internal Server Error",
                503 => "Service Unavailable",
                504 => "Gateway Timeout",
                _ => "Bad Gateway",
            };
            let mut problem = Problem::new(status, title, result.detail.clone().unwrap_or_default());
            problem = match (result.outcome, status) {
                (AuditOutcome::Refused, 429) => problem.with_type("daily-cap-reached"),
                (AuditOutcome::Refused, 404) => problem,
                (AuditOutcome::Refused, _) => problem.with_type("action-refused"),
                _ => problem.with_type("action-failed"),
            };
            if status == 422 {
                problem = problem.with_field("transfer_to");
            }
            let mut answer = Answer::problem(&problem);
            if status == 503 {
                answer.retry_after = Some(1);
            }
            answer
        }
    }
}

fn bulk_answer(rows: &[UserResult], dry_run: bool, more_matching: usize) -> Answer {
    let count = |o: AuditOutcome| rows.iter().filter(|r| r.outcome == o).count();
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "box_user_id": r.box_user_id,
                "login": r.login,
                "outcome": r.outcome,
                "before": status_json(r.before),
                "after": status_json(r.after),
                "detail": r.detail,
                "audit_id": r.audit_id,
                "sessions_ended": r.sessions_ended,
            })
        })
        .collect();
    Answer::json(
        200,
        &json!({
            "results": results,
            "counts": {
                "done": count(AuditOutcome::Done),
                "refused": count(AuditOutcome::Refused),
                "failed": count(AuditOutcome::Failed),
                "planned": count(AuditOutcome::Planned),
                "total": rows.len(),
            },
            "dry_run": dry_run,
            "more_matching": more_matching,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_counters_are_keyed_by_utc_day() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        assert_eq!(daily_counter_sk(day), "ACTIONS#2026-11-28");
    }

    #[test]
    fn summary_deltas_never_go_below_zero() {
        let mut s = LicenseSummary {
            computed_at: Utc::now(),
            activity_source: crate::connection::ActivitySource::BoxEvents,
            activity_provider: "box".into(),
            history_since: None,
            seat_holders: 1,
            deactivated: 0,
            admins: 0,
            app_users: 0,
            external_users: 0,
            content_owners: 0,
            histogram: Default::default(),
        };
        let delta = SummaryDelta {
            deactivated: -1,
            seat_holders: -2,
            histogram_remove: vec![Activity::Never],
            ..SummaryDelta::default()
        };
        delta.apply(&mut s);
        assert_eq!((s.deactivated, s.seat_holders, s.histogram.never), (0, 0, 0));
    }
}

//! License actions: deactivating, reactivating and deleting Box users on a tenant's request,
//! with safety rails checked before any Box write, dry runs, `Idempotency-Key` replays, a
//! per-tenant daily cap, one audit record per attempt, and the license state updated in the
//! same step as the Box change. [`ActionsService`] is the domain; [`router`] is its HTTP API.
//!
//! One pipeline ([`ActionsService::act`]) decides and performs the change for one user; the
//! single-user routes map its result to an HTTP answer, the bulk route collects one result per user.

mod http;
mod idempotency;

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::audit::{AuditAction, AuditLog, AuditOutcome, AuditRecord};
use crate::boxapi::{BoxClient, BoxError, UserStatus};
use crate::connection::{ConnectionRecord, ConnectionStatus, Connections};
use crate::ids::{BoxUserId, TenantId};
use crate::license::{Activity, UserKind, UserLicense};
use crate::problem::Problem;
use crate::settings::{SettingsStore, TenantSettings};
use crate::storage::Table;
use crate::storage::schema::tenant_pk;
use crate::sync::{LicenseStore, LicenseSummary};
use crate::tokens::{TokenError, TokenProvider};

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
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            body: body.to_string(),
        }
    }

    pub fn problem(problem: &Problem) -> Self {
        Self {
            status: problem.status,
            content_type: crate::problem::CONTENT_TYPE.into(),
            body: serde_json::to_string(problem).unwrap_or_else(|_| "{}".into()),
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
    seat_holders: i64,
    content_owners: i64,
    histogram_add: Vec<Activity>,
    histogram_remove: Vec<Activity>,
}

impl SummaryDelta {
    fn is_empty(&self) -> bool {
        self.deactivated == 0
            && self.seat_holders == 0
            && self.content_owners == 0
            && self.histogram_add.is_empty()
            && self.histogram_remove.is_empty()
    }

    fn merge(&mut self, other: SummaryDelta) {
        self.deactivated += other.deactivated;
        self.seat_holders += other.seat_holders;
        self.content_owners += other.content_owners;
        self.histogram_add.extend(other.histogram_add);
        self.histogram_remove.extend(other.histogram_remove);
    }

    fn apply(&self, summary: &mut LicenseSummary) {
        let adjust = |v: &mut u32, d: i64| *v = (i64::from(*v) + d).clamp(0, i64::from(u32::MAX)) as u32;
        adjust(&mut summary.deactivated, self.deactivated);
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
        }
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
        if !self.take_slot(ctx).await? {
            let refusal = Refusal::DailyCap(ctx.settings.daily_action_cap);
            return Ok((
                self.refuse(ctx, user, Some(&stored), action, refusal).await,
                SummaryDelta::default(),
            ));
        }
        let changed = match action {
            Action::Deactivate | Action::Reactivate => self.change_status(ctx, user, &stored, action).await,
            Action::Delete { transfer_to } => {
                self.delete(ctx, user, &stored, transfer_to.as_ref(), transfer_target.as_ref())
                    .await
            }
        };
        match changed {
            Ok(done) => Ok(done),
            Err(failure) => {
                self.give_back_slot(ctx).await;
                Ok((
                    failure.record(self, ctx, user, &stored, action).await?,
                    SummaryDelta::default(),
                ))
            }
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

    async fn change_status(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: &UserLicense,
        action: &Action,
    ) -> Result<(UserResult, SummaryDelta), Failure> {
        let tenant = &ctx.call.tenant;
        let wanted = action.target_status().unwrap_or(UserStatus::Active);
        let updated = self
            .tokens
            .with_token(tenant, |token| {
                let api = self.box_api.clone();
                let id = user.as_str().to_owned();
                async move { api.set_user_status(&token, &id, wanted).await }
            })
            .await
            .map_err(Failure::from_token)?;
        let after = if updated.status == UserStatus::Unknown {
            wanted
        } else {
            updated.status
        };
        let mut detail = None;
        let mut sessions_ended = false;
        if *action == Action::Deactivate {
            let ended = self
                .tokens
                .with_token(tenant, |token| {
                    let api = self.box_api.clone();
                    let id = user.as_str().to_owned();
                    async move { api.terminate_sessions(&token, &[id.as_str()]).await }
                })
                .await;
            match ended {
                Ok(()) => sessions_ended = true,
                Err(e) => {
                    tracing::warn!(error = %e, "the user is inactive but ending their sessions failed");
                    detail = Some(format!(
                        "the user is inactive at Box, but ending their open sessions failed ({e}); they can no \
                         longer sign in, and open sessions end when they expire"
                    ));
                }
            }
        }
        let mut delta = SummaryDelta::default();
        if stored.holds_seat() && stored.status != after {
            match after {
                UserStatus::Inactive => {
                    delta.deactivated += 1;
                    if stored.status == UserStatus::Active {
                        delta.histogram_remove.push(stored.activity);
                    }
                }
                UserStatus::Active => {
                    if stored.status == UserStatus::Inactive {
                        delta.deactivated -= 1;
                    }
                    delta.histogram_add.push(stored.activity);
                }
                _ => {}
            }
        }
        let new_state = UserLicense {
            status: after,
            last_seen_at: Utc::now(),
            ..stored.clone()
        };
        self.store_user(tenant, &new_state).await?;
        let mut result = self
            .record(
                ctx,
                user,
                Some(stored),
                action,
                AuditOutcome::Done,
                Some(after),
                detail,
                200,
            )
            .await;
        result.sessions_ended = sessions_ended;
        Ok((result, delta))
    }

    async fn delete(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: &UserLicense,
        transfer_to: Option<&BoxUserId>,
        transfer_target: Option<&UserLicense>,
    ) -> Result<(UserResult, SummaryDelta), Failure> {
        let tenant = &ctx.call.tenant;
        let mut delta = SummaryDelta::default();
        let mut folder = None;
        if let Some(to) = transfer_to {
            let moved = self
                .tokens
                .with_token(tenant, |token| {
                    let api = self.box_api.clone();
                    let (from, to) = (user.as_str().to_owned(), to.as_str().to_owned());
                    async move { api.transfer_content(&token, &from, &to, false).await }
                })
                .await
                .map_err(|e| Failure::from_transfer(e, to))?;
            folder = Some(moved.id);
            if let Some(target) = transfer_target
                && !target.owns_content
            {
                let receiver = UserLicense {
                    owns_content: true,
                    ..target.clone()
                };
                self.store_user(tenant, &receiver).await?;
                delta.content_owners += 1;
            }
        }
        self.tokens
            .with_token(tenant, |token| {
                let api = self.box_api.clone();
                let id = user.as_str().to_owned();
                async move { api.delete_user(&token, &id, false, false).await }
            })
            .await
            .map_err(|e| Failure::from_delete(e, folder.is_some()))?;
        let now = Utc::now();
        let gone = UserLicense {
            removed_at: Some(now),
            owns_content: false,
            last_seen_at: now,
            ..stored.clone()
        };
        self.store_user(tenant, &gone).await?;
        if stored.holds_seat() {
            delta.seat_holders -= 1;
            match stored.status {
                UserStatus::Inactive => delta.deactivated -= 1,
                UserStatus::Active => delta.histogram_remove.push(stored.activity),
                _ => {}
            }
            if stored.owns_content {
                delta.content_owners -= 1;
            }
        }
        let detail = match &folder {
            Some(id) => format!("{TRANSFER_NOTE} (Box folder {id}). {DELETE_BILLING_NOTE}"),
            None => DELETE_BILLING_NOTE.to_owned(),
        };
        let mut result = self
            .record(
                ctx,
                user,
                Some(stored),
                &Action::Delete {
                    transfer_to: transfer_to.cloned(),
                },
                AuditOutcome::Done,
                None,
                Some(detail),
                200,
            )
            .await;
        result.transfer_folder = folder;
        Ok((result, delta))
    }

    async fn store_user(&self, tenant: &TenantId, user: &UserLicense) -> Result<(), Failure> {
        LicenseStore::put_users(&self.table, tenant, std::slice::from_ref(user))
            .await
            .map(|_| ())
            .map_err(|e| Failure::Storage(e.to_string()))
    }

    async fn apply_summary(&self, tenant: &TenantId, delta: &SummaryDelta) -> Result<(), crate::storage::StoreError> {
        if delta.is_empty() {
            return Ok(());
        }
        let Some(mut summary) = LicenseStore::get_summary(&self.table, tenant).await? else {
            return Ok(());
        };
        delta.apply(&mut summary);
        LicenseStore::put_summary(&self.table, tenant, &summary).await
    }
}

/// A change that did not happen (or happened only in part) after the rails let it through.
#[derive(Debug)]
enum Failure {
    /// Box refused before changing anything in a way the rails could not see (e.g. content found).
    Refused(Refusal),
    /// Box failed or refused: (HTTP status for a single request, what happened).
    Box { status: u16, detail: String },
    /// Box changed the user but seatsync could not store it.
    Storage(String),
}

impl Failure {
    fn from_token(e: TokenError) -> Self {
        match e {
            TokenError::ReauthRequired { reason } => Failure::Refused(Refusal::NotConnected(format!(
                "the Box connection must be authorized again ({reason}); a Box admin must reconnect \
                 (POST /connections/box/start). Nothing was changed"
            ))),
            TokenError::NotConnected => Failure::Refused(Refusal::NotConnected(
                "this tenant has no Box connection; a Box admin must connect (POST /connections/box/start). \
                 Nothing was changed"
                    .into(),
            )),
            TokenError::Box(e) => Self::from_box(e),
            other => Failure::Box {
                status: 502,
                detail: format!("seatsync could not get a Box token ({other}); nothing was changed, try again"),
            },
        }
    }

    fn from_box(e: BoxError) -> Self {
        match &e {
            BoxError::Forbidden(_) => Failure::Box {
                status: 409,
                detail: format!(
                    "Box refused the change ({e}); the connected account may lack the permission. Nothing was changed"
                ),
            },
            BoxError::NotFound(_) => Failure::Box {
                status: 409,
                detail: format!("Box no longer has this user ({e}); the next sync updates the license state"),
            },
            _ if e.is_transient() => Failure::Box {
                status: 502,
                detail: format!("Box did not answer in time ({e}); try again with the same Idempotency-Key later"),
            },
            _ => Failure::Box {
                status: 502,
                detail: format!("Box refused the change ({e})"),
            },
        }
    }

    fn from_transfer(e: TokenError, to: &BoxUserId) -> Self {
        if let TokenError::Box(BoxError::Forbidden(d)) = &e
            && (d.code.as_deref() == Some("insufficient_scope")
                || d.message.as_deref().is_some_and(|m| m.contains("root_readwrite")))
        {
            return Failure::Box {
                status: 409,
                detail: format!(
                    "Box refused to move the content to {to}: the connection lacks the `root_readwrite` scope. \
                     Reconnect Box with content transfer enabled (POST /connections/box/start with \
                     `{{\"content_transfer\": true}}`, settings `content_transfer`). Nothing was changed"
                ),
            };
        }
        Self::from_token(e)
    }

    fn from_delete(e: TokenError, transferred: bool) -> Self {
        if let TokenError::Box(BoxError::OwnsContent(_)) = &e {
            return if transferred {
                Failure::Box {
                    status: 409,
                    detail: "the content transfer was accepted, but Box still counts content as owned by the \
                             user, so it was not deleted yet (large transfers finish later at Box). Repeat the \
                             delete later with a new Idempotency-Key"
                        .into(),
                }
            } else {
                Failure::Refused(Refusal::OwnsContent)
            };
        }
        let mut failure = Self::from_token(e);
        if transferred && let Failure::Box { detail, .. } = &mut failure {
            detail.push_str(". The content was already moved; repeat the delete with `?transfer_to=` or without it");
        }
        failure
    }

    async fn record(
        self,
        service: &ActionsService,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: &UserLicense,
        action: &Action,
    ) -> Result<UserResult, ApiError> {
        match self {
            Failure::Refused(refusal) => {
                if refusal == Refusal::OwnsContent && !stored.owns_content {
                    // Box knows better than the last sync: remember it so the next attempt is refused early.
                    let corrected = UserLicense {
                        owns_content: true,
                        ..stored.clone()
                    };
                    let _ = service.store_user(&ctx.call.tenant, &corrected).await;
                }
                Ok(service.refuse(ctx, user, Some(stored), action, refusal).await)
            }
            Failure::Box { status, detail } => Ok(service
                .record(
                    ctx,
                    user,
                    Some(stored),
                    action,
                    AuditOutcome::Failed,
                    None,
                    Some(detail),
                    status,
                )
                .await),
            Failure::Storage(e) => {
                let detail =
                    format!("Box made the change, but seatsync could not store it ({e}); the next sync repairs it");
                service
                    .record(
                        ctx,
                        user,
                        Some(stored),
                        action,
                        AuditOutcome::Failed,
                        None,
                        Some(detail),
                        500,
                    )
                    .await;
                Err(ApiError::Unexpected(anyhow::anyhow!(
                    "storing the license state failed: {e}"
                )))
            }
        }
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        ApiError::Unexpected(anyhow::anyhow!("{f:?}"))
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
            Answer::problem(&problem)
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

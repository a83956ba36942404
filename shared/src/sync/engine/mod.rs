//! One tenant's sync. A full sync lists every user (marker paging) and reads activity events
//! (logins and content events) since the checkpoint (the first one back-fills `backfill_days`,
//! newest first; see `activity.rs` for where a read starts), in time slices read concurrently
//! under a per-tenant request budget. Only users
//! whose state changed are written; users are marked removed and the summary replaced only after
//! a complete listing, so a run that fails halfway leaves the previous state intact. Near its
//! deadline, in any phase (events, SSO sign-ins, the listing), a run saves its progress and says
//! [`SyncOutcome::Continued`]; the next invocation resumes it, and a listing goes on from its
//! saved marker without counting anyone twice.
//!
//! This file holds the run's frame (start, resume, pause, skip) and the summary arithmetic; the
//! full run is in `full.rs`, the incremental pass in `incremental.rs`.

mod full;
mod incremental;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use tokio::time::Instant;

use super::activity::ObservedMap;
use super::store::{LicenseStore, VERSIONED_ATTEMPTS, update_summary, update_user};
use super::{
    LicenseSummary, ListingProgress, RunProgress, SliceProgress, SyncCheckpoint, SyncKind, SyncOutcome, SyncRun,
};
use crate::boxapi::{BoxClient, BoxError, RequestBudget, User, UserStatus, UserType, parse_user_id};
use crate::connection::ActivitySource;
use crate::ids::{BoxUserId, TenantId};
use crate::license::{Activity, ActivityHistogram, ActivityOrigin, Signals, UserKind, UserLicense};
use crate::settings::TenantSettings;
use crate::storage::{StoreError, VersionedOutcome};
use crate::tokens::{TokenError, TokenSource};

/// Sign-ins from a tenant's SSO provider for the Box app.
#[derive(Debug, Clone, Default)]
pub struct SsoSignIns {
    /// Lower-cased Box login → latest successful sign-in and how strong a signal it is.
    pub by_login: HashMap<String, (DateTime<Utc>, ActivityOrigin)>,
    /// `okta`, `entra` or `google`.
    pub provider: String,
    /// The earliest time the provider's logs covered.
    pub coverage_since: DateTime<Utc>,
}

/// The tenant's SSO provider, when Box's event stream is closed to seatsync.
#[async_trait]
pub trait SsoSource: Send + Sync {
    async fn sign_ins(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<SsoSignIns, String>;
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// How far back the first sync reads activity events (`BACKFILL_DAYS`, at most 365). The
    /// report is published once the most recent `max(thresholds)` days are read; older history
    /// only fills in earlier "last seen" dates.
    pub backfill_days: u32,
    /// Without a saved stream position (a checkpoint from before positions were kept), re-read
    /// this much before the checkpoint: Box's admin log can deliver events late.
    pub overlap: Duration,
    /// Reading on from the saved stream position, a login that shows up late is read however
    /// late it shows up, provided it was created at most this long before the newest login
    /// already read (the bound on `created_at` sent with the position).
    pub late_window: Duration,
    /// Time slices of the event window read concurrently.
    pub slices: usize,
    /// The per-tenant request budget, under Box's ~1,000 requests per minute per user.
    pub requests_per_minute: u32,
    /// Stop and save progress when less than this remains before the deadline.
    pub deadline_margin: Duration,
    /// Users written per store call.
    pub write_chunk: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            backfill_days: 365,
            overlap: Duration::from_secs(3600),
            late_window: Duration::from_secs(7 * 86_400),
            slices: 6,
            requests_per_minute: 1000,
            deadline_margin: Duration::from_secs(90),
            write_chunk: 500,
        }
    }
}

/// What to sync.
pub struct SyncPlan {
    pub tenant: TenantId,
    pub kind: SyncKind,
    pub source: ActivitySource,
    pub settings: TenantSettings,
    /// Required when `source` is SSO.
    pub sso: Option<Arc<dyn SsoSource>>,
    /// When the invocation must have returned (Lambda's deadline); `None` runs to the end.
    pub deadline: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("Box: {0}")]
    Box(#[from] BoxError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("SSO provider: {0}")]
    Sso(String),
    #[error("{0}")]
    Precondition(String),
}

/// Runs syncs; one per Lambda instance, shared by its invocations.
pub struct Syncer {
    pub store: Arc<dyn LicenseStore>,
    pub tokens: Arc<dyn TokenSource>,
    pub box_api: BoxClient,
    pub options: SyncOptions,
}

/// Counters of one invocation.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) items_written: u64,
    pub(super) users_listed: u64,
    pub(super) events_read: u64,
}

impl Syncer {
    /// Syncs one tenant and records the run. Errors are recorded too, then returned.
    #[tracing::instrument(skip(self, plan), fields(tenant = %plan.tenant, kind = ?plan.kind))]
    pub async fn sync(&self, plan: &SyncPlan) -> Result<SyncRun, SyncError> {
        let started = Utc::now();
        let mut checkpoint = self.store.get_checkpoint(&plan.tenant).await?.unwrap_or_default();
        // A burst of 1: Box counts fixed minutes, and a burst overruns them (RequestBudget::per_minute).
        let client = self
            .box_api
            .with_budget(Arc::new(RequestBudget::per_minute(self.options.requests_per_minute, 1)));
        let resumed = checkpoint
            .last_run
            .as_ref()
            .filter(|r| r.outcome == SyncOutcome::Continued)
            .cloned();
        // The progress saved so far: a failed invocation leaves it for the delivery that retries.
        let saved = checkpoint.in_progress.clone();
        let mut tally = Tally::default();
        let result = match checkpoint.in_progress.as_ref() {
            Some(p) if p.kind == plan.kind && p.invocations >= MAX_RUN_INVOCATIONS => {
                checkpoint.in_progress = None;
                Err(SyncError::Precondition(format!(
                    "the run did not finish in {MAX_RUN_INVOCATIONS} invocations and is abandoned"
                )))
            }
            _ => match plan.kind {
                SyncKind::Full => self.full(plan, &client, &mut checkpoint, &mut tally).await,
                SyncKind::Incremental => self.incremental(plan, &client, &mut checkpoint, &mut tally).await,
            },
        };
        let (outcome, error, prior) = match &result {
            Ok(SyncOutcome::Skipped) => (
                SyncOutcome::Skipped,
                Some("a full sync of this tenant is unfinished; it reads these events".to_owned()),
                None,
            ),
            Ok(outcome) => (*outcome, None, checkpoint.in_progress.clone()),
            Err(e) => (SyncOutcome::Failed, Some(e.to_string()), None),
        };
        // A skipped pass is a run of its own, not part of the unfinished one.
        let resumed = resumed.filter(|_| outcome != SyncOutcome::Skipped);
        if let Err(SyncError::Box(_) | SyncError::Token(_) | SyncError::Store(_) | SyncError::Sso(_)) = &result {
            checkpoint.in_progress = saved;
        }
        let run = SyncRun {
            run_id: prior
                .as_ref()
                .map(|p| p.run_id.clone())
                .or_else(|| resumed.as_ref().map(|r| r.run_id.clone()))
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            kind: plan.kind,
            started_at: resumed.as_ref().map_or(started, |r| r.started_at),
            finished_at: Utc::now(),
            outcome,
            box_calls: client.calls() + resumed.as_ref().map_or(0, |r| r.box_calls),
            items_written: tally.items_written + 2 + resumed.as_ref().map_or(0, |r| r.items_written),
            users_listed: tally.users_listed + resumed.as_ref().map_or(0, |r| r.users_listed),
            events_read: tally.events_read + resumed.as_ref().map_or(0, |r| r.events_read),
            invocations: 1 + resumed.as_ref().map_or(0, |r| r.invocations),
            error,
        };
        if outcome == SyncOutcome::Skipped {
            // Nothing changed; the checkpoint (and a continued run's tally in it) stays as it is.
            self.store.put_run(&plan.tenant, &run).await?;
            tracing::info!("sync skipped: a full sync of this tenant is unfinished");
            return Ok(run);
        }
        if outcome != SyncOutcome::Continued {
            self.store.put_run(&plan.tenant, &run).await?;
        }
        checkpoint.last_run = Some(run.clone());
        self.store.put_checkpoint(&plan.tenant, &checkpoint).await?;
        match result {
            Ok(_) => {
                tracing::info!(outcome = ?run.outcome, box_calls = run.box_calls, items_written = run.items_written, "sync finished");
                Ok(run)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync failed; the previous state is kept");
                Err(e)
            }
        }
    }

    /// Records a run that did not happen, and why (e.g. the connection needs re-authorization).
    pub async fn record_skip(&self, tenant: &TenantId, kind: SyncKind, reason: &str) -> Result<(), SyncError> {
        let now = Utc::now();
        let run = SyncRun {
            run_id: uuid::Uuid::new_v4().to_string(),
            kind,
            started_at: now,
            finished_at: now,
            outcome: SyncOutcome::Skipped,
            box_calls: 0,
            items_written: 2,
            users_listed: 0,
            events_read: 0,
            invocations: 1,
            error: Some(reason.to_owned()),
        };
        self.store.put_run(tenant, &run).await?;
        let mut checkpoint = self.store.get_checkpoint(tenant).await?.unwrap_or_default();
        checkpoint.last_run = Some(run);
        self.store.put_checkpoint(tenant, &checkpoint).await?;
        Ok(())
    }

    pub(super) fn near_deadline(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() + self.options.deadline_margin >= d)
    }

    /// `work`, unless the deadline (less the margin) comes first: then `None`.
    async fn before_deadline<T>(
        &self,
        deadline: Option<Instant>,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        match deadline {
            None => Some(work.await),
            Some(d) => {
                let stop = d.checked_sub(self.options.deadline_margin).unwrap_or(d);
                tokio::time::timeout_at(stop, work).await.ok()
            }
        }
    }

    /// The unfinished run of this kind with what it read so far, or a new run. Progress older
    /// than [`MAX_RUN_AGE_HOURS`] is dropped: its scratch items are about to expire.
    async fn start_or_resume(
        &self,
        plan: &SyncPlan,
        checkpoint: &mut SyncCheckpoint,
        now: DateTime<Utc>,
    ) -> Result<(RunProgress, ObservedMap), SyncError> {
        if let Some(p) = checkpoint.in_progress.take() {
            if p.kind == plan.kind && p.started_at > now - chrono::Duration::hours(MAX_RUN_AGE_HOURS) {
                let observed = self
                    .store
                    .load_scratch(&plan.tenant, &p.run_id, p.scratch_chunks)
                    .await?;
                tracing::info!(run = %p.run_id, users = observed.len(), invocations = p.invocations, "resuming an interrupted sync");
                return Ok((p, observed));
            }
            tracing::info!(run = %p.run_id, kind = ?p.kind, "an unfinished run is replaced by a new one");
        }
        let (slices, recent) = match plan.source {
            ActivitySource::Sso => (Vec::new(), 0),
            ActivitySource::BoxEvents => self.event_window(
                checkpoint,
                plan.kind == SyncKind::Full,
                plan.settings.inactivity_threshold_days,
                now,
            ),
        };
        Ok((new_run(plan.kind, now, slices, recent), HashMap::new()))
    }

    /// Saves a run stopped near its deadline; the next invocation resumes it. `observed`: what
    /// the run read so far and has not yet written, when it changed in this invocation.
    async fn pause(
        &self,
        tenant: &TenantId,
        client: &BoxClient,
        checkpoint: &mut SyncCheckpoint,
        mut progress: RunProgress,
        observed: Option<&ObservedMap>,
        tally: &mut Tally,
    ) -> Result<SyncOutcome, SyncError> {
        if let Some(observed) = observed {
            progress.scratch_chunks = self.store.save_scratch(tenant, &progress.run_id, observed).await?;
            tally.items_written += u64::from(progress.scratch_chunks);
        }
        progress.box_calls += client.calls();
        progress.events_read += tally.events_read;
        progress.invocations += 1;
        tracing::info!(run = %progress.run_id, "deadline near: progress saved, the run continues in a new invocation");
        checkpoint.in_progress = Some(progress);
        Ok(SyncOutcome::Continued)
    }
}

/// A run gives up after this many invocations (15 minutes each: 12 hours).
const MAX_RUN_INVOCATIONS: u32 = 48;
/// Progress older than this is not resumed (its scratch items expire after 2 days).
const MAX_RUN_AGE_HOURS: i64 = 24;

fn new_run(kind: SyncKind, now: DateTime<Utc>, slices: Vec<SliceProgress>, recent: usize) -> RunProgress {
    RunProgress {
        window_to: slices.iter().map(|s| s.to).max().unwrap_or(now),
        recent_slices: Some(recent),
        published: false,
        run_id: uuid::Uuid::new_v4().to_string(),
        kind,
        started_at: now,
        slices,
        scratch_chunks: 0,
        box_calls: 0,
        items_written: 0,
        events_read: 0,
        invocations: 0,
        listing: None,
    }
}

/// A listed user's two dates from what the run read: Box's events (what was not read is
/// `Never` in the history read), or the SSO provider's sign-ins (logins only; content unknown).
fn signals_of(user: &User, observed: &ObservedMap, sso: Option<&SsoSignIns>) -> Signals {
    match sso {
        None => observed.get(&user.id).copied().unwrap_or_default().signals(),
        Some(sso) => Signals::login_only(
            user.login
                .as_deref()
                .and_then(|login| sso.by_login.get(&login.to_lowercase()))
                .map_or(Activity::NoData, |(at, origin)| Activity::seen(*at, *origin)),
        ),
    }
}

/// Seat holders whose inactivity matters: managed, present, not deactivated.
fn counts_in_histogram(user: &UserLicense) -> bool {
    user.holds_seat() && user.status != UserStatus::Inactive
}

fn count_user(summary: &mut LicenseSummary, user: &UserLicense, n: u32) {
    if user.removed_at.is_some() {
        return;
    }
    match user.kind {
        UserKind::AppUser => summary.app_users += n,
        UserKind::External => summary.external_users += n,
        UserKind::Managed => {
            summary.seat_holders += n;
            if user.role.is_some_and(|r| r.is_admin()) {
                summary.admins += n;
            }
            if user.owns_content {
                summary.content_owners += n;
            }
            if user.status == UserStatus::Inactive {
                summary.deactivated += n;
            } else {
                summary.histogram.add(&user.signals());
            }
        }
    }
}

/// The summary of a complete set of users.
pub fn summarize<'a>(
    users: impl Iterator<Item = &'a UserLicense>,
    source: ActivitySource,
    provider: String,
    history_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> LicenseSummary {
    let mut summary = LicenseSummary {
        computed_at: now,
        activity_source: source,
        activity_provider: provider,
        history_since,
        history_complete: true,
        content_activity: source == ActivitySource::BoxEvents,
        seat_holders: 0,
        deactivated: 0,
        admins: 0,
        app_users: 0,
        external_users: 0,
        content_owners: 0,
        histogram: ActivityHistogram::default(),
        user_index_version: crate::storage::user_index::USER_INDEX_VERSION,
    };
    for user in users {
        count_user(&mut summary, user, 1);
    }
    summary
}

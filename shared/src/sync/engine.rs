//! One tenant's sync. A full sync lists every user (marker paging) and reads LOGIN events since
//! the checkpoint (the first one back-fills `backfill_days`; see `logins.rs` for where a
//! read starts), in time slices read concurrently under a per-tenant request budget. Only users
//! whose state changed are written; users are marked removed and the summary replaced only after
//! a complete listing, so a run that fails halfway leaves the previous state intact. Near its
//! deadline, in any phase (events, SSO sign-ins, the listing), a run saves its progress and says
//! [`SyncOutcome::Continued`]; the next invocation resumes it, and a listing goes on from its
//! saved marker without counting anyone twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use tokio::time::Instant;

use super::store::{LicenseStore, VERSIONED_ATTEMPTS, update_summary, update_user};
use super::{
    LicenseSummary, ListingProgress, RunProgress, SliceProgress, SyncCheckpoint, SyncKind, SyncOutcome, SyncRun,
};
use crate::boxapi::{BoxClient, BoxError, RequestBudget, User, UserStatus, UserType, parse_user_id};
use crate::connection::ActivitySource;
use crate::ids::{BoxUserId, TenantId};
use crate::license::{Activity, ActivityHistogram, ActivityOrigin, UserKind, UserLicense};
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
    /// How far back the first sync reads login events (`BACKFILL_DAYS`, at most 365).
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
            backfill_days: 180,
            overlap: Duration::from_secs(3600),
            late_window: Duration::from_secs(7 * 86_400),
            slices: 6,
            requests_per_minute: 900,
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
        let client = self.box_api.with_budget(Arc::new(RequestBudget::per_minute(
            self.options.requests_per_minute,
            20,
        )));
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
    ) -> Result<(RunProgress, HashMap<String, DateTime<Utc>>), SyncError> {
        if let Some(p) = checkpoint.in_progress.take() {
            if p.kind == plan.kind && p.started_at > now - chrono::Duration::hours(MAX_RUN_AGE_HOURS) {
                let logins = self
                    .store
                    .load_scratch(&plan.tenant, &p.run_id, p.scratch_chunks)
                    .await?;
                tracing::info!(run = %p.run_id, users = logins.len(), invocations = p.invocations, "resuming an interrupted sync");
                return Ok((p, logins));
            }
            tracing::info!(run = %p.run_id, kind = ?p.kind, "an unfinished run is replaced by a new one");
        }
        let slices = match plan.source {
            ActivitySource::Sso => Vec::new(),
            ActivitySource::BoxEvents => self.event_window(checkpoint, now),
        };
        Ok((new_run(plan.kind, now, slices), HashMap::new()))
    }

    /// Saves a run stopped near its deadline; the next invocation resumes it. `logins`: what
    /// this invocation read, when it read any.
    async fn pause(
        &self,
        tenant: &TenantId,
        client: &BoxClient,
        checkpoint: &mut SyncCheckpoint,
        mut progress: RunProgress,
        logins: Option<&HashMap<String, DateTime<Utc>>>,
        tally: &mut Tally,
    ) -> Result<SyncOutcome, SyncError> {
        if let Some(logins) = logins {
            progress.scratch_chunks = self.store.save_scratch(tenant, &progress.run_id, logins).await?;
            tally.items_written += u64::from(progress.scratch_chunks);
        }
        progress.box_calls += client.calls();
        progress.events_read += tally.events_read;
        progress.invocations += 1;
        tracing::info!(run = %progress.run_id, "deadline near: progress saved, the run continues in a new invocation");
        checkpoint.in_progress = Some(progress);
        Ok(SyncOutcome::Continued)
    }

    async fn full(
        &self,
        plan: &SyncPlan,
        client: &BoxClient,
        checkpoint: &mut SyncCheckpoint,
        tally: &mut Tally,
    ) -> Result<SyncOutcome, SyncError> {
        let tenant = &plan.tenant;
        let now = Utc::now();
        let (mut progress, mut logins) = self.start_or_resume(plan, checkpoint, now).await?;
        // Logins read by this invocation are saved if it stops; those loaded from scratch already are.
        let fresh_logins = progress.slices.iter().any(|s| !s.done);
        // 1. Activity: Box's login events, or the SSO provider's sign-ins (read again by each
        //    invocation of the run: one bounded read, cut off at the deadline).
        let (sso, history_since) = match plan.source {
            ActivitySource::BoxEvents => {
                if !self
                    .read_logins(plan, client, &mut progress, &mut logins, tally)
                    .await?
                {
                    return self
                        .pause(tenant, client, checkpoint, progress, Some(&logins), tally)
                        .await;
                }
                let since = progress.slices.first().map_or(now, |s| s.from);
                (None, Some(checkpoint.history_since.unwrap_or(since)))
            }
            ActivitySource::Sso => {
                let sso = plan.sso.as_ref().ok_or_else(|| {
                    SyncError::Precondition(
                        "Box's event stream is closed for this tenant and no SSO provider is configured in its settings".into(),
                    )
                })?;
                let since = now - chrono::Duration::days(i64::from(self.options.backfill_days.min(365)));
                let Some(read) = self.before_deadline(plan.deadline, sso.sign_ins(since, now)).await else {
                    tracing::info!("the SSO provider's sign-ins were not read before the deadline");
                    return self.pause(tenant, client, checkpoint, progress, None, tally).await;
                };
                let sign_ins = read.map_err(SyncError::Sso)?;
                let coverage = sign_ins.coverage_since;
                (Some(sign_ins), Some(coverage))
            }
        };

        // 2. Users: compare each with its stored state; write only what changed. Each listed user
        //    leaves the stored map, so what remains after a complete listing is who is gone, and
        //    the summary is counted on the way (one copy of the users in memory, not two). Users
        //    listed by earlier invocations of the run are counted from their stored state.
        let summary_version = self.store.get_summary_versioned(tenant).await?.map(|s| s.version);
        let mut stored = self.store.load_users(tenant).await?;
        let provider = sso.as_ref().map_or_else(|| "box".to_owned(), |s| s.provider.clone());
        let mut summary = summarize(
            std::iter::empty(),
            plan.source,
            provider,
            history_since.or(checkpoint.history_since),
            now,
        );
        let mut listing = progress.listing.take().unwrap_or_default();
        let listed_before = self
            .store
            .load_listed(tenant, &progress.run_id, listing.listed_chunks)
            .await?;
        for id in &listed_before {
            if let Some(user) = stored.remove(id.as_str()) {
                count_user(&mut summary, &user, 1);
            }
        }
        let mut pending: Vec<UserLicense> = Vec::new();
        let mut listed: Vec<String> = Vec::new();
        loop {
            let stop = self.near_deadline(plan.deadline);
            if stop || listing.is_complete() {
                if !pending.is_empty() {
                    tally.items_written += self.store.put_users(tenant, &pending).await? as u64;
                    pending.clear();
                }
                if !stop {
                    break;
                }
                let written = self
                    .store
                    .save_listed(tenant, &progress.run_id, listing.listed_chunks, &listed)
                    .await?;
                listing.listed_chunks += written;
                tally.items_written += u64::from(written);
                progress.listing = Some(listing);
                let logins = fresh_logins.then_some(&logins);
                return self.pause(tenant, client, checkpoint, progress, logins, tally).await;
            }
            // Managed users only: Box lists no external user without its exact login, and
            // external users hold no seat (see `ListingProgress`).
            let token = self.tokens.token(tenant, None).await?;
            let mut pages = client.user_pages(token, UserType::Managed, listing.marker.clone());
            // Bounded by the client's page guard; a page at a time, so the deadline is checked
            // between pages.
            while let Some(page) = pages.try_next().await? {
                for user in page.users {
                    if listed_before.contains(&user.id) {
                        continue;
                    }
                    // Box ids are digits; an id that is not one could not be acted on nor keyed
                    // safely, so such an entry is left out of the listing (Box sends none).
                    let Ok(id) = BoxUserId::parse(&user.id) else {
                        tracing::warn!("Box listed a user whose id is not digits; skipped");
                        continue;
                    };
                    tally.users_listed += 1;
                    let kind = if user.is_platform_access_only {
                        UserKind::AppUser
                    } else {
                        UserKind::Managed
                    };
                    let activity = activity_of(&user, &logins, sso.as_ref());
                    let previous = stored.remove(id.as_str());
                    let next = UserLicense::from_box(id, &user, kind, activity, previous.as_ref(), now);
                    count_user(&mut summary, &next, 1);
                    listed.push(user.id);
                    if previous.is_none_or(|old| !old.same_state(&next)) {
                        pending.push(next);
                        if pending.len() >= self.options.write_chunk {
                            tally.items_written += self.store.put_users(tenant, &pending).await? as u64;
                            pending.clear();
                        }
                    }
                }
                let last = page.next_marker.is_none();
                listing.marker = page.next_marker;
                if last {
                    break;
                }
                if self.near_deadline(plan.deadline) {
                    break;
                }
            }
            if listing.marker.is_none() {
                listing.phase = ListingProgress::COMPLETE;
            }
        }
        // 3. The listing is complete: now, and only now, mark the missing as removed.
        for (_, mut user) in stored {
            if user.removed_at.is_none() {
                user.removed_at = Some(now);
                user.last_seen_at = now;
                pending.push(user);
            }
        }
        if !pending.is_empty() {
            tally.items_written += self.store.put_users(tenant, &pending).await? as u64;
        }
        // 4. The summary, replaced whole, unless an action adjusted it meanwhile.
        self.replace_summary(tenant, summary, summary_version).await?;
        tally.items_written += 1;
        if plan.source == ActivitySource::BoxEvents {
            Self::advance_events(checkpoint, &progress, &logins);
        }
        if checkpoint.history_since.is_none() {
            checkpoint.history_since = history_since;
        }
        checkpoint.last_full_sync_at = Some(now);
        checkpoint.in_progress = None;
        Ok(SyncOutcome::Succeeded)
    }

    /// Writes a full sync's summary if the stored one is still the version it started from. If an
    /// action adjusted it during the sync, the listing may predate that change: count the stored
    /// users (which every writer updates by version) instead.
    async fn replace_summary(
        &self,
        tenant: &TenantId,
        mut summary: LicenseSummary,
        mut expected: Option<u64>,
    ) -> Result<(), SyncError> {
        for _ in 0..VERSIONED_ATTEMPTS {
            if let VersionedOutcome::Written { .. } =
                self.store.put_summary_versioned(tenant, &summary, expected).await?
            {
                return Ok(());
            }
            expected = self.store.get_summary_versioned(tenant).await?.map(|s| s.version);
            let users = self.store.load_users(tenant).await?;
            summary = summarize(
                users.values(),
                summary.activity_source,
                summary.activity_provider.clone(),
                summary.history_since,
                summary.computed_at,
            );
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "the summary kept changing while a full sync replaced it"
        ))
        .into())
    }

    /// Reads only new login events and updates the users they name and the summary's counts.
    async fn incremental(
        &self,
        plan: &SyncPlan,
        client: &BoxClient,
        checkpoint: &mut SyncCheckpoint,
        tally: &mut Tally,
    ) -> Result<SyncOutcome, SyncError> {
        let tenant = &plan.tenant;
        if plan.source != ActivitySource::BoxEvents {
            return Err(SyncError::Precondition(
                "incremental passes read Box's event stream, which is closed for this tenant".into(),
            ));
        }
        if checkpoint
            .in_progress
            .as_ref()
            .is_some_and(|p| p.kind == SyncKind::Full)
        {
            // The unfinished full sync reads these events too; its progress must not be replaced.
            return Ok(SyncOutcome::Skipped);
        }
        let (Some(_), Some(_)) = (checkpoint.events_until, self.store.get_summary(tenant).await?) else {
            return Err(SyncError::Precondition(
                "no complete full sync yet: the incremental pass needs its checkpoint".into(),
            ));
        };
        let now = Utc::now();
        let (mut progress, mut logins) = self.start_or_resume(plan, checkpoint, now).await?;
        let fresh_logins = progress.slices.iter().any(|s| !s.done);
        if !self
            .read_logins(plan, client, &mut progress, &mut logins, tally)
            .await?
        {
            return self
                .pause(tenant, client, checkpoint, progress, Some(&logins), tally)
                .await;
        }
        // First only read (a pause here leaves nothing half-written), in id order: who is new
        // (fetched from Box) and whose activity moves.
        let mut ordered: Vec<(&String, &DateTime<Utc>)> = logins.iter().collect();
        ordered.sort_unstable();
        let mut newcomers: Vec<UserLicense> = Vec::new();
        let mut later_seen: Vec<(BoxUserId, Activity)> = Vec::new();
        for (id, at) in ordered {
            if self.near_deadline(plan.deadline) {
                // Nothing is written yet: the next invocation does this part again.
                let logins = fresh_logins.then_some(&logins);
                return self.pause(tenant, client, checkpoint, progress, logins, tally).await;
            }
            let seen = Activity::Seen {
                at: *at,
                origin: ActivityOrigin::BoxLogin,
            };
            // An event's user id is Box's text: checked here, refused as Box would refuse it.
            let id = parse_user_id(id)?;
            match self.store.get_user(tenant, &id).await? {
                Some(current) if current.activity.latest(seen) == current.activity => {}
                Some(_) => later_seen.push((id, seen)),
                None => {
                    // Someone new since the last full sync: fetch and count them now.
                    let token = self.tokens.token(tenant, None).await?;
                    let user = match client.user(&token, &id).await {
                        Ok(user) => user,
                        Err(BoxError::NotFound(_)) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    tally.users_listed += 1;
                    let kind = if user.is_platform_access_only {
                        UserKind::AppUser
                    } else {
                        UserKind::Managed
                    };
                    newcomers.push(UserLicense::from_box(id, &user, kind, seen, None, now));
                }
            }
        }
        // Then write: each user only if nobody changed it since it was read (an action may
        // deactivate someone meanwhile; re-read and re-apply then), and the summary adjusted by
        // what was written, never replaced with a stale copy.
        let mut counted: Vec<UserLicense> = Vec::new();
        for fresh in newcomers {
            match self.store.put_user_versioned(tenant, &fresh, None).await? {
                VersionedOutcome::Written { .. } => {
                    tally.items_written += 1;
                    counted.push(fresh);
                }
                // Stored meanwhile (and counted by whoever stored it): update it instead.
                VersionedOutcome::Conflict => later_seen.push((fresh.box_user_id.clone(), fresh.activity)),
            }
        }
        let mut moved: Vec<(Activity, Activity)> = Vec::new();
        for (id, seen) in later_seen {
            let later = |current: &UserLicense| {
                let activity = current.activity.latest(seen);
                (activity != current.activity).then(|| UserLicense {
                    activity,
                    last_seen_at: now,
                    ..current.clone()
                })
            };
            if let Some((before, after)) = update_user(&*self.store, tenant, &id, later).await?
                && before != after
            {
                tally.items_written += 1;
                if counts_in_histogram(&before) {
                    moved.push((before.activity, after.activity));
                }
            }
        }
        update_summary(&*self.store, tenant, |summary| {
            for user in &counted {
                count_user(summary, user, 1);
            }
            for (from, to) in &moved {
                summary.histogram.remove(from);
                summary.histogram.add(to);
            }
            summary.computed_at = now;
        })
        .await?;
        tally.items_written += 1;
        Self::advance_events(checkpoint, &progress, &logins);
        checkpoint.in_progress = None;
        Ok(SyncOutcome::Succeeded)
    }
}

/// A run gives up after this many invocations (15 minutes each: 12 hours).
const MAX_RUN_INVOCATIONS: u32 = 48;
/// Progress older than this is not resumed (its scratch items expire after 2 days).
const MAX_RUN_AGE_HOURS: i64 = 24;

fn new_run(kind: SyncKind, now: DateTime<Utc>, slices: Vec<SliceProgress>) -> RunProgress {
    RunProgress {
        run_id: uuid::Uuid::new_v4().to_string(),
        kind,
        started_at: now,
        window_to: slices.last().map_or(now, |s| s.to),
        slices,
        scratch_chunks: 0,
        box_calls: 0,
        items_written: 0,
        events_read: 0,
        invocations: 0,
        listing: None,
    }
}

fn activity_of(user: &User, logins: &HashMap<String, DateTime<Utc>>, sso: Option<&SsoSignIns>) -> Activity {
    match sso {
        None => logins.get(&user.id).map_or(Activity::Never, |at| Activity::Seen {
            at: *at,
            origin: ActivityOrigin::BoxLogin,
        }),
        Some(sso) => user
            .login
            .as_deref()
            .and_then(|login| sso.by_login.get(&login.to_lowercase()))
            .map_or(Activity::NoData, |(at, origin)| Activity::Seen {
                at: *at,
                origin: *origin,
            }),
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
                summary.histogram.add(&user.activity);
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
        seat_holders: 0,
        deactivated: 0,
        admins: 0,
        app_users: 0,
        external_users: 0,
        content_owners: 0,
        histogram: ActivityHistogram::default(),
    };
    for user in users {
        count_user(&mut summary, user, 1);
    }
    summary
}

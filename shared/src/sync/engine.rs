//! One tenant's sync. A full sync lists every user (marker paging) and reads LOGIN events since
//! the checkpoint (the first one back-fills `backfill_days`), in time slices read concurrently
//! under a per-tenant request budget. Only users whose state changed are written; users are marked
//! removed and the summary replaced only after a complete listing, so a run that fails halfway
//! leaves the previous state intact. Near its deadline a run saves its progress and says
//! [`SyncOutcome::Continued`]; the next invocation resumes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use secrecy::SecretString;
use tokio::time::Instant;

use super::store::{LicenseStore, VERSIONED_ATTEMPTS, update_summary, update_user};
use super::{LicenseSummary, RunProgress, SliceProgress, SyncCheckpoint, SyncKind, SyncOutcome, SyncRun};
use crate::boxapi::{BoxClient, BoxError, EventsQuery, RequestBudget, User, UserStatus, UserType};
use crate::connection::ActivitySource;
use crate::ids::TenantId;
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
    /// Re-read this much before the checkpoint: Box's admin log can deliver events late.
    pub overlap: Duration,
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
struct Tally {
    items_written: u64,
    users_listed: u64,
    events_read: u64,
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
        let mut tally = Tally::default();
        let result = match plan.kind {
            SyncKind::Full => self.full(plan, &client, &mut checkpoint, &mut tally).await,
            SyncKind::Incremental => self.incremental(plan, &client, &mut checkpoint, &mut tally).await,
        };
        let (outcome, error, prior) = match &result {
            Ok(outcome) => (*outcome, None, checkpoint.in_progress.clone()),
            Err(e) => (SyncOutcome::Failed, Some(e.to_string()), None),
        };
        let resumed = checkpoint
            .last_run
            .as_ref()
            .filter(|r| r.outcome == SyncOutcome::Continued)
            .cloned();
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
            users_listed: tally.users_listed,
            events_read: tally.events_read + resumed.as_ref().map_or(0, |r| r.events_read),
            invocations: 1 + resumed.as_ref().map_or(0, |r| r.invocations),
            error,
        };
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

    fn near_deadline(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() + self.options.deadline_margin >= d)
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
        // 1. Activity: Box's login events, or the SSO provider's sign-ins.
        let (logins, sso, history_since, window_to) = match plan.source {
            ActivitySource::BoxEvents => {
                let Some((logins, window_to, since)) = self.read_logins(plan, client, checkpoint, tally, now).await?
                else {
                    return Ok(SyncOutcome::Continued);
                };
                (logins, None, Some(since), Some(window_to))
            }
            ActivitySource::Sso => {
                let sso = plan.sso.as_ref().ok_or_else(|| {
                    SyncError::Precondition(
                        "Box's event stream is closed for this tenant and no SSO provider is configured in its settings".into(),
                    )
                })?;
                let since = now - chrono::Duration::days(i64::from(self.options.backfill_days.min(365)));
                let sign_ins = sso.sign_ins(since, now).await.map_err(SyncError::Sso)?;
                let coverage = sign_ins.coverage_since;
                (HashMap::new(), Some(sign_ins), Some(coverage), None)
            }
        };

        // 2. Users: compare each with its stored state; write only what changed. Each listed user
        //    leaves the stored map, so what remains after a complete listing is who is gone, and
        //    the summary is counted on the way (one copy of the users in memory, not two).
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
        let mut pending: Vec<UserLicense> = Vec::new();
        for user_type in [UserType::Managed, UserType::External] {
            let token = self.tokens.token(tenant, None).await?;
            let mut users = client.users(token, user_type);
            while let Some(user) = users.try_next().await? {
                tally.users_listed += 1;
                let kind = match user_type {
                    UserType::External => UserKind::External,
                    _ if user.is_platform_access_only => UserKind::AppUser,
                    _ => UserKind::Managed,
                };
                let activity = activity_of(&user, &logins, sso.as_ref());
                let previous = stored.remove(&user.id);
                let next = UserLicense::from_box(&user, kind, activity, previous.as_ref(), now);
                count_user(&mut summary, &next, 1);
                if previous.is_none_or(|old| !old.same_state(&next)) {
                    pending.push(next);
                    if pending.len() >= self.options.write_chunk {
                        tally.items_written += self.store.put_users(tenant, &pending).await? as u64;
                        pending.clear();
                    }
                }
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
        if let Some(to) = window_to {
            checkpoint.events_until = Some(to);
        }
        if checkpoint.history_since.is_none() {
            checkpoint.history_since = history_since;
        }
        checkpoint.last_full_sync_at = Some(now);
        checkpoint.in_progress = None;
        Ok(SyncOutcome::Succeeded)
    }

    /// Reads LOGIN events into each user's latest login. `None`: stopped at the deadline with
    /// progress saved in the checkpoint.
    async fn read_logins(
        &self,
        plan: &SyncPlan,
        client: &BoxClient,
        checkpoint: &mut SyncCheckpoint,
        tally: &mut Tally,
        now: DateTime<Utc>,
    ) -> Result<Option<(HashMap<String, DateTime<Utc>>, DateTime<Utc>, DateTime<Utc>)>, SyncError> {
        let tenant = &plan.tenant;
        let backfill = chrono::Duration::days(i64::from(self.options.backfill_days.clamp(1, 365)));
        let overlap = chrono::Duration::from_std(self.options.overlap).unwrap_or_default();
        let (mut progress, mut logins) = match checkpoint.in_progress.take().filter(|p| p.kind == plan.kind) {
            Some(p) => {
                let logins = self.store.load_scratch(tenant, &p.run_id, p.scratch_chunks).await?;
                tracing::info!(run = %p.run_id, users = logins.len(), "resuming an interrupted sync");
                (p, logins)
            }
            None => {
                let from = checkpoint.events_until.map_or(now - backfill, |t| t - overlap);
                // A slice per day at most: a short window (an hour's overlap) is one stream.
                let days = usize::try_from((now - from).num_days() + 1).unwrap_or(1);
                (
                    new_progress(plan.kind, from, now, self.options.slices.min(days)),
                    HashMap::new(),
                )
            }
        };
        let since = progress.slices.first().map_or(now, |s| s.from);
        let shared = Arc::new(Mutex::new(std::mem::take(&mut logins)));
        let results: Vec<Result<(usize, SliceProgress, u64), SyncError>> =
            futures::stream::iter(progress.slices.clone().into_iter().enumerate().filter(|(_, s)| !s.done))
                .map(|(i, slice)| {
                    let shared = shared.clone();
                    async move {
                        let (slice, events) = self.read_slice(tenant, client, slice, &shared, plan.deadline).await?;
                        Ok((i, slice, events))
                    }
                })
                .buffer_unordered(self.options.slices.max(1))
                .collect()
                .await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok((i, slice, events)) => {
                    progress.slices[i] = slice;
                    tally.events_read += events;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let logins = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(e) = first_error {
            return Err(e);
        }
        if progress.slices.iter().all(|s| s.done) {
            return Ok(Some((
                logins,
                progress.window_to,
                checkpoint.history_since.unwrap_or(since),
            )));
        }
        // Out of time: save what was read and where each slice stopped.
        progress.scratch_chunks = self.store.save_scratch(tenant, &progress.run_id, &logins).await?;
        progress.box_calls += client.calls();
        progress.events_read += tally.events_read;
        progress.invocations += 1;
        tally.items_written += u64::from(progress.scratch_chunks);
        tracing::info!(run = %progress.run_id, "deadline near: progress saved, the run continues in a new invocation");
        checkpoint.in_progress = Some(progress);
        Ok(None)
    }

    /// Reads one time slice from its saved position; stops early near the deadline. A 401
    /// refreshes the token once and resumes from the last position.
    async fn read_slice(
        &self,
        tenant: &TenantId,
        client: &BoxClient,
        mut slice: SliceProgress,
        logins: &Mutex<HashMap<String, DateTime<Utc>>>,
        deadline: Option<Instant>,
    ) -> Result<(SliceProgress, u64), SyncError> {
        let mut events = 0u64;
        let mut rejected: Option<SecretString> = None;
        loop {
            let token = self.tokens.token(tenant, rejected.as_ref()).await?;
            let query = EventsQuery {
                stream_position: slice.position.clone(),
                ..EventsQuery::logins(slice.from, slice.to)
            };
            let mut pages = client.admin_event_pages(token.clone(), query);
            loop {
                if self.near_deadline(deadline) {
                    return Ok((slice, events));
                }
                match pages.next().await {
                    None => {
                        slice.done = true;
                        return Ok((slice, events));
                    }
                    Some(Ok(page)) => {
                        events += page.events.len() as u64;
                        let mut map = logins.lock().unwrap_or_else(|p| p.into_inner());
                        for e in &page.events {
                            if e.event_type.as_deref() != Some(crate::boxapi::LOGIN_EVENT) {
                                continue;
                            }
                            let (Some(by), Some(at)) = (&e.created_by, e.created_at) else {
                                continue;
                            };
                            if by.id == crate::boxapi::ANONYMOUS_USER_ID {
                                continue;
                            }
                            let slot = map.entry(by.id.clone()).or_insert(at);
                            *slot = (*slot).max(at);
                        }
                        slice.position = Some(page.next_stream_position);
                    }
                    Some(Err(BoxError::Unauthorized(_))) if rejected.is_none() => {
                        rejected = Some(token);
                        break;
                    }
                    Some(Err(e)) => return Err(e.into()),
                }
            }
        }
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
        let (Some(until), Some(_)) = (checkpoint.events_until, self.store.get_summary(tenant).await?) else {
            return Err(SyncError::Precondition(
                "no complete full sync yet: the incremental pass needs its checkpoint".into(),
            ));
        };
        let now = Utc::now();
        let overlap = chrono::Duration::from_std(self.options.overlap).unwrap_or_default();
        checkpoint.in_progress = Some(new_progress(SyncKind::Incremental, until - overlap, now, 1));
        let Some((logins, window_to, _)) = self.read_logins(plan, client, checkpoint, tally, now).await? else {
            return Ok(SyncOutcome::Continued);
        };
        // Each user is written only if nobody changed it since it was read (an action may
        // deactivate someone meanwhile; re-read and re-apply then), and the summary is adjusted by
        // what was written, never replaced with a stale copy. Users go in id order.
        let mut logins: Vec<(String, DateTime<Utc>)> = logins.into_iter().collect();
        logins.sort_unstable();
        let mut counted: Vec<UserLicense> = Vec::new();
        let mut moved: Vec<(Activity, Activity)> = Vec::new();
        for (id, at) in logins {
            let seen = Activity::Seen {
                at,
                origin: ActivityOrigin::BoxLogin,
            };
            let later = |current: &UserLicense| {
                let activity = current.activity.latest(seen);
                (activity != current.activity).then(|| UserLicense {
                    activity,
                    last_seen_at: now,
                    ..current.clone()
                })
            };
            let mut updated = update_user(&*self.store, tenant, &id, later).await?;
            if updated.is_none() {
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
                let fresh = UserLicense::from_box(&user, kind, seen, None, now);
                match self.store.put_user_versioned(tenant, &fresh, None).await? {
                    VersionedOutcome::Written { .. } => {
                        tally.items_written += 1;
                        counted.push(fresh);
                        continue;
                    }
                    // Stored meanwhile (and counted by whoever stored it): update it instead.
                    VersionedOutcome::Conflict => updated = update_user(&*self.store, tenant, &id, later).await?,
                }
            }
            if let Some((before, after)) = updated
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
        checkpoint.events_until = Some(window_to);
        checkpoint.in_progress = None;
        Ok(SyncOutcome::Succeeded)
    }
}

fn new_progress(kind: SyncKind, from: DateTime<Utc>, to: DateTime<Utc>, slices: usize) -> RunProgress {
    let slices = slices.max(1) as i32;
    let span = (to - from) / slices;
    RunProgress {
        run_id: uuid::Uuid::new_v4().to_string(),
        kind,
        started_at: Utc::now(),
        window_to: to,
        slices: (0..slices)
            .map(|i| SliceProgress {
                from: from + span * i,
                to: if i == slices - 1 { to } else { from + span * (i + 1) },
                position: None,
                done: false,
            })
            .collect(),
        scratch_chunks: 0,
        box_calls: 0,
        items_written: 0,
        events_read: 0,
        invocations: 0,
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

//! A full sync: every user listed (marker paging), activity events or SSO sign-ins read, changed
//! users written, removed users marked and the summary replaced only after a complete listing.
//!
//! A first read of Box's events goes newest first (see `activity.rs`): the recent part of
//! history, then the listing and the published report (exact for every threshold, partial in
//! history), then the older part, which only moves dates that were unknown or older.

use super::*;
use crate::storage::user_index::USER_INDEX_VERSION;

impl Syncer {
    pub(super) async fn full(
        &self,
        plan: &SyncPlan,
        client: &BoxClient,
        checkpoint: &mut SyncCheckpoint,
        tally: &mut Tally,
    ) -> Result<SyncOutcome, SyncError> {
        let tenant = &plan.tenant;
        let now = Utc::now();
        let (mut progress, mut observed) = self.start_or_resume(plan, checkpoint, now).await?;
        if progress.published {
            return self
                .back_fill(plan, client, checkpoint, progress, observed, tally)
                .await;
        }
        let recent = progress.recent_slices.unwrap_or(usize::MAX).min(progress.slices.len());
        let back_fill_pending = recent < progress.slices.len();
        // What this invocation reads is saved if it stops; what was loaded from scratch already is.
        let fresh = progress.slices[..recent].iter().any(|s| !s.done);
        // 1. Activity: Box's activity events (the recent part of history first), or the SSO
        //    provider's sign-ins (read again by each invocation of the run: one bounded read, cut
        //    off at the deadline).
        let (sso, history_since) = match plan.source {
            ActivitySource::BoxEvents => {
                if !self
                    .read_activity(plan, client, &mut progress, 0..recent, &mut observed, tally)
                    .await?
                {
                    return self
                        .pause(tenant, client, checkpoint, progress, Some(&observed), tally)
                        .await;
                }
                let since = progress.slices[..recent].iter().map(|s| s.from).min().unwrap_or(now);
                let since = if back_fill_pending {
                    since
                } else {
                    checkpoint.history_since.map_or(since, |h| h.min(since))
                };
                (None, Some(since))
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
        let stored_summary = self.store.get_summary_versioned(tenant).await?;
        let summary_version = stored_summary.as_ref().map(|s| s.version);
        // Users stored under older index attributes are rewritten, changed or not (once: the
        // summary this sync writes names the current version).
        let reindex = stored_summary.is_some_and(|s| s.item.user_index_version < USER_INDEX_VERSION);
        if reindex {
            tracing::info!("user index attributes are older than this version: every user is rewritten once");
        }
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
                let observed = fresh.then_some(&observed);
                return self.pause(tenant, client, checkpoint, progress, observed, tally).await;
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
                    let seen = signals_of(&user, &observed, sso.as_ref());
                    let previous = stored.remove(id.as_str());
                    let next = UserLicense::from_box(id, &user, kind, seen, previous.as_ref(), now);
                    count_user(&mut summary, &next, 1);
                    listed.push(user.id);
                    if reindex || previous.is_none_or(|old| !old.same_state(&next)) {
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
        // 4. The summary, replaced whole, unless an action adjusted it meanwhile. With older
        //    history still to read it is published now: exact for every threshold, partial in
        //    history.
        summary.history_complete = !back_fill_pending;
        self.replace_summary(tenant, summary, summary_version).await?;
        tally.items_written += 1;
        checkpoint.last_full_sync_at = Some(now);
        if plan.source == ActivitySource::BoxEvents {
            // The next incremental pass starts where the newest slice ended (it waits for the
            // back-fill: an unfinished full run reads first).
            let newest = observed.values().filter_map(|o| o.newest()).max();
            Self::advance_events(checkpoint, &progress, newest);
        }
        if back_fill_pending {
            tracing::info!(run = %progress.run_id, "report published from the recent history; older history is read next");
            progress.published = true;
            progress.listing = None;
            progress.scratch_chunks = 0;
            observed.clear();
            return self
                .back_fill(plan, client, checkpoint, progress, observed, tally)
                .await;
        }
        if plan.source == ActivitySource::BoxEvents {
            checkpoint.content_events = true;
        }
        if checkpoint.history_since.is_none() {
            checkpoint.history_since = history_since;
        }
        checkpoint.in_progress = None;
        Ok(SyncOutcome::Succeeded)
    }

    /// The older part of a first read, after the report is published: reads it (pausing at the
    /// deadline like any phase), then moves each date the older history knows and the stored
    /// state does not (a user last seen before the recent part; never a newer date), and counts
    /// the summary again from the stored users. Applying it twice changes nothing, so a run cut
    /// anywhere here resumes to the same state.
    async fn back_fill(
        &self,
        plan: &SyncPlan,
        client: &BoxClient,
        checkpoint: &mut SyncCheckpoint,
        mut progress: RunProgress,
        mut observed: ObservedMap,
        tally: &mut Tally,
    ) -> Result<SyncOutcome, SyncError> {
        let tenant = &plan.tenant;
        let recent = progress.recent_slices.unwrap_or(0).min(progress.slices.len());
        let all = progress.slices.len();
        if !self
            .read_activity(plan, client, &mut progress, recent..all, &mut observed, tally)
            .await?
        {
            return self
                .pause(tenant, client, checkpoint, progress, Some(&observed), tally)
                .await;
        }
        let stored_summary = self.store.get_summary_versioned(tenant).await?;
        let summary_version = stored_summary.as_ref().map(|s| s.version);
        // Users stored under older index attributes are rewritten, changed or not (once: the
        // summary this sync writes names the current version).
        let reindex = stored_summary.is_some_and(|s| s.item.user_index_version < USER_INDEX_VERSION);
        if reindex {
            tracing::info!("user index attributes are older than this version: every user is rewritten once");
        }
        let mut users = self.store.load_users(tenant).await?;
        let mut ids: Vec<&String> = observed.keys().collect();
        ids.sort_unstable();
        let now = Utc::now();
        for id in ids {
            if self.near_deadline(plan.deadline) {
                // What is written stays written; the rest is applied by the next invocation.
                return self
                    .pause(tenant, client, checkpoint, progress, Some(&observed), tally)
                    .await;
            }
            let (Ok(box_id), Some(seen)) = (BoxUserId::parse(id), observed.get(id)) else {
                continue;
            };
            let seen = seen.signals();
            // Only users the listing stored: someone in old events but gone from Box holds no seat.
            let Some(current) = users.get(&box_id) else {
                continue;
            };
            if current.signals().latest(seen) == current.signals() {
                continue;
            }
            let older = |u: &UserLicense| {
                let dates = u.signals().latest(seen);
                (dates != u.signals()).then(|| {
                    let mut next = u.clone();
                    next.set_signals(dates);
                    next.last_seen_at = now;
                    next
                })
            };
            if let Some((before, after)) = update_user(&*self.store, tenant, &box_id, older).await? {
                if before != after {
                    tally.items_written += 1;
                }
                users.insert(box_id, after);
            }
        }
        let floor = progress.slices.iter().map(|s| s.from).min();
        let since = [checkpoint.history_since, floor].into_iter().flatten().min();
        let summary = summarize(users.values(), ActivitySource::BoxEvents, "box".to_owned(), since, now);
        self.replace_summary(tenant, summary, summary_version).await?;
        tally.items_written += 1;
        tracing::info!(run = %progress.run_id, users = observed.len(), "older history read; last-seen dates filled in");
        checkpoint.history_since = since;
        checkpoint.content_events = true;
        checkpoint.in_progress = None;
        Ok(SyncOutcome::Succeeded)
    }

    /// Writes a full sync's summary if the stored one is still the version it started from. If an
    /// action adjusted it during the sync, the listing may predate that change: count the stored
    /// users (which every writer updates by version) instead.
    pub(super) async fn replace_summary(
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
            let complete = summary.history_complete;
            summary = summarize(
                users.values(),
                summary.activity_source,
                summary.activity_provider.clone(),
                summary.history_since,
                summary.computed_at,
            );
            summary.history_complete = complete;
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "the summary kept changing while a full sync replaced it"
        ))
        .into())
    }
}

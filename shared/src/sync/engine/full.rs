//! A full sync: every user listed (marker paging), login events or SSO sign-ins read, changed
//! users written, removed users marked and the summary replaced only after a complete listing.

use super::*;

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
}

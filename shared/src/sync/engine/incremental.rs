//! An incremental pass: only new login events, the users they name and the summary's counts.

use super::*;

impl Syncer {
    /// Reads only new login events and updates the users they name and the summary's counts.
    pub(super) async fn incremental(
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

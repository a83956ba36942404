//! An incremental pass: only new activity events (logins and content), the users they name and
//! the summary's counts.

use super::*;
use crate::sync::Observed;

impl Syncer {
    /// Reads only new activity events and updates the users they name and the summary's counts.
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
        let (mut progress, mut observed) = self.start_or_resume(plan, checkpoint, now).await?;
        let fresh = progress.slices.iter().any(|s| !s.done);
        let all = 0..progress.slices.len();
        if !self
            .read_activity(plan, client, &mut progress, all, &mut observed, tally)
            .await?
        {
            return self
                .pause(tenant, client, checkpoint, progress, Some(&observed), tally)
                .await;
        }
        // First only read (a pause here leaves nothing half-written), in id order: who is new
        // (fetched from Box) and whose activity moves.
        let mut ordered: Vec<(&String, &Observed)> = observed.iter().collect();
        ordered.sort_unstable_by_key(|(id, _)| *id);
        let mut newcomers: Vec<UserLicense> = Vec::new();
        let mut later_seen: Vec<(BoxUserId, Signals)> = Vec::new();
        for (id, read) in ordered {
            if self.near_deadline(plan.deadline) {
                // Nothing is written yet: the next invocation does this part again.
                let observed = fresh.then_some(&observed);
                return self.pause(tenant, client, checkpoint, progress, observed, tally).await;
            }
            // Only the dates read move: the other stays unknown to this pass (`NoData` never
            // replaces a stored date or a stored `Never`).
            let seen = partial_signals(read);
            // An event's user id is Box's text: checked here, refused as Box would refuse it.
            let id = parse_user_id(id)?;
            match self.store.get_user(tenant, &id).await? {
                Some(current) if current.signals().latest(seen) == current.signals() => {}
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
                    // New since the last full sync: what this pass did not read, they never did.
                    newcomers.push(UserLicense::from_box(id, &user, kind, read.signals(), None, now));
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
                VersionedOutcome::Conflict => later_seen.push((fresh.box_user_id.clone(), fresh.signals())),
            }
        }
        let mut moved: Vec<(Signals, Signals)> = Vec::new();
        for (id, seen) in later_seen {
            let later = |current: &UserLicense| {
                let dates = current.signals().latest(seen);
                (dates != current.signals()).then(|| {
                    let mut next = current.clone();
                    next.set_signals(dates);
                    next.last_seen_at = now;
                    next
                })
            };
            if let Some((before, after)) = update_user(&*self.store, tenant, &id, later).await?
                && before != after
            {
                tally.items_written += 1;
                if counts_in_histogram(&before) {
                    moved.push((before.signals(), after.signals()));
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
        let newest = observed.values().filter_map(|o| o.newest()).max();
        Self::advance_events(checkpoint, &progress, newest);
        checkpoint.in_progress = None;
        Ok(SyncOutcome::Succeeded)
    }
}

/// The dates an incremental pass read, the others `NoData`: a pass that saw only a login says
/// nothing about content, so it must not turn a stored content date into "never".
fn partial_signals(read: &Observed) -> Signals {
    let dates = read.signals();
    let known = |at: Option<DateTime<Utc>>, a: Activity| if at.is_some() { a } else { Activity::NoData };
    Signals {
        login: known(read.login, dates.login),
        content: known(read.content, dates.content),
    }
}

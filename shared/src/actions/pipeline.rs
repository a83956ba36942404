//! The pipeline for one user: read the stored state, check the rails, plan (dry run) or take a
//! slot of the daily cap, read the user from Box and check again, change (or complete a change Box
//! already shows), and write one audit record per attempt. The Box steps themselves are in
//! `change.rs`; what a failed step means is in `failure.rs`.

use chrono::{Duration, NaiveTime, Utc};

use super::outcome::ActionsError;
use super::rails::{self, Facts, Refusal, box_rails};
use super::summary::SummaryDelta;
use super::{Action, ActionsService, Context, DELETE_BILLING_NOTE, UserOutcome, UserResult};
use crate::audit::{AuditOutcome, AuditRecord};
use crate::boxapi::{User, UserStatus};
use crate::ids::BoxUserId;
use crate::license::UserLicense;
use crate::storage::schema::tenant_pk;
use crate::sync::LicenseStore;

impl ActionsService {
    /// The whole pipeline for one user: rails, dry run, daily cap, Box, license state, audit.
    /// `Err` only for seatsync's own storage failures.
    pub(super) async fn act(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        action: &Action,
    ) -> Result<(UserResult, SummaryDelta), ActionsError> {
        let tenant = &ctx.call.tenant;
        // Strongly consistent: the rails judge the user's latest stored activity.
        let stored = LicenseStore::get_user(&self.table, tenant, user)
            .await
            .map_err(|e| ActionsError::Internal(e.into()))?;
        let transfer_target = match action {
            Action::Delete { transfer_to: Some(to) } => LicenseStore::get_user(&self.table, tenant, to)
                .await
                .map_err(|e| ActionsError::Internal(e.into()))?,
            _ => None,
        };
        let facts = Facts {
            connection: ctx.connection.as_ref(),
            settings: &ctx.settings,
            options: ctx.options,
            now: ctx.now,
        };
        if let Some(refusal) = rails::check(&facts, user, stored.as_ref(), action, transfer_target.as_ref()) {
            return Ok((
                self.refuse(ctx, user, stored.as_ref(), action, refusal).await,
                SummaryDelta::default(),
            ));
        }
        // The rails refuse users that are not stored; should that ever change, fail cleanly.
        let Some(stored) = stored else {
            return Err(ActionsError::Internal(anyhow::anyhow!(
                "a user passed the rails without a stored license state"
            )));
        };
        if ctx.options.dry_run {
            let detail = planned_detail(user, action);
            let result = self
                .record(
                    ctx,
                    user,
                    Some(&stored),
                    action,
                    UserOutcome::Planned,
                    action.target_status(),
                    Some(detail),
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
        let changed = if box_shows_outcome(fresh.as_ref(), action) {
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

    /// A bulk user the request had no time left to start.
    pub(super) async fn not_attempted(
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
                UserOutcome::Refused(Refusal::OutOfTime),
                None,
                Some(detail),
            )
            .await;
        (result, SummaryDelta::default())
    }

    pub(super) async fn refuse(
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
            UserOutcome::Refused(refusal),
            None,
            Some(detail),
        )
        .await
    }

    /// Writes the one audit record of an attempt and returns its result.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: Option<&UserLicense>,
        action: &Action,
        outcome: UserOutcome,
        after: Option<UserStatus>,
        detail: Option<String>,
    ) -> UserResult {
        let before = stored.map(|u| u.status);
        let record = AuditRecord {
            id: uuid::Uuid::new_v4().to_string(),
            at: Utc::now(),
            tenant: ctx.call.tenant.clone(),
            actor: ctx.call.actor.clone(),
            action: action.audit_action(),
            target_box_user_id: user.clone(),
            target_login: stored.and_then(|u| u.login.clone()),
            before_status: before,
            after_status: after,
            reason: ctx.options.reason.clone(),
            request_id: ctx.call.request_id.clone(),
            idempotency_key: ctx.call.idempotency_key.clone(),
            outcome: outcome.audit(),
            detail: detail.clone(),
        };
        if let Err(e) = self.audit.append(&record).await {
            // The change (if any) stands; losing its record is logged loudly with everything in it.
            tracing::error!(error = %e, record = ?record, "could not write the audit record");
        }
        UserResult {
            box_user_id: user.clone(),
            login: record.target_login,
            before: before.map(UserStatus::as_str),
            after: after_label(&outcome, action, before, after),
            outcome,
            detail,
            audit_id: record.id,
            sessions_ended: false,
            transfer_folder: None,
        }
    }

    /// One slot of the tenant's daily cap; `false` when none is left.
    async fn take_slot(&self, ctx: &Context<'_>) -> Result<bool, ActionsError> {
        let day = ctx.now.date_naive();
        let expires_at = (day + Duration::days(3)).and_time(NaiveTime::MIN).and_utc().timestamp();
        let taken = self
            .table
            .increment_below(
                &tenant_pk(&ctx.call.tenant),
                &crate::storage::schema::actions_counter_sk(day),
                u64::from(ctx.settings.daily_action_cap),
                expires_at,
            )
            .await
            .map_err(|e| ActionsError::Internal(e.into()))?;
        Ok(taken.is_some())
    }

    async fn give_back_slot(&self, ctx: &Context<'_>) {
        let sk = crate::storage::schema::actions_counter_sk(ctx.now.date_naive());
        if let Err(e) = self.table.decrement(&tenant_pk(&ctx.call.tenant), &sk).await {
            tracing::warn!(error = %e, "could not give back a daily-cap slot");
        }
    }
}

/// What a dry run says it would do.
fn planned_detail(user: &BoxUserId, action: &Action) -> String {
    match action {
        Action::Delete { transfer_to: Some(to) } => format!(
            "would move the content of {} to {to}, then delete the user. {DELETE_BILLING_NOTE}",
            user.as_str()
        ),
        Action::Delete { transfer_to: None } => {
            format!("would delete the user. {DELETE_BILLING_NOTE}")
        }
        Action::Deactivate => "would set the user inactive at Box and end their sessions".into(),
        Action::Reactivate => "would set the user active at Box".into(),
    }
}

/// Whether Box's fresh answer (`None`: Box no longer has the user) already shows what `action`
/// would do.
fn box_shows_outcome(fresh: Option<&User>, action: &Action) -> bool {
    match (fresh, action.target_status()) {
        (None, None) => true,
        (Some(box_user), Some(target)) => box_user.status == target,
        _ => false,
    }
}

/// The status a result reports afterwards: `deleted` for a done (or planned) delete, else the
/// status Box now shows, or the one the user had.
fn after_label(
    outcome: &UserOutcome,
    action: &Action,
    before: Option<UserStatus>,
    after: Option<UserStatus>,
) -> Option<&'static str> {
    match (outcome.audit(), action) {
        (AuditOutcome::Done | AuditOutcome::Planned, Action::Delete { .. }) => Some("deleted"),
        _ => after.map(UserStatus::as_str).or(before.map(UserStatus::as_str)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn box_user(status: &str) -> User {
        serde_json::from_value(serde_json::json!({"id": "11", "type": "user", "status": status})).expect("a Box user")
    }

    #[test]
    fn a_user_box_already_shows_inactive_is_reconciled_not_deactivated_again() {
        assert!(box_shows_outcome(Some(&box_user("inactive")), &Action::Deactivate));
        assert!(!box_shows_outcome(Some(&box_user("active")), &Action::Deactivate));
        assert!(box_shows_outcome(Some(&box_user("active")), &Action::Reactivate));
    }

    #[test]
    fn a_user_box_no_longer_has_is_reconciled_only_for_a_delete() {
        assert!(box_shows_outcome(None, &Action::Delete { transfer_to: None }));
        assert!(!box_shows_outcome(None, &Action::Deactivate));
        assert!(!box_shows_outcome(
            Some(&box_user("active")),
            &Action::Delete { transfer_to: None }
        ));
    }

    #[test]
    fn deletes_done_or_planned_report_the_user_deleted() {
        let delete = Action::Delete { transfer_to: None };
        let active = Some(UserStatus::Active);
        assert_eq!(after_label(&UserOutcome::Done, &delete, active, None), Some("deleted"));
        assert_eq!(
            after_label(&UserOutcome::Planned, &delete, active, None),
            Some("deleted")
        );
        assert_eq!(
            after_label(&UserOutcome::Refused(Refusal::OwnsContent), &delete, active, None),
            Some("active")
        );
    }

    #[test]
    fn refused_changes_report_the_status_the_user_kept() {
        let refused = UserOutcome::Refused(Refusal::Admin);
        assert_eq!(
            after_label(&refused, &Action::Deactivate, Some(UserStatus::Active), None),
            Some("active")
        );
        assert_eq!(after_label(&refused, &Action::Deactivate, None, None), None);
        assert_eq!(
            after_label(
                &UserOutcome::Done,
                &Action::Deactivate,
                Some(UserStatus::Active),
                Some(UserStatus::Inactive)
            ),
            Some("inactive")
        );
    }

    #[test]
    fn dry_runs_of_deletes_carry_the_billing_note() {
        let to = BoxUserId::parse("12").expect("an id");
        let user = BoxUserId::parse("11").expect("an id");
        let detail = planned_detail(&user, &Action::Delete { transfer_to: Some(to) });
        assert!(detail.starts_with("would move the content of 11 to 12"));
        assert!(detail.ends_with(DELETE_BILLING_NOTE));
    }
}

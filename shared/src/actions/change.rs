//! The steps of one change once the rails let it through: reading the user from Box right
//! before the write (and refreshing the stored state from the answer), the Box write within the
//! invocation's time, completing a change Box already shows, and the stored state written by
//! version. A failed step becomes a [`Failure`] (`failure.rs`).

use chrono::Utc;

use super::failure::Failure;
use super::outcome::ActionsError;
use super::rails::Refusal;
use super::summary::{SummaryDelta, deleted_delta, refresh_delta, status_delta};
use super::{Action, ActionsService, Context, DELETE_BILLING_NOTE, TRANSFER_NOTE, UserOutcome, UserResult};
use crate::boxapi::{BoxError, DeleteOptions, TransferOptions, User, UserStatus};
use crate::ids::BoxUserId;
use crate::license::UserLicense;
use crate::sync::store::update_user;
use crate::tokens::TokenError;

impl ActionsService {
    pub(super) fn time_left(&self, ctx: &Context<'_>) -> std::time::Duration {
        ctx.deadline.saturating_duration_since(tokio::time::Instant::now())
    }

    /// When Box calls of a started change must have answered: the deadline, less what the
    /// records and the answer need.
    pub(super) fn box_deadline(&self, ctx: &Context<'_>) -> tokio::time::Instant {
        ctx.deadline
            .checked_sub(self.timings.record_reserve)
            .unwrap_or(ctx.deadline)
    }

    /// One read of the user at Box, right before the write. `Ok(None)`: Box no longer has the
    /// user (a delete that already happened). Bounded so that the write still fits after it.
    pub(super) async fn read_from_box(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        action: &Action,
    ) -> Result<Option<User>, Refusal> {
        let until = ctx
            .deadline
            .checked_sub(self.timings.write_budget)
            .unwrap_or(ctx.deadline);
        let read = self.tokens.with_token(&ctx.call.tenant, |token| {
            let api = self.box_api.clone();
            let id = user.clone();
            async move { api.user(&token, &id).await }
        });
        match tokio::time::timeout_at(until, read).await {
            Err(_) => Err(Refusal::OutOfTime),
            Ok(Ok(found)) => Ok(Some(found)),
            Ok(Err(TokenError::Box(BoxError::NotFound(_)))) if matches!(action, Action::Delete { .. }) => Ok(None),
            Ok(Err(e)) => Err(Failure::from_token(e).into_read_refusal()),
        }
    }

    /// Brings the stored user up to date with Box's answer (role, login, name, content), by
    /// version; the status is left to the change itself. Returns the state and the summary change.
    pub(super) async fn refresh(
        &self,
        ctx: &Context<'_>,
        stored: &UserLicense,
        box_user: &User,
    ) -> Result<(UserLicense, SummaryDelta), ActionsError> {
        let updated = update_user(&self.table, &ctx.call.tenant, &stored.box_user_id, |current| {
            let next = UserLicense {
                role: box_user.role,
                login: box_user.login.clone().or_else(|| current.login.clone()),
                name: box_user.name.clone().or_else(|| current.name.clone()),
                owns_content: box_user.space_used.map_or(current.owns_content, |used| used > 0),
                ..current.clone()
            };
            (next != *current).then_some(next)
        })
        .await
        .map_err(|e| ActionsError::Internal(e.into()))?;
        let Some((before, after)) = updated else {
            return Ok((stored.clone(), SummaryDelta::default()));
        };
        let delta = refresh_delta(&before, &after);
        Ok((after, delta))
    }

    /// Completes a change Box already shows: the stored state, the audit record (marked
    /// reconciled) and the answer, with no Box write (ending sessions again is harmless).
    pub(super) async fn reconcile(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: &UserLicense,
        action: &Action,
    ) -> Result<(UserResult, SummaryDelta), Failure> {
        let Some(after) = action.target_status() else {
            let (before, _) = self.mark_deleted(ctx, user).await?;
            let detail = format!(
                "reconciled: Box no longer has this user (an earlier attempt deleted them); nothing was sent \
                 to Box again. {DELETE_BILLING_NOTE}"
            );
            let result = self
                .record(ctx, user, Some(stored), action, UserOutcome::Done, None, Some(detail))
                .await;
            return Ok((result, deleted_delta(&before)));
        };
        let (sessions_ended, sessions_note) = self.end_sessions(ctx, user, action).await;
        let mut detail = format!(
            "reconciled: Box already showed the user {} (an earlier attempt's change, or one made in Box); \
             no status change was sent",
            after.as_str()
        );
        if let Some(note) = sessions_note {
            detail = format!("{detail}. {note}");
        }
        self.complete_status(ctx, user, stored, action, after, Some(detail), sessions_ended)
            .await
    }

    pub(super) async fn change_status(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: &UserLicense,
        action: &Action,
    ) -> Result<(UserResult, SummaryDelta), Failure> {
        let tenant = &ctx.call.tenant;
        let wanted = action.target_status().unwrap_or(UserStatus::Active);
        let write = self.tokens.with_token(tenant, |token| {
            let api = self.box_api.clone();
            let id = user.clone();
            async move { api.set_user_status(&token, &id, wanted).await }
        });
        let updated = tokio::time::timeout_at(self.box_deadline(ctx), write)
            .await
            .map_err(|_| {
                Failure::unanswered(
                    "Box did not answer the change before this request ran out of time; it may have taken \
                     effect. Repeating the request with a new Idempotency-Key reads the user from Box first",
                )
            })?
            .map_err(Failure::from_token)?;
        let after = if updated.status == UserStatus::Unknown {
            wanted
        } else {
            updated.status
        };
        let (sessions_ended, detail) = self.end_sessions(ctx, user, action).await;
        self.complete_status(ctx, user, stored, action, after, detail, sessions_ended)
            .await
    }

    /// Ends a deactivated user's sessions (nothing for other actions): (ended, note when it failed).
    pub(super) async fn end_sessions(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        action: &Action,
    ) -> (bool, Option<String>) {
        if *action != Action::Deactivate {
            return (false, None);
        }
        let end = self.tokens.with_token(&ctx.call.tenant, |token| {
            let api = self.box_api.clone();
            let id = user.clone();
            async move { api.terminate_sessions(&token, &[&id]).await }
        });
        let failed = match tokio::time::timeout_at(self.box_deadline(ctx), end).await {
            Ok(Ok(())) => return (true, None),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "Box did not answer in time".to_owned(),
        };
        tracing::warn!(error = %failed, "the user is inactive but ending their sessions failed");
        (
            false,
            Some(format!(
                "the user is inactive at Box, but ending their open sessions failed ({failed}); they can no \
                 longer sign in, and open sessions end when they expire"
            )),
        )
    }

    /// Stores a status Box now shows (only the fields an action owns, by version) and records it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn complete_status(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: &UserLicense,
        action: &Action,
        after: UserStatus,
        detail: Option<String>,
        sessions_ended: bool,
    ) -> Result<(UserResult, SummaryDelta), Failure> {
        let now = Utc::now();
        let (before, _) = self
            .store_change(ctx, user, |current| UserLicense {
                status: after,
                last_seen_at: now,
                ..current.clone()
            })
            .await?;
        let delta = status_delta(&before, after);
        let mut result = self
            .record(ctx, user, Some(stored), action, UserOutcome::Done, Some(after), detail)
            .await;
        result.sessions_ended = sessions_ended;
        Ok((result, delta))
    }

    /// Applies `change` to the freshest stored state of `user` (by version): an action writes only
    /// what it changed, never a copy read before another writer's change. Returns (before, after).
    pub(super) async fn store_change(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        change: impl Fn(&UserLicense) -> UserLicense,
    ) -> Result<(UserLicense, UserLicense), Failure> {
        update_user(&self.table, &ctx.call.tenant, user, |current| Some(change(current)))
            .await
            .map_err(|e| Failure::Storage(e.to_string()))?
            .ok_or_else(|| Failure::Storage(format!("user {} is no longer stored", user.as_str())))
    }

    pub(super) async fn mark_deleted(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
    ) -> Result<(UserLicense, UserLicense), Failure> {
        let now = Utc::now();
        self.store_change(ctx, user, |current| UserLicense {
            removed_at: Some(now),
            owns_content: false,
            last_seen_at: now,
            ..current.clone()
        })
        .await
    }

    pub(super) async fn delete(
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
        let out_of_time = || {
            Failure::unanswered(
                "Box did not answer before this request ran out of time; the step may have taken effect. \
                 Repeating the request with a new Idempotency-Key reads the user from Box first",
            )
        };
        if let Some(to) = transfer_to {
            let transfer = self.tokens.with_token(tenant, |token| {
                let api = self.box_api.clone();
                let (from, to) = (user.clone(), to.clone());
                async move {
                    api.transfer_content(&token, &from, &to, TransferOptions::default())
                        .await
                }
            });
            let moved = tokio::time::timeout_at(self.box_deadline(ctx), transfer)
                .await
                .map_err(|_| out_of_time())?
                .map_err(|e| Failure::from_transfer(e, to))?;
            folder = Some(moved.id);
            if transfer_target.is_some() {
                let (before, _) = self
                    .store_change(ctx, to, |current| UserLicense {
                        owns_content: true,
                        ..current.clone()
                    })
                    .await?;
                if before.holds_seat() && !before.owns_content {
                    delta.content_owners += 1;
                }
            }
        }
        let removal = self.tokens.with_token(tenant, |token| {
            let api = self.box_api.clone();
            let id = user.clone();
            async move { api.delete_user(&token, &id, DeleteOptions::default()).await }
        });
        tokio::time::timeout_at(self.box_deadline(ctx), removal)
            .await
            .map_err(|_| out_of_time())?
            .map_err(|e| Failure::from_delete(e, folder.is_some()))?;
        let (before, _) = self.mark_deleted(ctx, user).await?;
        delta.merge(deleted_delta(&before));
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
                UserOutcome::Done,
                None,
                Some(detail),
            )
            .await;
        result.transfer_folder = folder;
        Ok((result, delta))
    }
}

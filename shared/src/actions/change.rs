//! The steps of one change once the rails let it through: reading the user from Box right
//! before the write (and refreshing the stored state from the answer), the Box write within the
//! invocation's time, completing a change Box already shows, the stored state written by version,
//! and what a failed step means.

use chrono::Utc;

use super::{Action, ActionsService, Context, DELETE_BILLING_NOTE, Refusal, SummaryDelta, TRANSFER_NOTE, UserResult};
use crate::api::ApiError;
use crate::audit::AuditOutcome;
use crate::boxapi::{BoxError, User, UserStatus};
use crate::ids::{BoxUserId, TenantId};
use crate::license::{UserKind, UserLicense};
use crate::sync::store::{update_summary, update_user};
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
            let id = user.as_str().to_owned();
            async move { api.user(&token, &id).await }
        });
        match tokio::time::timeout_at(until, read).await {
            Err(_) => Err(Refusal::OutOfTime),
            Ok(Ok(found)) => Ok(Some(found)),
            Ok(Err(TokenError::Box(BoxError::NotFound(_)))) if matches!(action, Action::Delete { .. }) => Ok(None),
            Ok(Err(e)) => Err(match Failure::from_token(e) {
                Failure::Refused(refusal) => refusal,
                Failure::Box { status, detail } => Refusal::BoxRead(
                    status,
                    format!("reading the user from Box before the change failed: {detail}. Nothing was changed"),
                ),
                Failure::Storage(detail) => Refusal::BoxRead(500, detail),
            }),
        }
    }

    /// Brings the stored user up to date with Box's answer (role, login, name, content), by
    /// version; the status is left to the change itself. Returns the state and the summary change.
    pub(super) async fn refresh(
        &self,
        ctx: &Context<'_>,
        stored: &UserLicense,
        box_user: &User,
    ) -> Result<(UserLicense, SummaryDelta), ApiError> {
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
        .map_err(|e| ApiError::Unexpected(e.into()))?;
        let Some((before, after)) = updated else {
            return Ok((stored.clone(), SummaryDelta::default()));
        };
        let mut delta = SummaryDelta::default();
        if before.holds_seat() {
            let admin = |u: &UserLicense| i64::from(u.role.is_some_and(|r| r.is_admin()));
            delta.admins = admin(&after) - admin(&before);
            delta.content_owners = i64::from(after.owns_content) - i64::from(before.owns_content);
        }
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
                .record(
                    ctx,
                    user,
                    Some(stored),
                    action,
                    AuditOutcome::Done,
                    None,
                    Some(detail),
                    200,
                )
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
            let id = user.as_str().to_owned();
            async move { api.set_user_status(&token, &id, wanted).await }
        });
        let updated = tokio::time::timeout_at(self.box_deadline(ctx), write)
            .await
            .map_err(|_| Failure::Box {
                status: 504,
                detail: "Box did not answer the change before this request ran out of time; it may have taken \
                         effect. Repeating the request with a new Idempotency-Key reads the user from Box first"
                    .into(),
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
            let id = user.as_str().to_owned();
            async move { api.terminate_sessions(&token, &[id.as_str()]).await }
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
        let mut delta = SummaryDelta::default();
        if before.holds_seat() && before.status != after {
            match after {
                UserStatus::Inactive => {
                    delta.deactivated += 1;
                    if before.status == UserStatus::Active {
                        delta.histogram_remove.push(before.activity);
                    }
                }
                UserStatus::Active => {
                    if before.status == UserStatus::Inactive {
                        delta.deactivated -= 1;
                    }
                    delta.histogram_add.push(before.activity);
                }
                _ => {}
            }
        }
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

    /// Applies `change` to the freshest stored state of `user` (by version): an action writes only
    /// what it changed, never a copy read before another writer's change. Returns (before, after).
    pub(super) async fn store_change(
        &self,
        ctx: &Context<'_>,
        user: &BoxUserId,
        change: impl Fn(&UserLicense) -> UserLicense,
    ) -> Result<(UserLicense, UserLicense), Failure> {
        update_user(&self.table, &ctx.call.tenant, user.as_str(), |current| {
            Some(change(current))
        })
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
        let out_of_time = || Failure::Box {
            status: 504,
            detail: "Box did not answer before this request ran out of time; the step may have taken effect. \
                     Repeating the request with a new Idempotency-Key reads the user from Box first"
                .into(),
        };
        if let Some(to) = transfer_to {
            let transfer = self.tokens.with_token(tenant, |token| {
                let api = self.box_api.clone();
                let (from, to) = (user.as_str().to_owned(), to.as_str().to_owned());
                async move { api.transfer_content(&token, &from, &to, false).await }
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
            let id = user.as_str().to_owned();
            async move { api.delete_user(&token, &id, false, false).await }
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
                AuditOutcome::Done,
                None,
                Some(detail),
                200,
            )
            .await;
        result.transfer_folder = folder;
        Ok((result, delta))
    }

    /// Adjusts the summary by `delta` without losing a concurrent writer's adjustment.
    pub(super) async fn apply_summary(
        &self,
        tenant: &TenantId,
        delta: &SummaryDelta,
    ) -> Result<(), crate::storage::StoreError> {
        if delta.is_empty() {
            return Ok(());
        }
        update_summary(&self.table, tenant, |summary| delta.apply(summary))
            .await
            .map(|_| ())
    }
}

/// What the summary loses with a deleted user (`before`: their state until then).
pub(super) fn deleted_delta(before: &UserLicense) -> SummaryDelta {
    let mut delta = SummaryDelta::default();
    if before.holds_seat() {
        delta.seat_holders -= 1;
        match before.status {
            UserStatus::Inactive => delta.deactivated -= 1,
            UserStatus::Active => delta.histogram_remove.push(before.activity),
            _ => {}
        }
        if before.owns_content {
            delta.content_owners -= 1;
        }
        if before.role.is_some_and(|r| r.is_admin()) {
            delta.admins -= 1;
        }
    }
    delta
}

/// The rails on Box's own answer, right before the write. `enterprise_id`: the connected one.
pub(super) fn box_rails(user: &User, enterprise_id: Option<&str>) -> Option<Refusal> {
    if let (Some(theirs), Some(ours)) = (user.enterprise.as_ref(), enterprise_id)
        && theirs.id != ours
    {
        return Some(Refusal::OtherEnterprise);
    }
    if user.is_platform_access_only {
        return Some(Refusal::NotManaged(UserKind::AppUser));
    }
    match user.role {
        Some(role) if role.is_admin() => Some(Refusal::Admin),
        Some(crate::boxapi::Role::User) => None,
        _ => Some(Refusal::UnknownRole),
    }
}

/// A change that did not happen (or happened only in part) after the rails let it through.
#[derive(Debug)]
pub(super) enum Failure {
    /// Box refused before changing anything in a way the rails could not see (e.g. content found).
    Refused(Refusal),
    /// Box failed or refused: (HTTP status for a single request, what happened).
    Box { status: u16, detail: String },
    /// Box changed the user but seatsync could not store it.
    Storage(String),
}

impl Failure {
    pub(super) fn from_token(e: TokenError) -> Self {
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

    pub(super) fn from_box(e: BoxError) -> Self {
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

    pub(super) fn from_transfer(e: TokenError, to: &BoxUserId) -> Self {
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

    pub(super) fn from_delete(e: TokenError, transferred: bool) -> Self {
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

    pub(super) async fn record(
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
                    let _ = service
                        .store_change(ctx, user, |current| UserLicense {
                            owns_content: true,
                            ..current.clone()
                        })
                        .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: &str, enterprise: Option<&str>) -> User {
        let mut json = serde_json::json!({"id": "11", "type": "user", "role": role});
        if let Some(id) = enterprise {
            json["enterprise"] = serde_json::json!({"id": id, "type": "enterprise", "name": "E"});
        }
        serde_json::from_value(json).expect("a Box user")
    }

    #[test]
    fn box_rails_refuse_users_of_another_enterprise_administrators_and_unknown_roles() {
        assert_eq!(box_rails(&user("user", Some("42")), Some("42")), None);
        assert_eq!(
            box_rails(&user("user", Some("7")), Some("42")),
            Some(Refusal::OtherEnterprise)
        );
        assert_eq!(box_rails(&user("admin", Some("42")), Some("42")), Some(Refusal::Admin));
        assert_eq!(
            box_rails(&user("coadmin", Some("42")), Some("42")),
            Some(Refusal::Admin)
        );
        assert_eq!(
            box_rails(&user("something-new", Some("42")), Some("42")),
            Some(Refusal::UnknownRole)
        );
    }
}

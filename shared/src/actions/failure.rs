//! What went wrong once the rails let a change through: Box refused, Box failed or did not
//! answer in time, or seatsync could not store the result. A [`Failure`] says *what* happened;
//! which HTTP status that becomes is the HTTP edge's business (`http/render.rs`).

use super::outcome::ActionsError;
use super::rails::Refusal;
use super::{Action, ActionsService, Context, UserOutcome, UserResult};
use crate::boxapi::BoxError;
use crate::ids::BoxUserId;
use crate::license::UserLicense;
use crate::tokens::TokenError;

/// The kind of a failed step, as the caller needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Box refused the change for a reason the caller can act on (a permission or scope the
    /// connection lacks, content Box still counts as owned). Nothing was changed.
    BoxRefused,
    /// Box no longer has the user; the next sync updates the license state.
    GoneAtBox,
    /// Box failed, could not be reached, refused with an error seatsync cannot act on, or no Box
    /// token could be had.
    BoxFailed,
    /// Box did not answer before the request's time ran out; the step may have taken effect.
    BoxUnanswered,
    /// seatsync's own storage failed.
    Storage,
}

/// A change that did not happen (or happened only in part) after the rails let it through.
#[derive(Debug)]
pub(super) enum Failure {
    /// Box refused before changing anything in a way the rails could not see (e.g. content found).
    Refused(Refusal),
    /// Box failed or refused: (what kind of failure, what happened).
    Box(Fault, String),
    /// Box changed the user but seatsync could not store it.
    Storage(String),
}

impl Failure {
    /// Box did not answer a started step before the request ran out of time.
    pub(super) fn unanswered(detail: &str) -> Self {
        Failure::Box(Fault::BoxUnanswered, detail.to_owned())
    }

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
            other => Failure::Box(
                Fault::BoxFailed,
                format!("seatsync could not get a Box token ({other}); nothing was changed, try again"),
            ),
        }
    }

    pub(super) fn from_box(e: BoxError) -> Self {
        match &e {
            BoxError::Forbidden(_) => Failure::Box(
                Fault::BoxRefused,
                format!(
                    "Box refused the change ({e}); the connected account may lack the permission. Nothing was changed"
                ),
            ),
            BoxError::NotFound(_) => Failure::Box(
                Fault::GoneAtBox,
                format!("Box no longer has this user ({e}); the next sync updates the license state"),
            ),
            _ if e.is_transient() => Failure::Box(
                Fault::BoxFailed,
                format!("Box did not answer in time ({e}); try again with the same Idempotency-Key later"),
            ),
            _ => Failure::Box(Fault::BoxFailed, format!("Box refused the change ({e})")),
        }
    }

    pub(super) fn from_transfer(e: TokenError, to: &BoxUserId) -> Self {
        if let TokenError::Box(BoxError::Forbidden(d)) = &e
            && (d.code.as_deref() == Some("insufficient_scope")
                || d.message.as_deref().is_some_and(|m| m.contains("root_readwrite")))
        {
            return Failure::Box(
                Fault::BoxRefused,
                format!(
                    "Box refused to move the content to {to}: the connection lacks the `root_readwrite` scope. \
                     Reconnect Box with content transfer enabled (POST /connections/box/start with \
                     `{{\"content_transfer\": true}}`, settings `content_transfer`). Nothing was changed"
                ),
            );
        }
        Self::from_token(e)
    }

    pub(super) fn from_delete(e: TokenError, transferred: bool) -> Self {
        if let TokenError::Box(BoxError::OwnsContent(_)) = &e {
            return if transferred {
                Failure::Box(
                    Fault::BoxRefused,
                    "the content transfer was accepted, but Box still counts content as owned by the \
                     user, so it was not deleted yet (large transfers finish later at Box). Repeat the \
                     delete later with a new Idempotency-Key"
                        .into(),
                )
            } else {
                Failure::Refused(Refusal::OwnsContent)
            };
        }
        let mut failure = Self::from_token(e);
        if transferred && let Failure::Box(_, detail) = &mut failure {
            detail.push_str(". The content was already moved; repeat the delete with `?transfer_to=` or without it");
        }
        failure
    }

    /// A failed read right before the write, as the refusal it becomes (nothing was changed).
    pub(super) fn into_read_refusal(self) -> Refusal {
        match self {
            Failure::Refused(refusal) => refusal,
            Failure::Box(fault, detail) => Refusal::BoxRead(
                fault,
                format!("reading the user from Box before the change failed: {detail}. Nothing was changed"),
            ),
            Failure::Storage(detail) => Refusal::BoxRead(Fault::Storage, detail),
        }
    }

    /// Records the failed attempt and returns its result; `Err` when seatsync's own storage failed
    /// after Box made the change.
    pub(super) async fn record(
        self,
        service: &ActionsService,
        ctx: &Context<'_>,
        user: &BoxUserId,
        stored: &UserLicense,
        action: &Action,
    ) -> Result<UserResult, ActionsError> {
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
            Failure::Box(fault, detail) => Ok(service
                .record(
                    ctx,
                    user,
                    Some(stored),
                    action,
                    UserOutcome::Failed(fault),
                    None,
                    Some(detail),
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
                        UserOutcome::Failed(Fault::Storage),
                        None,
                        Some(detail),
                    )
                    .await;
                Err(ActionsError::Internal(anyhow::anyhow!(
                    "storing the license state failed: {e}"
                )))
            }
        }
    }
}

impl From<Failure> for ActionsError {
    fn from(f: Failure) -> Self {
        ActionsError::Internal(anyhow::anyhow!("{f:?}"))
    }
}

//! What the actions domain answers: a typed result per user ([`UserResult`], [`UserOutcome`]),
//! gathered into [`SingleOutcome`] and [`BulkOutcome`]. No HTTP status in here: the HTTP edge
//! (`http/render.rs`) decides how each outcome is answered.

use super::Action;
use super::failure::Fault;
use super::rails::Refusal;
use crate::audit::AuditOutcome;
use crate::ids::BoxUserId;

/// How one attempt on one user ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOutcome {
    /// The change is made (or Box already showed it).
    Done,
    /// A dry run: the change would be made.
    Planned,
    /// Nothing was changed, for this reason.
    Refused(Refusal),
    /// The change failed (or happened only in part).
    Failed(Fault),
}

impl UserOutcome {
    /// The outcome as the audit trail (and the bulk answer) names it.
    pub fn audit(&self) -> AuditOutcome {
        match self {
            UserOutcome::Done => AuditOutcome::Done,
            UserOutcome::Planned => AuditOutcome::Planned,
            UserOutcome::Refused(_) => AuditOutcome::Refused,
            UserOutcome::Failed(_) => AuditOutcome::Failed,
        }
    }

    /// Whether Box may have been written to (then the answer is kept for replays even when it
    /// reports a failure).
    pub fn touched_box(&self) -> bool {
        matches!(self, UserOutcome::Done | UserOutcome::Failed(_))
    }
}

/// The result of one attempt on one user.
#[derive(Debug, Clone)]
pub struct UserResult {
    pub box_user_id: BoxUserId,
    pub login: Option<String>,
    pub outcome: UserOutcome,
    pub before: Option<&'static str>,
    pub after: Option<&'static str>,
    pub detail: Option<String>,
    pub audit_id: String,
    pub sessions_ended: bool,
    /// The Box folder the content was moved into, for a delete with a transfer.
    pub transfer_folder: Option<String>,
}

/// The answer to a request about one user.
#[derive(Debug, Clone)]
pub struct SingleOutcome {
    pub action: Action,
    pub dry_run: bool,
    pub result: UserResult,
}

impl SingleOutcome {
    pub fn touched_box(&self) -> bool {
        self.result.outcome.touched_box()
    }
}

/// The answer to a bulk request: one result per user, in the order they were selected.
#[derive(Debug, Clone)]
pub struct BulkOutcome {
    pub dry_run: bool,
    pub rows: Vec<UserResult>,
    /// Users the criteria matched beyond [`super::MAX_BULK_USERS`].
    pub more_matching: usize,
}

impl BulkOutcome {
    pub fn touched_box(&self) -> bool {
        self.rows.iter().any(|r| r.outcome.touched_box())
    }

    /// How many results ended with `outcome`.
    pub fn count(&self, outcome: AuditOutcome) -> usize {
        self.rows.iter().filter(|r| r.outcome.audit() == outcome).count()
    }
}

/// What stops the actions domain from giving a typed outcome at all: seatsync's own failure
/// (storage, an invariant). Rails, Box's refusals and Box's failures are outcomes, not errors.
#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A bulk request cut short by seatsync's own failure; Box may already have changed some users.
#[derive(Debug)]
pub struct Unfinished {
    pub error: ActionsError,
    pub touched_box: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_and_failures_may_have_touched_box() {
        assert!(UserOutcome::Done.touched_box());
        assert!(UserOutcome::Failed(Fault::BoxUnanswered).touched_box());
        assert!(!UserOutcome::Planned.touched_box());
        assert!(!UserOutcome::Refused(Refusal::Admin).touched_box());
    }

    #[test]
    fn outcomes_keep_their_audit_names() {
        assert_eq!(UserOutcome::Refused(Refusal::OutOfTime).audit(), AuditOutcome::Refused);
        assert_eq!(UserOutcome::Failed(Fault::Storage).audit(), AuditOutcome::Failed);
        assert_eq!(UserOutcome::Planned.audit(), AuditOutcome::Planned);
        assert_eq!(UserOutcome::Done.audit(), AuditOutcome::Done);
    }
}

//! How the actions domain's typed outcomes are answered over HTTP: the JSON bodies, and the one
//! place that maps a refusal or a failure to a status (titled from [`crate::problem::title`]).
//! The rendered [`Answer`] is also what `Idempotency-Key` replays store.

use serde_json::{Value, json};

use crate::actions::{
    Action, ActionsError, BulkOutcome, DELETE_BILLING_NOTE, Fault, Refusal, SingleOutcome, TRANSFER_NOTE, Unfinished,
    UserOutcome, UserResult,
};
use crate::api::ApiError;
use crate::audit::AuditOutcome;
use crate::problem::Problem;

/// An HTTP answer, as stored for idempotent replays.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            body: body.to_string(),
            retry_after: None,
        }
    }

    pub fn problem(problem: &Problem) -> Self {
        Self {
            status: problem.status,
            content_type: crate::problem::CONTENT_TYPE.into(),
            body: serde_json::to_string(problem).unwrap_or_else(|_| "{}".into()),
            retry_after: None,
        }
    }

    pub fn error(e: &ApiError) -> Self {
        if let ApiError::Unexpected(cause) = e {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        Self::problem(&e.problem())
    }
}

/// The status a failed step is answered with.
fn fault_status(fault: Fault) -> u16 {
    match fault {
        Fault::BoxRefused | Fault::GoneAtBox => 409,
        Fault::BoxFailed => 502,
        Fault::BoxUnanswered => 504,
        Fault::Storage => 500,
    }
}

/// The status a refusal is answered with.
fn refusal_status(refusal: &Refusal) -> u16 {
    match refusal {
        Refusal::NotFound => 404,
        Refusal::BadTransferTarget(_) => 422,
        Refusal::DailyCap(_) => 429,
        Refusal::OutOfTime => 503,
        Refusal::BoxRead(fault, _) => fault_status(*fault),
        _ => 409,
    }
}

impl From<ActionsError> for ApiError {
    fn from(e: ActionsError) -> Self {
        match e {
            ActionsError::Internal(cause) => ApiError::Unexpected(cause),
        }
    }
}

/// A single-user answer and whether Box may have been written to.
pub(super) fn single(outcome: Result<SingleOutcome, ActionsError>) -> (Answer, bool) {
    match outcome {
        Ok(o) => (single_answer(&o.result, &o.action, o.dry_run), o.touched_box()),
        Err(e) => (Answer::error(&e.into()), false),
    }
}

/// A bulk answer and whether Box may have been written to.
pub(super) fn bulk(outcome: Result<BulkOutcome, Unfinished>) -> (Answer, bool) {
    match outcome {
        Ok(o) => (bulk_answer(&o), o.touched_box()),
        Err(Unfinished { error, touched_box }) => (Answer::error(&error.into()), touched_box),
    }
}

fn status_json(label: Option<&str>) -> Value {
    json!({ "status": label })
}

fn single_answer(result: &UserResult, action: &Action, dry_run: bool) -> Answer {
    let problem = match &result.outcome {
        UserOutcome::Done | UserOutcome::Planned => {
            let mut body = json!({
                "user": {
                    "box_user_id": result.box_user_id,
                    "login": result.login,
                    "before": status_json(result.before),
                    "after": status_json(result.after),
                },
                "audit_id": result.audit_id,
                "dry_run": dry_run,
                "sessions_ended": result.sessions_ended,
            });
            if let Some(detail) = &result.detail {
                body["detail"] = json!(detail);
            }
            if let Action::Delete { transfer_to } = action {
                body["deleted"] = json!(result.outcome == UserOutcome::Done);
                body["billing"] = json!(DELETE_BILLING_NOTE);
                if let Some(to) = transfer_to {
                    body["transfer"] = json!({
                        "to_box_user_id": to.as_str(),
                        "folder_id": result.transfer_folder,
                        "note": TRANSFER_NOTE,
                    });
                }
            }
            return Answer::json(200, &body);
        }
        UserOutcome::Refused(refusal) => {
            let problem = Problem::of_status(refusal_status(refusal), result.detail.clone().unwrap_or_default());
            match refusal {
                Refusal::NotFound => problem,
                Refusal::DailyCap(_) => problem.with_type("daily-cap-reached"),
                Refusal::BadTransferTarget(_) => problem.with_type("action-refused").with_field("transfer_to"),
                _ => problem.with_type("action-refused"),
            }
        }
        UserOutcome::Failed(fault) => {
            Problem::of_status(fault_status(*fault), result.detail.clone().unwrap_or_default())
                .with_type("action-failed")
        }
    };
    let mut answer = Answer::problem(&problem);
    if result.outcome == UserOutcome::Refused(Refusal::OutOfTime) {
        answer.retry_after = Some(1);
    }
    answer
}

fn bulk_answer(outcome: &BulkOutcome) -> Answer {
    let rows = &outcome.rows;
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "box_user_id": r.box_user_id,
                "login": r.login,
                "outcome": r.outcome.audit(),
                "before": status_json(r.before),
                "after": status_json(r.after),
                "detail": r.detail,
                "audit_id": r.audit_id,
                "sessions_ended": r.sessions_ended,
            })
        })
        .collect();
    Answer::json(
        200,
        &json!({
            "results": results,
            "counts": {
                "done": outcome.count(AuditOutcome::Done),
                "refused": outcome.count(AuditOutcome::Refused),
                "failed": outcome.count(AuditOutcome::Failed),
                "planned": outcome.count(AuditOutcome::Planned),
                "total": rows.len(),
            },
            "dry_run": outcome.dry_run,
            "more_matching": outcome.more_matching,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BoxUserId;
    use crate::license::UserKind;

    fn result(outcome: UserOutcome) -> UserResult {
        UserResult {
            box_user_id: crate::ids::BoxUserId::parse("11").unwrap(),
            login: Some("a@example.com".into()),
            outcome,
            before: Some("active"),
            after: Some("active"),
            detail: Some("why".into()),
            audit_id: "audit-1".into(),
            sessions_ended: false,
            transfer_folder: None,
        }
    }

    fn answered(outcome: UserOutcome) -> (Answer, Value) {
        let answer = single_answer(&result(outcome), &Action::Deactivate, false);
        let body = serde_json::from_str(&answer.body).expect("a JSON body");
        (answer, body)
    }

    fn refused(refusal: Refusal) -> (Answer, Value) {
        answered(UserOutcome::Refused(refusal))
    }

    #[test]
    fn users_not_found_are_a_plain_404() {
        let (answer, body) = refused(Refusal::NotFound);
        assert_eq!(answer.status, 404);
        assert_eq!(answer.content_type, crate::problem::CONTENT_TYPE);
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Not Found");
        assert_eq!(body["detail"], "why");
    }

    #[test]
    fn rails_refusals_are_409_action_refused() {
        for refusal in [
            Refusal::Admin,
            Refusal::UnknownRole,
            Refusal::OtherEnterprise,
            Refusal::ConnectedAccount,
            Refusal::ProtectedLogin,
            Refusal::OwnsContent,
            Refusal::NotManaged(UserKind::AppUser),
            Refusal::RecentlyActive {
                days: 1,
                threshold: 90,
                at: chrono::Utc::now(),
                origin: crate::license::ActivityOrigin::BoxContent,
            },
            Refusal::NotConnected("x".into()),
        ] {
            let (answer, body) = refused(refusal.clone());
            assert_eq!((answer.status, answer.retry_after), (409, None), "{refusal:?}");
            assert_eq!(body["title"], "Conflict");
            assert_eq!(body["type"], "https://seatsync.dev/problems/action-refused");
            assert!(body.get("field").is_none());
        }
    }

    #[test]
    fn bad_transfer_targets_are_422_naming_the_field() {
        let (answer, body) = refused(Refusal::BadTransferTarget("x".into()));
        assert_eq!(answer.status, 422);
        assert_eq!(body["title"], "Unprocessable Content");
        assert_eq!(body["type"], "https://seatsync.dev/problems/action-refused");
        assert_eq!(body["field"], "transfer_to");
    }

    #[test]
    fn the_daily_cap_is_429_daily_cap_reached() {
        let (answer, body) = refused(Refusal::DailyCap(5));
        assert_eq!(answer.status, 429);
        assert_eq!(body["title"], "Too Many Requests");
        assert_eq!(body["type"], "https://seatsync.dev/problems/daily-cap-reached");
    }

    #[test]
    fn running_out_of_time_is_503_with_retry_after() {
        let (answer, body) = refused(Refusal::OutOfTime);
        assert_eq!((answer.status, answer.retry_after), (503, Some(1)));
        assert_eq!(body["title"], "Service Unavailable");
        assert_eq!(body["type"], "https://seatsync.dev/problems/action-refused");
    }

    #[test]
    fn a_failed_read_before_the_write_is_refused_with_the_status_of_its_fault() {
        for (fault, status) in [
            (Fault::BoxRefused, 409),
            (Fault::BoxFailed, 502),
            (Fault::BoxUnanswered, 504),
            (Fault::Storage, 500),
        ] {
            let (answer, body) = refused(Refusal::BoxRead(fault, "x".into()));
            assert_eq!(answer.status, status, "{fault:?}");
            assert_eq!(body["type"], "https://seatsync.dev/problems/action-refused");
        }
    }

    #[test]
    fn failures_are_action_failed_with_the_status_of_their_fault() {
        for (fault, status, title) in [
            (Fault::BoxRefused, 409, "Conflict"),
            (Fault::GoneAtBox, 409, "Conflict"),
            (Fault::BoxFailed, 502, "Bad Gateway"),
            (Fault::BoxUnanswered, 504, "Gateway Timeout"),
            (Fault::Storage, 500, "Internal Server Error"),
        ] {
            let (answer, body) = answered(UserOutcome::Failed(fault));
            assert_eq!((answer.status, answer.retry_after), (status, None), "{fault:?}");
            assert_eq!(body["title"], title);
            assert_eq!(body["type"], "https://seatsync.dev/problems/action-failed");
            assert_eq!(body["detail"], "why");
        }
    }

    #[test]
    fn done_deletes_say_deleted_with_the_billing_note_and_the_transfer() {
        let to = BoxUserId::parse("12").expect("an id");
        let mut done = result(UserOutcome::Done);
        done.transfer_folder = Some("f1".into());
        let answer = single_answer(&done, &Action::Delete { transfer_to: Some(to) }, false);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type, "application/json");
        let body: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(body["deleted"], true);
        assert_eq!(body["billing"], DELETE_BILLING_NOTE);
        assert_eq!(body["transfer"]["folder_id"], "f1");
        assert_eq!(body["user"]["before"]["status"], "active");
    }

    #[test]
    fn planned_deletes_are_not_deleted_yet() {
        let answer = single_answer(
            &result(UserOutcome::Planned),
            &Action::Delete { transfer_to: None },
            true,
        );
        let body: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(
            (body["deleted"].clone(), body["dry_run"].clone()),
            (json!(false), json!(true))
        );
        assert!(body.get("transfer").is_none());
    }

    #[test]
    fn bulk_answers_count_each_outcome_and_keep_the_row_order() {
        let outcome = BulkOutcome {
            dry_run: false,
            rows: vec![
                result(UserOutcome::Done),
                result(UserOutcome::Refused(Refusal::OutOfTime)),
                result(UserOutcome::Failed(Fault::BoxFailed)),
                result(UserOutcome::Refused(Refusal::Admin)),
            ],
            more_matching: 3,
        };
        let (answer, touched) = bulk(Ok(outcome));
        assert_eq!(answer.status, 200);
        assert!(touched);
        let body: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(
            body["counts"],
            json!({"done": 1, "refused": 2, "failed": 1, "planned": 0, "total": 4})
        );
        assert_eq!(body["results"][1]["outcome"], "refused");
        assert_eq!(body["more_matching"], 3);
    }

    #[test]
    fn an_unfinished_bulk_request_is_kept_when_box_was_touched() {
        let (answer, touched) = bulk(Err(Unfinished {
            error: ActionsError::Internal(anyhow::anyhow!("storage down")),
            touched_box: true,
        }));
        assert_eq!(answer.status, 500);
        assert!(touched);
        assert!(!answer.body.contains("storage down"));
    }
}

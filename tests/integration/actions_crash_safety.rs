//! Changes that survive a Lambda cut in half, and roles read from Box right before each write:
//! an attempt killed between the Box write and its records leaves an `in_progress` key whose lease
//! ends with the invocation; a retry after it takes the key over, reads the user from Box, and
//! completes the audit, the stored state and the answer without writing to Box again. Work that
//! cannot finish before the invocation's deadline is not started.

use std::time::Duration;

use box_sim::{Endpoint, Fault, Role as SimRole};
use seatsync::audit::AuditOutcome;
use seatsync::boxapi::{Role, UserStatus};
use serde_json::json;

use crate::actions_fixture::{Actions, deactivate_request, ok, send_within, summary_matches_users};

/// The invocation deadline of the attempts that are cut: well past the fixture's 4 s write budget.
const CUT_DEADLINE: Duration = Duration::from_secs(10);

/// Starts a deactivation of `id` under `key`, and kills it (as Lambda does at its timeout) once
/// Box has set the user inactive but before seatsync has recorded anything.
async fn cut_after_the_box_write(f: &Actions, id: &str, key: &str) {
    // Ending the sessions (the step after the status write) hangs: the invocation dies in it.
    f.tb.sim
        .inject(Endpoint::TerminateSessions, 1, Fault::Delay(Duration::from_secs(30)));
    let router = f.router.clone();
    let request = deactivate_request(id, &json!({"reason": "left"}), key);
    let attempt = tokio::spawn(async move { send_within(&router, request, CUT_DEADLINE).await });
    for _ in 0..400 {
        if f.tb.sim.counters().total(Endpoint::UserUpdate) >= 1 || attempt.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !attempt.is_finished(),
        "the first attempt is still running when it is cut"
    );
    attempt.abort();
    let _ = attempt.await;
    assert_eq!(f.tb.sim.user(id).unwrap().status, "inactive", "Box changed");
    assert_eq!(
        f.user(id).await.status,
        UserStatus::Active,
        "seatsync did not record it"
    );
    assert!(f.audit().await.is_empty(), "no audit record yet");
}

/// Retries `key` until an answer other than 409 "in progress" (bounded: the lease ends with the
/// cut invocation's deadline). Returns the 409s seen and the final answer.
async fn retry_until_answered(f: &Actions, id: &str, key: &str) -> (usize, seatsync_tests::apigw::ApiResponse) {
    let mut conflicts = 0;
    for _ in 0..60 {
        let answer = send_within(
            &f.router,
            deactivate_request(id, &json!({"reason": "left"}), key),
            CUT_DEADLINE,
        )
        .await;
        if answer.status != 409 {
            return (conflicts, answer);
        }
        conflicts += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the key stayed in progress through {conflicts} retries");
}

#[tokio::test]
async fn a_change_cut_between_the_box_write_and_the_record_is_completed_by_the_retry() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    let before = f.summary().await;
    cut_after_the_box_write(&f, &id, "cut-1").await;

    let (_, answer) = retry_until_answered(&f, &id, "cut-1").await;

    let body = ok(&answer);
    assert_eq!(body["user"]["after"]["status"], "inactive", "{body}");
    assert_eq!(
        f.tb.sim.counters().total(Endpoint::UserUpdate),
        1,
        "Box was written once, by the cut attempt"
    );
    let audit = f.audit().await;
    assert_eq!(audit.len(), 1, "one audit record: {audit:?}");
    assert_eq!(audit[0].outcome, AuditOutcome::Done);
    assert_eq!(audit[0].after_status, Some(UserStatus::Inactive));
    assert!(
        audit[0].detail.as_deref().is_some_and(|d| d.contains("reconciled")),
        "the record says it was reconciled: {:?}",
        audit[0].detail
    );
    assert_eq!(
        f.user(&id).await.status,
        UserStatus::Inactive,
        "the stored state is complete"
    );
    assert_eq!(f.summary().await.deactivated, before.deactivated + 1);
    summary_matches_users(&f).await;
    let replay = send_within(
        &f.router,
        deactivate_request(&id, &json!({"reason": "left"}), "cut-1"),
        CUT_DEADLINE,
    )
    .await;
    assert_eq!(replay.json(), body, "the key now replays the completed answer");
}

#[tokio::test]
async fn an_abandoned_in_progress_key_is_taken_over_after_its_lease() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    cut_after_the_box_write(&f, &id, "abandoned-1").await;

    // While the cut invocation could still be alive, the key is busy and says when to come back.
    let busy = send_within(
        &f.router,
        deactivate_request(&id, &json!({"reason": "left"}), "abandoned-1"),
        CUT_DEADLINE,
    )
    .await;
    busy.problem(409);
    let retry_after: u64 = busy
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header on the busy key");
    assert!(retry_after >= 1);

    // After the lease, two retries race: exactly one takes the key over.
    let (_, first) = retry_until_answered(&f, &id, "abandoned-1").await;
    let second = send_within(
        &f.router,
        deactivate_request(&id, &json!({"reason": "left"}), "abandoned-1"),
        CUT_DEADLINE,
    )
    .await;
    let body = ok(&first);
    assert_eq!(second.json(), body, "the second retry replays the taken-over answer");
    assert_eq!(
        f.tb.sim.counters().total(Endpoint::UserUpdate),
        1,
        "no second Box write"
    );
    assert_eq!(f.audit().await.len(), 1, "one attempt completed, one audit record");
}

#[tokio::test]
async fn work_that_cannot_finish_before_the_deadline_is_not_started() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;

    let answer = f
        .deactivate_within(&id, json!({"reason": "left"}), "late-1", Duration::from_secs(1))
        .await;

    let problem = answer.problem(503);
    assert!(answer.header("retry-after").is_some(), "{problem}");
    assert_eq!(
        f.tb.sim.counters().total(Endpoint::UserUpdate),
        0,
        "Box was not written"
    );
    assert_eq!(f.tb.sim.counters().total(Endpoint::TerminateSessions), 0);
    assert_eq!(f.tb.sim.user(&id).unwrap().status, "active");
    assert_eq!(f.user(&id).await.status, UserStatus::Active);
    // Nothing is held: the same key runs once there is time.
    ok(&f.deactivate(&id, json!({"reason": "left"}), "late-1").await);
    assert_eq!(f.tb.sim.counters().total(Endpoint::UserUpdate), 1);
}

#[tokio::test]
async fn a_user_promoted_to_admin_since_the_last_sync_is_refused() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    f.tb.sim.set_role(&id, SimRole::Coadmin);

    let problem = f
        .deactivate(&id, json!({"reason": "left"}), "promoted-1")
        .await
        .problem(409);

    assert!(problem["detail"].as_str().unwrap().contains("admin"), "{problem}");
    assert_eq!(
        f.tb.sim.counters().total(Endpoint::UserGet),
        1,
        "one read of the user right before the write"
    );
    assert_eq!(f.tb.sim.counters().total(Endpoint::UserUpdate), 0, "no write");
    assert_eq!(f.tb.sim.user(&id).unwrap().status, "active");
    assert_eq!(
        f.user(&id).await.role,
        Some(Role::Coadmin),
        "the stored role is refreshed from Box"
    );
    let audit = f.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, AuditOutcome::Refused);
}

#[tokio::test]
async fn a_user_whose_role_is_unknown_is_refused() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    f.tb.sim.set_role(&id, SimRole::Withheld);

    let problem = f
        .deactivate(&id, json!({"reason": "left"}), "unknown-1")
        .await
        .problem(409);

    assert!(problem["detail"].as_str().unwrap().contains("role"), "{problem}");
    assert_eq!(f.tb.sim.counters().total(Endpoint::UserUpdate), 0, "no write");
    assert_eq!(f.user(&id).await.role, None, "the stored role is refreshed from Box");
    assert_eq!(f.audit().await[0].outcome, AuditOutcome::Refused);
}

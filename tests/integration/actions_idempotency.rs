//! `Idempotency-Key` and the daily cap: a replay is answered from storage with no new Box call,
//! a reused key with another body is 422, a key still in progress is 409, a change without a key
//! is 400, and past the tenant's cap the answer is 429 with no Box change.

use box_sim::Endpoint;
use std::time::Duration;

use box_sim::Fault;
use seatsync::audit::AuditOutcome;
use serde_json::json;

use crate::actions_fixture::{Actions, ok};

#[tokio::test]
async fn a_replayed_key_returns_the_first_answer_with_one_box_call() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    let body = json!({"reason": "left"});

    let first = f.deactivate(&id, body.clone(), "replay-1").await;
    let second = f.deactivate(&id, body, "replay-1").await;

    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(first.json(), second.json(), "the same answer, audit id included");
    assert_eq!(
        f.tb.sim.counters().total(Endpoint::UserUpdate),
        1,
        "one Box change in all"
    );
    assert_eq!(f.tb.sim.counters().total(Endpoint::TerminateSessions), 1);
    assert_eq!(f.audit().await.len(), 1, "the replay is not a new attempt");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_changes_nothing() {
    let f = Actions::new().await;
    let users = f.idle_users(false).await;
    ok(&f
        .deactivate(&users[0].box_user_id, json!({"reason": "left"}), "reuse")
        .await);
    let calls = f.box_calls();

    let other_body = f
        .deactivate(&users[0].box_user_id, json!({"reason": "other"}), "reuse")
        .await;
    let other_user = f
        .deactivate(&users[1].box_user_id, json!({"reason": "left"}), "reuse")
        .await;

    for answer in [other_body, other_user] {
        let problem = answer.problem(422);
        assert!(problem["detail"].as_str().unwrap().contains("Idempotency-Key"));
    }
    assert_eq!(f.box_calls(), calls, "no Box call");
    assert_eq!(f.tb.sim.user(&users[1].box_user_id).unwrap().status, "active");
}

#[tokio::test]
async fn a_key_still_in_progress_is_409() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    let body = json!({"reason": "left"});
    // Box is slow to answer the first request; the client retries meanwhile.
    f.tb.sim
        .inject(Endpoint::UserUpdate, 1, Fault::Delay(Duration::from_millis(1500)));
    let (first, second) = tokio::join!(f.deactivate(&id, body.clone(), "busy"), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        f.deactivate(&id, body.clone(), "busy").await
    });

    let problem = second.problem(409);
    assert!(problem["detail"].as_str().unwrap().contains("in progress"), "{problem}");
    assert_eq!(first.status, 200);
    let third = f.deactivate(&id, body, "busy").await;
    assert_eq!(
        third.json(),
        first.json(),
        "once done, the key replays the first answer"
    );
    assert_eq!(f.tb.sim.counters().total(Endpoint::UserUpdate), 1);
}

#[tokio::test]
async fn a_change_without_an_idempotency_key_is_400_naming_it() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    for response in [
        f.post(&format!("/users/{id}/deactivate"), json!({"reason": "r"}), None)
            .await,
        f.delete(&id, "", None).await,
        f.post("/users/deactivate", json!({"user_ids": [id], "reason": "r"}), None)
            .await,
    ] {
        let problem = response.problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("Idempotency-Key"),
            "{problem}"
        );
    }
    let bad = f
        .deactivate(&id, json!({"reason": "r"}), "has space")
        .await
        .problem(400);
    assert_eq!(bad["field"], "Idempotency-Key");
    assert_eq!(f.box_calls(), 0);
}

#[tokio::test]
async fn a_refused_attempt_releases_its_key_for_a_corrected_retry() {
    let f = Actions::new().await;
    let recent = f.recently_active().await.box_user_id;
    f.deactivate(&recent, json!({"reason": "r"}), "retry-me")
        .await
        .problem(409);
    // Same key, corrected body: the refused attempt left nothing behind.
    let answer = f
        .deactivate(
            &recent,
            json!({"reason": "r", "override_recent_activity": true}),
            "retry-me",
        )
        .await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
}

#[tokio::test]
async fn past_the_daily_cap_changes_are_429_without_a_box_change() {
    let f = Actions::new().await;
    f.set_settings(|s| s.daily_action_cap = 2).await;
    let users = f.idle_users(false).await;

    ok(&f.deactivate(&users[0].box_user_id, json!({"reason": "r"}), "c1").await);
    ok(&f.deactivate(&users[1].box_user_id, json!({"reason": "r"}), "c2").await);
    let problem = f
        .deactivate(&users[2].box_user_id, json!({"reason": "r"}), "c3")
        .await
        .problem(429);

    assert!(problem["detail"].as_str().unwrap().contains("daily cap"), "{problem}");
    assert_eq!(f.tb.sim.counters().total(Endpoint::UserUpdate), 2);
    assert_eq!(f.tb.sim.user(&users[2].box_user_id).unwrap().status, "active");
    let audit = f.audit().await;
    assert_eq!(audit.len(), 3);
    assert_eq!(audit.iter().filter(|r| r.outcome == AuditOutcome::Refused).count(), 1);
    // A dry run still plans: it takes no slot.
    ok(&f
        .post(
            &format!("/users/{}/deactivate", users[2].box_user_id),
            json!({"reason": "r", "dry_run": true}),
            None,
        )
        .await);
}

#[tokio::test]
async fn a_change_that_fails_at_box_gives_its_cap_slot_back() {
    let f = Actions::new().await;
    f.set_settings(|s| s.daily_action_cap = 1).await;
    let users = f.idle_users(false).await;
    f.tb.sim.inject(
        Endpoint::UserUpdate,
        1,
        Fault::Status {
            status: 403,
            retry_after: None,
        },
    );
    let failed = f.deactivate(&users[0].box_user_id, json!({"reason": "r"}), "f1").await;
    assert!(failed.status >= 400 && failed.status != 429, "{}", failed.status);
    ok(&f.deactivate(&users[1].box_user_id, json!({"reason": "r"}), "f2").await);
    let audit = f.audit().await;
    assert!(audit.iter().any(|r| r.outcome == AuditOutcome::Failed));
}

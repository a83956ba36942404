//! Deactivate, reactivate and delete one user through the real router: Box (the simulator), the
//! license state and the audit trail agree afterwards.

use box_sim::Endpoint;
use seatsync::audit::{AuditAction, AuditOutcome};
use seatsync::boxapi::UserStatus;
use serde_json::json;

use crate::actions_fixture::{Actions, ok};

#[tokio::test]
async fn deactivating_sets_the_user_inactive_ends_sessions_and_records_it() {
    let f = Actions::new().await;
    let target = f.idle_users(false).await.remove(0);
    let id = target.box_user_id.as_str();
    let before = f.summary().await;

    let answer = ok(&f
        .deactivate(id, json!({"reason": "left the company"}), "k-deact-1")
        .await);

    assert_eq!(
        f.tb.sim.user(id).unwrap().status,
        "inactive",
        "Box shows the user inactive"
    );
    assert_eq!(
        f.tb.sim.terminated_sessions(),
        vec![id.to_owned()],
        "their sessions were ended"
    );
    assert_eq!(answer["user"]["box_user_id"], id);
    assert_eq!(answer["user"]["login"], json!(target.login));
    assert_eq!(answer["user"]["before"]["status"], "active");
    assert_eq!(answer["user"]["after"]["status"], "inactive");
    assert_eq!(answer["sessions_ended"], true);
    assert_eq!(answer["dry_run"], false);

    assert_eq!(
        f.user(id).await.status,
        UserStatus::Inactive,
        "the license state agrees"
    );
    let after = f.summary().await;
    assert_eq!(after.deactivated, before.deactivated + 1);
    assert_eq!(
        after.seat_holders, before.seat_holders,
        "a deactivated user still holds a paid seat"
    );

    let audit = f.audit().await;
    assert_eq!(audit.len(), 1);
    let record = &audit[0];
    assert_eq!(record.id, answer["audit_id"].as_str().unwrap());
    assert_eq!(record.action, AuditAction::Deactivate);
    assert_eq!(record.outcome, AuditOutcome::Done);
    assert_eq!(record.actor, "person-of-acme");
    assert_eq!(record.target_box_user_id, id);
    assert_eq!(record.target_login, target.login);
    assert_eq!(
        (record.before_status, record.after_status),
        (Some(UserStatus::Active), Some(UserStatus::Inactive))
    );
    assert_eq!(record.reason.as_deref(), Some("left the company"));
    assert_eq!(record.idempotency_key.as_deref(), Some("k-deact-1"));
    assert!(!record.request_id.is_empty());
}

#[tokio::test]
async fn reactivating_restores_the_user_at_box_and_in_the_license_state() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    let before = f.summary().await;
    ok(&f.deactivate(&id, json!({"reason": "left"}), "k-1").await);

    let answer = ok(&f
        .post(
            &format!("/users/{id}/reactivate"),
            json!({"reason": "came back"}),
            Some("k-2"),
        )
        .await);

    assert_eq!(f.tb.sim.user(&id).unwrap().status, "active");
    assert_eq!(answer["user"]["before"]["status"], "inactive");
    assert_eq!(answer["user"]["after"]["status"], "active");
    assert_eq!(f.user(&id).await.status, UserStatus::Active);
    let after = f.summary().await;
    assert_eq!(after.deactivated, before.deactivated);
    assert_eq!(
        after.histogram, before.histogram,
        "the activity histogram is back where it was"
    );
    let audit = f.audit().await;
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .any(|r| r.action == AuditAction::Reactivate && r.outcome == AuditOutcome::Done)
    );
}

#[tokio::test]
async fn deleting_a_content_owner_without_transfer_is_refused_and_changes_nothing() {
    let f = Actions::new().await;
    let id = f.idle_users(true).await.remove(0).box_user_id;

    let problem = f.delete(&id, "", Some("k-del")).await.problem(409);

    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("owns") && detail.contains("transfer_to"), "{detail}");
    assert_eq!(f.box_calls(), 0, "Box was not called");
    let sim_user = f.tb.sim.user(&id).expect("the user still exists at Box");
    assert!(sim_user.owns_content);
    assert!(f.user(&id).await.removed_at.is_none());
    let audit = f.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, AuditOutcome::Refused);
    assert_eq!(audit[0].action, AuditAction::Delete);
}

#[tokio::test]
async fn deleting_with_transfer_moves_the_content_then_deletes_the_user() {
    let f = Actions::new().await;
    let owners = f.idle_users(true).await;
    let id = owners[0].box_user_id.clone();
    let receiver = f.idle_users(false).await.remove(0).box_user_id;
    let before = f.summary().await;

    let answer = ok(&f.delete(&id, &format!("transfer_to={receiver}"), Some("k-del")).await);

    assert!(f.tb.sim.user(&id).is_none(), "the user is deleted at Box");
    assert!(
        f.tb.sim.user(&receiver).unwrap().owns_content,
        "the receiver owns the content"
    );
    assert_eq!(f.tb.sim.counters().total(Endpoint::TransferContent), 1);
    assert_eq!(answer["deleted"], true);
    assert_eq!(answer["user"]["after"]["status"], "deleted");
    assert_eq!(answer["transfer"]["to_box_user_id"], receiver.as_str());
    let text = answer.to_string();
    assert!(
        text.contains("finish later"),
        "says large transfers finish later: {text}"
    );
    assert!(
        text.contains("does not lower the bill"),
        "says deleting does not lower the bill: {text}"
    );

    assert!(
        f.user(&id).await.removed_at.is_some(),
        "the license state marks the user removed"
    );
    assert!(f.user(&receiver).await.owns_content);
    let after = f.summary().await;
    assert_eq!(after.seat_holders, before.seat_holders - 1);
    let audit = f.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, AuditAction::TransferAndDelete);
    assert_eq!(audit[0].outcome, AuditOutcome::Done);
}

#[tokio::test]
async fn transfer_to_must_be_an_active_managed_user_of_the_tenant() {
    let f = Actions::new().await;
    let id = f.idle_users(true).await.remove(0).box_user_id;
    for bad in [id.to_string(), "99999999999".to_owned()] {
        let problem = f
            .delete(&id, &format!("transfer_to={bad}"), Some("k"))
            .await
            .problem(422);
        assert_eq!(problem["field"], "transfer_to");
    }
    assert_eq!(f.box_calls(), 0);
    assert!(f.tb.sim.user(&id).is_some());
}

#[tokio::test]
async fn a_transfer_without_content_scope_asks_to_reconnect_with_content_transfer() {
    let f = Actions::with_scopes(Some(&["manage_managed_users", "manage_enterprise_properties"])).await;
    let id = f.idle_users(true).await.remove(0).box_user_id;
    let receiver = f.idle_users(false).await.remove(0).box_user_id;

    let problem = f
        .delete(&id, &format!("transfer_to={receiver}"), Some("k"))
        .await
        .problem(409);

    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("content_transfer") && detail.contains("root_readwrite"),
        "{detail}"
    );
    assert!(
        f.tb.sim.user(&id).is_some_and(|u| u.owns_content),
        "nothing changed at Box"
    );
    assert_eq!(f.tb.sim.counters().total(Endpoint::UserDelete), 0);
    assert!(f.user(&id).await.removed_at.is_none());
    assert_eq!(f.audit().await[0].outcome, AuditOutcome::Failed);
}

#[tokio::test]
async fn deleting_a_user_without_content_needs_no_transfer() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    let answer = ok(&f.delete(&id, "", Some("k")).await);
    assert_eq!(answer["deleted"], true);
    assert!(f.tb.sim.user(&id).is_none());
    assert!(f.user(&id).await.removed_at.is_some());
    // The user is gone from the tenant's state: acting on them again is a 404, with no Box call.
    let calls = f.box_calls();
    f.delete(&id, "", Some("k2")).await.problem(404);
    assert_eq!(f.box_calls(), calls);
}

#[tokio::test]
async fn a_dry_run_plans_with_zero_box_calls_and_a_planned_audit_record() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;

    // No Idempotency-Key needed: a dry run changes nothing.
    let answer = ok(&f
        .post(
            &format!("/users/{id}/deactivate"),
            json!({"reason": "r", "dry_run": true}),
            None,
        )
        .await);
    assert_eq!(answer["dry_run"], true);
    assert_eq!(answer["user"]["after"]["status"], "inactive");
    let delete = ok(&f.delete(&id, "dry_run=true", None).await);
    assert_eq!(delete["deleted"], false);

    assert_eq!(f.box_calls(), 0, "zero Box calls");
    assert_eq!(f.tb.sim.user(&id).unwrap().status, "active");
    assert_eq!(f.user(&id).await.status, UserStatus::Active);
    let audit = f.audit().await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|r| r.outcome == AuditOutcome::Planned));
}

//! The safety rails: each refusal happens before any Box call and leaves one audit record;
//! tenant isolation holds even for ids that exist in another tenant's enterprise.

use box_sim::Endpoint;
use seatsync::audit::AuditOutcome;
use seatsync::boxapi::Role;
use seatsync::connection::{ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync_tests::apigw::ApiRequest;
use seatsync_tests::boxsim::TestBox;
use serde_json::json;

use crate::actions_fixture::{Actions, TENANT, enterprise, ok, sync_into};

#[tokio::test]
async fn a_tenant_naming_another_tenants_user_gets_404_and_box_sees_nothing() {
    let f = Actions::new().await;
    // Tenant "globex" has its own enterprise and license state on the same table.
    let other = TestBox::start(enterprise(7, "55500011")).await;
    let globex = TenantId::parse("globex").unwrap();
    sync_into(&f.aws, &other, &globex).await;
    other.sim.reset_counters();
    // The table is shared on purpose: isolation is by partition, not by table.
    let users = seatsync::sync::LicenseStore::load_users(&f.aws.table(), &globex)
        .await
        .unwrap();
    let ours = f.users().await;
    let theirs = users
        .keys()
        .find(|id| !ours.contains_key(id.as_str()))
        .expect("a globex user unknown to acme")
        .clone();

    for request in [
        ApiRequest::authorized("POST", &format!("/users/{theirs}/deactivate"), Actions::claims(TENANT))
            .json(&json!({"reason": "x"}))
            .header("idempotency-key", "k1"),
        ApiRequest::authorized("POST", &format!("/users/{theirs}/reactivate"), Actions::claims(TENANT))
            .header("idempotency-key", "k2"),
        ApiRequest::authorized("DELETE", &format!("/users/{theirs}"), Actions::claims(TENANT))
            .header("idempotency-key", "k3"),
    ] {
        let problem = f.send(request).await.problem(404);
        assert!(!problem.to_string().contains("globex"), "{problem}");
    }
    let bulk = ok(&f
        .post(
            "/users/deactivate",
            json!({"user_ids": [theirs], "reason": "x"}),
            Some("k4"),
        )
        .await);
    assert_eq!(bulk["results"][0]["outcome"], "refused");

    assert_eq!(f.box_calls(), 0, "acme's Box saw zero calls");
    assert_eq!(other.sim.counters().total_all(), 0, "globex's Box saw zero calls");
    let globex_audit = seatsync::audit::AuditLog::new(f.aws.table())
        .list(&globex, 100, None)
        .await
        .unwrap();
    assert!(
        globex_audit.items.is_empty(),
        "nothing is written into the other tenant"
    );
    assert_eq!(
        f.audit().await.len(),
        4,
        "one record per attempt, in the caller's own trail"
    );
}

#[tokio::test]
async fn admins_coadmins_the_connected_account_protected_and_recent_users_are_refused_without_box_calls() {
    let f = Actions::new().await;
    let admin = f.tb.sim.primary_admin_id();
    let other_admin = f
        .pick(|u| u.role == Some(Role::Admin))
        .await
        .into_iter()
        .next()
        .map(|u| u.box_user_id);
    let coadmin = f.with_role(Role::Coadmin).await.box_user_id;
    let idle = f.idle_users(false).await;
    let protected = idle[0].clone();
    let recent = f.recently_active().await.box_user_id;
    let login = protected.login.clone().unwrap().to_uppercase();
    f.set_settings(|s| s.protected_logins = vec![login]).await;
    // The person who connected has since lost their admin role: their account is still the connection.
    let connected = idle[1].box_user_id.clone();
    let connections = Connections::new(f.aws.table());
    let mut record = connections.get(&f.tenant).await.unwrap().unwrap();
    record.connected_by_box_id = connected.clone();
    connections.save(&f.tenant, &record).await.unwrap();

    let mut cases = vec![
        (coadmin, "admin or co-admin"),
        (seatsync_tests::boxsim::box_id(&admin), "admin or co-admin"),
        (connected, "connected through"),
        (protected.box_user_id.clone(), "protected"),
        (recent.clone(), "override_recent_activity"),
    ];
    if let Some(other_admin) = other_admin {
        cases.push((other_admin, "admin or co-admin"));
    }
    for (n, (id, says)) in cases.iter().enumerate() {
        let problem = f
            .deactivate(id, json!({"reason": "tidy up"}), &format!("key-{n}"))
            .await
            .problem(409);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{id}: {detail}");
    }
    assert_eq!(f.box_calls(), 0, "Box was not called");
    let audit = f.audit().await;
    assert_eq!(audit.len(), cases.len(), "one audit record per refusal");
    assert!(
        audit
            .iter()
            .all(|r| r.outcome == AuditOutcome::Refused && r.detail.is_some())
    );
    for (id, _) in &cases {
        assert_eq!(f.tb.sim.user(id).unwrap().status, "active");
    }
}

#[tokio::test]
async fn overriding_recent_activity_with_a_reason_deactivates() {
    let f = Actions::new().await;
    let recent = f.recently_active().await.box_user_id;
    let answer = ok(&f
        .deactivate(
            &recent,
            json!({"reason": "contractor ended today", "override_recent_activity": true}),
            "k",
        )
        .await);
    assert_eq!(answer["user"]["after"]["status"], "inactive");
    assert_eq!(f.tb.sim.user(&recent).unwrap().status, "inactive");
    assert_eq!(f.tb.sim.counters().total(Endpoint::UserUpdate), 1);
}

#[tokio::test]
async fn a_connection_needing_reauthorization_is_refused_with_the_reconnect_message() {
    let f = Actions::new().await;
    let id = f.idle_users(false).await.remove(0).box_user_id;
    Connections::new(f.aws.table())
        .set_status(
            &f.tenant,
            ConnectionStatus::ReauthRequired,
            Some("invalid_grant".into()),
        )
        .await
        .unwrap();
    let problem = f.deactivate(&id, json!({"reason": "r"}), "k").await.problem(409);
    assert!(problem["detail"].as_str().unwrap().contains("reconnect"), "{problem}");
    assert_eq!(f.box_calls(), 0);
    assert_eq!(f.audit().await.len(), 1);
}

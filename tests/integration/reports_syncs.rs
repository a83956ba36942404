//! `POST /syncs`: queues a full sync of the caller's tenant on SQS, at most one running per tenant,
//! and only for a connected tenant.

use std::time::Duration;

use seatsync::connection::ConnectionStatus;
use seatsync::storage::LeaseOutcome;
use seatsync::storage::schema::tenant_pk;
use seatsync::sync::SyncKind;
use seatsync_tests::apigw::ApiRequest;

use crate::reports_fixture::{Reports, claims, tenant};

#[tokio::test]
async fn a_sync_request_queues_a_full_sync_of_the_callers_tenant() {
    let r = Reports::new().await;
    r.connect("acme", ConnectionStatus::Connected).await;
    let response = r.send(ApiRequest::authorized("POST", "/syncs", claims("acme"))).await;
    assert_eq!(response.status, 202, "{}", String::from_utf8_lossy(&response.body));
    let body = response.json();
    assert_eq!(body["queued"], true);
    let slot = body["slot"].as_str().unwrap();
    assert!(slot.starts_with("manual-") && slot.ends_with('Z'), "{slot}");
    let minute: u32 = slot[slot.len() - 3..slot.len() - 1].parse().unwrap();
    assert_eq!(minute % 5, 0, "rounded to 5 minutes: {slot}");

    let queued = r.queued().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].tenant, tenant("acme"));
    assert_eq!(queued[0].kind, SyncKind::Full);
    assert_eq!(queued[0].slot, slot);
    assert!(!queued[0].continuation);
}

#[tokio::test]
async fn a_running_sync_answers_409_until_its_lease_ends() {
    let r = Reports::new().await;
    r.connect("acme", ConnectionStatus::Connected).await;
    let lease = r
        .table
        .try_acquire_lease(
            &tenant_pk(&tenant("acme")),
            "sync",
            "running-sync",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(lease, LeaseOutcome::Acquired);
    let problem = r
        .send(ApiRequest::authorized("POST", "/syncs", claims("acme")))
        .await
        .problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains("already running"),
        "{problem}"
    );
    assert!(r.queued().await.is_empty(), "nothing queued");

    // Another tenant's lease is not ours.
    r.connect("globex", ConnectionStatus::Connected).await;
    let other = r.send(ApiRequest::authorized("POST", "/syncs", claims("globex"))).await;
    assert_eq!(other.status, 202);
    r.queued().await;

    assert!(
        r.table
            .release_lease(&tenant_pk(&tenant("acme")), "sync", "running-sync")
            .await
            .unwrap()
    );
    let after = r.send(ApiRequest::authorized("POST", "/syncs", claims("acme"))).await;
    assert_eq!(after.status, 202, "{}", String::from_utf8_lossy(&after.body));
    assert_eq!(r.queued().await.len(), 1);
}

#[tokio::test]
async fn a_tenant_without_a_box_connection_gets_409_saying_to_connect_first() {
    let r = Reports::new().await;
    let problem = r
        .send(ApiRequest::authorized("POST", "/syncs", claims("acme")))
        .await
        .problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains("connect Box first"),
        "{problem}"
    );
    r.connect("acme", ConnectionStatus::ReauthRequired).await;
    let problem = r
        .send(ApiRequest::authorized("POST", "/syncs", claims("acme")))
        .await
        .problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains("authorized again"),
        "{problem}"
    );
    assert!(r.queued().await.is_empty());
}

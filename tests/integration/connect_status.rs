//! The connection's status, and disconnecting: revoked at Box, secret deleted, marked
//! disconnected, harmless to repeat, and never reaching another tenant (item 20).

use box_sim::{Endpoint, Faults};
use seatsync::boxapi::{AppCredentials, BoxError, OAuthErrorKind};
use seatsync::connection::ConnectionStatus;
use seatsync::ids::TenantId;
use seatsync_tests::apigw::ApiRequest;
use secrecy::SecretString;

use crate::connect_fixture::{CLIENT_ID, CLIENT_SECRET, Connect, assert_redirect};

fn get_status(tenant: &str) -> ApiRequest {
    ApiRequest::authorized("GET", "/connections/box", Connect::claims(tenant))
}

fn disconnect(tenant: &str) -> ApiRequest {
    ApiRequest::authorized("DELETE", "/connections/box", Connect::claims(tenant))
}

#[tokio::test]
async fn a_tenant_without_a_connection_is_disconnected() {
    let c = Connect::new().await;
    let answer = c.send(get_status("acme")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), serde_json::json!({ "status": "disconnected" }));
}

#[tokio::test]
async fn a_connected_tenant_sees_its_enterprise_and_activity_source() {
    let c = Connect::new().await;
    assert_redirect(&c.connect("acme").await, "status=connected");

    let body = c.send(get_status("acme")).await.json();

    assert_eq!(body["status"], "connected");
    assert_eq!(body["enterprise"]["id"], c.tb.sim.enterprise_id());
    assert_eq!(body["enterprise"]["name"], "Acme Inc.");
    assert_eq!(body["activity_source"], "box_events");
    assert_eq!(body["method"], "oauth");
    assert_eq!(body["connected_by"]["box_user_id"], c.tb.sim.primary_admin_id());
    assert!(body["connected_at"].is_string() && body["since"].is_string());
    assert!(body.get("reason").is_none());
}

#[tokio::test]
async fn reauth_required_shows_the_reason_and_since_when() {
    let c = Connect::new().await;
    assert_redirect(&c.connect("acme").await, "status=connected");
    let tenant = TenantId::parse("acme").unwrap();
    c.connections
        .set_status(
            &tenant,
            ConnectionStatus::ReauthRequired,
            Some("Box refused the stored refresh token".into()),
        )
        .await
        .unwrap();

    let body = c.send(get_status("acme")).await.json();

    assert_eq!(body["status"], "reauth_required");
    assert_eq!(body["reason"], "Box refused the stored refresh token");
    let since: chrono::DateTime<chrono::Utc> = body["since"].as_str().unwrap().parse().unwrap();
    assert!(chrono::Utc::now() - since < chrono::Duration::minutes(1));
}

#[tokio::test]
async fn disconnect_revokes_at_box_deletes_the_secret_and_marks_disconnected() {
    let c = Connect::new().await;
    assert_redirect(&c.connect("acme").await, "status=connected");
    let old = c.secret("acme").await.unwrap().refresh_token.unwrap();

    let answer = c.send(disconnect("acme")).await;

    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    assert!(c.secret("acme").await.is_none(), "the secret is deleted");
    let record = c.record("acme").await.unwrap();
    assert_eq!(record.status, ConnectionStatus::Disconnected);
    assert_eq!(record.status_reason.as_deref(), Some("disconnected by person-of-acme"));
    let app = AppCredentials {
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
    };
    match c.tb.client.refresh(&app, &old).await {
        Err(BoxError::OAuth {
            kind: OAuthErrorKind::InvalidGrant,
            ..
        }) => {}
        other => panic!("the revoked refresh token must be dead at Box, got {other:?}"),
    }
    let body = c.send(get_status("acme")).await.json();
    assert_eq!(body["status"], "disconnected");
}

#[tokio::test]
async fn disconnecting_again_is_harmless() {
    let c = Connect::new().await;
    assert_eq!(c.send(disconnect("acme")).await.status, 204, "nothing connected yet");
    assert_redirect(&c.connect("acme").await, "status=connected");
    assert_eq!(c.send(disconnect("acme")).await.status, 204);
    let revokes = c.tb.sim.counters().total(Endpoint::Revoke);

    assert_eq!(c.send(disconnect("acme")).await.status, 204);

    assert_eq!(
        c.tb.sim.counters().total(Endpoint::Revoke),
        revokes,
        "nothing left to revoke"
    );
    assert_eq!(c.record("acme").await.unwrap().status, ConnectionStatus::Disconnected);
}

#[tokio::test]
async fn disconnect_while_box_is_down_changes_nothing() {
    let c = Connect::new().await;
    assert_redirect(&c.connect("acme").await, "status=connected");
    c.tb.sim.set_faults(Faults {
        share_5xx: 1.0,
        ..Faults::default()
    });

    let answer = c.send(disconnect("acme")).await;

    answer.problem(502);
    assert!(c.secret("acme").await.is_some(), "the secret is kept");
    assert_eq!(c.record("acme").await.unwrap().status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn one_tenant_never_sees_or_disconnects_another() {
    let c = Connect::new().await;
    assert_redirect(&c.connect("acme").await, "status=connected");

    let other = c.send(get_status("globex")).await.json();
    assert_eq!(other, serde_json::json!({ "status": "disconnected" }));
    assert_eq!(c.send(disconnect("globex")).await.status, 204);
    // The tenant comes only from the JWT claim: a tenant named in the query changes nothing.
    let sneaky =
        ApiRequest::authorized("DELETE", "/connections/box", Connect::claims("globex")).query("tenant_id=acme");
    assert_eq!(c.send(sneaky).await.status, 204);

    assert!(c.secret("acme").await.is_some());
    assert_eq!(c.record("acme").await.unwrap().status, ConnectionStatus::Connected);
    assert_eq!(c.tb.sim.counters().total(Endpoint::Revoke), 0);
}

//! Connecting with a server app authorized in the Box Admin Console: the credentials are proven
//! by minting one token before they are stored, and the secret never comes back out.

use seatsync::connection::{ConnectMethod, ConnectionStatus};
use seatsync::storage::TokenKind;
use seatsync_tests::apigw::{ApiRequest, ApiResponse};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::connect_fixture::{CLIENT_ID, CLIENT_SECRET, Connect};

async fn put(c: &Connect, tenant: &str, body: &Value) -> ApiResponse {
    c.send(ApiRequest::authorized("PUT", "/connections/box/client-credentials", Connect::claims(tenant)).json(body))
        .await
}

fn body(c: &Connect, secret: &str) -> Value {
    json!({ "client_id": CLIENT_ID, "client_secret": secret, "enterprise_id": c.tb.sim.enterprise_id() })
}

#[tokio::test]
async fn valid_client_credentials_are_stored_after_minting_one_token() {
    let c = Connect::new().await;

    let answer = put(&c, "acme", &body(&c, CLIENT_SECRET)).await;

    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert!(
        !String::from_utf8_lossy(&answer.body).contains(CLIENT_SECRET),
        "the secret is never echoed"
    );
    let view = answer.json();
    assert_eq!(view["status"], "connected");
    assert_eq!(view["method"], "client_credentials");
    assert_eq!(view["enterprise"]["id"], c.tb.sim.enterprise_id());
    assert_eq!(view["connected_by"]["box_user_id"], c.tb.sim.service_account_id());
    assert_eq!(c.token_calls(), 1);

    let secret = c.secret("acme").await.expect("stored in Secrets Manager");
    assert_eq!(secret.kind, TokenKind::ClientCredentials);
    assert_eq!(secret.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(
        secret
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .as_deref(),
        Some(CLIENT_SECRET)
    );
    assert_eq!(
        secret.enterprise_id,
        Some(seatsync_tests::boxsim::enterprise_id(&c.tb.sim.enterprise_id()))
    );
    assert!(secret.refresh_token.is_none());
    c.tb.client
        .me(&secret.access_token)
        .await
        .expect("the minted token works");

    let record = c.record("acme").await.unwrap();
    assert_eq!(record.method, ConnectMethod::ClientCredentials);
    assert_eq!(record.status, ConnectionStatus::Connected);
    assert_eq!(
        c.send(ApiRequest::authorized(
            "GET",
            "/connections/box",
            Connect::claims("acme")
        ))
        .await
        .json(),
        view
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_422_and_nothing_stored() {
    let c = Connect::new().await;

    let answer = put(&c, "acme", &body(&c, "not-the-secret")).await;

    let problem = answer.problem(422);
    assert!(
        problem["detail"].as_str().unwrap().contains("App + Enterprise Access"),
        "{problem}"
    );
    assert!(!String::from_utf8_lossy(&answer.body).contains("not-the-secret"));
    assert!(c.secret("acme").await.is_none());
    assert!(c.record("acme").await.is_none());
}

#[tokio::test]
async fn invalid_fields_are_refused_naming_the_field_without_calling_box() {
    let c = Connect::new().await;
    let cases = [
        (
            json!({ "client_id": "has-dashes", "client_secret": "s", "enterprise_id": "1" }),
            "client_id",
        ),
        (
            json!({ "client_id": "", "client_secret": "s", "enterprise_id": "1" }),
            "client_id",
        ),
        (
            json!({ "client_id": "abc", "client_secret": "", "enterprise_id": "1" }),
            "client_secret",
        ),
        (
            json!({ "client_id": "abc", "client_secret": "x".repeat(257), "enterprise_id": "1" }),
            "client_secret",
        ),
        (
            json!({ "client_id": "abc", "client_secret": "s", "enterprise_id": "12a" }),
            "enterprise_id",
        ),
        (
            json!({ "client_id": "abc", "client_secret": "s", "enterprise_id": "../1" }),
            "enterprise_id",
        ),
    ];
    for (body, field) in cases {
        let problem = put(&c, "acme", &body).await.problem(400);
        assert_eq!(problem["field"], field, "{body}");
    }
    assert_eq!(c.tb.sim.counters().total_all(), 0);
}

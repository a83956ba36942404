//! The real binary starts under the Lambda runtime, loads its app secret once, answers API
//! Gateway events through the connect router, and fails fast (naming the variable) when its
//! configuration is missing.

use std::time::Duration;

use seatsync_tests::aws::TestAws;
use seatsync_tests::lambda_api::{
    BASE_ENV, assert_cold_start_fails_naming, http_api_event, start_function_on_aws, store_app_secret,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_oauth-callback");

const CONNECT_ENV: [(&str, &str); 3] = [
    ("OAUTH_REDIRECT_URI", "https://api.seatsync.test/oauth/box/callback"),
    ("CONNECT_RETURN_URL", "https://app.seatsync.test/settings/box"),
    ("APP_SECRET_ID", "seatsync/app"),
];

#[tokio::test]
async fn answers_http_api_events_through_the_connect_router() {
    let aws = TestAws::new().await;
    let app_secret = store_app_secret(&aws).await;
    let env: Vec<_> = CONNECT_ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "APP_SECRET_ID")
        .collect();
    let f = start_function_on_aws(
        BIN,
        "oauth-callback",
        &aws,
        &[env.as_slice(), &[("APP_SECRET_ID", app_secret.as_str())]].concat(),
    )
    .await;
    let api = &f.api;

    let status = api.invoke(http_api_event(
        "GET",
        "/connections/box",
        json!({"sub": "u1", "tenant_id": "t1"}),
    ));
    let answer = api
        .answer(&status, Duration::from_secs(60))
        .await
        .expect("the function answered");
    assert_eq!(answer.kind, "response");
    assert_eq!(answer.body["statusCode"], 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(answer.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({ "status": "disconnected" }));

    let unknown = api.invoke(http_api_event(
        "GET",
        "/nowhere",
        json!({"sub": "u1", "tenant_id": "t1"}),
    ));
    let answer = api
        .answer(&unknown, Duration::from_secs(30))
        .await
        .expect("the function answered");
    assert_eq!(answer.body["statusCode"], 404);
    assert_eq!(answer.body["headers"]["content-type"], "application/problem+json");
}

#[tokio::test]
async fn missing_configuration_fails_at_cold_start_naming_the_variable() {
    for missing in [
        "TABLE_NAME",
        "OAUTH_REDIRECT_URI",
        "CONNECT_RETURN_URL",
        "APP_SECRET_ID",
    ] {
        let env: Vec<_> = BASE_ENV
            .iter()
            .chain(CONNECT_ENV.iter())
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_cold_start_fails_naming(BIN, "oauth-callback", &env, missing).await;
    }
}

/// The local tool's development identity (`x-seatsync-dev-tenant`) means nothing to a deployed
/// function: without API Gateway's verified claims the answer is 401, whatever the headers say.
#[tokio::test]
async fn the_local_dev_identity_header_is_ignored_by_the_deployed_function() {
    let aws = TestAws::new().await;
    let app_secret = store_app_secret(&aws).await;
    let env: Vec<_> = CONNECT_ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "APP_SECRET_ID")
        .collect();
    let f = start_function_on_aws(
        BIN,
        "oauth-callback",
        &aws,
        &[env.as_slice(), &[("APP_SECRET_ID", app_secret.as_str())]].concat(),
    )
    .await;
    let mut event = http_api_event("GET", "/connections/box", json!({}));
    event["requestContext"].as_object_mut().unwrap().remove("authorizer");
    event["headers"]["x-seatsync-dev-tenant"] = json!("acme");
    event["headers"]["x-seatsync-dev-sub"] = json!("someone");
    let id = f.api.invoke(event);
    let answer = f
        .api
        .answer(&id, Duration::from_secs(60))
        .await
        .expect("the function answered");
    assert_eq!(answer.body["statusCode"], 401, "{}", answer.body);
}

//! The real binary starts under the Lambda runtime, loads its app secret once, answers API
//! Gateway events through the connect router, and fails fast (naming the variable) when its
//! configuration is missing.

use std::time::Duration;

use seatsync_tests::aws::TestAws;
use seatsync_tests::lambda_api::{BASE_ENV, FakeRuntimeApi, http_api_event, lambda_env, start_function};
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
    let app_secret = format!("{}app", aws.secret_prefix);
    let value = json!({ "client_id": "cid", "client_secret": "app-secret", "cookie_key": "k".repeat(40) });
    aws.secret_store()
        .write_json(&app_secret, &value, &"0".repeat(32))
        .await
        .expect("store the app secret");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the local AWS endpoint");
    let api = FakeRuntimeApi::start().await;
    let _child = tokio::process::Command::new(BIN)
        .envs(lambda_env(&api, "oauth-callback"))
        .envs(BASE_ENV)
        .envs(CONNECT_ENV)
        .envs([
            ("TABLE_NAME", aws.table_name.as_str()),
            ("SECRET_PREFIX", aws.secret_prefix.as_str()),
            ("APP_SECRET_ID", app_secret.as_str()),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the function binary");

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
        let f = start_function(BIN, "oauth-callback", &env).await;
        let output = tokio::time::timeout(Duration::from_secs(30), f.child.wait_with_output())
            .await
            .expect("the process exits")
            .expect("output");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(missing), "{missing}: {stderr}");
    }
}

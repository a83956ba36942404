//! The real binary starts under the Lambda runtime, answers an API Gateway event, and fails fast
//! (naming the variable) when its configuration is missing.

use std::time::Duration;

use seatsync_tests::lambda_api::{BASE_ENV, http_api_event, start_function};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_oauth-callback");

#[tokio::test]
async fn answers_an_http_api_event_with_problem_json() {
    let f = start_function(BIN, "oauth-callback", &BASE_ENV).await;
    let id = f.api.invoke(http_api_event(
        "GET",
        "/connections/box",
        json!({"sub": "u1", "tenant_id": "t1"}),
    ));
    let answer = f
        .api
        .answer(&id, Duration::from_secs(30))
        .await
        .expect("the function answered");
    assert_eq!(answer.kind, "response");
    assert_eq!(answer.body["statusCode"], 501);
    assert_eq!(answer.body["headers"]["content-type"], "application/problem+json");
    assert!(f.api.first_poll().is_some());
}

#[tokio::test]
async fn missing_configuration_fails_at_cold_start_naming_the_variable() {
    let env: Vec<_> = BASE_ENV.iter().copied().filter(|(k, _)| *k != "TABLE_NAME").collect();
    let f = start_function(BIN, "oauth-callback", &env).await;
    let output = tokio::time::timeout(Duration::from_secs(30), f.child.wait_with_output())
        .await
        .expect("the process exits")
        .expect("output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TABLE_NAME"), "{stderr}");
}

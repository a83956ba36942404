//! The real binary starts under the Lambda runtime, answers API Gateway events through the
//! licenses router against moto, and fails fast (naming the variable) when its configuration is
//! missing.

use std::time::Duration;

use seatsync_tests::aws::TestAws;
use seatsync_tests::lambda_api::{BASE_ENV, assert_cold_start_fails_naming, http_api_event, start_function_on_aws};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_licenses-api");

const API_ENV: [(&str, &str); 1] = [("SYNC_QUEUE_URL", "http://127.0.0.1:9/000000000000/sync")];

#[tokio::test]
async fn answers_http_api_events_through_the_licenses_router() {
    let aws = TestAws::new().await;
    let f = start_function_on_aws(BIN, "licenses-api", &aws, &API_ENV).await;
    let api = &f.api;

    let settings = api.invoke(http_api_event(
        "GET",
        "/settings",
        json!({"sub": "u1", "tenant_id": "t1"}),
    ));
    let answer = api
        .answer(&settings, Duration::from_secs(60))
        .await
        .expect("the function answered");
    assert_eq!(answer.kind, "response");
    assert_eq!(answer.body["statusCode"], 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(answer.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["inactivity_threshold_days"], 60);
    assert_eq!(body["sso"], json!({"provider": null, "configured": false}));

    let licenses = api.invoke(http_api_event(
        "GET",
        "/licenses",
        json!({"sub": "u1", "tenant_id": "t1"}),
    ));
    let answer = api
        .answer(&licenses, Duration::from_secs(30))
        .await
        .expect("the function answered");
    assert_eq!(answer.body["statusCode"], 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(answer.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["summary"], serde_json::Value::Null);

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
    for missing in ["TABLE_NAME", "SYNC_QUEUE_URL"] {
        let env: Vec<_> = BASE_ENV
            .iter()
            .chain(API_ENV.iter())
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_cold_start_fails_naming(BIN, "licenses-api", &env, missing).await;
    }
}

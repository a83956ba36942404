//! The real binary starts under the Lambda runtime, loads its app secret once, answers API
//! Gateway events through the actions router, and fails fast (naming the variable) when its
//! configuration is missing.

use std::time::Duration;

use seatsync_tests::aws::TestAws;
use seatsync_tests::lambda_api::{
    BASE_ENV, assert_cold_start_fails_naming, http_api_event, start_function_on_aws, store_app_secret,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_deactivate");

fn body_of(answer: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(answer["body"].as_str().expect("a body")).expect("a JSON body")
}

#[tokio::test]
async fn answers_http_api_events_through_the_actions_router() {
    let aws = TestAws::new().await;
    let app_secret = store_app_secret(&aws).await;
    let f = start_function_on_aws(BIN, "deactivate", &aws, &[("APP_SECRET_ID", app_secret.as_str())]).await;
    let api = &f.api;

    // A user this tenant has never synced: 404 before anything else, as problem+json.
    let mut event = http_api_event("POST", "/users/123/deactivate", json!({"sub": "u1", "tenant_id": "t1"}));
    event["headers"]["content-type"] = json!("application/json");
    event["headers"]["idempotency-key"] = json!("key-1");
    event["body"] = json!(json!({"reason": "left the company"}).to_string());
    let id = api.invoke(event);
    let answer = api
        .answer(&id, Duration::from_secs(60))
        .await
        .expect("the function answered");
    assert_eq!(answer.kind, "response", "{}", answer.body);
    assert_eq!(answer.body["statusCode"], 404, "{}", answer.body);
    assert_eq!(answer.body["headers"]["content-type"], "application/problem+json");
    assert!(body_of(&answer.body)["detail"].as_str().unwrap().contains("123"));

    // A malformed id is a 400 naming the field, never a 5xx.
    let id = api.invoke(http_api_event(
        "DELETE",
        "/users/12ab",
        json!({"sub": "u1", "tenant_id": "t1"}),
    ));
    let answer = api
        .answer(&id, Duration::from_secs(30))
        .await
        .expect("the function answered");
    assert_eq!(answer.body["statusCode"], 400, "{}", answer.body);
    assert_eq!(body_of(&answer.body)["field"], "box_user_id");
}

#[tokio::test]
async fn missing_configuration_fails_at_cold_start_naming_the_variable() {
    for missing in ["TABLE_NAME", "APP_SECRET_ID"] {
        let env: Vec<_> = BASE_ENV
            .iter()
            .copied()
            .chain([("APP_SECRET_ID", "seatsync/app")])
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_cold_start_fails_naming(BIN, "deactivate", &env, missing).await;
    }
}

//! The real binary starts under the Lambda runtime and answers an API Gateway event.

use std::time::Duration;

use seatsync_tests::lambda_api::{BASE_ENV, http_api_event, start_function};
use serde_json::json;

#[tokio::test]
async fn answers_an_http_api_event_with_problem_json() {
    let f = start_function(env!("CARGO_BIN_EXE_deactivate"), "deactivate", &BASE_ENV).await;
    let id = f.api.invoke(http_api_event(
        "POST",
        "/users/123/deactivate",
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
}

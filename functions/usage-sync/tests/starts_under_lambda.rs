//! The real binary starts under the Lambda runtime and answers a scheduled event.

use std::time::Duration;

use seatsync_tests::lambda_api::{BASE_ENV, start_function};
use serde_json::json;

#[tokio::test]
async fn answers_a_scheduled_event() {
    let f = start_function(env!("CARGO_BIN_EXE_usage-sync"), "usage-sync", &BASE_ENV).await;
    let event = json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-28T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sync"], "detail": {}
    });
    let id = f.api.invoke(event);
    let answer = f
        .api
        .answer(&id, Duration::from_secs(30))
        .await
        .expect("the function answered");
    assert_eq!(answer.kind, "response");
    assert_eq!(answer.body["outcome"], "skipped");
}

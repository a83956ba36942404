//! The real binary starts under the Lambda runtime with its app secret and queue, answers a
//! scheduled fan-out order, and fails fast (naming the variable) when its configuration is missing.

use std::time::Duration;

use seatsync_tests::aws::TestAws;
use seatsync_tests::lambda_api::{BASE_ENV, assert_cold_start_fails_naming, start_function_on_aws, store_app_secret};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_usage-sync");

#[tokio::test]
async fn answers_a_scheduled_fan_out_order() {
    let aws = TestAws::new().await;
    let app_secret = store_app_secret(&aws).await;
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!("sync-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url.expect("a queue url");
    let env = [("APP_SECRET_ID", app_secret.as_str()), ("SYNC_QUEUE_URL", url.as_str())];
    let f = start_function_on_aws(BIN, "usage-sync", &aws, &env).await;

    let id = f
        .api
        .invoke(json!({ "action": "fan_out", "kind": "full", "slot": "2026-11-28T06:00:00Z" }));
    let answer = f
        .api
        .answer(&id, Duration::from_secs(60))
        .await
        .expect("the function answered");
    assert_eq!(answer.kind, "response", "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({ "queued": 0, "kind": "full" }),
        "no tenant is connected yet"
    );

    let junk = f.api.invoke(json!({ "hello": "world" }));
    let answer = f
        .api
        .answer(&junk, Duration::from_secs(30))
        .await
        .expect("the function answered");
    assert_eq!(
        answer.kind, "error",
        "an event that is not ours is an error: {}",
        answer.body
    );
}

#[tokio::test]
async fn missing_configuration_fails_at_cold_start_naming_the_variable() {
    for (missing, env) in [
        ("SYNC_QUEUE_URL", vec![("APP_SECRET_ID", "seatsync/app")]),
        ("APP_SECRET_ID", vec![("SYNC_QUEUE_URL", "http://127.0.0.1:9/queue")]),
        (
            "BACKFILL_DAYS",
            vec![
                ("APP_SECRET_ID", "a"),
                ("SYNC_QUEUE_URL", "q"),
                ("BACKFILL_DAYS", "400"),
            ],
        ),
    ] {
        let env: Vec<_> = BASE_ENV.iter().copied().chain(env).collect();
        assert_cold_start_fails_naming(BIN, "usage-sync", &env, missing).await;
    }
}

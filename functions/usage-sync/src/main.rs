//! usage-sync: the scheduled fan-out (one queue message per connected tenant) and the
//! SQS-triggered sync of one tenant, resumed from its checkpoint when it runs out of time.
//! Wiring only: the logic lives in `seatsync::sync`.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use seatsync::boxapi::RetryPolicy;
use seatsync::config::ProcessEnv;
use seatsync::connection::{AppConfig, Connections};
use seatsync::runtime::{Clients, CommonConfig};
use seatsync::settings::SettingsStore;
use seatsync::sso::HttpOptions;
use seatsync::sync::invocation::{SyncConfig, deadline_instant, handle};
use seatsync::sync::{SqsQueue, SyncOptions, SyncService, Syncer};
use seatsync::tokens::{TokenProvider, TokenProviderOptions};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatsync::telemetry::init();
    let common = CommonConfig::from_env(&ProcessEnv)?;
    let config = SyncConfig::from_env(&ProcessEnv)?;
    let clients = Clients::build(&common, RetryPolicy::default()).await?;
    let app = AppConfig::load(&clients.secrets, &config.app_secret_id).await?;
    let tokens = TokenProvider::new(
        Arc::new(clients.secrets.clone()),
        clients.table.clone(),
        clients.box_api.clone(),
        app.box_app,
        TokenProviderOptions::default(),
    );
    let service = SyncService {
        table: clients.table.clone(),
        connections: Connections::new(clients.table.clone()),
        settings: SettingsStore::new(clients.table.clone()),
        secrets: clients.secrets.clone(),
        syncer: Syncer {
            store: Arc::new(clients.table.clone()),
            tokens: Arc::new(tokens),
            box_api: clients.box_api.clone(),
            options: SyncOptions {
                backfill_days: config.backfill_days,
                requests_per_minute: config.requests_per_minute,
                ..SyncOptions::default()
            },
        },
        sso_http: HttpOptions::default(),
    };
    let queue = SqsQueue {
        client: aws_sdk_sqs::Client::new(&clients.sdk),
        url: config.queue_url.clone(),
    };
    tracing::info!(table = %common.table_name, "usage-sync ready");
    // The payload stays JSON here: an event that is not ours is answered with usage-sync's own
    // error, not the runtime's deserialization error.
    run(service_fn(|event: LambdaEvent<Value>| {
        let deadline = Some(deadline_instant(event.context.deadline()));
        let (service, queue) = (&service, &queue);
        async move {
            handle(service, queue, event.payload, deadline).await.map_err(|e| {
                tracing::error!(error = %e, retryable = e.is_retryable(), "usage-sync invocation failed");
                Error::from(e)
            })
        }
    }))
    .await
}

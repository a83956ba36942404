//! licenses-api: the license report, the user list (JSON or CSV), the audit trail, the tenant's
//! settings and manual syncs. Wiring only: the logic and the HTTP API live in `seatsync::reports`.

use std::sync::Arc;

use lambda_http::{Error, run};
use seatsync::boxapi::RetryPolicy;
use seatsync::config::ProcessEnv;
use seatsync::reports::{ReportsConfig, ReportsService, router};
use seatsync::runtime::{Clients, CommonConfig};
use seatsync::sync::SqsQueue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatsync::telemetry::init();
    let common = CommonConfig::from_env(&ProcessEnv)?;
    let config = ReportsConfig::from_env(&ProcessEnv)?;
    let clients = Clients::build(&common, RetryPolicy::interactive()).await?;
    let queue = SqsQueue {
        client: aws_sdk_sqs::Client::new(&clients.sdk),
        url: config.sync_queue_url.clone(),
    };
    let service = ReportsService::new(config, clients.table.clone(), clients.secrets.clone(), Arc::new(queue));
    tracing::info!(table = %common.table_name, "licenses-api ready");
    run(router(Arc::new(service))).await
}

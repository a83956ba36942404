//! licenses-api: the license report, the user list (JSON or CSV), the audit trail, the tenant's
//! settings and manual syncs. Wiring only: the logic and the HTTP API live in `seatsync::reports`.

use std::sync::Arc;

use lambda_http::{Error, run};
use seatsync::api::{TenantClaim, TenantLimit};
use seatsync::boxapi::RetryPolicy;
use seatsync::config::ProcessEnv;
use seatsync::reports::{ReportsConfig, ReportsService, router};
use seatsync::runtime::{ApiLimits, Clients, CommonConfig};
use seatsync::sync::SqsQueue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatsync::telemetry::init();
    let common = CommonConfig::from_env(&ProcessEnv)?;
    let config = ReportsConfig::from_env(&ProcessEnv)?;
    let limits = ApiLimits::from_env(&ProcessEnv)?;
    let clients = Clients::build(&common, RetryPolicy::interactive()).await?;
    let queue = SqsQueue {
        client: aws_sdk_sqs::Client::new(&clients.sdk),
        url: config.sync_queue_url.clone(),
    };
    // Fairness between tenants: every request of a verified tenant is counted (shared across instances).
    let limit = TenantLimit::per_minute(
        clients.table.clone(),
        TenantClaim(config.tenant_claim.as_str().into()),
        limits.tenant_requests_per_minute,
    );
    let service = ReportsService::new(config, clients.table.clone(), clients.secrets.clone(), Arc::new(queue));
    tracing::info!(table = %common.table_name, "licenses-api ready");
    run(limit.apply(router(Arc::new(service)))).await
}

//! oauth-callback: connects a tenant's Box enterprise (OAuth start and callback, connection
//! status, disconnect, client-credentials connections). Wiring only: the logic and the HTTP API
//! live in `seatsync::connect`.

use std::sync::Arc;

use lambda_http::{Error, run};
use seatsync::api::{TenantClaim, TenantLimit};
use seatsync::boxapi::RetryPolicy;
use seatsync::config::ProcessEnv;
use seatsync::connect::{ConnectConfig, ConnectService, router};
use seatsync::connection::AppConfig;
use seatsync::runtime::{ApiLimits, Clients, CommonConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatsync::telemetry::init();
    let config = CommonConfig::from_env(&ProcessEnv)?;
    let connect = ConnectConfig::from_env(&ProcessEnv)?;
    let limits = ApiLimits::from_env(&ProcessEnv)?;
    let clients = Clients::build(&config, RetryPolicy::interactive()).await?;
    let app = AppConfig::load(&clients.secrets, &connect.app_secret_id).await?;
    // Fairness between tenants: every request of a verified tenant is counted (shared across
    // instances); the OAuth callback has no JWT, so it is never counted.
    let limit = TenantLimit::per_minute(
        clients.table.clone(),
        TenantClaim(connect.tenant_claim.as_str().into()),
        limits.tenant_requests_per_minute,
    );
    let service = ConnectService::new(
        connect,
        app,
        clients.table.clone(),
        Arc::new(clients.secrets.clone()),
        clients.box_api.clone(),
    );
    tracing::info!(table = %config.table_name, "oauth-callback ready");
    run(limit.apply(router(Arc::new(service)))).await
}

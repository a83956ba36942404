//! deactivate: deactivates, reactivates and deletes Box users on request, with safety rails,
//! idempotency, a daily cap and an audit trail. Wiring only: the logic and the HTTP API live in
//! `seatsync::actions`.

use std::sync::Arc;

use lambda_http::{Error, run};
use seatsync::actions::{ActionsConfig, ActionsService, router};
use seatsync::api::{TenantClaim, TenantLimit};
use seatsync::boxapi::RetryPolicy;
use seatsync::config::ProcessEnv;
use seatsync::connection::AppConfig;
use seatsync::runtime::{ApiLimits, Clients, CommonConfig};
use seatsync::tokens::{TokenProvider, TokenProviderOptions};

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatsync::telemetry::init();
    let config = CommonConfig::from_env(&ProcessEnv)?;
    let actions = ActionsConfig::from_env(&ProcessEnv)?;
    let limits = ApiLimits::from_env(&ProcessEnv)?;
    // API Gateway gives up after 29 s: Box calls retry within that.
    let clients = Clients::build(&config, RetryPolicy::interactive()).await?;
    let app = AppConfig::load(&clients.secrets, &actions.app_secret_id).await?;
    let tokens = TokenProvider::new(
        Arc::new(clients.secrets.clone()),
        clients.table.clone(),
        clients.box_api.clone(),
        app.box_app,
        TokenProviderOptions::default(),
    );
    // Fairness between tenants: every request of a verified tenant is counted (shared across instances).
    let limit = TenantLimit::per_minute(
        clients.table.clone(),
        TenantClaim(actions.tenant_claim.as_str().into()),
        limits.tenant_requests_per_minute,
    );
    let service = ActionsService::new(
        actions,
        clients.table.clone(),
        Arc::new(tokens),
        clients.box_api.clone(),
    );
    // Each request's deadline comes from its Lambda context (request extensions); the service
    // budgets every Box call against it (`ActionTimings`).
    tracing::info!(table = %config.table_name, "deactivate ready");
    run(limit.apply(router(Arc::new(service)))).await
}

//! deactivate: deactivates, reactivates and deletes Box users on request, with safety rails,
//! idempotency and an audit trail. Wiring only: the logic lives in `seatsync`.

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use seatsync::boxapi::RetryPolicy;
use seatsync::config::ProcessEnv;
use seatsync::problem::Problem;
use seatsync::runtime::{Clients, CommonConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    seatsync::telemetry::init();
    let config = CommonConfig::from_env(&ProcessEnv)?;
    let clients = Clients::build(&config, RetryPolicy::interactive()).await?;
    tracing::info!(table = %config.table_name, "deactivate ready");
    run(service_fn(|request: Request| handle(&clients, request))).await
}

/// The license actions arrive with the "License actions" issue; until then every route answers
/// a clear 501 instead of pretending to work.
async fn handle(_clients: &Clients, request: Request) -> Result<Response<Body>, Error> {
    let detail = format!(
        "{} {} is not available in this version of seatsync",
        request.method(),
        request.uri().path()
    );
    Ok(Problem::new(501, "Not Implemented", detail)
        .into_response()
        .map(Body::from))
}

//! Logging setup for every function: JSON lines for CloudWatch, level from `RUST_LOG`
//! (default `info`). Secrets never reach it: they are `SecretString`s and spans skip them.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing (tests call it freely).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(true)
        .without_time() // CloudWatch stamps every line
        .try_init();
}

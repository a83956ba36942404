//! `cold-start`: starts each function's release `bootstrap` (from `cargo lambda build --release`) the
//! way Lambda does, against a loopback Runtime API and the local AWS endpoint, and measures the time
//! from process start to its first poll for work (the init phase: config, clients, the app secret).
//! Prints a table of median and worst init times over several starts, and binary sizes.
//!
//! Run through `scripts/cold-start`, which starts moto and builds the functions first.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use seatsync_tests::aws::TestAws;
use seatsync_tests::lambda_api::{start_function_on_aws, store_app_secret};

const STARTS: usize = 7;
const FUNCTIONS: [&str; 4] = ["oauth-callback", "usage-sync", "deactivate", "licenses-api"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    let aws = TestAws::new().await;
    let app_secret = store_app_secret(&aws).await;
    let queue = aws_sdk_sqs::Client::new(&aws.sdk)
        .create_queue()
        .queue_name(format!("cold-start-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await?
        .queue_url
        .context("no queue url")?;
    let env = [
        ("APP_SECRET_ID", app_secret.as_str()),
        ("SYNC_QUEUE_URL", queue.as_str()),
        ("OAUTH_REDIRECT_URI", "https://api.seatsync.test/oauth/box/callback"),
        ("CONNECT_RETURN_URL", "https://app.seatsync.test/settings/box"),
    ];
    println!(
        "{:<16} {:>12} {:>12} {:>10}",
        "function", "init median", "init worst", "size"
    );
    for name in FUNCTIONS {
        let bootstrap = root.join("target/lambda").join(name).join("bootstrap");
        if !bootstrap.exists() {
            bail!("{} is missing: run scripts/build-lambdas first", bootstrap.display());
        }
        let size = std::fs::metadata(&bootstrap)?.len();
        let mut times = Vec::new();
        for _ in 0..STARTS {
            let f = start_function_on_aws(bootstrap.to_str().context("path")?, name, &aws, &env).await;
            let deadline = Instant::now() + Duration::from_secs(20);
            // Bounded wait for the first poll.
            let polled = loop {
                if let Some(at) = f.api.first_poll() {
                    break at;
                }
                if Instant::now() > deadline {
                    bail!("{name} did not poll for work within 20 s");
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            };
            times.push(polled.duration_since(f.started));
        }
        times.sort();
        println!(
            "{name:<16} {:>9.1} ms {:>9.1} ms {:>7.1} MB",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0,
            size as f64 / 1_048_576.0
        );
    }
    println!("({STARTS} starts each; init = process start to the first Runtime API poll, against moto on loopback)");
    Ok(())
}

//! `box-sim`: runs the Box API simulator on loopback for the local demo and manual testing.

use std::net::SocketAddr;
use std::time::Duration;

use box_sim::{BoxSim, Plan, SimConfig};

const USAGE: &str = "usage: box-sim [--port N] [--seed N] [--users N] [--history-days N] [--plan enterprise|business]
              [--latency-ms N] [--share-429 F] [--share-5xx F] [--share-drop F] [--short-pages F]
              [--rate-limit N] [--client-id S] [--client-secret S] [--redirect-uri S] [--contract]";

fn parse(args: &[String]) -> anyhow::Result<(SimConfig, u16)> {
    let mut c = SimConfig::default();
    let mut port = 0u16;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--contract" {
            c.contract_spec = Some(
                box_sim::contract::default_spec_path()
                    .ok_or_else(|| anyhow::anyhow!("--contract: openapi.json not found (set SEATSYNC_BOX_OPENAPI)"))?,
            );
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("{flag} {v}: {e}");
        match flag.as_str() {
            "--port" => port = v.parse().map_err(|e| bad(&e))?,
            "--seed" => c.seed = v.parse().map_err(|e| bad(&e))?,
            "--users" => c.enterprise.users = v.parse().map_err(|e| bad(&e))?,
            "--history-days" => c.enterprise.history_days = v.parse().map_err(|e| bad(&e))?,
            "--plan" => {
                c.enterprise.plan = match v.as_str() {
                    "enterprise" => Plan::Enterprise,
                    "business" => Plan::Business,
                    _ => return Err(bad(&"expected enterprise or business")),
                }
            }
            "--latency-ms" => c.faults.latency = Duration::from_millis(v.parse().map_err(|e| bad(&e))?),
            "--share-429" => c.faults.share_429 = v.parse().map_err(|e| bad(&e))?,
            "--share-5xx" => c.faults.share_5xx = v.parse().map_err(|e| bad(&e))?,
            "--share-drop" => c.faults.share_drop = v.parse().map_err(|e| bad(&e))?,
            "--short-pages" => c.faults.short_pages = v.parse().map_err(|e| bad(&e))?,
            "--rate-limit" => c.faults.rate_limit_per_minute = Some(v.parse().map_err(|e| bad(&e))?),
            "--client-id" => c.client_id = v.clone(),
            "--client-secret" => c.client_secret = v.clone(),
            "--redirect-uri" => c.redirect_uri = Some(v.clone()),
            _ => anyhow::bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok((c, port))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, port) = parse(&args)?;
    let sim = BoxSim::start_on(config, SocketAddr::from(([127, 0, 0, 1], port))).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "box-sim listening on {}", sim.api_base())?;
        out.flush()?;
    }
    tracing::info!(enterprise_id = %sim.enterprise_id(), primary_admin = %sim.primary_admin_id(), "box-sim ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}

//! `box-sim`: runs the Box API simulator on loopback for the local demo, manual testing and the
//! usage-sync benchmark (`tools/sync-bench`), which runs it as a separate process so the bench's
//! memory is the sync's alone. With `--summary` it prints the enterprise's ground truth after the
//! listening line and its request counters when it stops, one JSON line each; with `--truth FILE`
//! it writes each user's `last_login` and `last_content` there, one JSON line per user.

use std::net::SocketAddr;
use std::time::Duration;

use box_sim::{BoxSim, Endpoint, Plan, SimConfig};

const USAGE: &str = "usage: box-sim [--port N] [--seed N] [--users N] [--history-days N] [--plan enterprise|business]
              [--enterprise-id S] [--login-events N] [--app-users F] [--never-logged-in F] [--external-users N]
              [--content-events N] [--no-content-events] [--drive-only F] [--login-only F]
              [--latency-ms N] [--share-429 F] [--share-5xx F] [--share-drop F] [--short-pages F]
              [--rate-limit N] [--client-id S] [--client-secret S] [--redirect-uri S] [--contract] [--summary]
              [--truth FILE]";

struct Cli {
    config: SimConfig,
    port: u16,
    summary: bool,
    truth: Option<std::path::PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Cli> {
    let mut c = SimConfig::default();
    let mut port = 0u16;
    let mut summary = false;
    let mut truth = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--summary" {
            summary = true;
            continue;
        }
        if flag == "--no-content-events" {
            c.enterprise.content_events = false;
            continue;
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
            "--enterprise-id" => c.enterprise.enterprise_id = v.clone(),
            "--login-events" => c.enterprise.total_login_events = Some(v.parse().map_err(|e| bad(&e))?),
            "--app-users" => c.enterprise.app_users = share(v).map_err(|e| bad(&e))?,
            "--never-logged-in" => c.enterprise.never_logged_in = share(v).map_err(|e| bad(&e))?,
            "--content-events" => c.enterprise.total_content_events = Some(v.parse().map_err(|e| bad(&e))?),
            "--drive-only" => c.enterprise.drive_only = share(v).map_err(|e| bad(&e))?,
            "--login-only" => c.enterprise.login_only = share(v).map_err(|e| bad(&e))?,
            "--external-users" => c.enterprise.external_users = v.parse().map_err(|e| bad(&e))?,
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
            "--truth" => truth = Some(std::path::PathBuf::from(v)),
            _ => anyhow::bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(Cli {
        config: c,
        port,
        summary,
        truth,
    })
}

/// A share of the users, 0 to 1.
fn share(v: &str) -> anyhow::Result<f64> {
    let f: f64 = v.parse()?;
    anyhow::ensure!((0.0..=1.0).contains(&f), "expected a share between 0 and 1");
    Ok(f)
}

/// The ground truth a benchmark checks a sync against.
fn summary_json(sim: &BoxSim) -> serde_json::Value {
    let users = sim.users();
    let external = users.iter().filter(|u| u.is_external).count();
    let app = users.iter().filter(|u| u.is_app_user && !u.is_external).count();
    serde_json::json!({
        "enterprise_id": sim.enterprise_id(),
        "managed_users": users.len() - external - app,
        "app_users": app,
        "external_users": external,
        "users_with_login": users.iter().filter(|u| u.last_login.is_some()).count(),
        "users_with_content": users.iter().filter(|u| u.last_content.is_some()).count(),
        "users_with_activity": users.iter().filter(|u| u.last_login.is_some() || u.last_content.is_some()).count(),
        "login_events": sim.login_event_count(),
        "content_events": sim.content_event_count(),
        "events": sim.event_count(),
        "now": sim.now().to_rfc3339(),
    })
}

/// Each user's ground truth, one JSON line per user, for a benchmark that checks every user's two
/// dates rather than the totals of the summary.
fn write_truth(sim: &BoxSim, path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
    let file = std::fs::File::create(path).map_err(|e| anyhow::anyhow!("--truth {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for u in sim.users() {
        let line = serde_json::json!({
            "id": u.id,
            "login": u.login,
            "role": u.role.as_str(),
            "status": u.status.as_str(),
            "is_app_user": u.is_app_user,
            "is_external": u.is_external,
            "last_login": time(u.last_login),
            "last_content": time(u.last_content),
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Requests answered so far: in all, rate limited (429), and by the endpoints a sync uses.
fn counters_json(sim: &BoxSim) -> serde_json::Value {
    let c = sim.counters();
    let all = [
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Revoke,
        Endpoint::UsersMe,
        Endpoint::Users,
        Endpoint::UserGet,
        Endpoint::UserUpdate,
        Endpoint::UserDelete,
        Endpoint::TransferContent,
        Endpoint::TerminateSessions,
        Endpoint::Events,
    ];
    serde_json::json!({
        "total": c.total_all(),
        "rate_limited": all.iter().map(|&ep| c.get(ep, 429)).sum::<u64>(),
        "users": c.total(Endpoint::Users),
        "events": c.total(Endpoint::Events),
        "token": c.total(Endpoint::Token),
        "dropped": c.dropped_all(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = parse(&args)?;
    let started = std::time::Instant::now();
    let sim = BoxSim::start_on(cli.config, SocketAddr::from(([127, 0, 0, 1], cli.port))).await?;
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        events = sim.event_count(),
        "box-sim generated"
    );
    // Written before the listening line, so whoever waits for that line finds the file complete.
    if let Some(path) = &cli.truth {
        write_truth(&sim, path)?;
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "box-sim listening on {}", sim.api_base())?;
        if cli.summary {
            writeln!(out, "box-sim summary {}", summary_json(&sim))?;
        }
        out.flush()?;
    }
    tracing::info!(enterprise_id = %sim.enterprise_id(), primary_admin = %sim.primary_admin_id(), "box-sim ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    if cli.summary {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "box-sim counters {}", counters_json(&sim))?;
        out.flush()?;
    }
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn content_flags_set_the_enterprise_spec() {
        let cli = parse(&args(&[
            "--content-events",
            "10000000",
            "--drive-only",
            "0.2",
            "--login-only",
            "0.05",
            "--truth",
            "/tmp/t.jsonl",
        ]))
        .unwrap();
        let e = &cli.config.enterprise;
        assert_eq!(e.total_content_events, Some(10_000_000));
        assert_eq!((e.drive_only, e.login_only), (0.2, 0.05));
        assert!(e.content_events);
        assert_eq!(cli.truth.as_deref(), Some(std::path::Path::new("/tmp/t.jsonl")));
        assert!(
            !parse(&args(&["--no-content-events"]))
                .unwrap()
                .config
                .enterprise
                .content_events
        );
        assert!(parse(&args(&["--drive-only", "1.5"])).is_err());
    }
}

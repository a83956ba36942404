//! The usage-sync benchmark (issues 4 and 11): syncs 100,000 users, 1,000,000 LOGIN events and
//! 10,000,000 content events over 365 days from the Box simulator (20 ms latency per request) under
//! its 1,000 requests/minute limit (scenario B; A, without a limit, on request), and prints when the
//! 30/60/90 report was published against the full read, Box calls against the minimum, wall time
//! against the rate's floor, 429s, peak RSS, items written, and every user's two dates and the
//! published counts against the simulator's ground truth, each target marked PASS or FAIL.
//!
//! A binary, not a timed test: run it in release with
//! `cargo build --release -p sync-bench -p box-sim && target/release/sync-bench`.

mod report;
mod rss;
mod sim;
mod truth;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use seatsync::boxapi::{AppCredentials, BoxClient, BoxEndpoints, ClientOptions};
use seatsync::connection::ActivitySource;
use seatsync::ids::{EnterpriseId, TenantId};
use seatsync::license::Activity;
use seatsync::settings::TenantSettings;
use seatsync::sync::{LicenseStore, MemoryStore, SyncKind, SyncOptions, SyncOutcome, SyncPlan, SyncRun, Syncer};
use seatsync::tokens::StaticToken;
use secrecy::SecretString;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use report::{Phase, Publication, ScenarioReport};
use sim::SimProcess;

const USAGE: &str = "usage: sync-bench [--scenario a|b|both] [--users N] [--events N] [--content-events N]
                  [--drive-only F] [--login-only F] [--days N] [--latency-ms N]
                  [--app-users F] [--slices N] [--rate-limit N] [--budget-b N] [--seed N]
                  [--timeout-mins N] [--json PATH]

  --scenario      a (no limit), b (the simulator's limit) or both; default b
  --users N       managed users listed (people and app users), default 100000
  --events N      LOGIN events in the history, default 1000000
  --content-events N  content events in the history, default 10000000 (0: none)
  --drive-only F  share of users with content events but no logins (simulator default if unset)
  --login-only F  share of users with logins but no content events (simulator default if unset)
  --days N        history length and back-fill, default 365 (the sync reads at most 365)
  --latency-ms N  simulator latency per request, default 20
  --app-users F   share of the managed users that are app users, default 0.03
  --slices N      time slices read concurrently, default 16
  --rate-limit N  scenario B's simulator limit, requests per minute per token, default 1000
  --budget-b N    scenario B's requests_per_minute (the budget's ceiling), default 1000
  --seed N        simulator seed, default 42
  --timeout-mins  upper bound of one sync, default 60
  --json PATH     also write the results as JSON

The box-sim binary is taken from BOX_SIM_BIN, else from beside this executable.";

/// The client id and secret the simulator accepts by default.
const SIM_CLIENT_ID: &str = "sim-client-id";
const SIM_CLIENT_SECRET: &str = "sim-client-secret";
/// Scenario A's budget: far above anything the simulator can serve, so it never paces.
const UNLIMITED_PER_MINUTE: u32 = 1_000_000;

#[derive(Debug, Clone)]
struct Cli {
    scenario_a: bool,
    scenario_b: bool,
    users: u64,
    events: u64,
    content_events: u64,
    drive_only: Option<f64>,
    login_only: Option<f64>,
    days: u32,
    latency_ms: u64,
    app_users: f64,
    slices: usize,
    rate_limit: u32,
    budget_b: u32,
    seed: u64,
    timeout: Duration,
    json: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Cli> {
    let mut c = Cli {
        scenario_a: false,
        scenario_b: true,
        users: 100_000,
        events: 1_000_000,
        content_events: 10_000_000,
        drive_only: None,
        login_only: None,
        days: 365,
        latency_ms: 20,
        app_users: 0.03,
        slices: 16,
        rate_limit: 1_000,
        budget_b: 1_000,
        seed: 42,
        timeout: Duration::from_secs(60 * 60),
        json: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("{flag} {v}: {e}");
        match flag.as_str() {
            "--scenario" => {
                (c.scenario_a, c.scenario_b) = match v.as_str() {
                    "a" | "A" => (true, false),
                    "b" | "B" => (false, true),
                    "both" => (true, true),
                    _ => return Err(bad(&"expected a, b or both")),
                }
            }
            "--users" => c.users = v.parse().map_err(|e| bad(&e))?,
            "--events" => c.events = v.parse().map_err(|e| bad(&e))?,
            "--content-events" => c.content_events = v.parse().map_err(|e| bad(&e))?,
            "--drive-only" => c.drive_only = Some(v.parse().map_err(|e| bad(&e))?),
            "--login-only" => c.login_only = Some(v.parse().map_err(|e| bad(&e))?),
            "--days" => c.days = v.parse().map_err(|e| bad(&e))?,
            "--latency-ms" => c.latency_ms = v.parse().map_err(|e| bad(&e))?,
            "--app-users" => c.app_users = v.parse().map_err(|e| bad(&e))?,
            "--slices" => c.slices = v.parse().map_err(|e| bad(&e))?,
            "--rate-limit" => c.rate_limit = v.parse().map_err(|e| bad(&e))?,
            "--budget-b" => c.budget_b = v.parse().map_err(|e| bad(&e))?,
            "--seed" => c.seed = v.parse().map_err(|e| bad(&e))?,
            "--timeout-mins" => c.timeout = Duration::from_secs(60 * v.parse::<u64>().map_err(|e| bad(&e))?),
            "--json" => c.json = Some(PathBuf::from(v)),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    anyhow::ensure!(c.users >= 2, "--users must be at least 2");
    anyhow::ensure!(
        (1..=365).contains(&c.days),
        "--days must be 1 to 365 (BACKFILL_DAYS is at most 365)"
    );
    anyhow::ensure!(
        (0.0..0.5).contains(&c.app_users),
        "--app-users must be a share under 0.5"
    );
    anyhow::ensure!((1..=64).contains(&c.slices), "--slices must be 1 to 64");
    for share in [c.drive_only, c.login_only].into_iter().flatten() {
        anyhow::ensure!(
            (0.0..=1.0).contains(&share),
            "--drive-only and --login-only are shares, 0 to 1"
        );
    }
    anyhow::ensure!(c.rate_limit > 0 && c.budget_b > 0, "rates must be positive");
    Ok(c)
}

/// The simulator's `--users` counts people; app users come on top as a share of them. Finds the
/// number of people that makes the managed listing exactly `listed` long.
fn people_for(listed: u64, app_share: f64) -> u64 {
    let app = |people: u64| ((people as f64) * app_share).round() as u64;
    let guess = ((listed as f64) / (1.0 + app_share)).round() as u64;
    (guess.saturating_sub(3)..=guess + 3)
        .min_by_key(|&p| (p + app(p)).abs_diff(listed))
        .unwrap_or(guess)
        .max(1)
}

/// Counts the client's "rate limited" warnings: the 429s the sync met (retries included).
struct RateLimitCounter(Arc<AtomicU64>);

impl<S: tracing::Subscriber> Layer<S> for RateLimitCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::WARN {
            return;
        }
        let mut visit = MessageIs {
            want: "Box rate limited the request",
            hit: false,
        };
        event.record(&mut visit);
        if visit.hit {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct MessageIs {
    want: &'static str,
    hit: bool,
}

impl tracing::field::Visit for MessageIs {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" && value == self.want {
            self.hit = true;
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}") == self.want {
            self.hit = true;
        }
    }
}

struct Scenario {
    name: &'static str,
    title: String,
    sim_rate_limit: Option<u32>,
    requests_per_minute: u32,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let rate_limited = Arc::new(AtomicU64::new(0));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::registry()
        .with(RateLimitCounter(rate_limited.clone()))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("sync-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("sync-bench: cannot watch SIGTERM: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Dropping `run` on a signal drops the simulator process handle, which stops it.
    let result = tokio::select! {
        r = run(&cli, rate_limited) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated")),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("sync-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenarios; `Ok(false)` when a target failed.
async fn run(cli: &Cli, rate_limited: Arc<AtomicU64>) -> anyhow::Result<bool> {
    let bin = sim::find_binary()?;
    let mut scenarios = Vec::new();
    if cli.scenario_a {
        scenarios.push(Scenario {
            name: "A",
            title: "no rate limit".into(),
            sim_rate_limit: None,
            requests_per_minute: UNLIMITED_PER_MINUTE,
        });
    }
    if cli.scenario_b {
        scenarios.push(Scenario {
            name: "B",
            title: format!("simulator limit {} requests/min per token", cli.rate_limit),
            sim_rate_limit: Some(cli.rate_limit),
            requests_per_minute: cli.budget_b,
        });
    }
    let mut reports = Vec::new();
    for scenario in &scenarios {
        let report = run_scenario(cli, &bin, scenario, &rate_limited)
            .await
            .with_context(|| format!("scenario {}", scenario.name))?;
        print!("{}", report.table());
        println!();
        reports.push(report);
    }
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&reports)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(reports.iter().all(ScenarioReport::passed))
}

async fn run_scenario(
    cli: &Cli,
    bin: &std::path::Path,
    scenario: &Scenario,
    rate_limited: &AtomicU64,
) -> anyhow::Result<ScenarioReport> {
    // Each scenario's peak is its own: give freed memory back, then restart the high-water mark.
    rss::trim();
    let hwm_reset = rss::reset_peak();
    let rss_start = rss::current_kib();

    let people = people_for(cli.users, cli.app_users);
    let mut args: Vec<String> = vec![
        "--seed".into(),
        cli.seed.to_string(),
        "--users".into(),
        people.to_string(),
        "--app-users".into(),
        cli.app_users.to_string(),
        "--login-events".into(),
        cli.events.to_string(),
        "--history-days".into(),
        cli.days.to_string(),
        "--latency-ms".into(),
        cli.latency_ms.to_string(),
    ];
    if cli.content_events == 0 {
        args.push("--no-content-events".into());
    } else {
        args.extend(["--content-events".into(), cli.content_events.to_string()]);
    }
    for (flag, share) in [("--drive-only", cli.drive_only), ("--login-only", cli.login_only)] {
        if let Some(share) = share {
            args.extend([flag.into(), share.to_string()]);
        }
    }
    if let Some(limit) = scenario.sim_rate_limit {
        args.extend(["--rate-limit".into(), limit.to_string()]);
    }
    let tmp = std::env::temp_dir();
    let lower = scenario.name.to_lowercase();
    let log = tmp.join(format!("sync-bench-box-sim-{lower}.log"));
    let truth_path = tmp.join(format!("sync-bench-truth-{lower}.jsonl"));
    args.extend(["--truth".into(), truth_path.display().to_string()]);
    eprintln!(
        "scenario {}: starting box-sim ({} people + app users, {} LOGIN and {} content events over {} days)…",
        scenario.name, people, cli.events, cli.content_events, cli.days
    );
    let started = Instant::now();
    let sim = SimProcess::start(bin, &args, log, Duration::from_secs(600)).await?;
    eprintln!(
        "scenario {}: box-sim ready at {} in {:.1} s: {:?}",
        scenario.name,
        sim.api_base,
        started.elapsed().as_secs_f64(),
        sim.summary
    );

    let endpoints = BoxEndpoints::new(&sim.api_base, &sim.api_base).context("the simulator's address")?;
    let box_api = BoxClient::new(endpoints, ClientOptions::default())?;
    let app = AppCredentials {
        client_id: SIM_CLIENT_ID.into(),
        client_secret: SecretString::from(SIM_CLIENT_SECRET),
    };
    let grant = box_api
        .client_credentials(&app, &EnterpriseId::parse(&sim.summary.enterprise_id)?)
        .await
        .context("client-credentials token from the simulator")?;
    let store = Arc::new(MemoryStore::default());
    let syncer = Syncer {
        store: store.clone(),
        tokens: Arc::new(StaticToken(grant.access_token)),
        box_api,
        options: SyncOptions {
            backfill_days: cli.days,
            slices: cli.slices,
            requests_per_minute: scenario.requests_per_minute,
            ..SyncOptions::default()
        },
    };
    let tenant = TenantId::parse("bench").context("tenant id")?;
    let plan = SyncPlan {
        tenant: tenant.clone(),
        kind: SyncKind::Full,
        source: ActivitySource::BoxEvents,
        settings: TenantSettings::default(),
        sso: None,
        deadline: None,
    };

    let mut phases = Vec::new();
    let mut published = None;
    for name in ["first sync", "unchanged re-sync"] {
        eprintln!("scenario {}: {name}…", scenario.name);
        rate_limited.store(0, Ordering::Relaxed);
        let written_before = store.items_written();
        let t0 = Instant::now();
        // Only the first sync publishes: the store holds no summary until then.
        let watch = phases
            .is_empty()
            .then(|| tokio::spawn(watch_publication(store.clone(), tenant.clone(), t0)));
        let run: SyncRun = tokio::time::timeout(cli.timeout, syncer.sync(&plan))
            .await
            .map_err(|_| anyhow::anyhow!("{name} did not finish within {:?}", cli.timeout))?
            .with_context(|| format!("{name} failed"))?;
        let wall = t0.elapsed();
        if let Some(watch) = watch {
            published = Some(watch.await.context("the publication watcher")??);
        }
        anyhow::ensure!(
            run.outcome == SyncOutcome::Succeeded,
            "{name} ended {:?}: {:?}",
            run.outcome,
            run.error
        );
        let phase = Phase {
            name: name.into(),
            wall_secs: wall.as_secs_f64(),
            box_calls: run.box_calls,
            rate_limited: rate_limited.load(Ordering::Relaxed),
            users_listed: run.users_listed,
            events_read: run.events_read,
            items_written: run.items_written,
            store_items_written: store.items_written() - written_before,
            peak_rss_kib: rss::peak_kib(),
            rss_after_kib: rss::current_kib(),
        };
        eprintln!("scenario {}: {name} done: {phase:?}", scenario.name);
        phases.push(phase);
    }

    // Correctness, cheaply, after the memory is measured. Loading the users also shows what one
    // copy of the user map costs: the MemoryStore holds one (DynamoDB would, in a Lambda), and the
    // engine's comparison map is another.
    rss::trim();
    let before_load = rss::current_kib();
    let stored = store.load_users(&tenant).await?;
    let user_map_kib = rss::current_kib().saturating_sub(before_load);
    let stored_users = stored.len() as u64;
    let with_login = stored
        .values()
        .filter(|u| matches!(u.login_activity, Activity::Seen { .. }))
        .count() as u64;
    let with_content = stored
        .values()
        .filter(|u| matches!(u.content_activity, Activity::Seen { .. }))
        .count() as u64;
    let truth_users = truth::load(&truth_path)?;
    let dates = truth::check_dates(&truth_users, &stored);
    drop(stored);
    let publication = match published {
        Some(p) => {
            let end = store
                .get_summary(&tenant)
                .await?
                .context("no summary after the first sync")?;
            Some(Publication {
                secs: p.secs,
                history_complete: p.summary.history_complete,
                now: p.now,
                counts: truth::Counts::of(&p.summary.report(&plan.settings, p.now)),
                truth: truth::Counts::from_truth(&truth_users, &plan.settings, p.now),
                at_end: truth::Counts::of(&end.report(&plan.settings, p.now)),
                end_history_complete: end.history_complete,
            })
        }
        None => None,
    };
    drop(truth_users);
    let truth = sim.summary.clone();
    let counters = sim.stop().await.context("stopping the simulator")?;
    drop(syncer);
    drop(store);

    Ok(ScenarioReport {
        scenario: scenario.name.into(),
        title: scenario.title.clone(),
        users: cli.users,
        events: cli.events,
        days: cli.days,
        latency_ms: cli.latency_ms,
        slices: cli.slices,
        requests_per_minute: scenario.requests_per_minute,
        sim_rate_limit: scenario.sim_rate_limit,
        truth,
        sim_counters: counters,
        stored_users,
        stored_with_login: with_login,
        stored_with_content: with_content,
        content_events: cli.content_events,
        dates,
        publication,
        user_map_kib,
        phases,
        rss_start_kib: rss_start,
        peak_reset: hwm_reset,
    })
}

/// The first summary stored, when it appeared.
struct Published {
    secs: f64,
    now: chrono::DateTime<chrono::Utc>,
    summary: seatsync::sync::LicenseSummary,
}

/// Polls the store every 100 ms until the first summary is stored: that moment is publication,
/// as a buyer reading the report would see it.
async fn watch_publication(store: Arc<MemoryStore>, tenant: TenantId, t0: Instant) -> anyhow::Result<Published> {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(summary) = store.get_summary(&tenant).await? {
            return Ok(Published {
                secs: t0.elapsed().as_secs_f64(),
                now: chrono::Utc::now(),
                summary,
            });
        }
    }
}

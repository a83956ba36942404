//! `read-bench` (issue 12): how much DynamoDB work one `GET /licenses/users` page costs. Syncs one
//! tenant from the Box simulator into moto through the real sync, starts the release
//! `licenses-api` binary under a fake Lambda Runtime API with its AWS endpoint pointed at a
//! counting proxy in front of moto, then sends list queries one at a time and reports, per page,
//! DynamoDB items read and calls, wall time p50/p95 and answer bytes; the items read by a full
//! cursor walk per user; and the function's peak RSS — each against the issue's targets.
//!
//! Run through `scripts/read-bench`, which starts moto and builds the release binaries.

mod proxy;
mod report;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use box_sim::{EnterpriseSpec, SimConfig};
use seatsync::connection::ActivitySource;
use seatsync::ids::TenantId;
use seatsync::settings::TenantSettings;
use seatsync::sync::{LicenseStore, SyncKind, SyncOptions, SyncOutcome, SyncPlan, Syncer};
use seatsync::tokens::StaticToken;
use seatsync_tests::aws::TestAws;
use seatsync_tests::lambda_api::{FakeRuntimeApi, http_api_event, start_function_via_endpoint};
use secrecy::SecretString;

use proxy::CountingProxy;
use report::{BenchReport, PageMeasure, QueryReport, Side, Walk};

const USAGE: &str = "usage: read-bench [--users N] [--pages N] [--full-walk | --no-full-walk]
                  [--binary PATH] [--before PATH] [--before-pages N] [--before-secs S]
                  [--json PATH] [--seed N]

  --users N       users in the synced tenant, default 100000
  --pages N       pages of 100 measured per list query (following the cursor), default 50
  --full-walk     page through every user by cursor (default only when users ≤ 20000)
  --no-full-walk  skip it
  --binary PATH   the licenses-api binary, default target/release/licenses-api
  --before PATH   also measure this licenses-api binary (e.g. built from the commit before the
                  user indexes) on the same tenant first, and print before → after
  --before-pages N  pages per list query for the before binary, default --pages
  --before-secs S   start no further before query after S seconds (a whole-tenant read
                    of 100,000 users on moto takes minutes a page), default unbounded
  --json PATH     also write the results as JSON
  --seed N        simulator seed, default 42";

const TENANT: &str = "bench";
pub const PAGE_SIZE: u32 = 100;
/// The full walk is on by default up to this many users.
const WALK_DEFAULT_MAX_USERS: u64 = 20_000;
/// One answer may take this long (today a page reads the whole tenant).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
struct Cli {
    users: u64,
    pages: u32,
    full_walk: Option<bool>,
    binary: PathBuf,
    before: Option<PathBuf>,
    before_pages: Option<u32>,
    before_secs: Option<u64>,
    json: Option<PathBuf>,
    seed: u64,
}

fn parse(args: &[String]) -> anyhow::Result<Cli> {
    let mut c = Cli {
        users: 100_000,
        pages: 50,
        full_walk: None,
        binary: PathBuf::from("target/release/licenses-api"),
        before: None,
        before_pages: None,
        before_secs: None,
        json: None,
        seed: 42,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--full-walk" => c.full_walk = Some(true),
            "--no-full-walk" => c.full_walk = Some(false),
            _ => {
                let v = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
                let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("{flag} {v}: {e}");
                match flag.as_str() {
                    "--users" => c.users = v.parse().map_err(|e| bad(&e))?,
                    "--pages" => c.pages = v.parse().map_err(|e| bad(&e))?,
                    "--binary" => c.binary = PathBuf::from(v),
                    "--before" => c.before = Some(PathBuf::from(v)),
                    "--before-pages" => c.before_pages = Some(v.parse().map_err(|e| bad(&e))?),
                    "--before-secs" => c.before_secs = Some(v.parse().map_err(|e| bad(&e))?),
                    "--json" => c.json = Some(PathBuf::from(v)),
                    "--seed" => c.seed = v.parse().map_err(|e| bad(&e))?,
                    _ => bail!("unknown flag {flag}\n{USAGE}"),
                }
            }
        }
    }
    anyhow::ensure!(c.users >= 10, "--users must be at least 10");
    anyhow::ensure!((1..=10_000).contains(&c.pages), "--pages must be 1 to 10000");
    Ok(c)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("read-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Dropping `run` on Ctrl-C drops the function process (killed on drop) and the simulator.
    let result = tokio::select! {
        r = run(&cli) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match result {
        // A measurement: failed targets are reported, not an error.
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("read-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    anyhow::ensure!(
        cli.binary.is_file(),
        "no licenses-api binary at {} (cargo build --release -p licenses-api, or --binary)",
        cli.binary.display()
    );
    let tenant = TenantId::parse(TENANT)?;

    // Set-up: not what is measured, but said.
    let t0 = Instant::now();
    eprintln!("set-up: syncing {} users from the Box simulator into moto…", cli.users);
    let aws = TestAws::new().await;
    let sim = box_sim::BoxSim::start(SimConfig {
        seed: cli.seed,
        enterprise: EnterpriseSpec {
            users: usize::try_from(cli.users)?,
            history_days: 120,
            total_login_events: Some(cli.users),
            content_events: true,
            total_content_events: Some(cli.users * 2),
            ..EnterpriseSpec::default()
        },
        contract_spec: None,
        ..SimConfig::default()
    })
    .await?;
    let store: Arc<dyn LicenseStore> = Arc::new(patient_table(&aws));
    let syncer = Syncer {
        store: store.clone(),
        tokens: Arc::new(StaticToken(SecretString::from(
            sim.issue_tokens(&sim.primary_admin_id()).access_token,
        ))),
        box_api: seatsync_tests::boxsim::client_for(&sim, seatsync::boxapi::ClientOptions::default()),
        options: SyncOptions {
            backfill_days: 120,
            requests_per_minute: 1_000_000,
            ..SyncOptions::default()
        },
    };
    let plan = SyncPlan {
        tenant: tenant.clone(),
        kind: SyncKind::Full,
        source: ActivitySource::BoxEvents,
        settings: TenantSettings::default(),
        sso: None,
        deadline: None,
    };
    let sync = tokio::time::timeout(Duration::from_secs(3600), syncer.sync(&plan))
        .await
        .context("the set-up sync did not finish within an hour")?
        .context("the set-up sync")?;
    anyhow::ensure!(
        sync.outcome == SyncOutcome::Succeeded,
        "the set-up sync ended {:?}: {:?}",
        sync.outcome,
        sync.error
    );
    drop(sim);
    let setup_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "set-up: {} users listed, {} events read, {} items written in {setup_secs:.1} s",
        sync.users_listed, sync.events_read, sync.items_written
    );

    // Serve: each binary in turn, its DynamoDB traffic through the counting proxy.
    let proxy = CountingProxy::start(&aws.endpoint).await?;
    let mut sides = Vec::new();
    let binaries = cli.before.iter().map(|b| ("before", b)).chain([("after", &cli.binary)]);
    for (label, binary) in binaries {
        sides.push(measure_side(cli, &aws, &proxy, label, binary).await?);
    }
    let report = BenchReport {
        users: cli.users,
        users_listed: sync.users_listed,
        setup_secs,
        page_size: PAGE_SIZE,
        pages_asked: cli.pages,
        sides,
    };
    println!("{}", report.tables());
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

/// Starts `binary` as licenses-api and measures every list query, the full walk and its peak RSS.
async fn measure_side(
    cli: &Cli,
    aws: &TestAws,
    proxy: &CountingProxy,
    label: &str,
    binary: &std::path::Path,
) -> anyhow::Result<Side> {
    anyhow::ensure!(binary.is_file(), "no licenses-api binary at {}", binary.display());
    eprintln!("{label}: {}", binary.display());
    let log = std::env::temp_dir().join(format!("read-bench-licenses-api-{label}.log"));
    let stderr = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let path = binary.to_str().context("binary path")?;
    let f = start_function_via_endpoint(
        path,
        "licenses-api",
        aws,
        &proxy.url(),
        &[
            ("SYNC_QUEUE_URL", "http://127.0.0.1:9/000000000000/sync"),
            // The tenant limit would refuse a long walk; its counter update still shows as a call.
            ("TENANT_REQUESTS_PER_MINUTE", "1000000"),
        ],
        std::process::Stdio::from(stderr),
    )
    .await;
    let pid = f.child.id().context("the function's pid")?;
    let client = Client { api: f.api.clone() };
    let warm = client.get("/settings", "", "application/json", proxy).await?;
    anyhow::ensure!(
        warm.status == 200,
        "warm-up GET /settings answered {} (log: {})",
        warm.status,
        log.display()
    );

    let before = label == "before";
    let pages = if before {
        cli.before_pages.unwrap_or(cli.pages)
    } else {
        cli.pages
    };
    let budget = if before {
        cli.before_secs.map(Duration::from_secs)
    } else {
        None
    };
    let started = Instant::now();
    let mut queries = Vec::new();
    let json = "application/json";
    let lists = [
        (
            "inactive 90 days, oldest first",
            "state=inactive&inactive_days=90".to_owned(),
            json,
        ),
        ("never logged in", "state=never".to_owned(), json),
        ("deactivated", "state=deactivated".to_owned(), json),
        ("search prefix", String::new(), json),
        ("CSV export", String::new(), "text/csv"),
    ];
    for (name, query, accept) in lists {
        if budget.is_some_and(|b| started.elapsed() > b) {
            queries.push(QueryReport::skipped(name, "time budget (--before-secs) spent"));
            continue;
        }
        let query = if name == "search prefix" {
            // The first three letters of the first inactive user's name.
            let prefix = queries
                .first()
                .and_then(|q: &QueryReport| q.prefix.clone())
                .unwrap_or_else(|| "a".into());
            format!(
                "q={}",
                url::form_urlencoded::byte_serialize(prefix.as_bytes()).collect::<String>()
            )
        } else {
            query
        };
        queries.push(measure(&client, proxy, name, &query, accept, pages).await?);
    }

    // A whole-tenant read path (before) walks only small tenants: each of its pages reads them all.
    let small = cli.users <= WALK_DEFAULT_MAX_USERS;
    let walk_on = if before {
        small && cli.full_walk != Some(false)
    } else {
        cli.full_walk.unwrap_or(small)
    };
    let walk = if walk_on {
        full_walk(&client, proxy, cli.users).await?
    } else {
        Err(format!(
            "skipped: {} users > {WALK_DEFAULT_MAX_USERS}, or --no-full-walk",
            cli.users
        ))
    };
    let peak_rss_kib = vm_hwm_kib(pid)?;
    drop(f);
    Ok(Side {
        label: label.into(),
        binary: binary.display().to_string(),
        queries,
        walk,
        peak_rss_kib,
    })
}

/// The set-up's store: the table with generous timeouts. moto, on a shared 2-core machine, can take
/// longer than production's 5 s to answer a 1 MB page, and the set-up is not what is measured.
fn patient_table(aws: &TestAws) -> seatsync::storage::Table {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let config = aws_sdk_dynamodb::config::Builder::from(&aws.sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(300))
                .operation_attempt_timeout(Duration::from_secs(300))
                .operation_timeout(Duration::from_secs(900))
                .build(),
        )
        .build();
    seatsync::storage::Table::new(aws_sdk_dynamodb::Client::from_conf(config), &aws.table_name)
}

struct Client {
    api: FakeRuntimeApi,
}

/// One answer, as API Gateway would return it.
struct Answer {
    status: u16,
    body: Vec<u8>,
    link: Option<String>,
    wall: Duration,
    dynamo: proxy::Counts,
}

impl Client {
    async fn get(&self, path: &str, query: &str, accept: &str, proxy: &CountingProxy) -> anyhow::Result<Answer> {
        let mut event = http_api_event("GET", path, serde_json::json!({"sub": "bench", "tenant_id": TENANT}));
        event["rawQueryString"] = query.into();
        event["headers"]["accept"] = accept.into();
        let before = proxy.snapshot();
        let t = Instant::now();
        let id = self.api.invoke(event);
        let answer = self
            .api
            .answer(&id, ANSWER_TIMEOUT)
            .await
            .with_context(|| format!("no answer to GET {path}?{query} within {ANSWER_TIMEOUT:?}"))?;
        let wall = t.elapsed();
        let dynamo = proxy.snapshot().since(&before);
        anyhow::ensure!(answer.kind == "response", "GET {path}?{query}: {}", answer.body);
        let b = &answer.body;
        let text = b["body"].as_str().unwrap_or_default();
        let body = if b["isBase64Encoded"].as_bool() == Some(true) {
            base64::engine::general_purpose::STANDARD.decode(text)?
        } else {
            text.as_bytes().to_vec()
        };
        Ok(Answer {
            status: u16::try_from(b["statusCode"].as_u64().unwrap_or(0))?,
            body,
            link: b["headers"]["link"].as_str().map(str::to_owned),
            wall,
            dynamo,
        })
    }
}

/// The query string of the next page: from a JSON page's `next_cursor`, or a CSV answer's `Link`.
fn next_query(base: &str, answer: &Answer) -> anyhow::Result<Option<String>> {
    if let Some(link) = &answer.link {
        let q = link
            .split_once('?')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(q, _)| q.to_owned())
            .with_context(|| format!("an unexpected Link header {link:?}"))?;
        return Ok(Some(q));
    }
    if !answer.body.starts_with(b"{") {
        // A CSV answer without a Link: the last page.
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&answer.body).context("a JSON page")?;
    Ok(v["next_cursor"].as_str().map(|c| {
        let c: String = url::form_urlencoded::byte_serialize(c.as_bytes()).collect();
        format!("{base}&cursor={c}")
    }))
}

fn with_limit(query: &str) -> String {
    if query.is_empty() {
        format!("limit={PAGE_SIZE}")
    } else {
        format!("{query}&limit={PAGE_SIZE}")
    }
}

/// Measures up to `pages` pages of one query, following the cursor. A first answer of 400 means
/// the API does not support the query (yet): recorded, not an error.
async fn measure(
    client: &Client,
    proxy: &CountingProxy,
    name: &str,
    query: &str,
    accept: &str,
    pages: u32,
) -> anyhow::Result<QueryReport> {
    eprintln!("measuring {name} ({query}, {accept}), up to {pages} pages…");
    let base = with_limit(query);
    let mut next = Some(base.clone());
    let mut measured = Vec::new();
    let mut first_status = None;
    let mut prefix = None;
    for _ in 0..pages {
        let Some(q) = next.take() else { break };
        let a = client.get("/licenses/users", &q, accept, proxy).await?;
        first_status.get_or_insert(a.status);
        if a.status == 400 && measured.is_empty() {
            eprintln!("  {name}: HTTP 400: {}", String::from_utf8_lossy(&a.body));
            break;
        }
        if a.status != 200 {
            // Recorded (with what it read) and not followed: e.g. a whole-tenant read timing out.
            eprintln!(
                "  {name}: HTTP {} to {q}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
            measured.push(PageMeasure {
                status: a.status,
                rows: 0,
                wall_ms: a.wall.as_secs_f64() * 1000.0,
                items_read: a.dynamo.items_read,
                calls: a.dynamo.calls,
                answer_bytes: a.body.len() as u64,
                dynamo_ops: a.dynamo.ops,
            });
            break;
        }
        let rows = rows_in(&a.body, accept);
        if prefix.is_none() {
            prefix = first_name_prefix(&a.body);
        }
        next = next_query(&base, &a)?;
        eprintln!(
            "  page {}: {} rows, {} items read, {} calls, {:.0} ms",
            measured.len() + 1,
            rows,
            a.dynamo.items_read,
            a.dynamo.calls,
            a.wall.as_secs_f64() * 1000.0
        );
        measured.push(PageMeasure {
            status: a.status,
            rows,
            wall_ms: a.wall.as_secs_f64() * 1000.0,
            items_read: a.dynamo.items_read,
            calls: a.dynamo.calls,
            answer_bytes: a.body.len() as u64,
            dynamo_ops: a.dynamo.ops,
        });
    }
    Ok(QueryReport {
        name: name.into(),
        query: base,
        accept: accept.into(),
        first_status: first_status.unwrap_or(0),
        pages: measured,
        prefix,
        skipped: None,
    })
}

fn rows_in(body: &[u8], accept: &str) -> u64 {
    if accept == "text/csv" {
        // Header row apart; a cell may hold a line break, so this is an upper bound.
        return body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            .saturating_sub(1) as u64;
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["users"].as_array().map(|a| a.len() as u64))
        .unwrap_or(0)
}

/// The first three letters of the first row's name: the search prefix.
fn first_name_prefix(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let name = v["users"][0]["name"].as_str()?;
    Some(name.chars().take(3).collect::<String>().to_lowercase())
}

/// Every user by cursor, `PAGE_SIZE` a page; bounded by the pages the users need, plus slack.
async fn full_walk(client: &Client, proxy: &CountingProxy, users: u64) -> anyhow::Result<Result<Walk, String>> {
    let bound = (users + users / 5).div_ceil(u64::from(PAGE_SIZE)) + 10;
    eprintln!("full walk: every user by cursor, at most {bound} pages…");
    let base = with_limit("");
    let mut next = Some(base.clone());
    let (mut pages, mut rows, mut items, mut calls) = (0u64, 0u64, 0u64, 0u64);
    let t = Instant::now();
    while let Some(q) = next.take() {
        anyhow::ensure!(pages < bound, "the full walk did not end within {bound} pages");
        let a = client.get("/licenses/users", &q, "application/json", proxy).await?;
        if a.status != 200 {
            return Ok(Err(format!(
                "stopped: page {} answered HTTP {} after {} items read",
                pages + 1,
                a.status,
                items + a.dynamo.items_read
            )));
        }
        pages += 1;
        rows += rows_in(&a.body, "application/json");
        items += a.dynamo.items_read;
        calls += a.dynamo.calls;
        next = next_query(&base, &a)?;
        if pages % 20 == 0 {
            eprintln!("  {pages} pages, {rows} rows, {items} items read");
        }
    }
    Ok(Ok(Walk {
        pages,
        rows,
        items_read: items,
        calls,
        wall_secs: t.elapsed().as_secs_f64(),
    }))
}

/// The process's peak resident set (VmHWM), KiB.
fn vm_hwm_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in the function's status")
}

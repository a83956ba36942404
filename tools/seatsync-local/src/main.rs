//! `seatsync-local`: seatsync end to end on this machine. It starts the Box simulator (a
//! realistic enterprise), uses the local AWS endpoint that `scripts/demo` started (moto), then:
//! connects through OAuth (simulated consent), stores the tokens in Secrets Manager and the
//! connection in DynamoDB, lists every user, reads their LOGIN events, and prints the license
//! report, checked against the simulator's ground truth.
//!
//! Run it through `scripts/demo`, which starts and stops the local AWS endpoint.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use box_sim::{BoxSim, EnterpriseSpec, SimConfig};
use chrono::{Duration, Utc};
use futures::TryStreamExt;
use rand::RngCore;
use seatsync::boxapi::{AppCredentials, BoxClient, BoxEndpoints, ClientOptions, EventsQuery, UserType, scopes};
use seatsync::ids::TenantId;
use seatsync::license::{SeatCounts, count_seats, fold_last_logins};
use seatsync::storage::schema::{SK_CONNECTION_BOX, tenant_pk};
use seatsync::storage::{BoxTokenSet, PutOutcome, SecretStore, Table, TokenKind, load_aws_config, request_token_from};
use secrecy::SecretString;

const REDIRECT_URI: &str = "https://seatsync.localhost/oauth/box/callback";
const HISTORY_DAYS: u32 = 180;

#[derive(serde::Serialize)]
struct ConnectionRecord {
    status: &'static str,
    enterprise_id: String,
    enterprise_name: Option<String>,
    connected_by_box_id: String,
    connected_by_login: Option<String>,
    scopes: Vec<String>,
    connected_at: chrono::DateTime<Utc>,
}

fn step(text: &str) {
    println!("→ {text}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL is not set: run this through scripts/demo")?;
    let users: usize = std::env::var("SEATSYNC_DEMO_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let started = Instant::now();

    step(&format!(
        "starting the Box simulator: {users} users, {HISTORY_DAYS} days of logins"
    ));
    let config = SimConfig {
        seed: 2026,
        redirect_uri: Some(REDIRECT_URI.into()),
        enterprise: EnterpriseSpec {
            users,
            history_days: HISTORY_DAYS,
            ..EnterpriseSpec::default()
        },
        ..SimConfig::default()
    };
    let app = AppCredentials {
        client_id: config.client_id.clone(),
        client_secret: SecretString::from(config.client_secret.clone()),
    };
    let sim = BoxSim::start(config).await?;
    let result = run(&sim, &app, &endpoint).await;
    sim.shutdown().await;
    let counts = result?;
    println!("\nseatsync ran end to end in {:.1} s", started.elapsed().as_secs_f64());
    print_report(&counts);
    Ok(())
}

async fn run(sim: &BoxSim, app: &AppCredentials, aws_endpoint: &str) -> anyhow::Result<SeatCounts> {
    let box_api = BoxClient::new(
        BoxEndpoints::new(&sim.api_base(), &sim.account_base())?,
        ClientOptions::default(),
    )?;
    let sdk = load_aws_config().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let table_name = format!("seatsync-demo-{}", &suffix[..8]);
    step(&format!(
        "creating DynamoDB table {table_name} on the local AWS endpoint {aws_endpoint}"
    ));
    let table = Table::create(aws_sdk_dynamodb::Client::new(&sdk), &table_name).await?;
    let secrets = SecretStore::with_prefix(
        aws_sdk_secretsmanager::Client::new(&sdk),
        format!("seatsync-demo-{}/", &suffix[..8]),
    );
    let tenant = TenantId::parse("acme")?;

    step("connecting Box through OAuth (the simulator consents as the primary admin)");
    let mut state_bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut state_bytes);
    let state: String = state_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let authorize = box_api.authorize_url(
        &app.client_id,
        REDIRECT_URI,
        &SecretString::from(state.clone()),
        &scopes::BASE,
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let consent = browser.get(authorize).send().await.context("open the authorize page")?;
    let location = consent
        .headers()
        .get("location")
        .context("no redirect from the authorize page")?
        .to_str()?;
    let callback = url::Url::parse(location)?;
    let params: HashMap<String, String> = callback.query_pairs().into_owned().collect();
    ensure!(
        params.get("state") == Some(&state),
        "the callback's state does not match"
    );
    let code = SecretString::from(params.get("code").context("no code in the callback")?.clone());
    let grant = box_api.exchange_code(app, &code, REDIRECT_URI).await?;
    let me = box_api.me(&grant.access_token).await?;
    if !me.role.is_some_and(|r| r.is_admin()) {
        bail!("the connecting user is not a Box admin or co-admin");
    }
    let enterprise = me.enterprise.clone().context("the connecting user has no enterprise")?;

    let tokens = BoxTokenSet {
        kind: TokenKind::OAuth,
        access_token: grant.access_token.clone(),
        access_expires_at: grant.expires_at,
        refresh_token: grant.refresh_token.clone(),
        obtained_at: Utc::now(),
        client_id: None,
        client_secret: None,
        enterprise_id: Some(enterprise.id.clone()),
    };
    let secret_name = secrets.box_secret_name(&tenant);
    secrets
        .write_json(&secret_name, &tokens, &request_token_from(&code))
        .await?;
    let record = ConnectionRecord {
        status: "connected",
        enterprise_id: enterprise.id.clone(),
        enterprise_name: enterprise.name.clone(),
        connected_by_box_id: me.id.clone(),
        connected_by_login: me.login.clone(),
        scopes: scopes::BASE.iter().map(|s| s.to_string()).collect(),
        connected_at: Utc::now(),
    };
    let outcome = table.put_new(&tenant_pk(&tenant), SK_CONNECTION_BOX, &record).await?;
    ensure!(outcome == PutOutcome::Created, "tenant already connected");
    println!(
        "  connected enterprise {} ({}) as {}; tokens in secret {secret_name}",
        enterprise.name.as_deref().unwrap_or("?"),
        enterprise.id,
        me.login.as_deref().unwrap_or("?")
    );

    step("listing every managed user (marker paging, 1,000 per page)");
    let all_users: Vec<_> = box_api
        .users(grant.access_token.clone(), UserType::Managed)
        .try_collect()
        .await?;
    println!("  {} users in {} Box calls so far", all_users.len(), box_api.calls());

    step(&format!(
        "reading LOGIN events of the last {HISTORY_DAYS} days from the admin event stream"
    ));
    let now = Utc::now();
    let window = EventsQuery::logins(now - Duration::days(i64::from(HISTORY_DAYS)), now);
    let mut last_login = HashMap::new();
    let mut pages = box_api.admin_event_pages(grant.access_token.clone(), window);
    let mut events = 0usize;
    while let Some(page) = pages.try_next().await? {
        events += page.events.len();
        fold_last_logins(&mut last_login, &page.events);
    }
    println!("  {events} LOGIN events; {} Box calls in all", box_api.calls());

    let truth = sim.users();
    let mismatches = all_users
        .iter()
        .filter(|u| truth.iter().find(|t| t.id == u.id).map(|t| t.last_login) != Some(last_login.get(&u.id).copied()))
        .count();
    println!("  last logins checked against the simulator's ground truth: {mismatches} mismatches");
    ensure!(
        mismatches == 0,
        "{mismatches} users' last login differs from the simulator's ground truth"
    );
    Ok(count_seats(&all_users, &last_login, now))
}

fn print_report(c: &SeatCounts) {
    let pct = |n: u64| {
        if c.seat_holders == 0 {
            0.0
        } else {
            100.0 * n as f64 / c.seat_holders as f64
        }
    };
    println!("\nLicense report (activity source: Box admin events, LOGIN)");
    println!(
        "  {:<42} {:>8}",
        "seats held (managed users, app users excluded)", c.seat_holders
    );
    println!(
        "  {:<42} {:>8}  {:>5.1}%",
        "active in the last 30 days",
        c.active_30d,
        pct(c.active_30d)
    );
    for (label, n) in [
        ("inactive 30+ days", c.inactive_30d),
        ("inactive 60+ days", c.inactive_60d),
        ("inactive 90+ days", c.inactive_90d),
    ] {
        println!("  {label:<42} {n:>8}  {:>5.1}%", pct(n));
    }
    println!("  {:<42} {:>8}", "never logged in", c.never_logged_in);
    println!("  {:<42} {:>8}", "deactivated (still hold paid seats)", c.deactivated);
    println!("  {:<42} {:>8}", "admins and co-admins", c.admins);
    println!("  {:<42} {:>8}", "app users (no seat)", c.app_users);
    println!("\nBox facts: deactivated users still hold paid seats; deleting a user frees a seat for someone");
    println!("else but does not lower the bill — only reducing the subscription does, at renewal.");
}

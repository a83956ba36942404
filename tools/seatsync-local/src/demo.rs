//! The scripted end-to-end run, through the real HTTP handlers (in process, with the development
//! identity standing in for API Gateway's JWT authorizer) and the real sync path (fan-out order,
//! SQS message, one tenant synced).

use std::time::Instant;

use anyhow::{Context, bail, ensure};
use axum::Router;
use axum::body::Body;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::dev_identity;
use crate::stack::{BoxTarget, Stack};

const TENANT: &str = "acme";

fn step(text: &str) {
    println!("→ {text}");
}

/// Calls the API as the tenant's admin would through API Gateway.
pub struct Api {
    router: Router,
}

pub struct Answer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Api {
    pub fn new(stack: &Stack) -> Api {
        Api {
            router: stack.router.clone(),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(dev_identity::TENANT_HEADER, TENANT)
            .header(dev_identity::SUB_HEADER, "it-admin@acme.example");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(b) => request
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))?,
            None => request.body(Body::empty())?,
        };
        let response = self.router.clone().oneshot(dev_identity::apply(request)).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 16 << 20).await?.to_vec();
        Ok(Answer { status, headers, body })
    }
}

/// Connects the demo tenant (OAuth with the simulator's consent, or client credentials for a real
/// enterprise) and runs one scheduled sync through the queue.
pub async fn connect_and_sync(stack: &Stack, _base: &str, _dev: bool) -> anyhow::Result<()> {
    let api = Api::new(stack);
    match &stack.target {
        BoxTarget::Simulator(_) => {
            step("connecting Box through OAuth: start → Box consent (simulated) → callback");
            let start = api.call("POST", "/connections/box/start", &[], None).await?;
            ensure!(start.status == 200, "connect start answered {}", start.status);
            let authorize = start.json()["authorize_url"]
                .as_str()
                .context("no authorize_url")?
                .to_owned();
            let cookie = start
                .headers
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|c| c.split(';').next())
                .context("no browser cookie")?
                .to_owned();
            let browser = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let consent = browser
                .get(&authorize)
                .send()
                .await
                .context("open Box's authorize page")?;
            let location = consent
                .headers()
                .get("location")
                .context("Box did not redirect back")?
                .to_str()?
                .to_owned();
            let query = url::Url::parse(&location)?.query().unwrap_or_default().to_owned();
            let callback = api
                .call(
                    "GET",
                    &format!("/oauth/box/callback?{query}"),
                    &[("cookie", &cookie)],
                    None,
                )
                .await?;
            let back = callback
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            ensure!(
                back.contains("status=connected"),
                "the callback did not connect: {} {back}",
                callback.status
            );
        }
        BoxTarget::Real {
            client_id,
            client_secret,
            enterprise_id,
        } => {
            step("connecting the real Box enterprise with its client-credentials app");
            let body = json!({
                "client_id": client_id,
                "client_secret": secrecy::ExposeSecret::expose_secret(client_secret),
                "enterprise_id": enterprise_id,
            });
            let answer = api
                .call("PUT", "/connections/box/client-credentials", &[], Some(&body))
                .await?;
            ensure!(
                answer.status == 200,
                "Box refused the app: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
    }
    let status = api.call("GET", "/connections/box", &[], None).await?.json();
    println!(
        "  connected: enterprise {} ({}), activity from {}",
        status["enterprise"]["name"].as_str().unwrap_or("?"),
        status["enterprise"]["id"].as_str().unwrap_or("?"),
        status["activity_source"].as_str().unwrap_or("?")
    );

    step("scheduled sync: fan-out order → one SQS message per connected tenant → sync");
    let started = Instant::now();
    let order = json!({ "action": "fan_out", "kind": "full", "slot": chrono::Utc::now().to_rfc3339() });
    let fanned = seatsync::sync::invocation::handle(&stack.sync, &stack.queue, order, None)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let handled = stack.drain_sync_queue().await?;
    println!(
        "  {} tenant(s) queued, {handled} synced in {:.1} s",
        fanned["queued"],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn run(users: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let target = BoxTarget::from_env(users).await?;
    step(&format!("Box: {}", target.describe()));
    let real = matches!(target, BoxTarget::Real { .. });
    step("local AWS: creating the table, the app secret and the sync queue");
    let stack = Stack::start(target).await?;
    let result = script(&stack, real).await;
    stack.shutdown().await;
    result?;
    println!(
        "\nseatsync ran end to end in {:.1} s; everything it started is stopped.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn script(stack: &Stack, real: bool) -> anyhow::Result<()> {
    connect_and_sync(stack, "", true).await?;
    let api = Api::new(stack);

    step("GET /licenses");
    let licenses = api.call("GET", "/licenses", &[], None).await?;
    ensure!(licenses.status == 200, "GET /licenses answered {}", licenses.status);
    print_report(&licenses.json());

    step("the most inactive users: GET /licenses/users?state=inactive&sort=last_activity&order=asc");
    let list = api
        .call(
            "GET",
            "/licenses/users?state=inactive&sort=last_activity&order=asc&limit=5",
            &[],
            None,
        )
        .await?;
    ensure!(list.status == 200, "GET /licenses/users answered {}", list.status);
    let list = list.json();
    let users = list["users"]
        .as_array()
        .or_else(|| list["items"].as_array())
        .cloned()
        .unwrap_or_default();
    for u in &users {
        println!(
            "  {:<42} last activity {}",
            u["login"].as_str().unwrap_or("?"),
            u["last_activity_at"].as_str().unwrap_or("never (in the history read)")
        );
    }
    if real {
        println!("\n(real Box enterprise: seatsync changes no user in the demo; the deactivation steps are skipped)");
        return Ok(());
    }
    let Some(target) = users.iter().find(|u| u["role"].as_str() == Some("user")) else {
        bail!("no inactive plain user to deactivate");
    };
    let id = target["box_user_id"].as_str().context("a user id")?;
    let login = target["login"].as_str().unwrap_or("?");
    let body = json!({ "reason": "inactive for more than 90 days (seatsync demo)", "dry_run": true });

    step(&format!("dry run: POST /users/{id}/deactivate ({login})"));
    let plan = api
        .call("POST", &format!("/users/{id}/deactivate"), &[], Some(&body))
        .await?;
    ensure!(
        plan.status == 200,
        "the dry run answered {}: {}",
        plan.status,
        String::from_utf8_lossy(&plan.body)
    );
    println!("  plan: {}", compact(&plan.json()));

    step(&format!("deactivate {login} (Idempotency-Key set)"));
    let body = json!({ "reason": "inactive for more than 90 days (seatsync demo)" });
    let key = uuid::Uuid::new_v4().to_string();
    let done = api
        .call(
            "POST",
            &format!("/users/{id}/deactivate"),
            &[("idempotency-key", &key)],
            Some(&body),
        )
        .await?;
    ensure!(
        done.status == 200,
        "the deactivation answered {}: {}",
        done.status,
        String::from_utf8_lossy(&done.body)
    );
    println!("  {}", compact(&done.json()));
    if let BoxTarget::Simulator(sim) = &stack.target {
        let status = sim.user(id).map(|u| u.status.as_str().to_owned()).unwrap_or_default();
        println!("  at Box (the simulator): {login} is now {status}");
    }

    step("the audit trail: GET /audit");
    let audit = api.call("GET", "/audit?limit=5", &[], None).await?.json();
    let records = audit["records"]
        .as_array()
        .or_else(|| audit["items"].as_array())
        .cloned()
        .unwrap_or_default();
    for r in records {
        println!(
            "  {}  {:<11} {:<10} {:<40} by {}",
            r["at"].as_str().unwrap_or("?"),
            r["action"].as_str().unwrap_or("?"),
            r["outcome"].as_str().unwrap_or("?"),
            r["target_login"].as_str().unwrap_or("?"),
            r["actor"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

fn compact(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 300 {
        format!("{}…", &text[..300])
    } else {
        text
    }
}

fn print_report(body: &Value) {
    let s = body.get("summary").filter(|s| !s.is_null()).unwrap_or(body);
    let n = |k: &str| s[k].as_u64().map(|v| v.to_string()).unwrap_or_else(|| "unknown".into());
    println!(
        "\nLicense report (activity source: {} / {})",
        s["activity_source"].as_str().unwrap_or("?"),
        s["activity_provider"].as_str().unwrap_or("?")
    );
    let rows = [
        ("seats purchased", n("seats_purchased")),
        ("seats held (managed users)", n("seat_holders")),
        ("active (within the threshold)", n("active")),
        (
            "utilization",
            s["utilization"]
                .as_f64()
                .map(|u| format!("{:.1}%", u * 100.0))
                .unwrap_or_default(),
        ),
        ("inactive 30+ days", n("inactive_30_days")),
        ("inactive 60+ days", n("inactive_60_days")),
        ("inactive 90+ days", n("inactive_90_days")),
        ("never logged in", n("never_logged_in")),
        ("no activity data", n("no_activity_data")),
        ("deactivated (still hold paid seats)", n("deactivated")),
        ("reclaimable seats", n("reclaimable_seats")),
        (
            "annual cost of unused seats",
            s["unused_seats_annual_cost_minor"]
                .as_u64()
                .map(|c| format!("{:.2} {}", c as f64 / 100.0, s["currency"].as_str().unwrap_or("")))
                .unwrap_or_else(|| "unknown (set seats and price in settings)".into()),
        ),
        ("admins and co-admins", n("admins")),
        ("app users (no seat)", n("app_users")),
    ];
    for (label, value) in rows {
        println!("  {label:<40} {value:>12}");
    }
    if let Some(facts) = body.get("box_facts").and_then(Value::as_object) {
        println!("\n  What Box allows:");
        for fact in facts.values().filter_map(Value::as_str) {
            println!("  - {fact}");
        }
    }
    println!();
}

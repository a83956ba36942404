//! api_rate_limit: fairness between tenants. Each verified tenant may make a bounded number of
//! requests per window to an HTTP API, counted in the table (shared by every instance); over it the
//! tenant gets 429 problem+json with `Retry-After` while other tenants are served. Requests without
//! a verified identity are not counted, and a counter that cannot be written never refuses a request.
//! The routers are the real ones (licenses API, license actions) behind the real limit, with an
//! injected clock so windows pass without waiting.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use seatsync::api::{TenantClaim, TenantLimit, window_at};
use seatsync::storage::Table;
use seatsync::storage::schema::{rate_window_sk, tenant_pk};
use seatsync_tests::apigw::{ApiRequest, ApiResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actions_fixture::Actions;
use crate::reports_fixture::{Reports, claims, tenant};

/// A clock the test moves: epoch seconds.
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// `seconds_into` a minute that has just begun (so counters written now do not read as expired).
    fn at(seconds_into: i64) -> Self {
        let minute = chrono::Utc::now().timestamp() / 60 * 60;
        Self(Arc::new(AtomicI64::new(minute + seconds_into)))
    }

    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    fn clock(&self) -> seatsync::api::Clock {
        let now = self.0.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    }
}

fn limit(table: Table, per_minute: u32, clock: &TestClock) -> TenantLimit {
    TenantLimit::per_minute(table, TenantClaim::default(), NonZeroU32::new(per_minute).unwrap())
        .with_clock(clock.clock())
        // A busy test machine must not turn a slow counter into fail-open admissions.
        .with_timeout(Duration::from_secs(30))
}

async fn get_settings(router: &Router, tenant: &str) -> ApiResponse {
    ApiRequest::authorized("GET", "/settings", claims(tenant))
        .send(router)
        .await
}

#[derive(Debug, Deserialize)]
struct Counter {
    count: u64,
    expires_at: i64,
}

#[test]
fn retry_after_counts_whole_seconds_to_the_next_window() {
    let minute = 1_795_824_000; // a minute boundary
    assert_eq!(window_at(minute, 60).retry_after_seconds, 60);
    assert_eq!(window_at(minute + 43, 60).retry_after_seconds, 17);
    assert_eq!(window_at(minute + 59, 60).retry_after_seconds, 1);
    assert_eq!(window_at(minute + 60, 60).start, minute + 60);
    assert_eq!(window_at(minute + 7, 10).retry_after_seconds, 3);
}

#[tokio::test]
async fn a_tenant_over_its_limit_gets_429_problem_json_with_retry_after() {
    let r = Reports::new().await;
    let clock = TestClock::at(43);
    let router = limit(r.table.clone(), 3, &clock).apply(r.router.clone());
    for n in 1..=3 {
        let served = get_settings(&router, "acme").await;
        assert_eq!(
            served.status,
            200,
            "request {n}: {}",
            String::from_utf8_lossy(&served.body)
        );
    }
    let refused = get_settings(&router, "acme").await;
    let problem = refused.problem(429);
    assert_eq!(problem["title"], "Too Many Requests");
    assert_eq!(refused.header("retry-after"), Some("17"), "17 s are left of the minute");
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("3 requests per minute"), "{detail}");
    assert!(detail.contains("17 seconds"), "{detail}");
    // One counter item per tenant and window, under the tenant's own partition, expiring later.
    let window = window_at(clock.now(), 60).start;
    let counter: Counter = r
        .table
        .get(&tenant_pk(&tenant("acme")), &rate_window_sk(window))
        .await
        .unwrap()
        .expect("the window's counter item");
    assert_eq!(counter.count, 4, "every request is counted, the refused one too");
    assert!(counter.expires_at > window + 60, "{counter:?}");
}

#[tokio::test]
async fn another_tenant_is_served_while_one_is_limited() {
    let r = Reports::new().await;
    let clock = TestClock::at(5);
    let router = limit(r.table.clone(), 2, &clock).apply(r.router.clone());
    for _ in 0..2 {
        assert_eq!(get_settings(&router, "acme").await.status, 200);
    }
    let refused = get_settings(&router, "acme").await;
    refused.problem(429);
    for _ in 0..2 {
        assert_eq!(
            get_settings(&router, "globex").await.status,
            200,
            "globex has its own count"
        );
    }
    let globex_refused = get_settings(&router, "globex").await;
    let detail = globex_refused.problem(429)["detail"].as_str().unwrap().to_owned();
    assert!(!detail.contains("acme"), "never another tenant's data: {detail}");
    assert_eq!(get_settings(&router, "acme").await.status, 429, "acme stays limited");
}

#[tokio::test]
async fn the_next_window_serves_the_tenant_again() {
    let r = Reports::new().await;
    let clock = TestClock::at(50);
    let router = limit(r.table.clone(), 1, &clock).apply(r.router.clone());
    assert_eq!(get_settings(&router, "acme").await.status, 200);
    let refused = get_settings(&router, "acme").await;
    refused.problem(429);
    let wait: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(wait, 10);
    clock.advance(wait - 1);
    assert_eq!(get_settings(&router, "acme").await.status, 429, "one second early");
    clock.advance(1);
    assert_eq!(get_settings(&router, "acme").await.status, 200, "after Retry-After");
    refused_again(&router).await;
}

async fn refused_again(router: &Router) {
    let again = get_settings(router, "acme").await;
    again.problem(429);
    assert_eq!(again.header("retry-after"), Some("60"), "a full new window");
}

#[tokio::test]
async fn a_counter_that_cannot_be_written_serves_the_request() {
    let r = Reports::new().await;
    let clock = TestClock::at(0);
    let missing = Table::new(r.aws.dynamo.clone(), format!("{}-missing", r.aws.table_name));
    let router = limit(missing, 1, &clock).apply(r.router.clone());
    for n in 0..3 {
        let served = get_settings(&router, "acme").await;
        assert_eq!(
            served.status,
            200,
            "request {n} fails open: {}",
            String::from_utf8_lossy(&served.body)
        );
    }
}

#[tokio::test]
async fn requests_without_a_verified_identity_are_not_counted() {
    let r = Reports::new().await;
    let clock = TestClock::at(0);
    let router = limit(r.table.clone(), 1, &clock).apply(r.router.clone());
    for _ in 0..3 {
        ApiRequest::new("GET", "/settings").send(&router).await.problem(401);
        // A tenant claim the caller could forge in the path or query is never read: no valid claim, no count.
        ApiRequest::authorized("GET", "/settings", json!({ "sub": "someone", "tenant_id": "" }))
            .query("tenant_id=acme")
            .send(&router)
            .await
            .problem(401);
    }
    assert_eq!(
        get_settings(&router, "acme").await.status,
        200,
        "acme's first counted request"
    );
    let window = window_at(clock.now(), 60).start;
    let counter: Counter = r
        .table
        .get(&tenant_pk(&tenant("acme")), &rate_window_sk(window))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counter.count, 1);
}

#[tokio::test]
async fn concurrent_requests_over_the_limit_admit_exactly_the_limit() {
    const REQUESTS: usize = 40;
    const LIMIT: u32 = 15;
    let r = Reports::new().await;
    let clock = TestClock::at(1);
    let router = limit(r.table.clone(), LIMIT, &clock).apply(r.router.clone());
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        let router = router.clone();
        requests.spawn(async move { get_settings(&router, "acme").await.status });
    }
    let statuses = requests.join_all().await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (served, refused),
        (LIMIT as usize, REQUESTS - LIMIT as usize),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_license_actions_api_is_limited_too() {
    let a = Actions::new().await;
    let clock = TestClock::at(30);
    let router = limit(a.aws.table(), 1, &clock).apply(a.router.clone());
    let request = || {
        ApiRequest::authorized("POST", "/users/1/deactivate", Actions::claims("acme"))
            .header("idempotency-key", "rate-limit-1")
            .json(&json!({ "reason": "rate limit test", "dry_run": true }))
    };
    let first = request().send(&router).await;
    assert_ne!(first.status, 429, "{}", String::from_utf8_lossy(&first.body));
    let second = request().send(&router).await;
    second.problem(429);
    assert_eq!(second.header("retry-after"), Some("30"));
}

/// Every route behind the JWT (all but the OAuth callback) documents the 429 with `Retry-After`.
#[test]
fn every_limited_route_documents_429_with_retry_after() {
    use seatsync::api::RouteTable as _;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/seatsync.yaml");
    let spec: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let resolve = |value: &serde_yaml::Value| -> serde_yaml::Value {
        match value["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                spec["components"]["responses"][name].clone()
            }
            None => value.clone(),
        }
    };
    let routes = seatsync::connect::ROUTES
        .iter()
        .map(|r| r.method_and_path())
        .chain(seatsync::actions::ROUTES.iter().map(|r| r.method_and_path()))
        .chain(seatsync::reports::ROUTES.iter().map(|r| r.method_and_path()));
    let mut checked = 0;
    for (method, route) in routes {
        if route == "/oauth/box/callback" {
            continue;
        }
        let operation = &spec["paths"][route][method.to_ascii_lowercase()];
        let answer = resolve(&operation["responses"]["429"]);
        assert!(
            answer["headers"]["Retry-After"].is_mapping(),
            "{method} {route} must document 429 with Retry-After"
        );
        assert!(
            answer["content"]["application/problem+json"].is_mapping(),
            "{method} {route}: the 429 is problem+json"
        );
        checked += 1;
    }
    assert!(checked >= 14, "{checked}");
}

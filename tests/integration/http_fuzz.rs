//! Reliability item 28: arbitrary requests to every HTTP router — never a panic, never a 5xx, and
//! every refusal is problem+json. Each router runs against moto and the Box simulator.

use proptest::test_runner::{Config, TestRunner};
use seatsync_tests::fuzz::{check, request};

use axum::Router;
use serde_json::Value;

use crate::actions_fixture::Actions;
use crate::connect_fixture::Connect;
use crate::reports_fixture::{Reports, claims};

const CASES: u32 = 300;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `CASES` arbitrary requests through `router`; returns how many reached it.
fn fuzz(rt: &tokio::runtime::Runtime, router: &Router, routes: &[&str], claims: Value) -> u32 {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let sent = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&request(routes, claims), |req| {
            let Some(response) = rt.block_on(req.try_send(router)) else {
                return Ok(());
            };
            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            check(&response)
        })
        .unwrap();
    let sent = sent.into_inner();
    assert!(sent > CASES / 2, "most generated requests reached the router ({sent})");
    sent
}

#[test]
fn the_connect_api_never_panics_or_answers_5xx_to_arbitrary_requests() {
    let rt = runtime();
    let c = rt.block_on(Connect::new());
    let routes = [
        "/connections/box/start",
        "/oauth/box/callback",
        "/connections/box",
        "/connections/box/client-credentials",
    ];
    let sent = fuzz(&rt, &c.router, &routes, Connect::claims("acme"));
    println!("connect API: {sent} arbitrary requests, no panic, no 5xx");
}

#[test]
fn the_actions_api_never_panics_or_answers_5xx_to_arbitrary_requests() {
    let rt = runtime();
    let a = rt.block_on(Actions::new());
    let routes = [
        "/users/{box_user_id}/deactivate",
        "/users/{box_user_id}/reactivate",
        "/users/{box_user_id}",
        "/users/deactivate",
    ];
    let sent = fuzz(&rt, &a.router, &routes, Actions::claims(a.tenant.as_str()));
    println!("actions API: {sent} arbitrary requests, no panic, no 5xx");
}

#[test]
fn the_reports_api_never_panics_or_answers_5xx_to_arbitrary_requests() {
    let rt = runtime();
    let r = rt.block_on(Reports::new());
    let routes = ["/licenses", "/licenses/users", "/audit", "/settings", "/syncs"];
    let sent = fuzz(&rt, &r.router, &routes, claims("acme"));
    println!("reports API: {sent} arbitrary requests, no panic, no 5xx");
}

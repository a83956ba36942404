//! Fault injection, rate limiting, counters.

mod helpers;

use std::time::{Duration, Instant};

use box_sim::{Endpoint, Fault, Faults, SimConfig};
use helpers::*;

#[tokio::test]
async fn injected_fault_hits_the_nth_request_once() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    sim.inject(
        Endpoint::Users,
        2,
        Fault::Status {
            status: 503,
            retry_after: Some(7),
        },
    );
    assert_eq!(get(&sim, &t, "/users").await.0, 200);
    let r = client()
        .get(format!("{}/2.0/users", sim.api_base()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(get(&sim, &t, "/users").await.0, 200);
    // Other endpoints do not count towards it.
    assert_eq!(get(&sim, &t, "/users/me").await.0, 200);
    let c = sim.counters();
    assert_eq!(c.get(Endpoint::Users, 200), 2);
    assert_eq!(c.get(Endpoint::Users, 503), 1);
    assert_eq!(c.total(Endpoint::Users), 3);
    assert_eq!(c.total_all(), 4);
    sim.reset_counters();
    assert_eq!(sim.counters().total_all(), 0);
}

#[tokio::test]
async fn dropped_connection_gets_no_response() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    sim.inject(Endpoint::UsersMe, 1, Fault::Drop);
    let r = client()
        .get(format!("{}/2.0/users/me", sim.api_base()))
        .bearer_auth(&t)
        .send()
        .await;
    assert!(r.is_err(), "expected a transport error, got {r:?}");
    assert_eq!(get(&sim, &t, "/users/me").await.0, 200);
    assert_eq!(sim.counters().dropped_all(), 1);
    assert_eq!(sim.counters().total(Endpoint::UsersMe), 1);
}

#[tokio::test]
async fn injected_delay_slows_one_request() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    sim.inject(Endpoint::UsersMe, 1, Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    assert_eq!(get(&sim, &t, "/users/me").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn injected_fault_on_token_endpoint_leaves_the_code_usable() {
    let sim = sim(SimConfig::default()).await;
    let code = sim.issue_code(&sim.primary_admin_id());
    sim.inject(
        Endpoint::Token,
        1,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
    );
    assert_eq!(exchange_code(&sim, &code).await.0, 500);
    assert_eq!(exchange_code(&sim, &code).await.0, 200);
}

#[tokio::test]
async fn random_fault_rates_are_deterministic_from_the_seed() {
    async fn run() -> Vec<u16> {
        let faults = Faults {
            share_429: 0.2,
            share_5xx: 0.2,
            retry_after_secs: 2,
            ..Default::default()
        };
        let sim = sim(SimConfig {
            seed: 11,
            faults,
            ..Default::default()
        })
        .await;
        let t = admin_token(&sim);
        let mut out = Vec::new();
        for _ in 0..60 {
            out.push(get(&sim, &t, "/users/me").await.0);
        }
        out
    }
    let a = run().await;
    assert_eq!(a, run().await);
    let errors = a.iter().filter(|s| **s != 200).count();
    assert!((10..=40).contains(&errors), "{errors} of 60");
    assert!(a.contains(&429));
    assert!(a.iter().any(|s| [500, 502, 503].contains(s)));
}

#[tokio::test]
async fn rate_limit_per_token_answers_429_with_retry_after() {
    let sim = sim(SimConfig {
        faults: Faults {
            rate_limit_per_minute: Some(5),
            ..Default::default()
        },
        // The limit counts per calendar minute: start at one's beginning, or the six requests
        // can straddle two minutes and none is refused.
        now: Some(
            chrono::DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
                .unwrap()
                .to_utc(),
        ),
        ..Default::default()
    })
    .await;
    let t = admin_token(&sim);
    let other = admin_token(&sim);
    for _ in 0..5 {
        assert_eq!(get(&sim, &t, "/users/me").await.0, 200);
    }
    let r = client()
        .get(format!("{}/2.0/users/me", sim.api_base()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limit_exceeded");
    assert_eq!(get(&sim, &other, "/users/me").await.0, 200, "limit is per token");
    sim.advance(Duration::from_secs(61));
    assert_eq!(get(&sim, &t, "/users/me").await.0, 200);
}

#[tokio::test]
async fn set_faults_changes_behaviour_at_run_time() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    sim.set_faults(Faults {
        share_429: 1.0,
        retry_after_secs: 3,
        ..Default::default()
    });
    assert_eq!(get(&sim, &t, "/users/me").await.0, 429);
    sim.set_faults(Faults::default());
    assert_eq!(get(&sim, &t, "/users/me").await.0, 200);
}

#[tokio::test]
async fn start_on_refuses_non_loopback() {
    let r = box_sim::BoxSim::start_on(SimConfig::default(), "0.0.0.0:0".parse().unwrap()).await;
    assert!(r.is_err());
}

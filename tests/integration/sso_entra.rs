//! Last Box use from Microsoft Entra ID: the real client against the Entra simulator reads the Box
//! app's successful sign-ins, and without P1/P2 falls back to the labelled tenant-wide signal.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use seatsync::boxapi::RetryPolicy;
use seatsync::sso::{
    ActivityProvider, EntraProvider, EntraSettings, HttpOptions, SignIn, Signal, SsoConfig, SsoError, provider,
};
use secrecy::SecretString;
use sso_sim::{Endpoint, EntraConfig, EntraSim, Fault, SsoPerson, generate_people};

fn options() -> HttpOptions {
    HttpOptions {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(60),
        },
        max_pages: 1000,
        ..HttpOptions::for_loopback_simulators()
    }
}

async fn start(config: EntraConfig) -> EntraSim {
    seatsync_tests::logs::capture_to_suite_log();
    let sim = EntraSim::start(config).await.expect("entra sim starts");
    seatsync_tests::logs::record_secrets([sim.config().client_secret.clone()]);
    sim
}

fn settings(sim: &EntraSim, secret: &str) -> EntraSettings {
    let c = sim.config();
    EntraSettings {
        login_base: sim.login_base().parse().unwrap(),
        graph_base: sim.graph_base().parse().unwrap(),
        tenant_id: c.tenant_id.clone(),
        client_id: c.client_id.clone(),
        client_secret: SecretString::from(secret.to_string()),
        box_app_id: c.box_app_id.clone(),
    }
}

fn client(sim: &EntraSim) -> Box<dyn ActivityProvider> {
    let s = settings(sim, &sim.config().client_secret);
    let config = SsoConfig::Entra {
        login_base: s.login_base,
        graph_base: s.graph_base,
        tenant_id: s.tenant_id,
        client_id: s.client_id,
        client_secret: s.client_secret,
        box_app_id: s.box_app_id,
    };
    provider(&config, options()).expect("entra provider")
}

fn dates(found: &HashMap<String, SignIn>, signal: Signal) -> HashMap<String, DateTime<Utc>> {
    assert!(found.values().all(|s| s.signal == signal), "all labelled {signal:?}");
    found.iter().map(|(k, v)| (k.clone(), v.at)).collect()
}

/// 500 people, several thousand Box sign-ins in 25 days, failures and other apps mixed in. Entra
/// keys by UPN, so every UPN is the Box login in other letter case.
fn seeded(now: DateTime<Utc>, premium: bool) -> EntraConfig {
    let mut users = generate_people(23, 500, 3500, TimeDelta::days(25), now);
    for u in &mut users {
        u.idp_login = u.box_login.to_uppercase();
    }
    EntraConfig {
        seed: 23,
        users,
        premium,
        other_app_sign_ins: 1500,
        ..EntraConfig::default()
    }
}

#[tokio::test]
async fn every_persons_latest_successful_box_sign_in_equals_the_ground_truth() {
    let now = Utc::now();
    let sim = start(seeded(now, true)).await;
    let found = client(&sim)
        .last_sign_ins(now - TimeDelta::days(29), Utc::now())
        .await
        .unwrap();
    let truth = sim.ground_truth();
    assert!(truth.len() > 400, "{}", truth.len());
    assert!(
        sim.box_sign_in_count() > 3000,
        "several pages: {}",
        sim.box_sign_in_count()
    );
    assert_eq!(dates(&found, Signal::AppSignIn), truth);
    let pages = sim.box_sign_in_count().div_ceil(1000) as u64;
    assert_eq!(sim.counters().total(Endpoint::EntraSignIns), pages);
    assert_eq!(
        sim.counters().total(Endpoint::EntraToken),
        1,
        "one token for the whole run"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_and_a_503_mid_way_give_the_same_result() {
    let now = Utc::now();
    let sim = start(seeded(now, true)).await;
    sim.inject(
        Endpoint::EntraSignIns,
        2,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    sim.inject(
        Endpoint::EntraSignIns,
        4,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    sim.inject(
        Endpoint::EntraToken,
        1,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    let started = std::time::Instant::now();
    let found = client(&sim)
        .last_sign_ins(now - TimeDelta::days(29), Utc::now())
        .await
        .unwrap();
    assert_eq!(dates(&found, Signal::AppSignIn), sim.ground_truth());
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured");
    let counters = sim.counters();
    let pages = sim.box_sign_in_count().div_ceil(1000) as u64;
    assert_eq!(counters.get(Endpoint::EntraSignIns, 200), pages);
    assert_eq!(counters.total(Endpoint::EntraSignIns), pages + 2);
    assert_eq!(counters.total(Endpoint::EntraToken), 2);
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_typed_unauthorized_error_without_the_secret() {
    let sim = start(EntraConfig {
        users: vec![SsoPerson::new("a@acme.example")],
        ..EntraConfig::default()
    })
    .await;
    let (logs, _guard) = seatsync_tests::logs::capture_here();
    let wrong = "wrong-secret-value-q8Z";
    let entra = EntraProvider::new(settings(&sim, wrong), options()).unwrap();
    let err = entra
        .last_sign_ins(Utc::now() - TimeDelta::days(1), Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SsoError::Unauthorized { provider: "entra", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
    let text = format!("{err} {err:?} {}", logs.text());
    assert!(!text.contains(wrong), "the secret leaked: {text}");
    assert_eq!(
        sim.counters().total(Endpoint::EntraToken),
        1,
        "refusals are not retried"
    );
    assert_eq!(sim.counters().total(Endpoint::EntraSignIns), 0);
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_read_goes_on() {
    let now = Utc::now();
    let sim = start(seeded(now, true)).await;
    let entra = client(&sim);
    let first = entra
        .last_sign_ins(now - TimeDelta::days(29), Utc::now())
        .await
        .unwrap();
    sim.expire_tokens();
    let second = entra
        .last_sign_ins(now - TimeDelta::days(29), Utc::now())
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(sim.counters().total(Endpoint::EntraToken), 2);
    assert_eq!(sim.counters().get(Endpoint::EntraSignIns, 401), 1);
    let leaked = sim.issued_tokens();
    seatsync_tests::logs::record_secrets(leaked);
}

#[tokio::test]
async fn a_tenant_without_p1_p2_gets_the_tenant_wide_signal_labelled() {
    let now = Utc::now();
    let sim = start(seeded(now, false)).await;
    let entra = EntraProvider::new(settings(&sim, &sim.config().client_secret), options()).unwrap();

    let direct = entra.app_sign_ins(now - TimeDelta::days(29), now).await.unwrap_err();
    assert!(matches!(direct, SsoError::NotPremium { .. }), "{direct:?}");
    assert!(direct.needs_admin());

    let found = entra
        .last_sign_ins(now - TimeDelta::days(29), Utc::now())
        .await
        .unwrap();
    assert_eq!(dates(&found, Signal::TenantWideSignIn), sim.tenant_wide_truth());
    assert_eq!(sim.counters().total(Endpoint::EntraUsers), 500u64.div_ceil(120));
}

#[tokio::test]
async fn the_tenant_wide_signal_ignores_failed_sign_ins() {
    let now = Utc::now();
    let t = |d| (now - TimeDelta::days(d)).trunc_subsecs(0);
    let sim = start(EntraConfig {
        premium: false,
        users: vec![
            SsoPerson::new("failed.only@acme.example").failed_at(t(1)),
            SsoPerson::new("fails.after@acme.example")
                .signed_in(t(40))
                .failed_at(t(2)),
            SsoPerson::new("never@acme.example"),
        ],
        ..EntraConfig::default()
    })
    .await;
    let found = client(&sim)
        .last_sign_ins(now - TimeDelta::days(29), Utc::now())
        .await
        .unwrap();
    assert!(
        !found.contains_key("failed.only@acme.example"),
        "lastSignInDateTime counts failures"
    );
    assert!(!found.contains_key("never@acme.example"));
    assert_eq!(
        found["fails.after@acme.example"],
        SignIn {
            at: t(40),
            signal: Signal::TenantWideSignIn
        },
        "the later failure does not count; the success is kept though older than the window"
    );
    assert_eq!(found.len(), 1);
}

//! Last Box use from Okta's System Log: the real client against the Okta simulator gives every
//! person's latest successful Box sign-in, keyed by Box login, through paging, faults and aliases.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use seatsync::boxapi::RetryPolicy;
use seatsync::sso::{ActivityProvider, HttpOptions, SignIn, Signal, SsoConfig, SsoError, provider};
use secrecy::SecretString;
use sso_sim::{Endpoint, Fault, OktaConfig, OktaSim, SsoPerson, generate_people};

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

async fn start(config: OktaConfig) -> OktaSim {
    seatsync_tests::logs::capture_to_suite_log();
    let sim = OktaSim::start(config).await.expect("okta sim starts");
    seatsync_tests::logs::record_secrets([sim.api_token().to_string()]);
    sim
}

fn client(sim: &OktaSim, token: &str) -> Box<dyn ActivityProvider> {
    let config = SsoConfig::Okta {
        base_url: sim.base_url().parse().unwrap(),
        box_app_instance_id: sim.app_instance_id().to_string(),
        api_token: SecretString::from(token.to_string()),
    };
    provider(&config, options()).expect("okta provider")
}

fn dates(found: &HashMap<String, SignIn>) -> HashMap<String, DateTime<Utc>> {
    assert!(found.values().all(|s| s.signal == Signal::AppSignIn));
    found.iter().map(|(k, v)| (k.clone(), v.at)).collect()
}

fn seeded(now: DateTime<Utc>) -> OktaConfig {
    OktaConfig {
        seed: 11,
        users: generate_people(11, 500, 4000, TimeDelta::days(80), now),
        other_app_events: 3000,
        ..OktaConfig::default()
    }
}

#[tokio::test]
async fn every_persons_latest_successful_box_sign_in_equals_the_ground_truth() {
    let now = Utc::now();
    let sim = start(seeded(now)).await;
    let found = client(&sim, sim.api_token())
        .last_sign_ins(now - TimeDelta::days(85), Utc::now())
        .await
        .unwrap();
    let truth = sim.ground_truth();
    assert!(truth.len() > 400, "most of the 500 people signed in: {}", truth.len());
    assert!(sim.box_event_count() > 3000, "several pages: {}", sim.box_event_count());
    assert_eq!(dates(&found), truth);

    // One request per page: ceil(events / 1000), plus at most the empty page that ends a run of
    // full pages.
    let pages = sim.box_event_count().div_ceil(1000) as u64;
    let calls = sim.counters().total(Endpoint::OktaLogs);
    assert!(
        calls >= pages && calls <= pages + 1,
        "{calls} requests for {pages} pages"
    );
}

#[tokio::test]
async fn the_app_user_name_not_the_okta_login_and_any_letter_case_identify_the_person() {
    let now = Utc::now();
    let t = |h| (now - TimeDelta::hours(h)).trunc_ms();
    let mut jane = SsoPerson::new("jane.doe@acme.example")
        .signed_in(t(30))
        .signed_in(t(5))
        .failed_at(t(1));
    jane.idp_login = "jdoe@acme-corp.okta.example".into();
    jane.app_username = Some("Jane.Doe@ACME.example".into());
    let mut shouty = SsoPerson::new("Bob.Ray@Acme.Example").signed_in(t(7));
    shouty.idp_login = "BOB.RAY@ACME.EXAMPLE".into();
    let failed_only = SsoPerson::new("nobody@acme.example").failed_at(t(2));
    let sim = start(OktaConfig {
        users: vec![jane, shouty, failed_only],
        other_app_events: 200,
        ..OktaConfig::default()
    })
    .await;
    let found = client(&sim, sim.api_token())
        .last_sign_ins(now - TimeDelta::days(30), Utc::now())
        .await
        .unwrap();
    assert_eq!(found["jane.doe@acme.example"].at, t(5), "failures never count");
    assert!(!found.contains_key("jdoe@acme-corp.okta.example"));
    assert_eq!(found["bob.ray@acme.example"].at, t(7));
    assert!(!found.contains_key("nobody@acme.example"), "only failed: no sign-in");
    assert_eq!(found.len(), 2, "other apps' sign-ins are not Box's: {found:?}");
}

#[tokio::test]
async fn a_429_with_a_reset_header_and_a_503_mid_way_give_the_same_result() {
    let now = Utc::now();
    let sim = start(seeded(now)).await;
    sim.inject(
        Endpoint::OktaLogs,
        2,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    sim.inject(
        Endpoint::OktaLogs,
        4,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    sim.inject(Endpoint::OktaLogs, 5, Fault::Drop);
    let started = Instant::now();
    let found = client(&sim, sim.api_token())
        .last_sign_ins(now - TimeDelta::days(85), Utc::now())
        .await
        .unwrap();
    assert_eq!(dates(&found), sim.ground_truth());
    let counters = sim.counters();
    assert_eq!(counters.get(Endpoint::OktaLogs, 429), 1);
    assert_eq!(counters.get(Endpoint::OktaLogs, 503), 1);
    assert_eq!(counters.dropped(Endpoint::OktaLogs), 1);
    let pages = sim.box_event_count().div_ceil(1000) as u64;
    let ok = counters.get(Endpoint::OktaLogs, 200);
    assert!(
        ok >= pages && ok <= pages + 1,
        "{ok} pages served for {pages}: no page read twice"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for X-Rate-Limit-Reset: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn constant_429s_give_up_after_bounded_attempts_with_a_typed_error() {
    let now = Utc::now();
    let sim = start(OktaConfig {
        users: vec![SsoPerson::new("a@acme.example").signed_in(now - TimeDelta::hours(1))],
        faults: sso_sim::Faults {
            share_429: 1.0,
            retry_after_secs: 0,
            ..sso_sim::Faults::default()
        },
        ..OktaConfig::default()
    })
    .await;
    let err = client(&sim, sim.api_token())
        .last_sign_ins(now - TimeDelta::days(1), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, SsoError::RateLimited { attempts: 5, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(sim.counters().total(Endpoint::OktaLogs), 5);
}

#[tokio::test]
async fn a_wrong_api_token_is_a_typed_unauthorized_error_without_the_token() {
    let sim = start(OktaConfig {
        users: vec![SsoPerson::new("a@acme.example")],
        ..OktaConfig::default()
    })
    .await;
    let (logs, _guard) = seatsync_tests::logs::capture_here();
    let wrong = "00wrong-token-value-xyz";
    let err = client(&sim, wrong)
        .last_sign_ins(Utc::now() - TimeDelta::days(1), Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SsoError::Unauthorized { provider: "okta", .. }),
        "{err:?}"
    );
    assert!(err.needs_admin());
    let text = format!("{err} {err:?} {}", logs.text());
    assert!(!text.contains(wrong), "the token leaked: {text}");
    assert_eq!(sim.counters().get(Endpoint::OktaLogs, 401), 1, "a 401 is not retried");
}

#[tokio::test]
async fn a_since_older_than_the_retention_is_clamped_and_coverage_says_so() {
    let now = Utc::now();
    let person = SsoPerson::new("a@acme.example")
        .signed_in(now - TimeDelta::days(200))
        .signed_in(now - TimeDelta::days(89));
    let sim = start(OktaConfig {
        users: vec![person],
        ..OktaConfig::default()
    })
    .await;
    let okta = client(&sim, sim.api_token());
    let asked = now - TimeDelta::days(365);
    let coverage = okta.coverage_starts_at(asked, now);
    assert!(coverage > now - TimeDelta::days(90) && coverage < now - TimeDelta::days(89) - TimeDelta::hours(23));
    assert_eq!(
        okta.coverage_starts_at(now - TimeDelta::days(10), now),
        now - TimeDelta::days(10)
    );
    let found = okta.last_sign_ins(asked, Utc::now()).await.unwrap();
    assert_eq!(found["a@acme.example"].at, (now - TimeDelta::days(89)).trunc_ms());
}

trait TruncMs {
    fn trunc_ms(self) -> Self;
}

impl TruncMs for DateTime<Utc> {
    fn trunc_ms(self) -> Self {
        chrono::SubsecRound::trunc_subsecs(self, 3)
    }
}

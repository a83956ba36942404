//! Last Box use from Google Workspace: the real client signs a service-account assertion, trades it
//! for a token at the Google simulator and reads the Box SAML app's successful sign-ins.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use seatsync::boxapi::RetryPolicy;
use seatsync::sso::{
    ActivityProvider, GoogleProvider, GoogleSettings, HttpOptions, SignIn, Signal, SsoConfig, SsoError, provider,
};
use secrecy::SecretString;
use sso_sim::{Endpoint, Fault, GoogleConfig, GoogleSim, SsoPerson, TestKey, generate_people};

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

/// The middle lines of a PEM key: any of them in a log means the key leaked.
fn key_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .skip(1)
        .take(3)
        .map(str::to_string)
        .collect()
}

async fn start(config: GoogleConfig) -> GoogleSim {
    seatsync_tests::logs::capture_to_suite_log();
    let sim = GoogleSim::start(config).await.expect("google sim starts");
    seatsync_tests::logs::record_secrets(key_lines(&TestKey::shared().private_pem));
    sim
}

fn settings(sim: &GoogleSim, private_pem: &str, subject: &str) -> GoogleSettings {
    GoogleSettings {
        token_uri: sim.token_uri().parse().unwrap(),
        reports_base: sim.reports_base().parse().unwrap(),
        service_account_email: sim.config().service_account_email.clone(),
        private_key: SecretString::from(private_pem.to_string()),
        subject: subject.to_string(),
        customer_id: Some(sim.config().customer_id.clone()),
    }
}

fn client(sim: &GoogleSim) -> Box<dyn ActivityProvider> {
    let s = settings(sim, &TestKey::shared().private_pem, &sim.config().admin_email);
    let config = SsoConfig::Google {
        token_uri: s.token_uri,
        reports_base: s.reports_base,
        service_account_email: s.service_account_email,
        private_key: s.private_key,
        subject: s.subject,
        customer_id: s.customer_id,
    };
    provider(&config, options()).expect("google provider")
}

fn dates(found: &HashMap<String, SignIn>) -> HashMap<String, DateTime<Utc>> {
    assert!(found.values().all(|s| s.signal == Signal::AppSignIn));
    found.iter().map(|(k, v)| (k.clone(), v.at)).collect()
}

/// 600 people, about 4000 Box sign-ins over 170 days, failures and 3000 activities of other SAML apps
/// mixed in. Google keys by the account's primary email (`actor.email`), here the Box login in
/// capitals.
fn seeded(now: DateTime<Utc>) -> GoogleConfig {
    let mut users = generate_people(31, 600, 4000, TimeDelta::days(170), now);
    for u in &mut users {
        u.idp_login = u.box_login.to_uppercase();
    }
    GoogleConfig {
        seed: 31,
        users,
        other_app_events: 3000,
        ..GoogleConfig::default()
    }
}

fn q<'a>(query: &'a [(String, String)], k: &str) -> Option<&'a str> {
    query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn every_persons_latest_successful_box_sign_in_equals_the_ground_truth() {
    let now = Utc::now();
    let sim = start(seeded(now)).await;
    let found = client(&sim)
        .last_sign_ins(now - TimeDelta::days(175), Utc::now())
        .await
        .unwrap();
    let truth = sim.ground_truth();
    assert!(truth.len() > 450, "{}", truth.len());
    assert!(
        sim.box_sign_in_count() > 3000,
        "several pages: {}",
        sim.box_sign_in_count()
    );
    assert!(
        sim.activity_count() > sim.box_sign_in_count() + 3000,
        "failures and other apps mixed in"
    );
    assert_eq!(dates(&found), truth);

    let pages = sim.box_sign_in_count().div_ceil(1000) as u64;
    assert_eq!(sim.counters().total(Endpoint::GoogleActivities), pages);
    assert_eq!(
        sim.counters().total(Endpoint::GoogleToken),
        1,
        "one token for the whole run"
    );
    let requests = sim.activity_requests();
    let first = &requests[0];
    assert_eq!(q(first, "eventName"), Some("login_success"));
    assert_eq!(q(first, "filters"), Some("application_name==Box"));
    assert_eq!(q(first, "maxResults"), Some("1000"));
    assert_eq!(q(first, "customerId"), Some(sim.config().customer_id.as_str()));
    assert!(q(first, "endTime").is_some(), "every query is bounded");
    assert!(requests[1..].iter().all(|r| q(r, "pageToken").is_some()));
}

#[tokio::test]
async fn a_429_and_a_503_mid_way_give_the_same_result() {
    let now = Utc::now();
    let sim = start(seeded(now)).await;
    sim.inject(
        Endpoint::GoogleActivities,
        2,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    sim.inject(
        Endpoint::GoogleActivities,
        4,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    sim.inject(
        Endpoint::GoogleToken,
        1,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    let started = std::time::Instant::now();
    let found = client(&sim)
        .last_sign_ins(now - TimeDelta::days(175), Utc::now())
        .await
        .unwrap();
    assert_eq!(dates(&found), sim.ground_truth());
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured");
    let counters = sim.counters();
    let pages = sim.box_sign_in_count().div_ceil(1000) as u64;
    assert_eq!(counters.get(Endpoint::GoogleActivities, 200), pages);
    assert_eq!(counters.get(Endpoint::GoogleActivities, 429), 1);
    assert_eq!(counters.get(Endpoint::GoogleActivities, 503), 1);
    assert_eq!(counters.total(Endpoint::GoogleToken), 2);
}

#[tokio::test]
async fn a_quota_403_is_retried_like_a_429() {
    let now = Utc::now();
    let sim = start(seeded(now)).await;
    sim.inject_quota_403(3);
    let found = client(&sim)
        .last_sign_ins(now - TimeDelta::days(175), Utc::now())
        .await
        .unwrap();
    assert_eq!(dates(&found), sim.ground_truth());
    let pages = sim.box_sign_in_count().div_ceil(1000) as u64;
    assert_eq!(sim.counters().get(Endpoint::GoogleActivities, 403), 1);
    assert_eq!(sim.counters().get(Endpoint::GoogleActivities, 200), pages);
}

#[tokio::test]
async fn a_wrong_key_is_a_typed_unauthorized_error_without_the_key() {
    let sim = start(GoogleConfig {
        users: vec![SsoPerson::new("a@acme.example").signed_in(Utc::now() - TimeDelta::hours(1))],
        ..GoogleConfig::default()
    })
    .await;
    let wrong = TestKey::generate();
    seatsync_tests::logs::record_secrets(key_lines(&wrong.private_pem));
    let (logs, _guard) = seatsync_tests::logs::capture_here();
    let google = GoogleProvider::new(settings(&sim, &wrong.private_pem, &sim.config().admin_email), options()).unwrap();
    let err = google
        .last_sign_ins(Utc::now() - TimeDelta::days(1), Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SsoError::Unauthorized { provider: "google", .. }),
        "{err:?}"
    );
    assert!(err.needs_admin() && !err.is_transient());
    // seatsync's own words for the code, not Google's text (which never reaches the tenant).
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert!(!err.to_string().contains("Invalid JWT Signature"), "{err}");
    let text = format!("{err} {err:?} {google:?} {}", logs.text());
    for line in key_lines(&wrong.private_pem) {
        assert!(!text.contains(&line), "the key leaked: {text}");
    }
    assert!(!text.contains("eyJhbGciOiJSUzI1NiI"), "the assertion leaked: {text}");
    assert_eq!(
        sim.counters().total(Endpoint::GoogleToken),
        1,
        "refusals are not retried"
    );
    assert_eq!(sim.counters().total(Endpoint::GoogleActivities), 0);
}

#[tokio::test]
async fn missing_delegation_is_unauthorized_and_a_subject_without_report_rights_is_forbidden() {
    let users = vec![SsoPerson::new("a@acme.example").signed_in(Utc::now() - TimeDelta::hours(1))];
    let undelegated = start(GoogleConfig {
        users: users.clone(),
        delegated_scopes: Vec::new(),
        ..GoogleConfig::default()
    })
    .await;
    let key = &TestKey::shared().private_pem;
    let since = Utc::now() - TimeDelta::days(1);
    let google = GoogleProvider::new(
        settings(&undelegated, key, &undelegated.config().admin_email),
        options(),
    )
    .unwrap();
    match google.last_sign_ins(since, Utc::now()).await.unwrap_err() {
        SsoError::Unauthorized { detail, .. } => {
            assert!(detail.starts_with("unauthorized_client"), "{detail}");
            assert!(detail.contains("domain-wide delegation"), "{detail}");
        }
        e => panic!("{e:?}"),
    }

    let sim = start(GoogleConfig {
        users,
        ..GoogleConfig::default()
    })
    .await;
    let not_admin = GoogleProvider::new(settings(&sim, key, "a@acme.example"), options()).unwrap();
    let err = not_admin.last_sign_ins(since, Utc::now()).await.unwrap_err();
    assert!(matches!(err, SsoError::Forbidden { provider: "google", .. }), "{err:?}");
    assert_eq!(sim.counters().get(Endpoint::GoogleActivities, 403), 1, "not retried");
    let unknown = GoogleProvider::new(settings(&sim, key, "ghost@acme.example"), options()).unwrap();
    let err = unknown.last_sign_ins(since, Utc::now()).await.unwrap_err();
    assert!(matches!(err, SsoError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_read_goes_on() {
    let now = Utc::now();
    let sim = start(seeded(now)).await;
    let google = client(&sim);
    let first = google
        .last_sign_ins(now - TimeDelta::days(175), Utc::now())
        .await
        .unwrap();
    sim.expire_tokens();
    let second = google
        .last_sign_ins(now - TimeDelta::days(175), Utc::now())
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(sim.counters().total(Endpoint::GoogleToken), 2);
    assert_eq!(sim.counters().get(Endpoint::GoogleActivities, 401), 1);
    seatsync_tests::logs::record_secrets(sim.issued_tokens());
}

#[tokio::test]
async fn a_since_older_than_180_days_is_clamped_and_coverage_says_so() {
    let now = Utc::now();
    // This simulator holds more than Google promises, so only the client's own clamp keeps the
    // 200-day-old sign-ins out.
    let sim = start(GoogleConfig {
        users: vec![
            SsoPerson::new("a@acme.example")
                .signed_in(now - TimeDelta::days(200))
                .signed_in(now - TimeDelta::days(179)),
            SsoPerson::new("b@acme.example").signed_in(now - TimeDelta::days(200)),
        ],
        retention_days: 400,
        ..GoogleConfig::default()
    })
    .await;
    let google = client(&sim);
    let asked = now - TimeDelta::days(365);
    let coverage = google.coverage_starts_at(asked, now);
    assert!(coverage > now - TimeDelta::days(180) && coverage < now - TimeDelta::days(179) - TimeDelta::hours(23));
    assert_eq!(
        google.coverage_starts_at(now - TimeDelta::days(10), now),
        now - TimeDelta::days(10)
    );
    let found = google.last_sign_ins(asked, Utc::now()).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found["a@acme.example"].at,
        chrono::SubsecRound::trunc_subsecs(now - TimeDelta::days(179), 3)
    );
    let start = q(&sim.activity_requests()[0], "startTime").unwrap().to_string();
    let start = DateTime::parse_from_rfc3339(&start).unwrap();
    assert!(start > now - TimeDelta::days(180), "{start}");
}

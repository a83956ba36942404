//! The Okta simulator behaves as sso-activity.md describes: filter, window, paging by Link, the
//! never-ending polling link, the retention clamp and the error shapes.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;
use sso_sim::{Endpoint, Fault, OktaConfig, OktaSim, SsoPerson, generate_people};

const FILTER_PREFIX: &str = "eventType eq \"user.authentication.sso\" and target.id eq ";

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn sim(users: Vec<SsoPerson>, other: usize) -> OktaSim {
    OktaSim::start(OktaConfig {
        users,
        other_app_events: other,
        ..OktaConfig::default()
    })
    .await
    .unwrap()
}

struct Page {
    status: u16,
    events: Vec<Value>,
    next: Option<String>,
    headers: reqwest::header::HeaderMap,
}

async fn get(url: &str, token: &str) -> Page {
    let resp = reqwest::Client::new()
        .get(url)
        .header("Authorization", format!("SSWS {token}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let next = headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("rel=\"next\""))
        .map(|v| v.split(['<', '>']).nth(1).unwrap().to_string());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let events = body.as_array().cloned().unwrap_or_default();
    Page {
        status,
        events,
        next,
        headers,
    }
}

fn logs_url(sim: &OktaSim, params: &[(&str, String)]) -> String {
    let mut url = url_of(&format!("{}/api/v1/logs", sim.base_url()));
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

fn url_of(s: &str) -> reqwest::Url {
    reqwest::Url::parse(s).unwrap()
}

fn box_filter(sim: &OktaSim) -> String {
    format!("{FILTER_PREFIX}\"{}\"", sim.app_instance_id())
}

#[tokio::test]
async fn filter_and_window_return_only_the_box_apps_sso_events() {
    let now = Utc::now();
    let people = generate_people(7, 60, 300, TimeDelta::days(30), now);
    let sim = sim(people, 400).await;
    let params = [
        ("filter", box_filter(&sim)),
        ("since", iso(now - TimeDelta::days(20))),
        ("until", iso(now)),
        ("limit", "1000".into()),
    ];
    let page = get(&logs_url(&sim, &params), sim.api_token()).await;
    assert_eq!(page.status, 200);
    assert!(sim.event_count() > sim.box_event_count(), "other events are mixed in");
    assert!(!page.events.is_empty());
    let mut previous = String::new();
    for e in &page.events {
        assert_eq!(e["eventType"], "user.authentication.sso");
        assert_eq!(e["target"][0]["type"], "AppInstance");
        assert_eq!(e["target"][0]["id"], sim.app_instance_id());
        assert_eq!(e["target"][1]["type"], "AppUser");
        let published = e["published"].as_str().unwrap().to_string();
        let at: DateTime<Utc> = published.parse().unwrap();
        assert!(at >= now - TimeDelta::days(20) - TimeDelta::seconds(1) && at <= now);
        assert!(published >= previous, "ascending order");
        previous = published;
    }
    assert!(page.events.iter().any(|e| e["outcome"]["result"] == "FAILURE"));
    assert!(
        page.events.len() < sim.box_event_count(),
        "the window cut off older events"
    );
}

#[tokio::test]
async fn bounded_query_pages_by_link_next_and_ends() {
    let now = Utc::now();
    let people: Vec<SsoPerson> = (0..25)
        .map(|i| SsoPerson::new(&format!("p{i}@acme.example")).signed_in(now - TimeDelta::minutes(i + 1)))
        .collect();
    let sim = sim(people, 50).await;
    let mut url = logs_url(
        &sim,
        &[
            ("filter", box_filter(&sim)),
            ("since", iso(now - TimeDelta::days(1))),
            ("until", iso(now + TimeDelta::seconds(1))),
            ("limit", "10".into()),
        ],
    );
    let mut sizes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = get(&url, sim.api_token()).await;
        assert_eq!(page.status, 200);
        sizes.push(page.events.len());
        for e in &page.events {
            assert!(seen.insert(e["uuid"].as_str().unwrap().to_string()), "no event twice");
        }
        match page.next {
            Some(next) => url = next,
            None => break,
        }
        assert!(sizes.len() < 10, "paging must end");
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(seen.len(), 25);
    assert_eq!(sim.counters().get(Endpoint::OktaLogs, 200), 3);
}

#[tokio::test]
async fn polling_query_without_until_has_a_next_link_forever() {
    let now = Utc::now();
    let sim = sim(
        vec![SsoPerson::new("a@acme.example").signed_in(now - TimeDelta::hours(1))],
        0,
    )
    .await;
    let mut url = logs_url(&sim, &[("filter", box_filter(&sim)), ("limit", "1000".into())]);
    let mut empty_pages = 0;
    for _ in 0..6 {
        let page = get(&url, sim.api_token()).await;
        if page.events.is_empty() {
            empty_pages += 1;
        }
        url = page.next.expect("a polling query always offers a next link");
    }
    assert_eq!(empty_pages, 5, "after the one event, empty pages keep linking onwards");
}

#[tokio::test]
async fn since_defaults_to_seven_days_and_is_clamped_to_retention() {
    let now = Utc::now();
    let person = SsoPerson::new("old@acme.example")
        .signed_in(now - TimeDelta::days(120))
        .signed_in(now - TimeDelta::days(60))
        .signed_in(now - TimeDelta::days(3));
    let sim = sim(vec![person], 0).await;
    let until = iso(now + TimeDelta::seconds(1));
    let default_since = get(
        &logs_url(&sim, &[("filter", box_filter(&sim)), ("until", until.clone())]),
        sim.api_token(),
    )
    .await;
    assert_eq!(default_since.events.len(), 1, "only the last 7 days by default");
    let ancient = get(
        &logs_url(
            &sim,
            &[
                ("filter", box_filter(&sim)),
                ("since", iso(now - TimeDelta::days(365))),
                ("until", until),
            ],
        ),
        sim.api_token(),
    )
    .await;
    assert_eq!(
        ancient.events.len(),
        2,
        "the 120-day-old event is past the 90-day retention"
    );
    let truth = sim.ground_truth();
    assert_eq!(truth["old@acme.example"], (now - TimeDelta::days(3)).trunc_subsecs_ms());
}

trait TruncMs {
    fn trunc_subsecs_ms(self) -> Self;
}
impl TruncMs for DateTime<Utc> {
    fn trunc_subsecs_ms(self) -> Self {
        chrono::SubsecRound::trunc_subsecs(self, 3)
    }
}

#[tokio::test]
async fn wrong_token_429_and_bad_filter_have_oktas_shapes() {
    let sim = sim(vec![SsoPerson::new("a@acme.example")], 0).await;
    let url = logs_url(&sim, &[("filter", box_filter(&sim))]);
    let denied = reqwest::Client::new()
        .get(&url)
        .header("Authorization", "SSWS wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000011");

    sim.inject(
        Endpoint::OktaLogs,
        1,
        Fault::Status {
            status: 429,
            retry_after: Some(3),
        },
    );
    let limited = get(&url, sim.api_token()).await;
    assert_eq!(limited.status, 429);
    let reset: i64 = limited.headers["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
    let wait = reset - Utc::now().timestamp();
    assert!((2..=3).contains(&wait), "reset {wait}s ahead");
    assert_eq!(limited.headers["x-rate-limit-remaining"], "0");

    let bad = get(
        &logs_url(&sim, &[("filter", "eventType co \"sso\"".to_string())]),
        sim.api_token(),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(sim.counters().get(Endpoint::OktaLogs, 401), 1);
    assert_eq!(sim.counters().get(Endpoint::OktaLogs, 429), 1);
}

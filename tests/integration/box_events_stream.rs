//! The admin event stream: every LOGIN event exactly once, through short pages and faults.

use std::collections::HashSet;

use box_sim::{Endpoint, EnterpriseSpec, Fault, Faults, Plan, SimConfig};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use seatsync::boxapi::{BoxError, EventsQuery, LOGIN_EVENT};
use seatsync_tests::boxsim::{TestBox, sim_config};

fn with_logins(total: u64, short_pages: f64) -> SimConfig {
    SimConfig {
        enterprise: EnterpriseSpec {
            users: 400,
            history_days: 90,
            total_login_events: Some(total),
            other_events: true,
            ..EnterpriseSpec::default()
        },
        faults: Faults {
            short_pages,
            ..Faults::default()
        },
        ..sim_config()
    }
}

fn whole_history(tb: &TestBox) -> EventsQuery {
    let now = tb.sim.now();
    EventsQuery::logins(now - chrono::Duration::days(400), now + chrono::Duration::minutes(1))
}

#[tokio::test]
async fn login_window_of_10000_events_survives_short_pages_429_and_503() {
    let tb = TestBox::start(with_logins(10_000, 0.3)).await;
    assert_eq!(tb.sim.login_event_count(), 10_000);
    tb.sim.inject(
        Endpoint::Events,
        4,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    tb.sim.inject(
        Endpoint::Events,
        9,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );

    let events: Vec<_> = tb
        .client
        .admin_events(tb.admin_token(), whole_history(&tb))
        .try_collect()
        .await
        .unwrap();

    let ids: HashSet<_> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events.len(), 10_000);
    assert_eq!(ids.len(), 10_000, "an event was yielded twice");
    assert!(events.iter().all(|e| e.event_type.as_deref() == Some(LOGIN_EVENT)));
    let counters = tb.sim.counters();
    assert_eq!(counters.get(Endpoint::Events, 429), 1);
    assert_eq!(counters.get(Endpoint::Events, 503), 1);
    let pages = counters.get(Endpoint::Events, 200);
    println!("10,000 LOGIN events in {pages} pages (minimum 20), one 429 and one 503 retried");
    assert!(pages > 21, "short pages were not exercised ({pages} pages)");
}

#[tokio::test]
async fn the_stream_never_stops_on_a_short_page() {
    let tb = TestBox::start(with_logins(2_000, 0.9)).await;
    let count = tb
        .client
        .admin_events(tb.admin_token(), whole_history(&tb))
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap();
    assert_eq!(count, 2_000);
}

#[tokio::test]
async fn a_saved_stream_position_resumes_without_duplicates_or_gaps() {
    let tb = TestBox::start(with_logins(3_000, 0.0)).await;
    let query = whole_history(&tb);

    let mut first = Box::pin(tb.client.admin_event_pages(tb.admin_token(), query.clone()));
    let mut seen = HashSet::new();
    let mut position = None;
    for _ in 0..2 {
        let page = first.next().await.unwrap().unwrap();
        seen.extend(page.events.iter().map(|e| e.event_id.clone()));
        position = Some(page.next_stream_position);
    }
    drop(first);
    let resumed = EventsQuery {
        stream_position: position,
        ..query
    };
    let rest: Vec<_> = tb
        .client
        .admin_events(tb.admin_token(), resumed)
        .try_collect()
        .await
        .unwrap();
    for e in &rest {
        assert!(
            seen.insert(e.event_id.clone()),
            "{} seen before the saved position",
            e.event_id
        );
    }
    assert_eq!(seen.len(), 3_000);
}

#[tokio::test]
async fn only_events_in_the_window_are_returned() {
    let tb = TestBox::start(with_logins(5_000, 0.2)).await;
    let now = tb.sim.now();
    let (after, before) = (now - chrono::Duration::days(30), now - chrono::Duration::days(10));
    let events: Vec<_> = tb
        .client
        .admin_events(tb.admin_token(), EventsQuery::logins(after, before))
        .try_collect()
        .await
        .unwrap();
    assert!(!events.is_empty());
    for e in &events {
        let at = e.created_at.expect("created_at");
        assert!(
            at >= after && at < before + chrono::Duration::seconds(1),
            "{at} outside the window"
        );
    }
}

#[tokio::test]
async fn business_plan_answers_forbidden() {
    let config = SimConfig {
        enterprise: EnterpriseSpec {
            plan: Plan::Business,
            users: 20,
            ..EnterpriseSpec::default()
        },
        ..sim_config()
    };
    let tb = TestBox::start(config).await;
    let now = Utc::now();
    let first = tb
        .client
        .admin_events(
            tb.admin_token(),
            EventsQuery::logins(now - chrono::Duration::days(1), now),
        )
        .next()
        .await;
    match first {
        Some(Err(BoxError::Forbidden(detail))) => assert_eq!(detail.status, 403),
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn a_non_admin_token_cannot_read_the_event_stream() {
    let tb = TestBox::start(with_logins(100, 0.0)).await;
    let user = tb
        .sim
        .users()
        .into_iter()
        .find(|u| u.role == "user" && !u.is_app_user && !u.is_external)
        .expect("a plain user");
    let token = tb.token_for(&user.id);
    let first = tb.client.admin_events(token, whole_history(&tb)).next().await;
    assert!(matches!(first, Some(Err(BoxError::Forbidden(_)))), "{first:?}");
}

/// Every type in the sync's activity filter is one Box's own OpenAPI file accepts as an
/// `event_type` filter (`GET /events`): a value Box refused would stop every sync.
#[test]
fn every_activity_event_type_is_one_boxs_filter_accepts() {
    let Some(path) = box_sim::contract::default_spec_path() else {
        println!("skipped: Box's OpenAPI file is not here");
        return;
    };
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("the OpenAPI file")).expect("JSON");
    let parameter = spec["paths"]["/events"]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "event_type"))
        .expect("the event_type parameter");
    let accepted: Vec<&str> = parameter["schema"]["items"]["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let query = EventsQuery::activity(chrono::Utc::now(), chrono::Utc::now());
    assert!(query.event_types.len() > 10);
    for kind in &query.event_types {
        assert!(
            accepted.contains(&kind.as_str()),
            "{kind} is not a type Box's filter accepts"
        );
    }
    assert!(
        !query
            .event_types
            .iter()
            .any(|k| k == "FAILED_LOGIN" || k == "ADMIN_LOGIN")
    );
}

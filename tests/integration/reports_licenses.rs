//! `GET /licenses`: the report a buyer reads, computed from the stored summary of a real sync
//! against the Box simulator, with the last sync and the Box facts; before any sync, no summary and
//! a detail saying why.

use chrono::Utc;
use seatsync::connection::ConnectionStatus;
use seatsync::settings::{SettingsStore, TenantSettings};
use seatsync::sync::LicenseStore;
use serde_json::Value;

use crate::reports_fixture::{Reports, tenant};

#[tokio::test]
async fn the_report_equals_the_one_computed_from_the_stored_summary() {
    let r = Reports::new().await;
    let tb = r.sync_from_simulator("acme", 300).await;
    let settings = TenantSettings {
        seats_purchased: Some(400),
        price_per_seat_year_minor: Some(18_000),
        currency: Some("USD".into()),
        inactivity_threshold_days: 45,
        ..TenantSettings::default()
    };
    SettingsStore::new(r.table.clone())
        .put(&tenant("acme"), &settings)
        .await
        .unwrap();

    let before = Utc::now();
    let body = r.get_json("acme", "/licenses", "").await;
    let summary = r
        .table
        .get_summary(&tenant("acme"))
        .await
        .unwrap()
        .expect("the sync stored a summary");
    let as_of = chrono::DateTime::parse_from_rfc3339(body["summary"]["as_of"].as_str().unwrap())
        .unwrap()
        .to_utc();
    assert!(as_of >= before, "evaluated now");
    let expected = serde_json::to_value(summary.report(&settings, as_of)).unwrap();
    assert_eq!(body["summary"], expected);
    assert_eq!(body["summary"]["seats_purchased"], 400);
    assert_eq!(body["summary"]["inactivity_threshold_days"], 45);
    for field in ["history_complete", "activity_signal", "content_activity_available"] {
        assert!(body["summary"].get(field).is_some(), "{field} missing: {body}");
    }
    let days: Vec<_> = body["summary"]["activity_by_threshold"]
        .as_array()
        .expect("counts by threshold")
        .iter()
        .map(|c| c["days"].as_u64().unwrap())
        .collect();
    assert_eq!(days, [30, 45, 60, 90], "30/60/90 days and the tenant's threshold");
    let seat_holders = tb
        .sim
        .users()
        .iter()
        .filter(|u| !u.is_app_user && !u.is_external)
        .count();
    assert_eq!(
        body["summary"]["seat_holders"], seat_holders as u64,
        "the simulator's seats"
    );
    assert!(body.get("detail").is_none(), "{body}");

    let checkpoint = r.table.get_checkpoint(&tenant("acme")).await.unwrap().unwrap();
    let run = checkpoint.last_run.unwrap();
    assert_eq!(body["last_sync"]["outcome"], "succeeded");
    assert_eq!(body["last_sync"]["box_calls"], run.box_calls);
    assert_eq!(body["last_sync"]["items_written"], run.items_written);
    assert!(run.box_calls > 0);
    assert_eq!(body["last_sync"]["error"], Value::Null);
    assert_eq!(body["activity"]["source"], "box_events");
    assert_eq!(body["activity"]["provider"], "box");
    assert!(body["activity"]["history_since"].is_string());
    assert_eq!(body["connection_status"], "connected");
    assert_box_facts(&body);
}

#[tokio::test]
async fn before_a_sync_the_summary_is_null_with_a_detail_naming_the_connection() {
    let r = Reports::new().await;
    let body = r.get_json("newco", "/licenses", "").await;
    assert_eq!(body["summary"], Value::Null);
    assert_eq!(body["last_sync"], Value::Null);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("sync has not completed"), "{detail}");
    assert!(
        detail.contains("disconnected") && detail.contains("connect Box"),
        "{detail}"
    );
    assert_box_facts(&body);

    r.connect("newco", ConnectionStatus::Connected).await;
    let body = r.get_json("newco", "/licenses", "").await;
    assert_eq!(body["summary"], Value::Null);
    assert_eq!(body["connection_status"], "connected");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("connected") && detail.contains("POST /syncs"),
        "{detail}"
    );
    assert_eq!(body["activity"]["source"], "box_events");
}

fn assert_box_facts(body: &Value) {
    let facts = body["box_facts"].to_string().to_lowercase();
    for needle in [
        "deactivated box users still hold paid seats",
        "does not lower the bill",
        "reduced, at renewal",
        "no api for the number of seats purchased",
        "login-only means a login",
        "activity_signal",
    ] {
        assert!(facts.contains(needle), "{needle}: {facts}");
    }
}

//! Content events (issue 11): who works on content and how much, the ground truth of both dates,
//! and the event_type filter over a mixed stream.

mod helpers;

use std::collections::HashMap;

use box_sim::{EnterpriseSpec, EventKind, SimConfig, SimUser};
use chrono::{DateTime, Duration as CDuration, Utc};
use helpers::*;
use serde_json::Value;

fn spec(users: usize, history_days: u32) -> SimConfig {
    SimConfig {
        enterprise: EnterpriseSpec {
            users,
            history_days,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Every content type the generator makes, as the sync will ask for them.
const CONTENT: &str = "UPLOAD,DOWNLOAD,PREVIEW,EDIT,COPY,MOVE,RENAME,DELETE,CONTENT_ACCESS,COMMENT_CREATE,COLLABORATION_INVITE,COLLABORATION_ACCEPT,SHARE";

fn is_content(name: &str) -> bool {
    CONTENT.split(',').any(|k| k == name)
}

/// Plain users (role user, managed, not the primary admin) who show any activity: the base the
/// drive-only and login-only shares are taken of.
fn active_plain(sim: &box_sim::BoxSim) -> Vec<SimUser> {
    let admin = sim.primary_admin_id();
    sim.users()
        .into_iter()
        .filter(|u| u.role == "user" && !u.is_app_user && !u.is_external && u.id != admin)
        .filter(|u| u.last_login.is_some() || u.last_content.is_some())
        .collect()
}

fn share(n: usize, f: f64) -> usize {
    (n as f64 * f).round() as usize
}

fn created_at(e: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap())
        .unwrap()
        .to_utc()
}

#[tokio::test]
async fn drive_only_users_work_up_to_today_with_no_login_for_200_days() {
    let sim = sim(spec(1_000, 365)).await;
    let now = sim.now();
    let plain = active_plain(&sim);
    let drive_only: Vec<_> = plain
        .iter()
        .filter(|u| u.last_content.is_some_and(|t| t > now - CDuration::days(3)))
        .filter(|u| u.last_login.is_none_or(|t| t < now - CDuration::days(200)))
        .collect();
    let want = share(plain.len(), 0.10);
    assert!(
        (want..=want + 2).contains(&drive_only.len()),
        "{} drive-only users, want about {want} of {}",
        drive_only.len(),
        plain.len()
    );
    assert!(
        drive_only.iter().any(|u| u.last_login.is_some()),
        "with a year of history some drive-only users logged in long ago"
    );
}

#[tokio::test]
async fn with_a_short_history_drive_only_users_never_logged_in() {
    let sim = sim(spec(1_000, 180)).await;
    let plain = active_plain(&sim);
    let content_no_login = plain
        .iter()
        .filter(|u| u.last_login.is_none() && u.last_content.is_some())
        .count();
    assert_eq!(content_no_login, share(plain.len(), 0.10));
}

#[tokio::test]
async fn no_drive_only_share_means_every_worker_logs_in() {
    let mut config = spec(1_000, 365);
    config.enterprise.drive_only = 0.0;
    let sim = sim(config).await;
    let now = sim.now();
    let quiet = active_plain(&sim)
        .into_iter()
        .filter(|u| u.last_content.is_some_and(|t| t > now - CDuration::days(3)))
        .filter(|u| u.last_login.is_none_or(|t| t < now - CDuration::days(200)))
        .count();
    assert_eq!(quiet, 0);
}

#[tokio::test]
async fn login_only_users_log_in_and_never_touch_content() {
    let sim = sim(spec(1_000, 365)).await;
    let plain = active_plain(&sim);
    let login_only = plain
        .iter()
        .filter(|u| u.last_login.is_some() && u.last_content.is_none())
        .count();
    assert_eq!(login_only, share(plain.len(), 0.15));
}

#[tokio::test]
async fn never_logged_in_users_have_no_content_and_the_idle_count_holds() {
    let sim = sim(spec(200, 180)).await;
    let managed: Vec<_> = sim
        .users()
        .into_iter()
        .filter(|u| !u.is_app_user && !u.is_external)
        .collect();
    let idle = managed
        .iter()
        .filter(|u| u.last_login.is_none() && u.last_content.is_none())
        .count();
    assert_eq!(idle, 20, "never_logged_in 10%: no login and no content");
    let admin = sim.user(&sim.primary_admin_id()).unwrap();
    assert!(admin.last_login.is_some() && admin.last_content.is_some());
}

#[tokio::test]
async fn derived_content_is_about_ten_times_the_logins_with_2_percent_anonymous() {
    let sim = sim(spec(1_000, 365)).await;
    let ratio = sim.content_event_count() as f64 / sim.login_event_count() as f64;
    assert!((7.0..13.0).contains(&ratio), "content/login = {ratio:.2}");
}

#[tokio::test]
async fn content_totals_honour_total_content_events() {
    let mut config = spec(2_000, 365);
    config.enterprise.total_login_events = Some(5_000);
    config.enterprise.total_content_events = Some(40_000);
    let sim = sim(config).await;
    assert_eq!(sim.login_event_count(), 5_000);
    assert_eq!(sim.content_event_count(), 40_000);
    let t = admin_token(&sim);
    let (content, _) = read_all_events(&sim, &t, &format!("&event_type={CONTENT}")).await;
    assert_eq!(content.len(), 40_000);
    let anonymous = content.iter().filter(|e| e["created_by"]["id"] == "2").count();
    assert_eq!(anonymous, 800, "2% of the content is shared-link traffic");
}

#[tokio::test]
async fn a_requested_login_total_scales_derived_content_alike() {
    let mut config = spec(2_000, 365);
    config.enterprise.total_login_events = Some(5_000);
    let sim = sim(config).await;
    let ratio = sim.content_event_count() as f64 / 5_000.0;
    assert!((7.0..13.0).contains(&ratio), "content/login = {ratio:.2}");
}

#[tokio::test]
async fn content_can_be_switched_off() {
    let mut config = spec(300, 180);
    config.enterprise.content_events = false;
    let sim = sim(config).await;
    assert_eq!(sim.content_event_count(), 0);
    assert!(sim.users().iter().all(|u| u.last_content.is_none()));
    let managed_without_login = sim
        .users()
        .iter()
        .filter(|u| !u.is_app_user && !u.is_external && u.last_login.is_none())
        .count();
    assert_eq!(managed_without_login, 30, "only the never-logged-in 10%");
}

#[tokio::test]
async fn ground_truth_equals_a_recomputation_from_the_served_stream() {
    let sim = sim(spec(100, 180)).await;
    let t = admin_token(&sim);
    let (events, _) = read_all_events(&sim, &t, &format!("&event_type=LOGIN,{CONTENT}")).await;
    assert_eq!(events.len() as u64, sim.login_event_count() + sim.content_event_count());
    let mut latest: HashMap<(String, bool), DateTime<Utc>> = HashMap::new();
    let mut anonymous = 0;
    for e in &events {
        let kind = e["event_type"].as_str().unwrap();
        assert!(kind == "LOGIN" || is_content(kind), "{kind} passed the filter");
        let id = e["created_by"]["id"].as_str().unwrap().to_string();
        if id == "2" {
            anonymous += 1;
            continue;
        }
        let slot = latest.entry((id, kind == "LOGIN")).or_insert(created_at(e));
        *slot = (*slot).max(created_at(e));
    }
    assert!(anonymous > 0, "anonymous content events are served");
    let users = sim.users();
    assert!(
        users.iter().any(|u| u.last_content.is_some() && u.last_login.is_none()),
        "drive-only users are in the stream"
    );
    for u in users {
        assert_eq!(
            latest.get(&(u.id.clone(), true)).copied(),
            u.last_login,
            "last_login of {}",
            u.id
        );
        assert_eq!(
            latest.get(&(u.id.clone(), false)).copied(),
            u.last_content,
            "last_content of {}",
            u.id
        );
    }
}

#[tokio::test]
async fn event_type_upload_returns_only_uploads() {
    let sim = sim(spec(100, 90)).await;
    let t = admin_token(&sim);
    let (all, _) = read_all_events(&sim, &t, "").await;
    let (uploads, _) = read_all_events(&sim, &t, "&event_type=UPLOAD").await;
    assert!(!uploads.is_empty());
    assert!(uploads.iter().all(|e| e["event_type"] == "UPLOAD"));
    assert_eq!(
        uploads.len(),
        all.iter().filter(|e| e["event_type"] == "UPLOAD").count()
    );
    let (logins, _) = read_all_events(&sim, &t, "&event_type=LOGIN").await;
    assert_eq!(logins.len() as u64, sim.login_event_count());
    let (nothing, _) = read_all_events(&sim, &t, "&event_type=ITEM_UPLOAD").await;
    assert!(nothing.is_empty(), "a type never generated matches nothing");
}

#[tokio::test]
async fn failed_and_admin_logins_never_move_last_login_or_last_content() {
    let sim = sim(spec(50, 180)).await;
    let u = plain_user(&sim);
    // Whole seconds, as the stream keeps them.
    let later = DateTime::from_timestamp((sim.now() + CDuration::hours(1)).timestamp(), 0).unwrap();
    for kind in [EventKind::FailedLogin, EventKind::AdminLogin] {
        sim.record_event(&u.id, kind, later);
    }
    let after = sim.user(&u.id).unwrap();
    assert_eq!((after.last_login, after.last_content), (u.last_login, u.last_content));
    sim.record_event(&u.id, EventKind::Upload, later);
    let after = sim.user(&u.id).unwrap();
    assert_eq!(after.last_login, u.last_login, "an upload is not a login");
    assert_eq!(after.last_content, Some(later));
    let late = later - CDuration::days(30);
    sim.record_delayed_event(&u.id, EventKind::Preview, late);
    assert_eq!(
        sim.user(&u.id).unwrap().last_content,
        Some(later),
        "an older late event"
    );
}

#[tokio::test]
async fn anonymous_content_events_are_nobodys_activity() {
    let sim = sim(spec(50, 180)).await;
    let before = sim.users();
    let count = sim.content_event_count();
    let later = sim.now() + CDuration::hours(1);
    sim.record_anonymous_event(EventKind::Preview, later);
    sim.record_anonymous_event(EventKind::Download, later);
    assert_eq!(sim.users(), before);
    assert_eq!(sim.content_event_count(), count + 2);
    let t = admin_token(&sim);
    let (_, end) = get(
        &sim,
        &t,
        &format!(
            "/events?stream_type=admin_logs&event_type=PREVIEW,DOWNLOAD&created_after={}",
            urlencode(&(later - CDuration::seconds(1)).to_rfc3339())
        ),
    )
    .await;
    let entries = end["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e["created_by"]["id"] == "2"));
}

#[tokio::test]
async fn content_events_validate_against_the_openapi_file_and_name_an_item() {
    let Some(path) = box_sim::contract::default_spec_path() else {
        println!("contract: skipped: spec not found");
        return;
    };
    let sim = sim(spec(100, 60)).await;
    let t = admin_token(&sim);
    let (events, _) = read_all_events(&sim, &t, &format!("&event_type={CONTENT}")).await;
    let report = sim.contract_report();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert!(report.checked > 1);
    let validator = box_sim::contract::SpecValidator::load(&path).unwrap();
    let kinds: std::collections::HashSet<_> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert!(kinds.len() >= 11, "{kinds:?}");
    for e in events.iter().step_by(7) {
        let source = &e["source"];
        validator
            .validate_schema("EventSource", source)
            .unwrap_or_else(|v| panic!("{source}: {v:?}"));
        assert!(["file", "folder"].contains(&source["item_type"].as_str().unwrap()));
    }
    // The validator is not a rubber stamp.
    assert!(
        validator
            .validate_schema("EventSource", &serde_json::json!({"type": "user", "id": "1"}))
            .is_err()
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

//! `GET /licenses/users`: filters, order, cursors that visit every user once and refuse forgery or
//! reuse elsewhere, tenant isolation, and the CSV export.

use chrono::{Duration, Utc};
use seatsync::audit::{AuditAction, AuditLog, AuditOutcome, AuditRecord};
use seatsync::boxapi::{Role, UserStatus};
use seatsync::license::{Activity, ActivityOrigin, ActivitySignal, UserKind};
use seatsync::settings::{SettingsStore, TenantSettings};
use seatsync::sync::LicenseStore;
use seatsync_tests::apigw::ApiRequest;
use serde_json::Value;

use crate::reports_fixture::{Reports, at, claims, parse_csv, send_big, tenant, user};

/// 25 users covering every state, role and kind (ids 1..=25).
async fn seeded(r: &Reports, t: &str) {
    let mut users: Vec<_> = (1..=10).map(|i| user(i, Some(i as i64))).collect();
    users.extend((11..=15).map(|i| user(i, Some(100))));
    users.push(user(16, None));
    users.push(user(17, None));
    let mut u = user(18, None);
    u.login_activity = Activity::NoData;
    users.push(u);
    let mut u = user(19, Some(200));
    u.status = UserStatus::Inactive;
    users.push(u);
    let mut u = user(20, Some(1));
    u.role = Some(Role::Admin);
    users.push(u);
    let mut u = user(21, Some(2));
    u.role = Some(Role::Coadmin);
    users.push(u);
    let mut u = user(22, Some(3));
    u.kind = UserKind::AppUser;
    users.push(u);
    let mut u = user(23, Some(4));
    u.kind = UserKind::External;
    users.push(u);
    let mut u = user(24, Some(5));
    u.removed_at = Some(Utc::now());
    users.push(u);
    users.push(user(25, Some(40)));
    r.put_users(t, &users).await;
}

fn ids(body: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["box_user_id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn filters_select_by_state_role_kind_and_inactive_days() {
    let r = Reports::new().await;
    seeded(&r, "acme").await;
    let cases: Vec<(&str, Vec<u64>)> = vec![
        ("state=active", (1..=10).chain([20, 21, 25]).collect()),
        ("state=inactive", (11..=17).collect()),
        ("state=inactive&inactive_days=30", (11..=17).chain([25]).collect()),
        ("state=active&inactive_days=30", (1..=10).chain([20, 21]).collect()),
        ("state=never", vec![16, 17]),
        ("state=no_data", vec![18]),
        ("state=deactivated", vec![19]),
        ("state=removed", vec![24]),
        ("role=admin", vec![20]),
        ("role=coadmin", vec![21]),
        ("kind=app_user", vec![22]),
        ("kind=external", vec![23]),
        ("state=active&role=admin", vec![20]),
        ("", (1..=23).chain([25]).collect()),
    ];
    for (query, expected) in cases {
        let body = r.get_json("acme", "/licenses/users", query).await;
        assert_eq!(ids(&body), expected, "{query}");
        // (`state=removed` is not in the license summary; its one page counts it.)
        assert_eq!(body["total"], expected.len(), "{query}");
    }
    // The tenant's threshold is the default for `inactive_days`.
    let settings = TenantSettings {
        inactivity_threshold_days: 30,
        ..TenantSettings::default()
    };
    SettingsStore::new(r.table.clone())
        .put(&tenant("acme"), &settings)
        .await
        .unwrap();
    let body = r.get_json("acme", "/licenses/users", "state=inactive").await;
    assert_eq!(ids(&body), (11..=17).chain([25]).collect::<Vec<_>>());
    let row = &r.get_json("acme", "/licenses/users", "state=never").await["users"][0];
    for field in [
        "box_user_id",
        "login",
        "name",
        "status",
        "role",
        "kind",
        "owns_content",
        "last_activity_at",
        "last_activity_source",
        "last_login_at",
        "last_login_source",
        "last_content_activity_at",
        "last_content_source",
        "activity_state",
        "first_seen_at",
        "removed_at",
    ] {
        assert!(row.get(field).is_some(), "{field} missing: {row}");
    }
    assert_eq!(row["activity_state"], "never");
}

#[tokio::test]
async fn users_are_sorted_by_last_activity_login_or_name_in_either_order() {
    let r = Reports::new().await;
    seeded(&r, "acme").await;
    let body = r
        .get_json("acme", "/licenses/users", "sort=last_activity&order=asc&limit=1000")
        .await;
    let users = body["users"].as_array().unwrap();
    assert_eq!(users[0]["activity_state"], "never", "never-active users come first");
    let times: Vec<_> = users.iter().filter_map(at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest activity first");
    let body = r
        .get_json("acme", "/licenses/users", "sort=last_activity&order=desc")
        .await;
    let times: Vec<_> = body["users"].as_array().unwrap().iter().filter_map(at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest activity first");
    for order in ["asc", "desc"] {
        let body = r
            .get_json("acme", "/licenses/users", &format!("sort=login&order={order}"))
            .await;
        let logins: Vec<String> = body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["login"].as_str().unwrap().to_owned())
            .collect();
        let mut sorted = logins.clone();
        sorted.sort();
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(logins, sorted, "{order}");
    }
}

#[tokio::test]
async fn cursors_visit_every_synced_user_exactly_once_and_agree_with_the_report() {
    let r = Reports::new().await;
    r.sync_from_simulator("acme", 300).await;
    let stored = r.table.load_users(&tenant("acme")).await.unwrap();
    let listed: Vec<String> = stored
        .values()
        .filter(|u| u.removed_at.is_none())
        .map(|u| u.box_user_id.to_string())
        .collect();
    for query in ["limit=37", "limit=50&sort=login&order=desc", "limit=1000&sort=name"] {
        let ids = r.all_user_ids("acme", query).await;
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "{query}: no user twice");
        let mut expected = listed.clone();
        expected.sort();
        assert_eq!(unique, expected, "{query}: every user once");
    }
    let report = &r.get_json("acme", "/licenses", "").await["summary"];
    for (state, count) in [
        ("inactive", "inactive_at_threshold"),
        ("never", "never_logged_in"),
        ("deactivated", "deactivated"),
        ("active", "active"),
    ] {
        let body = r
            .get_json("acme", "/licenses/users", &format!("state={state}&limit=1"))
            .await;
        assert_eq!(body["total"], report[count], "state={state} vs {count}");
    }
}

#[tokio::test]
async fn forged_edited_or_foreign_cursors_are_refused() {
    let r = Reports::new().await;
    seeded(&r, "acme").await;
    seeded(&r, "globex").await;
    let first = r.get_json("acme", "/licenses/users", "limit=5").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    // The cursor works for its own query, with another page size too.
    let next = r
        .get_json("acme", "/licenses/users", &format!("limit=7&cursor={cursor}"))
        .await;
    assert_eq!(next["users"].as_array().unwrap().len(), 7);

    let mut edited = cursor.clone().into_bytes();
    let i = edited.len() / 2;
    edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    let forged = base64_url(r#"{"k":[0,"","1"],"h":"00000000000000000000000000000000"}"#);
    for (who, query) in [
        ("acme", "cursor=not-a-cursor!!".to_owned()),
        ("acme", format!("cursor={edited}")),
        ("acme", format!("cursor={forged}")),
        ("acme", format!("sort=login&cursor={cursor}")),
        ("acme", format!("state=active&cursor={cursor}")),
        ("globex", format!("limit=5&cursor={cursor}")),
    ] {
        let problem = r.get(who, "/licenses/users", &query).await.problem(400);
        assert_eq!(problem["field"], "cursor", "{who} {query}");
    }
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_users_audit_or_settings() {
    let r = Reports::new().await;
    seeded(&r, "globex").await;
    let settings = TenantSettings {
        seats_purchased: Some(999),
        protected_logins: vec!["ceo@globex.com".into()],
        ..TenantSettings::default()
    };
    SettingsStore::new(r.table.clone())
        .put(&tenant("globex"), &settings)
        .await
        .unwrap();
    let record = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at: Utc::now(),
        tenant: tenant("globex"),
        actor: "someone".into(),
        action: AuditAction::Deactivate,
        target_box_user_id: seatsync_tests::boxsim::box_id("11"),
        target_login: Some("user11@acme.com".into()),
        before_status: Some(UserStatus::Active),
        after_status: Some(UserStatus::Inactive),
        reason: Some("left".into()),
        request_id: "req-1".into(),
        idempotency_key: None,
        outcome: AuditOutcome::Done,
        detail: None,
    };
    AuditLog::new(r.table.clone()).append(&record).await.unwrap();

    let theirs = r.get_json("globex", "/audit", "").await;
    assert_eq!(theirs["records"].as_array().unwrap().len(), 1);
    assert_eq!(r.get_json("globex", "/licenses/users", "").await["total"], 24);

    let users = r.get_json("acme", "/licenses/users", "").await;
    assert_eq!(users["total"], 0);
    assert_eq!(users["users"], Value::Array(vec![]));
    let audit = r.get_json("acme", "/audit", "").await;
    assert_eq!(audit["records"], Value::Array(vec![]));
    let mine = r.get_json("acme", "/settings", "").await;
    assert_eq!(mine["seats_purchased"], Value::Null);
    assert_eq!(mine["protected_logins"], Value::Array(vec![]));
    // Query parameters and bodies cannot name a tenant.
    let problem = r.get("acme", "/licenses/users", "tenant_id=globex").await.problem(400);
    assert_eq!(problem["field"], "query");
    let missing = r
        .send(ApiRequest::authorized(
            "GET",
            "/licenses/users",
            serde_json::json!({"sub": "x"}),
        ))
        .await;
    missing.problem(401);
}

#[tokio::test]
async fn audit_pages_newest_first_with_a_cursor() {
    let r = Reports::new().await;
    let log = AuditLog::new(r.table.clone());
    let start = Utc::now() - chrono::Duration::hours(1);
    for n in 0..7 {
        let record = AuditRecord {
            id: format!("rec-{n}"),
            at: start + chrono::Duration::minutes(n),
            tenant: tenant("acme"),
            actor: "a".into(),
            action: AuditAction::Deactivate,
            target_box_user_id: seatsync_tests::boxsim::box_id(&n.to_string()),
            target_login: None,
            before_status: None,
            after_status: None,
            reason: None,
            request_id: "r".into(),
            idempotency_key: None,
            outcome: AuditOutcome::Refused,
            detail: Some("admins are never deactivated".into()),
        };
        log.append(&record).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut query = "limit=3".to_owned();
    loop {
        let page = r.get_json("acme", "/audit", &query).await;
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).rev().map(|n| format!("rec-{n}")).collect::<Vec<_>>());
    let first = r.get_json("acme", "/audit", "limit=3").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(
        r.get("globex", "/audit", &format!("cursor={cursor}"))
            .await
            .problem(400)["field"],
        "cursor"
    );
    assert_eq!(
        r.get("acme", "/audit", "limit=501").await.problem(400)["field"],
        "limit"
    );
    assert_eq!(
        r.get("acme", "/audit", "cursor=%%%").await.problem(400)["field"],
        "cursor"
    );
}

#[tokio::test]
async fn csv_export_of_10000_users_is_complete_quoted_and_formula_safe() {
    let r = Reports::new().await;
    let mut users: Vec<_> = (1..=10_001u64)
        .map(|i| user(100_000 + i, Some((i % 200) as i64)))
        .collect();
    users[0].name = Some("Smith, \"Jo\"\nJunior".into());
    users[1].name = Some("=HYPERLINK(\"http://evil\",\"x\")".into());
    users[2].login = Some("+1@acme.com".into());
    users[3].name = Some("@SUM(A1:A9)".into());
    users[4].name = Some("-2+3".into());
    r.put_users("acme", &users).await;

    let csv = |query: &str| {
        ApiRequest::authorized("GET", "/licenses/users", claims("acme"))
            .query(query)
            .header("accept", "text/csv")
    };
    let (status, headers, body) = send_big(&r.router, csv("sort=login")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"seatsync-users.csv\""
    );
    let records = parse_csv(&body);
    assert_eq!(records.len(), 10_000 + 1, "10,000 rows and the header");
    assert_eq!(
        records[0],
        [
            "box_user_id",
            "login",
            "name",
            "status",
            "role",
            "kind",
            "owns_content",
            "last_activity_at",
            "last_activity_source",
            "last_login_at",
            "last_login_source",
            "last_content_activity_at",
            "last_content_source",
            "activity_state",
            "first_seen_at",
            "removed_at",
        ]
    );
    assert!(records.iter().all(|r| r.len() == 16), "every record has 16 fields");
    let by_id = |id: u64| records.iter().find(|r| r[0] == id.to_string());
    // The 10,001st user (by login) is on the next page.
    let link = headers["link"].to_str().unwrap().to_owned();
    assert!(
        link.starts_with("</licenses/users?") && link.ends_with(">; rel=\"next\""),
        "{link}"
    );
    let next = link
        .trim_start_matches("</licenses/users?")
        .trim_end_matches(">; rel=\"next\"");
    let (status, headers2, body2) = send_big(&r.router, csv(next)).await;
    assert_eq!(status, 200);
    assert!(headers2.get("link").is_none(), "no more pages");
    let rest = parse_csv(&body2);
    assert_eq!(rest.len(), 1 + 1);
    let all: Vec<&Vec<String>> = records[1..].iter().chain(rest[1..].iter()).collect();
    let mut ids: Vec<&str> = all.iter().map(|r| r[0].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_001, "every user exactly once across the two responses");

    let find = |id: u64| {
        by_id(id)
            .or_else(|| rest.iter().find(|r| r[0] == id.to_string()))
            .unwrap()
            .clone()
    };
    assert_eq!(
        find(100_001)[2],
        "Smith, \"Jo\"\nJunior",
        "commas, quotes and newlines survive"
    );
    assert_eq!(find(100_002)[2], "'=HYPERLINK(\"http://evil\",\"x\")");
    assert_eq!(find(100_003)[1], "'+1@acme.com");
    assert_eq!(find(100_004)[2], "'@SUM(A1:A9)");
    assert_eq!(find(100_005)[2], "'-2+3");
    assert!(
        !body.contains("\n=") && !body.contains(",="),
        "no cell starts with a formula"
    );

    let (status, _, body) = send_big(&r.router, csv("limit=10001")).await;
    assert_eq!(status, 400, "{body}");
    let (status, headers, body) = send_big(&r.router, csv("limit=2&state=inactive&inactive_days=30")).await;
    assert_eq!(status, 200);
    assert_eq!(parse_csv(&body).len(), 3);
    let link = headers["link"].to_str().unwrap();
    assert!(
        link.contains("state=inactive") && link.contains("inactive_days=30") && link.contains("limit=2"),
        "{link}"
    );
}

/// A Drive-only user (1: content 2 days ago, last login 200 days ago) and a login-only user (2:
/// login 2 days ago, no content activity in the history read).
async fn drive_and_login_only(r: &Reports, t: &str) {
    let mut drive = user(1, Some(200));
    drive.content_activity = Activity::Seen {
        at: Utc::now() - Duration::days(2),
        origin: ActivityOrigin::BoxContent,
    };
    let mut login_only = user(2, Some(2));
    login_only.content_activity = Activity::Never;
    r.put_users(t, &[drive, login_only]).await;
}

async fn set_signal(r: &Reports, t: &str, signal: ActivitySignal) {
    let settings = TenantSettings {
        activity_signal: signal,
        ..TenantSettings::default()
    };
    SettingsStore::new(r.table.clone())
        .put(&tenant(t), &settings)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_drive_only_user_is_working_and_a_login_only_user_is_login_only_with_both_dates() {
    let r = Reports::new().await;
    drive_and_login_only(&r, "acme").await;
    let body = r.get_json("acme", "/licenses/users", "sort=login").await;
    assert_eq!(body["activity_signal"], "any");
    let (drive, login) = (&body["users"][0], &body["users"][1]);
    assert_eq!(drive["activity_state"], "working", "{drive}");
    assert_eq!(drive["last_content_source"], "box_content");
    assert_eq!(drive["last_login_source"], "box_login");
    let day = |v: &Value| v.as_str().unwrap()[..10].to_owned();
    let days_ago = |d: i64| (Utc::now() - Duration::days(d)).format("%Y-%m-%d").to_string();
    assert_eq!(day(&drive["last_content_activity_at"]), days_ago(2));
    assert_eq!(day(&drive["last_login_at"]), days_ago(200));
    assert_eq!(
        day(&drive["last_activity_at"]),
        days_ago(2),
        "signal any: the later date"
    );
    assert_eq!(login["activity_state"], "login_only", "{login}");
    assert_eq!(day(&login["last_login_at"]), days_ago(2));
    assert_eq!(login["last_content_activity_at"], Value::Null);
    assert_eq!(login["last_content_source"], Value::Null);
    let r = &r;
    let one = |q: &'static str| async move { ids(&r.get_json("acme", "/licenses/users", q).await) };
    assert_eq!(one("state=working").await, [1]);
    assert_eq!(one("state=login_only").await, [2]);
    assert_eq!(one("state=active").await, [1, 2], "old clients: working or login-only");

    // The CSV has both dates and the state.
    let (status, _, text) = send_big(
        &r.router,
        ApiRequest::authorized("GET", "/licenses/users", claims("acme"))
            .query("sort=login")
            .header("accept", "text/csv"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let records = parse_csv(&text);
    let column = |name: &str| records[0].iter().position(|h| h == name).unwrap();
    let drive_csv = &records[1];
    assert_eq!(&drive_csv[column("last_content_activity_at")][..10], days_ago(2));
    assert_eq!(drive_csv[column("last_content_source")], "box_content");
    assert_eq!(&drive_csv[column("last_login_at")][..10], days_ago(200));
    assert_eq!(drive_csv[column("last_login_source")], "box_login");
    assert_eq!(drive_csv[column("activity_state")], "working");
    assert_eq!(records[2][column("activity_state")], "login_only");
    assert_eq!(records[2][column("last_content_activity_at")], "");
}

#[tokio::test]
async fn the_inactive_filter_follows_the_tenants_activity_signal() {
    let r = Reports::new().await;
    drive_and_login_only(&r, "acme").await;
    let inactive = || async {
        ids(&r
            .get_json("acme", "/licenses/users", "state=inactive&inactive_days=30")
            .await)
    };
    assert!(inactive().await.is_empty(), "signal any: both used Box 2 days ago");
    set_signal(&r, "acme", ActivitySignal::Content).await;
    assert_eq!(inactive().await, [2], "signal content: the login-only user is inactive");
    let body = r.get_json("acme", "/licenses/users", "sort=last_activity").await;
    assert_eq!(body["activity_signal"], "content");
    assert_eq!(body["users"][0]["box_user_id"], "2", "no content activity sorts first");
    assert_eq!(
        body["users"][1]["activity_state"], "working",
        "states do not depend on the signal"
    );
    set_signal(&r, "acme", ActivitySignal::Login).await;
    assert_eq!(inactive().await, [1], "signal login: the Drive-only user is inactive");
}

#[tokio::test]
async fn a_cursor_is_refused_after_the_tenant_changes_its_activity_signal() {
    let r = Reports::new().await;
    seeded(&r, "acme").await;
    let first = r.get_json("acme", "/licenses/users", "limit=5").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    set_signal(&r, "acme", ActivitySignal::Content).await;
    let response = r
        .get("acme", "/licenses/users", &format!("limit=5&cursor={cursor}"))
        .await;
    assert_eq!(response.status, 400, "{}", String::from_utf8_lossy(&response.body));
}

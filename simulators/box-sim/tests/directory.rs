//! Users, user changes, events and the generator.

mod helpers;

use std::collections::HashSet;

use box_sim::{EnterpriseSpec, Faults, Plan, SimConfig};
use chrono::{Duration as CDuration, Utc};
use helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

fn big(users: usize) -> SimConfig {
    SimConfig {
        enterprise: EnterpriseSpec {
            users,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn generator_is_deterministic() {
    // History is generated back from "now": pin it, or two starts a second apart differ.
    let now = Some(
        chrono::DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
            .unwrap()
            .to_utc(),
    );
    // A month of history: the whole stream, content included, is read twice.
    let month = |seed: u64| {
        let mut c = SimConfig { seed, now, ..big(300) };
        c.enterprise.history_days = 30;
        c
    };
    let a = sim(month(7)).await;
    let b = sim(month(7)).await;
    let c = sim(month(8)).await;
    assert_eq!(a.users(), b.users());
    assert_ne!(a.users(), c.users());
    assert_eq!(a.login_event_count(), b.login_event_count());
    let (ea, _) = read_all_events(&a, &admin_token(&a), "").await;
    let (eb, _) = read_all_events(&b, &admin_token(&b), "").await;
    assert_eq!(ea, eb);
}

#[tokio::test]
async fn generated_enterprise_matches_the_spec() {
    let sim = sim(big(200)).await;
    let users = sim.users();
    let managed: Vec<_> = users.iter().filter(|u| !u.is_app_user && !u.is_external).collect();
    assert_eq!(managed.len(), 200);
    assert_eq!(users.iter().filter(|u| u.is_app_user).count(), 8);
    assert_eq!(users.iter().filter(|u| u.is_external).count(), 3);
    assert!(users.iter().filter(|u| u.role == "admin").count() >= 1);
    assert_eq!(
        managed
            .iter()
            .filter(|u| u.last_login.is_none() && u.last_content.is_none())
            .count(),
        20,
        "never_logged_in 10%"
    );
    assert_eq!(managed.iter().filter(|u| u.status == "inactive").count(), 12);
    let ids: HashSet<_> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), users.len());
    assert!(users.iter().all(|u| u.id.bytes().all(|b| b.is_ascii_digit())));
    let admin = sim.user(&sim.primary_admin_id()).unwrap();
    assert!(admin.owns_content && admin.last_login.is_some());
    assert!(
        managed[5].login.ends_with("@acmeinc.example.com"),
        "{}",
        managed[5].login
    );
}

#[tokio::test]
async fn exact_total_login_events_are_generated() {
    let config = SimConfig {
        enterprise: EnterpriseSpec {
            users: 1000,
            history_days: 365,
            total_login_events: Some(20_000),
            ..Default::default()
        },
        ..Default::default()
    };
    let sim = sim(config).await;
    assert_eq!(sim.login_event_count(), 20_000);
}

#[tokio::test]
async fn offset_paging_reports_total_count() {
    let sim = sim(big(120)).await;
    let t = admin_token(&sim);
    let (s, body) = get(&sim, &t, "/users?user_type=managed&limit=50&offset=100").await;
    assert_eq!(s, 200);
    let expected = sim.users().iter().filter(|u| !u.is_external).count();
    assert_eq!(body["total_count"], expected);
    assert_eq!(body["offset"], 100);
    assert_eq!(body["entries"].as_array().unwrap().len(), expected - 100);
}

#[tokio::test]
async fn offset_past_10000_is_rejected() {
    let sim = sim(SimConfig::default()).await;
    let (s, body) = get(&sim, &admin_token(&sim), "/users?offset=10001").await;
    assert_eq!(s, 400);
    assert_eq!(body["type"], "error");
    assert_eq!(body["status"], 400);
    assert_eq!(get(&sim, &admin_token(&sim), "/users?offset=10000").await.0, 200);
}

#[tokio::test]
async fn marker_paging_returns_each_user_once() {
    let sim = sim(big(2500)).await;
    let t = admin_token(&sim);
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &marker {
            Some(m) => format!("/users?usemarker=true&limit=1000&marker={m}"),
            None => "/users?usemarker=true&limit=1000".to_string(),
        };
        let (s, body) = get(&sim, &t, &q).await;
        assert_eq!(s, 200);
        assert!(body.get("total_count").is_none());
        pages += 1;
        seen.extend(
            body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_string()),
        );
        match body["next_marker"].as_str() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    // `user_type=all` without a term lists no external users (they need their exact login).
    let all: Vec<_> = sim.users().into_iter().filter(|u| !u.is_external).collect();
    assert_eq!(pages, all.len().div_ceil(1000));
    assert_eq!(seen.len(), all.len());
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), all.len());
}

#[tokio::test]
async fn user_type_selects_managed_users_and_leaves_external_ones_out() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let (_, managed) = get(&sim, &t, "/users?user_type=managed&limit=1000").await;
    let entries = managed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 52, "50 managed + 2 app users");
    let (_, all) = get(&sim, &t, "/users?user_type=all").await;
    assert_eq!(all["total_count"], 52, "the 3 external users need their exact login");
}

fn ids(body: &Value) -> Vec<String> {
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn external_users_are_found_only_by_their_exact_login() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let external = sim
        .users()
        .into_iter()
        .find(|u| u.is_external)
        .expect("an external user");
    let login = url::form_urlencoded::byte_serialize(external.login.as_bytes()).collect::<String>();
    let prefix: String = external.login.chars().take(external.login.len() - 1).collect();
    let prefix = url::form_urlencoded::byte_serialize(prefix.as_bytes()).collect::<String>();

    let (status, no_term) = get(&sim, &t, "/users?user_type=external").await;
    assert_eq!(status, 200);
    assert_eq!((no_term["total_count"].as_u64(), ids(&no_term)), (Some(0), vec![]));
    let (_, marker) = get(&sim, &t, "/users?user_type=external&usemarker=true").await;
    assert_eq!(ids(&marker), Vec::<String>::new());
    let (_, by_prefix) = get(&sim, &t, &format!("/users?user_type=external&filter_term={prefix}")).await;
    assert_eq!(ids(&by_prefix), Vec::<String>::new());
    let (_, exact) = get(&sim, &t, &format!("/users?user_type=external&filter_term={login}")).await;
    assert_eq!(ids(&exact), vec![external.id.clone()]);
    let (_, all_exact) = get(&sim, &t, &format!("/users?user_type=all&filter_term={login}")).await;
    assert_eq!(
        ids(&all_exact),
        vec![external.id],
        "an exact external match is the only answer"
    );
    assert_eq!(sim.contract_report().violations, Vec::<String>::new());
}

#[tokio::test]
async fn fields_return_mini_fields_plus_those_asked() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let (_, body) = get(&sim, &t, "/users?limit=1&fields=role,status,is_platform_access_only").await;
    let u = body["entries"][0].as_object().unwrap();
    let keys: HashSet<&str> = u.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from([
            "type",
            "id",
            "name",
            "login",
            "role",
            "status",
            "is_platform_access_only"
        ])
    );
    let (_, body) = get(&sim, &t, "/users?limit=1").await;
    let u = body["entries"][0].as_object().unwrap();
    assert!(u.contains_key("status") && u.contains_key("created_at"));
    assert!(!u.contains_key("role"), "role is not a standard field");
}

#[tokio::test]
async fn filter_term_matches_login_prefix() {
    let sim = sim(SimConfig::default()).await;
    let u = plain_user(&sim);
    let prefix: String = u.login.split('@').next().unwrap().to_string();
    let (_, body) = get(&sim, &admin_token(&sim), &format!("/users?filter_term={prefix}")).await;
    let ids: Vec<_> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&u.id));
    assert!(body["total_count"].as_u64().unwrap() < 5);
}

#[tokio::test]
async fn listing_users_needs_an_admin_token() {
    let sim = sim(SimConfig::default()).await;
    let t = sim.issue_tokens(&plain_user(&sim).id).access_token;
    let (s, body) = get(&sim, &t, "/users").await;
    assert_eq!(s, 403);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");
}

#[tokio::test]
async fn deactivate_and_reactivate_a_user() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let u = plain_user(&sim);
    let (s, body) = send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}", u.id),
        json!({"status": "inactive"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["status"], "inactive");
    assert_eq!(sim.user(&u.id).unwrap().status, "inactive");
    let (s, _) = send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}", u.id),
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(sim.user(&u.id).unwrap().status, "active");
}

#[tokio::test]
async fn bad_status_is_invalid_parameter_and_unknown_user_is_not_found() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let u = plain_user(&sim);
    let (s, body) = send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}", u.id),
        json!({"status": "sleeping"}),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (400, Some("invalid_parameter")));
    let (s, body) = send_json(&sim, Method::PUT, &t, "/users/1", json!({"status": "inactive"})).await;
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")));
    let own = sim.issue_tokens(&u.id).access_token;
    let other = sim.primary_admin_id();
    let (s, body) = send_json(
        &sim,
        Method::PUT,
        &own,
        &format!("/users/{other}"),
        json!({"status": "inactive"}),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (403, Some("access_denied_insufficient_permissions"))
    );
    assert_eq!(sim.user(&other).unwrap().status, "active");
}

#[tokio::test]
async fn content_owner_cannot_be_deleted() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let owner = sim
        .users()
        .into_iter()
        .find(|u| u.owns_content && u.id != sim.primary_admin_id() && !u.is_external)
        .unwrap();
    let r = client()
        .delete(format!("{}/2.0/users/{}?notify=false", sim.api_base(), owner.id))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    assert_eq!(body["message"], "User has managed content");
    assert!(sim.user(&owner.id).is_some());
    let r = client()
        .delete(format!("{}/2.0/users/{}?force=true", sim.api_base(), owner.id))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(sim.user(&owner.id).is_none());
}

#[tokio::test]
async fn transfer_then_delete_frees_the_user() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let admin = sim.primary_admin_id();
    let owner = sim
        .users()
        .into_iter()
        .find(|u| u.owns_content && u.id != admin && !u.is_external)
        .unwrap();
    let (s, folder) = send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}/folders/0?notify=false", owner.id),
        json!({"owned_by": {"id": admin}}),
    )
    .await;
    assert_eq!(s, 200, "{folder}");
    assert_eq!(folder["type"], "folder");
    assert_eq!(folder["owned_by"]["id"], admin.as_str());
    assert_eq!(
        folder["name"],
        format!("{} - {}'s Files and Folders", owner.login, owner.name)
    );
    assert!(!sim.user(&owner.id).unwrap().owns_content);
    let r = client()
        .delete(format!("{}/2.0/users/{}", sim.api_base(), owner.id))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn transfer_needs_root_readwrite() {
    let sim = sim(SimConfig::default()).await;
    let admin = sim.primary_admin_id();
    let t = sim
        .issue_tokens_with_scopes(&admin, &["manage_managed_users"])
        .access_token;
    let owner = sim
        .users()
        .into_iter()
        .find(|u| u.owns_content && u.id != admin && !u.is_external)
        .unwrap();
    let (s, body) = send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}/folders/0", owner.id),
        json!({"owned_by": {"id": admin}}),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (403, Some("insufficient_scope")));
    assert!(sim.user(&owner.id).unwrap().owns_content);
}

#[tokio::test]
async fn terminate_sessions_is_accepted_and_counted() {
    let sim = sim(SimConfig::default()).await;
    let u = plain_user(&sim);
    let (s, body) = send_json(
        &sim,
        Method::POST,
        &admin_token(&sim),
        "/users/terminate_sessions",
        json!({"user_ids": [u.id], "user_logins": []}),
    )
    .await;
    assert_eq!(s, 202);
    assert!(body["message"].as_str().unwrap().contains("successful"));
    assert_eq!(sim.terminated_sessions(), vec![u.id.clone()]);
    let (s, _) = send_json(
        &sim,
        Method::POST,
        &admin_token(&sim),
        "/users/terminate_sessions",
        json!({"user_logins": [u.login]}),
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(sim.terminated_sessions(), vec![u.id.clone(), u.id]);
}

#[tokio::test]
async fn events_are_chronological_unique_and_match_ground_truth() {
    let sim = sim(big(150)).await;
    let t = admin_token(&sim);
    let (events, pages) = read_all_events(&sim, &t, "&event_type=LOGIN").await;
    assert!(pages > 1);
    assert_eq!(events.len() as u64, sim.login_event_count());
    let ids: HashSet<_> = events.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
    let times: Vec<_> = events
        .iter()
        .map(|e| chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(events.iter().all(|e| e["event_type"] == "LOGIN"));
    for u in sim.users() {
        let last = events
            .iter()
            .filter(|e| e["created_by"]["id"] == u.id.as_str())
            .map(|e| {
                chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc)
            })
            .max();
        assert_eq!(last, u.last_login, "user {}", u.id);
    }
}

#[tokio::test]
async fn event_type_filter_and_window_apply() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let (all, _) = read_all_events(&sim, &t, "").await;
    let kinds: HashSet<_> = all
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains("LOGIN") && kinds.contains("FAILED_LOGIN") && kinds.contains("ADMIN_LOGIN"),
        "{kinds:?}"
    );
    let (failed, _) = read_all_events(&sim, &t, "&event_type=FAILED_LOGIN,ADMIN_LOGIN").await;
    assert_eq!(
        failed.len(),
        all.iter()
            .filter(|e| e["event_type"] == "FAILED_LOGIN" || e["event_type"] == "ADMIN_LOGIN")
            .count()
    );
    let after = (sim.now() - CDuration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (recent, _) = read_all_events(&sim, &t, &format!("&event_type=LOGIN&created_after={after}")).await;
    let cutoff = sim.now() - CDuration::days(30);
    let expected = all
        .iter()
        .filter(|e| {
            e["event_type"] == "LOGIN"
                && chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap()).unwrap() >= cutoff
        })
        .count();
    assert_eq!(recent.len(), expected);
    assert!(expected > 0);
}

#[tokio::test]
async fn exhausted_stream_keeps_its_position_and_sees_new_events() {
    let sim = sim(SimConfig::default()).await;
    let t = admin_token(&sim);
    let (all, _) = read_all_events(&sim, &t, "&event_type=LOGIN").await;
    let (_, end) = get(&sim, &t, "/events?stream_type=admin_logs&stream_position=now").await;
    let pos = end["next_stream_position"].as_str().unwrap().to_string();
    let (_, again) = get(
        &sim,
        &t,
        &format!("/events?stream_type=admin_logs&stream_position={pos}"),
    )
    .await;
    assert_eq!(again["chunk_size"], 0);
    assert_eq!(again["next_stream_position"], pos.as_str());
    let u = plain_user(&sim);
    sim.record_login(&u.id, sim.now());
    let (_, fresh) = get(
        &sim,
        &t,
        &format!("/events?stream_type=admin_logs&event_type=LOGIN&stream_position={pos}"),
    )
    .await;
    assert_eq!(fresh["chunk_size"], 1);
    assert_eq!(fresh["entries"][0]["created_by"]["id"], u.id.as_str());
    assert_eq!(sim.login_event_count(), all.len() as u64 + 1);
}

#[tokio::test]
async fn late_login_updates_ground_truth_only_when_newer() {
    let sim = sim(SimConfig::default()).await;
    let u = sim
        .users()
        .into_iter()
        .find(|u| u.last_login.is_some() && !u.is_app_user)
        .unwrap();
    let last = u.last_login.unwrap();
    sim.record_login(&u.id, last - CDuration::days(3));
    assert_eq!(sim.user(&u.id).unwrap().last_login, Some(last));
    let newer = last + CDuration::seconds(5);
    sim.record_login(&u.id, newer);
    assert_eq!(sim.user(&u.id).unwrap().last_login, Some(newer));
}

#[tokio::test]
async fn events_pages_can_be_short_while_more_remain() {
    let sim = sim(SimConfig {
        faults: Faults {
            short_pages: 0.5,
            ..Default::default()
        },
        ..big(150)
    })
    .await;
    let t = admin_token(&sim);
    let mut pos = String::new();
    let mut short_then_more = 0;
    let mut total = 0u64;
    loop {
        let q = format!(
            "/events?stream_type=admin_logs&event_type=LOGIN&limit=100{}",
            if pos.is_empty() {
                String::new()
            } else {
                format!("&stream_position={pos}")
            }
        );
        let (_, body) = get(&sim, &t, &q).await;
        let n = body["chunk_size"].as_u64().unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if n < 100 && total < sim.login_event_count() {
            short_then_more += 1;
        }
        pos = body["next_stream_position"].as_str().unwrap().to_string();
    }
    assert!(short_then_more > 0);
    assert_eq!(total, sim.login_event_count(), "no event lost across short pages");
}

#[tokio::test]
async fn business_plan_events_are_forbidden() {
    let sim = sim(SimConfig {
        enterprise: EnterpriseSpec {
            plan: Plan::Business,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let (s, body) = get(
        &sim,
        &admin_token(&sim),
        "/events?stream_type=admin_logs&event_type=LOGIN",
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(body["type"], "error");
    sim.set_plan(Plan::Enterprise);
    assert_eq!(
        get(&sim, &admin_token(&sim), "/events?stream_type=admin_logs").await.0,
        200
    );
}

#[tokio::test]
async fn plain_user_cannot_read_events() {
    let sim = sim(SimConfig::default()).await;
    let t = sim.issue_tokens(&plain_user(&sim).id).access_token;
    assert_eq!(get(&sim, &t, "/events?stream_type=admin_logs").await.0, 403);
}

#[tokio::test]
async fn a_million_events_serve_pages_fast() {
    let config = SimConfig {
        enterprise: EnterpriseSpec {
            users: 100_000,
            history_days: 365,
            total_login_events: Some(1_000_000),
            other_events: false,
            // Logins alone: ten million content events would take a debug build most of a minute.
            content_events: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let sim = sim(config).await;
    let built = started.elapsed();
    assert_eq!(sim.login_event_count(), 1_000_000);
    let t = admin_token(&sim);
    let after = (sim.now() - CDuration::days(200)).to_rfc3339();
    let started = std::time::Instant::now();
    let mut pos = String::new();
    for _ in 0..20 {
        let q = format!(
            "/events?stream_type=admin_logs&event_type=LOGIN&limit=500&created_after={}{}",
            urlencode(&after),
            if pos.is_empty() {
                String::new()
            } else {
                format!("&stream_position={pos}")
            }
        );
        let (s, body) = get(&sim, &t, &q).await;
        assert_eq!(s, 200);
        assert_eq!(body["chunk_size"], 500);
        pos = body["next_stream_position"].as_str().unwrap().to_string();
    }
    let paged = started.elapsed();
    println!("1M events: built in {built:?}, 20 pages of 500 in {paged:?}");
    assert!(paged < std::time::Duration::from_secs(10));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

//! Drives every endpoint, success and error paths, with contract validation against Box's OpenAPI
//! file switched on, and requires zero violations.

mod helpers;

use box_sim::{Endpoint, EnterpriseSpec, Fault, Plan, SimConfig};
use helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_response_validates_against_openapi() {
    let Some(spec) = box_sim::contract::default_spec_path() else {
        println!(
            "contract: skipped: spec not found (set SEATSYNC_BOX_OPENAPI or put it at ../shared/box-openapi/openapi.json)"
        );
        return;
    };
    let config = SimConfig {
        contract_spec: Some(spec),
        enterprise: EnterpriseSpec {
            users: 120,
            ..Default::default()
        },
        ..Default::default()
    };
    let sim = sim(config).await;
    let base = sim.api_base();
    let c = client();

    // OAuth: authorize, every grant and its errors, revoke.
    let r = c.get(format!("{base}/api/oauth2/authorize?response_type=code&client_id=sim-client-id&redirect_uri=https%3A%2F%2Fa.example%2Fcb&state=s")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let code = sim.issue_code(&sim.primary_admin_id());
    let (s, tokens) = exchange_code(&sim, &code).await;
    assert_eq!(s, 200);
    assert_eq!(exchange_code(&sim, &code).await.0, 400);
    let (s, rotated) = refresh(&sim, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(refresh(&sim, "bogus").await.0, 400);
    let eid = sim.enterprise_id();
    let (s, _) = token_form(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
            ("box_subject_type", "enterprise"),
            ("box_subject_id", &eid),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(token_form(&sim, &[("grant_type", "nope")]).await.0, 400);
    assert_eq!(
        token_form(
            &sim,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "x"),
                ("client_secret", "y")
            ]
        )
        .await
        .0,
        400
    );
    let r = c
        .post(format!("{base}/oauth2/revoke"))
        .form(&[
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
            ("token", rotated["access_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{base}/oauth2/revoke"))
        .form(&[("client_id", "bad")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Users.
    let t = admin_token(&sim);
    let user = plain_user(&sim);
    let admin = sim.primary_admin_id();
    for q in [
        "/users/me",
        "/users/me?fields=role,enterprise,status,is_platform_access_only,created_at",
        "/users?limit=1000",
        "/users?user_type=managed&fields=name,login,status,role,created_at,modified_at,space_used,is_platform_access_only,enterprise,external_app_user_id,tracking_codes,notification_email&limit=1000",
        "/users?user_type=external",
        "/users?usemarker=true&limit=50",
        "/users?filter_term=zzzz",
        "/users?offset=10001",
        "/users?user_type=bogus",
        "/users?usemarker=true&marker=@@@",
        "/users/1",
    ] {
        get(&sim, &t, q).await;
    }
    assert_eq!(
        get(&sim, &t, &format!("/users/{}?fields=role,status", user.id)).await.0,
        200
    );
    let (_, page) = get(&sim, &t, "/users?usemarker=true&limit=50").await;
    let (s, _) = get(
        &sim,
        &t,
        &format!(
            "/users?usemarker=true&limit=50&marker={}",
            page["next_marker"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(s, 200);
    let plain = sim.issue_tokens(&user.id).access_token;
    assert_eq!(get(&sim, &plain, "/users").await.0, 403);
    assert_eq!(get(&sim, "nope", "/users/me").await.0, 401);

    // Changes.
    assert_eq!(
        send_json(
            &sim,
            Method::PUT,
            &t,
            &format!("/users/{}", user.id),
            json!({"status": "inactive"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send_json(
            &sim,
            Method::PUT,
            &t,
            &format!("/users/{}?fields=status", user.id),
            json!({"status": "active"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send_json(
            &sim,
            Method::PUT,
            &t,
            &format!("/users/{}", user.id),
            json!({"status": "bogus"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        send_json(
            &sim,
            Method::PUT,
            &plain,
            &format!("/users/{admin}"),
            json!({"status": "inactive"})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        send_json(&sim, Method::PUT, &t, "/users/1", json!({"status": "inactive"}))
            .await
            .0,
        404
    );
    let owner = sim
        .users()
        .into_iter()
        .find(|u| u.owns_content && u.id != admin && u.id != user.id && !u.is_external)
        .unwrap();
    let r = c
        .delete(format!("{base}/2.0/users/{}", owner.id))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (s, _) = send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}/folders/0", owner.id),
        json!({"owned_by": {"id": admin}}),
    )
    .await;
    assert_eq!(s, 200);
    let narrow = sim
        .issue_tokens_with_scopes(&admin, &["manage_managed_users"])
        .access_token;
    assert_eq!(
        send_json(
            &sim,
            Method::PUT,
            &narrow,
            &format!("/users/{}/folders/0", user.id),
            json!({"owned_by": {"id": admin}})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        send_json(
            &sim,
            Method::PUT,
            &t,
            &format!("/users/{}/folders/0", user.id),
            json!({})
        )
        .await
        .0,
        400
    );
    let r = c
        .delete(format!("{base}/2.0/users/{}?notify=false&force=false", owner.id))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        send_json(
            &sim,
            Method::POST,
            &t,
            "/users/terminate_sessions",
            json!({"user_ids": [user.id]})
        )
        .await
        .0,
        202
    );
    assert_eq!(
        send_json(&sim, Method::POST, &t, "/users/terminate_sessions", json!({}))
            .await
            .0,
        400
    );
    assert_eq!(
        send_json(
            &sim,
            Method::POST,
            &t,
            "/users/terminate_sessions",
            json!({"user_ids": ["1"]})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send_json(
            &sim,
            Method::POST,
            &plain,
            "/users/terminate_sessions",
            json!({"user_ids": [admin]})
        )
        .await
        .0,
        403
    );

    // Events, every event type, errors.
    let (events, _) = read_all_events(&sim, &t, "").await;
    assert!(
        events.iter().any(|e| e["created_by"]["id"] == "2"),
        "anonymous failed logins are covered"
    );
    get(&sim, &t, "/events?stream_type=admin_logs&event_type=LOGIN&created_after=2020-01-01T00:00:00Z&created_before=2100-01-01T00:00:00Z&limit=500").await;
    assert_eq!(
        get(&sim, &t, "/events?stream_type=admin_logs&created_after=yesterday")
            .await
            .0,
        400
    );
    assert_eq!(get(&sim, &plain, "/events?stream_type=admin_logs").await.0, 403);
    sim.set_plan(Plan::Business);
    assert_eq!(get(&sim, &t, "/events?stream_type=admin_logs").await.0, 403);
    sim.set_plan(Plan::Enterprise);

    // Faults on each kind of endpoint.
    for (ep, status) in [
        (Endpoint::Users, 429),
        (Endpoint::Events, 503),
        (Endpoint::UsersMe, 500),
        (Endpoint::UserUpdate, 502),
        (Endpoint::TerminateSessions, 429),
        (Endpoint::Token, 503),
        (Endpoint::UserDelete, 500),
        (Endpoint::TransferContent, 503),
    ] {
        sim.inject(
            ep,
            1,
            Fault::Status {
                status,
                retry_after: Some(1),
            },
        );
    }
    get(&sim, &t, "/users").await;
    get(&sim, &t, "/events?stream_type=admin_logs").await;
    get(&sim, &t, "/users/me").await;
    send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}", user.id),
        json!({"status": "active"}),
    )
    .await;
    send_json(
        &sim,
        Method::POST,
        &t,
        "/users/terminate_sessions",
        json!({"user_ids": [user.id]}),
    )
    .await;
    refresh(&sim, "bogus").await;
    c.delete(format!("{base}/2.0/users/{}", user.id))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    send_json(
        &sim,
        Method::PUT,
        &t,
        &format!("/users/{}/folders/0", user.id),
        json!({"owned_by": {"id": admin}}),
    )
    .await;

    let report = sim.contract_report();
    assert!(
        report.violations.is_empty(),
        "{} violations:\n{}",
        report.violations.len(),
        report.violations.join("\n")
    );
    assert!(report.checked >= 50, "only {} responses checked", report.checked);
    println!(
        "contract: {} responses checked against openapi.json, 0 violations",
        report.checked
    );
}

#[test]
fn validator_catches_a_wrong_body() {
    let Some(spec) = box_sim::contract::default_spec_path() else {
        println!("contract: skipped: spec not found");
        return;
    };
    let v = box_sim::contract::SpecValidator::load(&spec).unwrap();
    assert!(
        v.validate(
            "GET",
            "/users/me",
            200,
            &json!({"type": "user", "id": "1", "status": "asleep"})
        )
        .is_err()
    );
    assert!(
        v.validate("GET", "/events", 200, &json!({"chunk_size": "two"}))
            .is_err()
    );
    assert!(
        v.validate(
            "GET",
            "/users/me",
            200,
            &json!({"type": "user", "id": "1", "notification_email": null})
        )
        .is_ok()
    );
    // Box answers specific codes beyond the spec's enum; they are accepted.
    assert!(
        v.validate(
            "GET",
            "/users",
            400,
            &json!({"type": "error", "status": 400, "code": "invalid_parameter"})
        )
        .is_ok()
    );
    assert!(v.validate("GET", "/nowhere", 200, &json!({})).is_err());
}

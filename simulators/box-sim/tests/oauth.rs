//! OAuth behaviour: authorize, code exchange, refresh rotation, client credentials, revoke, bearer checks.

mod helpers;

use std::time::Duration;

use box_sim::SimConfig;
use helpers::*;

async fn authorize(sim: &box_sim::BoxSim, extra: &str) -> reqwest::Response {
    client()
        .get(format!(
            "{}/api/oauth2/authorize?response_type=code&client_id=sim-client-id&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz{extra}",
            sim.account_base()
        ))
        .send()
        .await
        .unwrap()
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state_that_exchange_for_tokens() {
    let sim = sim(SimConfig::default()).await;
    let r = authorize(&sim, "&scope=manage_managed_users%20root_readwrite").await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("https://app.example/cb?"), "{loc}");
    let q = query_of(&loc);
    assert_eq!(q["state"], "xyz");
    let (s, body) = exchange_code(&sim, &q["code"]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    let at = body["access_token"].as_str().unwrap();
    let (s, me) = get(&sim, at, "/users/me?fields=role,enterprise").await;
    assert_eq!(s, 200);
    assert_eq!(me["id"], sim.primary_admin_id());
    assert_eq!(me["role"], "admin");
    assert_eq!(me["enterprise"]["id"], sim.enterprise_id());
    // The grant remembers the scopes asked for: no manage_enterprise_properties, so no events.
    let (s, err) = get(&sim, at, "/events?stream_type=admin_logs").await;
    assert_eq!(s, 403);
    assert_eq!(err["code"], "insufficient_scope");
    assert!(sim.issued_secrets().contains(&q["code"]));
}

#[tokio::test]
async fn denied_consent_redirects_with_access_denied() {
    let sim = sim(SimConfig::default()).await;
    sim.set_deny_consent(true);
    let r = authorize(&sim, "").await;
    assert_eq!(r.status(), 302);
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "xyz");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn authorize_rejects_unknown_client_and_wrong_redirect_uri() {
    let sim = sim(SimConfig {
        redirect_uri: Some("https://app.example/cb".into()),
        ..Default::default()
    })
    .await;
    let r = client()
        .get(format!("{}/api/oauth2/authorize?response_type=code&client_id=nope&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s", sim.account_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .get(format!("{}/api/oauth2/authorize?response_type=code&client_id=sim-client-id&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s", sim.account_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(authorize(&sim, "").await.status(), 302);
}

#[tokio::test]
async fn manual_consent_shows_a_page_then_redirects() {
    let sim = sim(SimConfig {
        auto_consent: false,
        ..Default::default()
    })
    .await;
    let r = authorize(&sim, "").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("Grant access"));
    let r = authorize(&sim, "&sim_consent=1").await;
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn consenting_user_decides_who_the_tokens_belong_to() {
    let sim = sim(SimConfig::default()).await;
    let u = plain_user(&sim);
    sim.set_consenting_user(&u.id);
    let q = query_of(authorize(&sim, "").await.headers()["location"].to_str().unwrap());
    let (_, body) = exchange_code(&sim, &q["code"]).await;
    let (_, me) = get(&sim, body["access_token"].as_str().unwrap(), "/users/me").await;
    assert_eq!(me["id"], u.id);
}

#[tokio::test]
async fn code_is_single_use() {
    let sim = sim(SimConfig::default()).await;
    let code = sim.issue_code(&sim.primary_admin_id());
    assert_eq!(exchange_code(&sim, &code).await.0, 200);
    let (s, body) = exchange_code(&sim, &code).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn code_expires_after_30_seconds() {
    let sim = sim(SimConfig::default()).await;
    let fresh = sim.issue_code(&sim.primary_admin_id());
    let stale = sim.issue_code(&sim.primary_admin_id());
    sim.advance(Duration::from_secs(20));
    assert_eq!(exchange_code(&sim, &fresh).await.0, 200);
    sim.advance(Duration::from_secs(11));
    let (s, body) = exchange_code(&sim, &stale).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "The authorization code has expired");
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let sim = sim(SimConfig::default()).await;
    let code = sim.issue_code(&sim.primary_admin_id());
    let (s, body) = token_form(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "sim-client-id"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "invalid_client");
    let (s, body) = token_form(
        &sim,
        &[
            ("grant_type", "password"),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn token_redirect_uri_must_match_the_configured_one() {
    let sim = sim(SimConfig {
        redirect_uri: Some("https://app.example/cb".into()),
        ..Default::default()
    })
    .await;
    let code = sim.issue_code(&sim.primary_admin_id());
    let form = |r| {
        vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
            ("redirect_uri", r),
        ]
    };
    let (s, body) = token_form(&sim, &form("https://evil.example/cb")).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let code = sim.issue_code(&sim.primary_admin_id());
    let form2 = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "sim-client-id"),
        ("client_secret", "sim-client-secret"),
        ("redirect_uri", "https://app.example/cb"),
    ];
    assert_eq!(token_form(&sim, &form2).await.0, 200);
}

#[tokio::test]
async fn refresh_token_is_single_use() {
    let sim = sim(SimConfig::default()).await;
    let pair = sim.issue_tokens(&sim.primary_admin_id());
    let (s, first) = refresh(&sim, &pair.refresh_token).await;
    assert_eq!(s, 200);
    assert_ne!(first["refresh_token"], pair.refresh_token.as_str());
    let (s, again) = refresh(&sim, &pair.refresh_token).await;
    assert_eq!(s, 400);
    assert_eq!(again["error"], "invalid_grant");
    // The rotated one works once.
    assert_eq!(refresh(&sim, first["refresh_token"].as_str().unwrap()).await.0, 200);
}

#[tokio::test]
async fn refresh_invalidates_the_old_access_token() {
    let sim = sim(SimConfig::default()).await;
    let pair = sim.issue_tokens(&sim.primary_admin_id());
    assert_eq!(get(&sim, &pair.access_token, "/users/me").await.0, 200);
    let (_, new) = refresh(&sim, &pair.refresh_token).await;
    assert_eq!(get(&sim, &pair.access_token, "/users/me").await.0, 401);
    assert_eq!(
        get(&sim, new["access_token"].as_str().unwrap(), "/users/me").await.0,
        200
    );
}

#[tokio::test]
async fn access_token_expires_by_the_sim_clock() {
    let sim = sim(SimConfig {
        access_token_ttl: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let pair = sim.issue_tokens(&sim.primary_admin_id());
    assert_eq!(get(&sim, &pair.access_token, "/users/me").await.0, 200);
    sim.advance(Duration::from_secs(61));
    let r = client()
        .get(format!("{}/2.0/users/me", sim.api_base()))
        .bearer_auth(&pair.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert!(r.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_bearer_is_unauthorized() {
    let sim = sim(SimConfig::default()).await;
    let r = client()
        .get(format!("{}/2.0/users/me", sim.api_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn client_credentials_acts_as_an_admin_service_account_without_refresh_token() {
    let sim = sim(SimConfig::default()).await;
    let eid = sim.enterprise_id();
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", "sim-client-id"),
        ("client_secret", "sim-client-secret"),
        ("box_subject_type", "enterprise"),
    ];
    let mut form = base.to_vec();
    form.push(("box_subject_id", &eid));
    let (s, body) = token_form(&sim, &form).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    let at = body["access_token"].as_str().unwrap();
    let (s, users) = get(&sim, at, "/users?limit=5").await;
    assert_eq!(s, 200);
    assert_eq!(users["entries"].as_array().unwrap().len(), 5);
    let (_, me) = get(&sim, at, "/users/me").await;
    assert_eq!(me["id"], sim.service_account_id());
    let mut wrong = base.to_vec();
    wrong.push(("box_subject_id", "1"));
    assert_eq!(token_form(&sim, &wrong).await.1["error"], "invalid_grant");
}

#[tokio::test]
async fn client_credentials_can_be_disabled() {
    let sim = sim(SimConfig {
        ccg_enabled: false,
        ..Default::default()
    })
    .await;
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
    assert_eq!(s, 400);
}

#[tokio::test]
async fn revoke_kills_both_tokens_of_the_pair() {
    let sim = sim(SimConfig::default()).await;
    let pair = sim.issue_tokens(&sim.primary_admin_id());
    let r = client()
        .post(format!("{}/oauth2/revoke", sim.api_base()))
        .form(&[
            ("client_id", "sim-client-id"),
            ("client_secret", "sim-client-secret"),
            ("token", &pair.access_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().is_empty());
    assert_eq!(get(&sim, &pair.access_token, "/users/me").await.0, 401);
    assert_eq!(refresh(&sim, &pair.refresh_token).await.0, 400);
}

#[tokio::test]
async fn issued_secrets_lists_codes_and_tokens() {
    let sim = sim(SimConfig::default()).await;
    let code = sim.issue_code(&sim.primary_admin_id());
    let (_, body) = exchange_code(&sim, &code).await;
    let secrets = sim.issued_secrets();
    assert!(secrets.contains(&code));
    assert!(secrets.contains(&body["access_token"].as_str().unwrap().to_string()));
    assert!(secrets.contains(&body["refresh_token"].as_str().unwrap().to_string()));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sim = sim(SimConfig::default()).await;
    let base = sim.api_base();
    sim.shutdown().await;
    assert!(client().get(format!("{base}/2.0/users/me")).send().await.is_err());
}

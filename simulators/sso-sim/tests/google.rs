//! The Google simulator behaves as sso-activity.md describes: service-account assertions verified
//! against the configured public key, domain-wide delegation of the Reports scope, only the admin
//! reads reports, SAML activities filtered, paged by token, newest first, 180 days kept.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use sso_sim::google::{JWT_BEARER, REPORTS_SCOPE};
use sso_sim::{Endpoint, Fault, GoogleConfig, GoogleSim, SsoPerson, TestKey};

async fn sim(users: Vec<SsoPerson>, other: usize) -> GoogleSim {
    GoogleSim::start(GoogleConfig {
        users,
        other_app_events: other,
        ..GoogleConfig::default()
    })
    .await
    .unwrap()
}

/// A JWT signed RS256 with a PKCS#8 PEM key.
fn sign(private_pem: &str, claims: &Value) -> String {
    let b64: String = private_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = RsaKeyPair::from_pkcs8(&STANDARD.decode(b64).unwrap()).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig)
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(sim: &GoogleSim, sub: Option<&str>) -> Value {
    let now = Utc::now().timestamp();
    let mut c = json!({
        "iss": sim.config().service_account_email,
        "scope": REPORTS_SCOPE,
        "aud": sim.token_uri(),
        "iat": now,
        "exp": now + 3600,
    });
    if let Some(sub) = sub {
        c["sub"] = json!(sub);
    }
    c
}

async fn exchange(sim: &GoogleSim, grant_type: &str, assertion: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(sim.token_uri())
        .form(&[("grant_type", grant_type), ("assertion", assertion)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn bearer(sim: &GoogleSim, sub: &str) -> String {
    let assertion = sign(&TestKey::shared().private_pem, &claims(sim, Some(sub)));
    let (status, body) = exchange(sim, JWT_BEARER, &assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

fn saml_url(sim: &GoogleSim, query: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(&format!(
        "{}/admin/reports/v1/activity/users/all/applications/saml",
        sim.reports_base()
    ))
    .unwrap();
    url.query_pairs_mut().extend_pairs(query);
    url.to_string()
}

async fn get(url: &str, bearer: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.headers().clone(),
        resp.json().await.unwrap(),
    )
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn param<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item["events"][0]["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
}

#[tokio::test]
async fn the_token_endpoint_verifies_signature_issuer_audience_and_lifetime() {
    let sim = sim(vec![SsoPerson::new("a@acme.example")], 0).await;
    let admin = sim.config().admin_email.clone();
    let good = claims(&sim, Some(&admin));
    let key = &TestKey::shared().private_pem;
    assert_eq!(exchange(&sim, JWT_BEARER, &sign(key, &good)).await.0, 200);

    let other_key = TestKey::generate();
    let (status, body) = exchange(&sim, JWT_BEARER, &sign(&other_key.private_pem, &good)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    // A valid signature over other claims does not carry over to changed claims.
    let signed = sign(key, &good);
    let mut forged_claims = good.clone();
    forged_claims["sub"] = json!("a@acme.example");
    let parts: Vec<&str> = signed.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
        parts[2]
    );
    assert_eq!(
        exchange(&sim, JWT_BEARER, &forged).await.1["error_description"],
        "Invalid JWT Signature."
    );

    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("https://oauth2.googleapis.com/token");
    assert_eq!(exchange(&sim, JWT_BEARER, &sign(key, &wrong_aud)).await.0, 400);
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("someone@else.iam.gserviceaccount.com");
    assert_eq!(exchange(&sim, JWT_BEARER, &sign(key, &wrong_iss)).await.0, 400);
    let mut too_long = good.clone();
    too_long["exp"] = json!(good["iat"].as_i64().unwrap() + 3601);
    let (status, body) = exchange(&sim, JWT_BEARER, &sign(key, &too_long)).await;
    assert_eq!(status, 400);
    assert!(body["error_description"].as_str().unwrap().contains("short-lived"));
    let mut expired = good.clone();
    expired["iat"] = json!(good["iat"].as_i64().unwrap() - 7200);
    expired["exp"] = json!(good["iat"].as_i64().unwrap() - 3600);
    assert_eq!(exchange(&sim, JWT_BEARER, &sign(key, &expired)).await.0, 400);
    assert_eq!(exchange(&sim, "client_credentials", &sign(key, &good)).await.0, 400);
    assert_eq!(exchange(&sim, JWT_BEARER, "not.a.jwt").await.0, 400);
    assert_eq!(sim.counters().get(Endpoint::GoogleToken, 200), 1);
}

#[tokio::test]
async fn delegation_decides_the_scopes_and_only_the_admin_reads_reports() {
    let sim = GoogleSim::start(GoogleConfig {
        users: vec![SsoPerson::new("a@acme.example")],
        delegated_scopes: vec!["https://www.googleapis.com/auth/admin.directory.user.readonly".into()],
        ..GoogleConfig::default()
    })
    .await
    .unwrap();
    let key = &TestKey::shared().private_pem;
    let admin = sim.config().admin_email.clone();
    let (status, body) = exchange(&sim, JWT_BEARER, &sign(key, &claims(&sim, Some(&admin)))).await;
    assert_eq!(status, 401, "the Reports scope is not delegated");
    assert_eq!(body["error"], "unauthorized_client");

    let sim = sim_with_admin().await;
    let admin = sim.config().admin_email.clone();
    let (status, body) = exchange(&sim, JWT_BEARER, &sign(key, &claims(&sim, Some("nobody@acme.example")))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    let url = saml_url(&sim, &[]);
    let (status, _, body) = get(&url, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    let user_token = bearer(&sim, "a@acme.example").await;
    let (status, _, body) = get(&url, Some(&user_token)).await;
    assert_eq!(status, 403, "a user without report rights");
    assert_eq!(body["error"]["errors"][0]["reason"], "forbidden");
    let admin_token = bearer(&sim, &admin).await;
    assert_eq!(get(&url, Some(&admin_token)).await.0, 200);
    let wrong_customer = saml_url(&sim, &[("customerId", "C0other")]);
    assert_eq!(get(&wrong_customer, Some(&admin_token)).await.0, 403);
    sim.expire_tokens();
    assert_eq!(get(&url, Some(&admin_token)).await.0, 401, "expired tokens are refused");
}

async fn sim_with_admin() -> GoogleSim {
    sim(vec![SsoPerson::new("a@acme.example")], 0).await
}

#[tokio::test]
async fn saml_activities_filter_by_event_app_and_time_and_page_by_token() {
    let now = Utc::now();
    let people: Vec<SsoPerson> = (0..30)
        .map(|i| {
            SsoPerson::new(&format!("p{i}@acme.example"))
                .signed_in(now - TimeDelta::hours(i + 1))
                .failed_at(now - TimeDelta::minutes(i + 1))
                .signed_in(now - TimeDelta::days(20))
        })
        .collect();
    let sim = sim(people, 200).await;
    let token = bearer(&sim, &sim.config().admin_email.clone()).await;
    let start = iso(now - TimeDelta::days(2));
    let end = iso(now + TimeDelta::seconds(1));
    let base = [
        ("eventName", "login_success"),
        ("filters", "application_name==Box"),
        ("startTime", start.as_str()),
        ("endTime", end.as_str()),
        ("maxResults", "12"),
    ];
    let (mut items, mut pages, mut page_token) = (Vec::<Value>::new(), 0, None::<String>);
    loop {
        let mut query = base.to_vec();
        if let Some(t) = &page_token {
            query.push(("pageToken", t));
        }
        let (status, _, body) = get(&saml_url(&sim, &query), Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        items.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["nextPageToken"].as_str() {
            Some(t) => page_token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(
        items.len(),
        30,
        "30 Box successes within two days, no failure, no other app"
    );
    assert_eq!(pages, 3);
    assert!(items.iter().all(|i| i["events"][0]["name"] == "login_success"));
    assert!(items.iter().all(|i| param(i, "application_name") == Some("Box")));
    let times: Vec<&str> = items.iter().map(|i| i["id"]["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(items[0]["actor"]["email"], "p0@acme.example");

    let failures = saml_url(
        &sim,
        &[
            ("eventName", "login_failure"),
            ("filters", "application_name==Box"),
            ("startTime", &start),
        ],
    );
    let (_, _, body) = get(&failures, Some(&token)).await;
    let failed = body["items"].as_array().unwrap();
    assert_eq!(failed.len(), 30);
    assert!(failed.iter().all(|i| param(i, "failure_type").is_some()));

    let others = saml_url(&sim, &[("filters", "application_name<>Box")]);
    let (_, _, body) = get(&others, Some(&token)).await;
    let others = body["items"].as_array().unwrap();
    assert!(!others.is_empty() && others.iter().all(|i| param(i, "application_name") != Some("Box")));
    assert_eq!(sim.activity_count(), 30 * 3 + 200);

    for bad in [
        vec![("maxResults", "1001")],
        vec![("maxResults", "0")],
        vec![("filters", "app==Box")],
        vec![("filters", "application_name=Box")],
        vec![("startTime", "yesterday")],
        vec![("pageToken", "!!")],
        vec![("eventName", "login_sucess")],
    ] {
        let (status, _, body) = get(&saml_url(&sim, &bad), Some(&token)).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    }
    let (status, _, _) = get(
        &format!(
            "{}/admin/reports/v1/activity/users/all/applications/nope",
            sim.reports_base()
        ),
        Some(&token),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn activities_are_kept_180_days_and_an_older_start_time_is_raised() {
    let now = Utc::now();
    let person = SsoPerson::new("old@acme.example")
        .signed_in(now - TimeDelta::days(181))
        .signed_in(now - TimeDelta::days(179));
    let sim = sim(
        vec![
            person,
            SsoPerson::new("gone@acme.example").signed_in(now - TimeDelta::days(200)),
        ],
        0,
    )
    .await;
    let token = bearer(&sim, &sim.config().admin_email.clone()).await;
    let start = iso(now - TimeDelta::days(400));
    let (_, _, body) = get(&saml_url(&sim, &[("startTime", &start)]), Some(&token)).await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["actor"]["email"], "old@acme.example");
    assert_eq!(sim.ground_truth().len(), 1);
    assert_eq!(sim.activity_requests().len(), 1);
    assert!(sim.retention_start() < now - TimeDelta::days(179));
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after_and_a_quota_403() {
    let sim = sim_with_admin().await;
    let token = bearer(&sim, &sim.config().admin_email.clone()).await;
    sim.inject(
        Endpoint::GoogleActivities,
        1,
        Fault::Status {
            status: 429,
            retry_after: Some(4),
        },
    );
    let url = saml_url(&sim, &[]);
    let (status, headers, body) = get(&url, Some(&token)).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "4");
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    sim.inject_quota_403(1);
    let (status, _, body) = get(&url, Some(&token)).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["errors"][0]["reason"], "userRateLimitExceeded");
    assert_eq!(get(&url, Some(&token)).await.0, 200);
    let c = sim.counters();
    assert_eq!(
        (
            c.get(Endpoint::GoogleActivities, 429),
            c.get(Endpoint::GoogleActivities, 403)
        ),
        (1, 1)
    );
}

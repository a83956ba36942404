//! The Entra simulator behaves as sso-activity.md describes: client-credentials tokens, sign-in
//! logs filtered and paged, 403 for tenants without P1/P2, signInActivity with its two dates.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;
use sso_sim::{Endpoint, EntraConfig, EntraSim, Fault, SsoPerson};

async fn sim(users: Vec<SsoPerson>, premium: bool, other: usize) -> EntraSim {
    EntraSim::start(EntraConfig {
        users,
        premium,
        other_app_sign_ins: other,
        ..EntraConfig::default()
    })
    .await
    .unwrap()
}

async fn token(sim: &EntraSim, secret: &str) -> (u16, Value) {
    let c = sim.config();
    let resp = reqwest::Client::new()
        .post(format!("{}/{}/oauth2/v2.0/token", sim.login_base(), c.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn graph(url: &str, bearer: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
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

async fn bearer(sim: &EntraSim) -> String {
    let secret = sim.config().client_secret.clone();
    let (status, body) = token(sim, &secret).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn token_needs_the_right_secret_and_graph_needs_a_bearer() {
    let sim = sim(vec![SsoPerson::new("a@acme.example")], true, 0).await;
    let (status, body) = token(&sim, "wrong").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS7000215"));
    let url = format!("{}/v1.0/auditLogs/signIns", sim.graph_base());
    let (status, _, body) = graph(&url, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    let (status, _, _) = graph(&url, Some("forged")).await;
    assert_eq!(status, 401);
    let good = bearer(&sim).await;
    assert_eq!(graph(&url, Some(&good)).await.0, 200);
    sim.expire_tokens();
    assert_eq!(graph(&url, Some(&good)).await.0, 401, "expired tokens are refused");
}

#[tokio::test]
async fn sign_ins_filter_by_app_and_time_and_page_by_next_link() {
    let now = Utc::now();
    let people: Vec<SsoPerson> = (0..30)
        .map(|i| {
            SsoPerson::new(&format!("p{i}@acme.example"))
                .signed_in(now - TimeDelta::hours(i + 1))
                .failed_at(now - TimeDelta::minutes(i + 1))
                .signed_in(now - TimeDelta::days(20))
        })
        .collect();
    let sim = sim(people, true, 100).await;
    let token = bearer(&sim).await;
    let mut url = reqwest::Url::parse(&format!("{}/v1.0/auditLogs/signIns", sim.graph_base())).unwrap();
    url.query_pairs_mut()
        .append_pair(
            "$filter",
            &format!(
                "appId eq '{}' and createdDateTime ge {} and createdDateTime le {}",
                sim.config().box_app_id,
                iso(now - TimeDelta::days(2)),
                iso(now + TimeDelta::seconds(1))
            ),
        )
        .append_pair("$top", "25");
    let mut next = Some(url.to_string());
    let (mut records, mut pages) = (Vec::new(), 0);
    while let Some(u) = next {
        let (status, _, body) = graph(&u, Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        records.extend(body["value"].as_array().unwrap().iter().cloned());
        next = body["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(
        records.len(),
        60,
        "30 successes and 30 failures within two days, nothing of other apps"
    );
    assert_eq!(pages, 3);
    assert!(records.iter().all(|r| r["appId"] == sim.config().box_app_id.as_str()));
    let failures = records.iter().filter(|r| r["status"]["errorCode"] != 0).count();
    assert_eq!(failures, 30);
    let times: Vec<&str> = records.iter().map(|r| r["createdDateTime"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let (status, _, _) = graph(
        &format!("{}?$top=1001", url.as_str().split('?').next().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(status, 400, "$top is at most 1000");
}

#[tokio::test]
async fn non_premium_tenant_gets_403_and_sign_in_activity_separates_failures() {
    let now = Utc::now();
    let people = vec![
        SsoPerson::new("ok@acme.example")
            .signed_in(now - TimeDelta::days(3))
            .failed_at(now - TimeDelta::days(1)),
        SsoPerson::new("failed-only@acme.example").failed_at(now - TimeDelta::days(2)),
        SsoPerson::new("never@acme.example"),
    ];
    let sim = sim(people, false, 0).await;
    let token = bearer(&sim).await;
    let (status, _, body) = graph(&format!("{}/v1.0/auditLogs/signIns", sim.graph_base()), Some(&token)).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["code"],
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    );

    let url = format!(
        "{}/v1.0/users?$select=userPrincipalName,mail,signInActivity&$top=999",
        sim.graph_base()
    );
    let (status, _, body) = graph(&url, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let users = body["value"].as_array().unwrap();
    let ok = &users[0]["signInActivity"];
    assert!(ok["lastSignInDateTime"].as_str().unwrap() > ok["lastSuccessfulSignInDateTime"].as_str().unwrap());
    assert!(users[1]["signInActivity"]["lastSuccessfulSignInDateTime"].is_null());
    assert!(users[1]["signInActivity"]["lastSignInDateTime"].is_string());
    assert!(users[2]["signInActivity"].is_null());
    assert_eq!(sim.tenant_wide_truth().len(), 1);
}

#[tokio::test]
async fn users_with_sign_in_activity_page_at_most_120() {
    let people: Vec<SsoPerson> = (0..250)
        .map(|i| SsoPerson::new(&format!("u{i}@acme.example")))
        .collect();
    let sim = sim(people, true, 0).await;
    let token = bearer(&sim).await;
    let url = format!(
        "{}/v1.0/users?$select=userPrincipalName,signInActivity&$top=999",
        sim.graph_base()
    );
    let (_, _, body) = graph(&url, Some(&token)).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 120);
    assert!(body["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let sim = sim(vec![SsoPerson::new("a@acme.example")], true, 0).await;
    let token = bearer(&sim).await;
    sim.inject(
        Endpoint::EntraSignIns,
        1,
        Fault::Status {
            status: 429,
            retry_after: Some(4),
        },
    );
    let (status, headers, body) = graph(&format!("{}/v1.0/auditLogs/signIns", sim.graph_base()), Some(&token)).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "4");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(sim.counters().get(Endpoint::EntraSignIns, 429), 1);
}

//! `GET`/`PUT /settings`: a full round trip, validation naming every field, and SSO credentials
//! that go to Secrets Manager and never come back.

use seatsync::settings::SsoProviderKind;
use seatsync::sso::SsoConfig;
use seatsync_tests::apigw::ApiRequest;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::reports_fixture::{Reports, claims, tenant};

const OKTA_TOKEN: &str = "00okta-secret-api-token-7f3a9c";
const ENTRA_SECRET: &str = "entra~client~secret~5d1b2e";

fn settings() -> Value {
    json!({
        "seats_purchased": 1200,
        "price_per_seat_year_minor": 18000,
        "currency": "EUR",
        "inactivity_threshold_days": 45,
        "daily_action_cap": 250,
        "protected_logins": ["CEO@Acme.com", "cfo@acme.com", "ceo@acme.com"],
        "content_transfer": true
    })
}

fn okta() -> Value {
    json!({
        "provider": "okta",
        "credentials": {
            "base_url": "https://acme.okta.com",
            "box_app_instance_id": "0oa1boxapp",
            "api_token": OKTA_TOKEN
        }
    })
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

#[tokio::test]
async fn settings_round_trip_and_defaults_show_before_any_put() {
    let r = Reports::new().await;
    let defaults = r.get_json("acme", "/settings", "").await;
    assert_eq!(defaults["inactivity_threshold_days"], 60);
    assert_eq!(defaults["daily_action_cap"], 100);
    assert_eq!(defaults["activity_signal"], "any");
    assert_eq!(defaults["sso"], json!({"provider": null, "configured": false}));

    let response = r.put_settings("acme", &settings()).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    let answer = response.json();
    let expected = json!({
        "seats_purchased": 1200,
        "price_per_seat_year_minor": 18000,
        "currency": "EUR",
        "inactivity_threshold_days": 45,
        "activity_signal": "any",
        "daily_action_cap": 250,
        "protected_logins": ["ceo@acme.com", "cfo@acme.com"],
        "content_transfer": true,
        "sso": {"provider": null, "configured": false}
    });
    assert_eq!(answer, expected, "lower-cased and deduplicated");
    assert_eq!(r.get_json("acme", "/settings", "").await, expected);

    // The activity signal is shown as set, and kept by a GET.
    let response = r
        .put_settings("acme", &with(settings(), "activity_signal", json!("content")))
        .await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.json()["activity_signal"], "content");
    assert_eq!(r.get_json("acme", "/settings", "").await["activity_signal"], "content");

    // Clearing the optional values.
    let cleared = with(
        with(
            with(settings(), "seats_purchased", Value::Null),
            "price_per_seat_year_minor",
            Value::Null,
        ),
        "currency",
        Value::Null,
    );
    let response = r.put_settings("acme", &cleared).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["seats_purchased"], Value::Null);
    assert_eq!(r.get_json("acme", "/settings", "").await["currency"], Value::Null);
}

#[tokio::test]
async fn every_invalid_setting_is_refused_naming_the_field() {
    let r = Reports::new().await;
    let too_many: Vec<String> = (0..1001).map(|i| format!("u{i}@acme.com")).collect();
    let mut missing = settings();
    missing.as_object_mut().unwrap().remove("daily_action_cap");
    let cases = [
        (
            "seats_purchased",
            with(settings(), "seats_purchased", json!(10_000_001)),
        ),
        ("seats_purchased", with(settings(), "seats_purchased", json!(-5))),
        ("seats_purchased", with(settings(), "seats_purchased", json!("12"))),
        (
            "price_per_seat_year_minor",
            with(settings(), "price_per_seat_year_minor", json!(1_000_000_001u64)),
        ),
        (
            "price_per_seat_year_minor",
            with(settings(), "price_per_seat_year_minor", json!(1.5)),
        ),
        ("currency", with(settings(), "currency", json!("eur"))),
        ("currency", with(settings(), "currency", json!("EURO"))),
        ("currency", with(settings(), "currency", Value::Null)),
        (
            "inactivity_threshold_days",
            with(settings(), "inactivity_threshold_days", json!(0)),
        ),
        (
            "inactivity_threshold_days",
            with(settings(), "inactivity_threshold_days", json!(366)),
        ),
        ("daily_action_cap", with(settings(), "daily_action_cap", json!(10_001))),
        ("daily_action_cap", missing),
        (
            "protected_logins",
            with(settings(), "protected_logins", json!(["not an email"])),
        ),
        (
            "protected_logins",
            with(settings(), "protected_logins", json!("ceo@acme.com")),
        ),
        (
            "protected_logins",
            with(settings(), "protected_logins", json!(too_many)),
        ),
        ("content_transfer", with(settings(), "content_transfer", json!("yes"))),
        ("sso", with(settings(), "sso", json!("okta"))),
        (
            "sso.provider",
            with(settings(), "sso", json!({"provider": "ping", "credentials": {}})),
        ),
        (
            "sso.credentials",
            with(
                settings(),
                "sso",
                json!({"provider": "okta", "credentials": {"base_url": "https://a.okta.com"}}),
            ),
        ),
        (
            "sso.credentials",
            with(
                settings(),
                "sso",
                json!({"provider": "okta", "credentials": {
            "base_url": "https://a.okta.com", "box_app_instance_id": "x", "api_token": OKTA_TOKEN, "extra": 1}}),
            ),
        ),
        (
            "sso.credentials.provider",
            with(
                settings(),
                "sso",
                json!({"provider": "okta", "credentials": {"provider": "entra"}}),
            ),
        ),
        (
            "sso.extra",
            with(
                settings(),
                "sso",
                json!({"provider": "okta", "credentials": {}, "extra": 1}),
            ),
        ),
        ("tenant_id", with(settings(), "tenant_id", json!("globex"))),
    ];
    for (field, body) in cases {
        let response = r.put_settings("acme", &body).await;
        let problem = response.problem(400);
        assert_eq!(problem["field"], field, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(field), "the detail names `{field}`: {detail}");
        assert!(!detail.contains(OKTA_TOKEN), "{detail}");
    }
    // Nothing was stored.
    assert_eq!(r.get_json("acme", "/settings", "").await["daily_action_cap"], 100);
}

#[tokio::test]
async fn sso_credentials_are_stored_as_a_secret_and_never_returned() {
    let r = Reports::new().await;
    let secrets = r.aws.secret_store();
    let name = secrets.sso_secret_name(&tenant("acme"));

    let put = r.put_settings("acme", &with(settings(), "sso", okta())).await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let get = r.get("acme", "/settings", "").await;
    for response in [&put, &get] {
        let text = String::from_utf8_lossy(&response.body);
        assert!(!text.contains(OKTA_TOKEN), "the credential came back: {text}");
        assert_eq!(response.json()["sso"], json!({"provider": "okta", "configured": true}));
    }
    let stored = secrets
        .read_json::<SsoConfig>(&name)
        .await
        .unwrap()
        .expect("the secret exists");
    let SsoConfig::Okta {
        api_token, base_url, ..
    } = stored.value
    else {
        panic!("an Okta configuration")
    };
    assert_eq!(api_token.expose_secret(), OKTA_TOKEN);
    assert_eq!(base_url.as_str(), "https://acme.okta.com/");
    let saved = seatsync::settings::SettingsStore::new(r.table.clone())
        .get(&tenant("acme"))
        .await
        .unwrap();
    assert_eq!(saved.sso_provider, Some(SsoProviderKind::Okta));

    // Without `sso`, a PUT keeps the credentials.
    let kept = r.put_settings("acme", &settings()).await;
    assert_eq!(kept.json()["sso"], json!({"provider": "okta", "configured": true}));

    // Replaced by Entra, then Okta again: the current version follows each PUT.
    let entra = json!({"provider": "entra", "credentials": {
        "tenant_id": "contoso", "client_id": "app-1", "client_secret": ENTRA_SECRET, "box_app_id": "box-1"}});
    let put = r.put_settings("acme", &with(settings(), "sso", entra)).await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    assert!(!String::from_utf8_lossy(&put.body).contains(ENTRA_SECRET));
    assert_eq!(put.json()["sso"]["provider"], "entra");
    assert!(matches!(
        secrets.read_json::<SsoConfig>(&name).await.unwrap().unwrap().value,
        SsoConfig::Entra { .. }
    ));
    r.put_settings("acme", &with(settings(), "sso", okta()))
        .await
        .problem_free();
    assert!(matches!(
        secrets.read_json::<SsoConfig>(&name).await.unwrap().unwrap().value,
        SsoConfig::Okta { .. }
    ));

    // Another tenant sees nothing of it.
    let other = r.get("globex", "/settings", "").await;
    assert_eq!(other.json()["sso"], json!({"provider": null, "configured": false}));

    // `sso: null` deletes the secret.
    let removed = r.put_settings("acme", &with(settings(), "sso", Value::Null)).await;
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json()["sso"], json!({"provider": null, "configured": false}));
    assert!(
        secrets.read_json::<SsoConfig>(&name).await.unwrap().is_none(),
        "the secret is gone"
    );
    let again = r.send(ApiRequest::authorized("GET", "/settings", claims("acme"))).await;
    assert_eq!(again.json()["sso"]["configured"], false);
}

trait ProblemFree {
    fn problem_free(&self);
}

impl ProblemFree for seatsync_tests::apigw::ApiResponse {
    fn problem_free(&self) {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
    }
}

/// The SSO endpoint URLs a tenant may set are the providers' own https hosts: anything else would
/// let usage-sync call a host of the tenant's choosing from inside AWS (SSRF).
#[tokio::test]
async fn sso_endpoints_outside_the_providers_https_hosts_are_refused_naming_the_field() {
    let r = Reports::new().await;
    let okta_at = |url: &str| {
        json!({"provider": "okta", "credentials": {
            "base_url": url, "box_app_instance_id": "0oa1boxapp", "api_token": OKTA_TOKEN}})
    };
    let entra_at = |field: &str, url: &str| {
        let mut credentials = json!({"tenant_id": "t1", "client_id": "c1", "client_secret": ENTRA_SECRET,
            "box_app_id": "b1"});
        credentials[field] = json!(url);
        json!({"provider": "entra", "credentials": credentials})
    };
    let google_at = |field: &str, url: &str| {
        let mut credentials = json!({"service_account_email": "sa@p.iam.gserviceaccount.com",
            "private_key": "not checked first", "subject": "admin@acme.com"});
        credentials[field] = json!(url);
        json!({"provider": "google", "credentials": credentials})
    };
    let mut cases: Vec<(&str, Value)> = [
        "https://127.0.0.1",
        "http://127.0.0.1:9001",
        "https://169.254.169.254",
        "https://localhost",
        "https://evil.com",
        "http://x.okta.com",
        "https://x.okta.com.evil.com",
        "https://evil-okta.com",
        "https://okta.com",
        "https://[::1]",
        "https://2130706433",
        "https://0x7f.0.0.1",
        "https://10.0.0.8",
        "https://user:pw@acme.okta.com",
        "https://acme.okta.com:8443",
        "ftp://acme.okta.com",
    ]
    .into_iter()
    .map(|url| ("sso.credentials.base_url", okta_at(url)))
    .collect();
    for url in [
        "https://login.microsoftonline.com.evil.com",
        "http://login.microsoftonline.com",
    ] {
        cases.push(("sso.credentials.login_base", entra_at("login_base", url)));
    }
    for url in ["https://169.254.169.254/latest", "https://graph.microsoft.com:444"] {
        cases.push(("sso.credentials.graph_base", entra_at("graph_base", url)));
    }
    for url in [
        "https://oauth2.googleapis.com.evil.com/token",
        "http://oauth2.googleapis.com/token",
    ] {
        cases.push(("sso.credentials.token_uri", google_at("token_uri", url)));
    }
    cases.push((
        "sso.credentials.reports_base",
        google_at("reports_base", "https://[fd00::1]"),
    ));
    for (field, sso) in cases {
        let body = with(settings(), "sso", sso.clone());
        let response = r.put_settings("acme", &body).await;
        assert_eq!(
            response.status,
            400,
            "{sso} was accepted: {}",
            String::from_utf8_lossy(&response.body)
        );
        let problem = response.problem(400);
        assert_eq!(problem["field"], field, "{sso}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("https"), "the detail says what is allowed: {detail}");
        assert!(
            !detail.contains(OKTA_TOKEN) && !detail.contains(ENTRA_SECRET),
            "{detail}"
        );
    }
    assert_eq!(r.get_json("acme", "/settings", "").await["sso"]["configured"], false);
}

#[tokio::test]
async fn sso_endpoints_on_the_providers_hosts_are_accepted() {
    let r = Reports::new().await;
    for url in [
        "https://acme.okta.com",
        "https://acme.oktapreview.com",
        "https://acme.okta-emea.com",
        "https://ACME.Okta.com/",
    ] {
        let sso = json!({"provider": "okta", "credentials": {
            "base_url": url, "box_app_instance_id": "0oa1boxapp", "api_token": OKTA_TOKEN}});
        let response = r.put_settings("acme", &with(settings(), "sso", sso)).await;
        assert_eq!(
            response.status,
            200,
            "{url}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    let entra = json!({"provider": "entra", "credentials": {"tenant_id": "t1", "client_id": "c1",
        "client_secret": ENTRA_SECRET, "box_app_id": "b1",
        "login_base": "https://login.microsoftonline.com", "graph_base": "https://graph.microsoft.com"}});
    let response = r.put_settings("acme", &with(settings(), "sso", entra)).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
}

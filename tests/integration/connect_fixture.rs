//! The connect API under test: the real router over a `ConnectService` on this test's moto table
//! and secret prefix and its own Box simulator, plus the browser's side of the OAuth dance.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use box_sim::{Endpoint, SimConfig};
use seatsync::boxapi::AppCredentials;
use seatsync::connect::{ConnectConfig, ConnectService, router};
use seatsync::connection::{AppConfig, ConnectionRecord, Connections};
use seatsync::ids::TenantId;
use seatsync::storage::{BoxTokenSet, SecretStore};
use seatsync::tokens::TokenVault;
use seatsync_tests::apigw::{ApiRequest, ApiResponse};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::{TestBox, sim_config};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const REDIRECT: &str = "https://api.seatsync.test/oauth/box/callback";
pub const RETURN_URL: &str = "https://app.seatsync.test/settings/box";
/// Box client ids are letters and digits (the client-credentials route checks that).
pub const CLIENT_ID: &str = "simclient0000000000000000000001";
pub const CLIENT_SECRET: &str = "sim-secret-7d1e5c9a3b";
pub const COOKIE_KEY: &str = "cookie-key-for-tests-0123456789abcdef";

pub struct Connect {
    pub aws: TestAws,
    pub tb: TestBox,
    pub router: Router,
    pub secrets: SecretStore,
    pub connections: Connections,
}

/// What the browser holds after `POST /connections/box/start`.
pub struct Started {
    pub response: ApiResponse,
    pub authorize_url: url::Url,
    /// `seatsync_oauth=<value>`, as the browser sends it back.
    pub cookie: String,
}

impl Connect {
    pub async fn new() -> Self {
        Self::with_state_ttl(Duration::from_secs(600)).await
    }

    pub async fn with_state_ttl(state_ttl: Duration) -> Self {
        let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(Self::sim(sim_config())));
        Self::build(aws, tb, state_ttl)
    }

    /// Another Box enterprise (its own simulator) for the same seatsync deployment: same table,
    /// same secrets, same Box app.
    pub async fn another_enterprise(&self, sim: SimConfig) -> Self {
        let aws = TestAws {
            endpoint: self.aws.endpoint.clone(),
            sdk: self.aws.sdk.clone(),
            dynamo: self.aws.dynamo.clone(),
            secrets: self.aws.secrets.clone(),
            table_name: self.aws.table_name.clone(),
            secret_prefix: self.aws.secret_prefix.clone(),
        };
        let tb = TestBox::start(Self::sim(sim)).await;
        Self::build(aws, tb, Duration::from_secs(600))
    }

    /// `base` with this fixture's Box app.
    fn sim(base: SimConfig) -> SimConfig {
        SimConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uri: Some(REDIRECT.into()),
            ..base
        }
    }

    fn build(aws: TestAws, tb: TestBox, state_ttl: Duration) -> Self {
        let config = ConnectConfig {
            redirect_uri: REDIRECT.into(),
            return_url: url::Url::parse(RETURN_URL).unwrap(),
            tenant_claim: "tenant_id".into(),
            app_secret_id: "unused-in-tests".into(),
            state_ttl,
        };
        let app = AppConfig {
            box_app: AppCredentials {
                client_id: CLIENT_ID.into(),
                client_secret: SecretString::from(CLIENT_SECRET),
            },
            cookie_key: SecretString::from(COOKIE_KEY),
        };
        let secrets = aws.secret_store();
        let service = ConnectService::new(config, app, aws.table(), Arc::new(secrets.clone()), tb.client.clone());
        Self {
            router: router(Arc::new(service)),
            secrets,
            connections: Connections::new(aws.table()),
            aws,
            tb,
        }
    }

    pub fn claims(tenant: &str) -> Value {
        json!({ "sub": format!("person-of-{tenant}"), "tenant_id": tenant, "email": "admin@example.com" })
    }

    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        request.send(&self.router).await
    }

    pub async fn start(&self, tenant: &str) -> Started {
        self.start_with(tenant, None).await
    }

    pub async fn start_with(&self, tenant: &str, body: Option<Value>) -> Started {
        let mut request = ApiRequest::authorized("POST", "/connections/box/start", Self::claims(tenant));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = self.send(request).await;
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        let authorize_url = url::Url::parse(response.json()["authorize_url"].as_str().unwrap()).unwrap();
        let set_cookie = response.header("set-cookie").expect("a Set-Cookie header").to_owned();
        let cookie = set_cookie.split(';').next().unwrap().trim().to_owned();
        Started {
            response,
            authorize_url,
            cookie,
        }
    }

    /// Follows the authorize URL at the simulator as a browser would, up to Box's redirect back;
    /// returns the query Box put on the redirect_uri.
    pub async fn authorize(&self, url: &url::Url) -> String {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let answer = browser.get(url.clone()).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 302, "the simulator redirects back");
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(REDIRECT),
            "Box redirects to the configured redirect_uri: {location}"
        );
        url::Url::parse(&location)
            .unwrap()
            .query()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn callback(&self, query: &str, cookie: Option<&str>) -> ApiResponse {
        let mut request = ApiRequest::new("GET", "/oauth/box/callback").query(query);
        if let Some(cookie) = cookie {
            request = request.cookie(cookie);
        }
        self.send(request).await
    }

    /// The whole flow for `tenant`: start, consent at the simulator, callback with the cookie.
    pub async fn connect(&self, tenant: &str) -> ApiResponse {
        let started = self.start(tenant).await;
        let query = self.authorize(&started.authorize_url).await;
        self.callback(&query, Some(&started.cookie)).await
    }

    pub fn token_calls(&self) -> u64 {
        self.tb.sim.counters().total(Endpoint::Token)
    }

    pub async fn secret(&self, tenant: &str) -> Option<BoxTokenSet> {
        self.secrets.read(&TenantId::parse(tenant).unwrap()).await.unwrap()
    }

    pub async fn record(&self, tenant: &str) -> Option<ConnectionRecord> {
        self.connections.get(&TenantId::parse(tenant).unwrap()).await.unwrap()
    }
}

/// Asserts a redirect to the return URL with exactly this query, and that the cookie is cleared.
pub fn assert_redirect(response: &ApiResponse, query: &str) {
    assert_eq!(response.status, 302, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(
        response.header("location"),
        Some(format!("{RETURN_URL}?{query}").as_str())
    );
    assert_cookie_cleared(response);
}

pub fn assert_cookie_cleared(response: &ApiResponse) {
    let cookie = response.header("set-cookie").expect("the callback clears the cookie");
    assert!(
        cookie.starts_with("seatsync_oauth=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
}

/// The query parameter `name` of a raw query string.
pub fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

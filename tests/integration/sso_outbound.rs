//! Outbound requests to identity providers (reliability item 34, OWASP API7 SSRF): usage-sync
//! calls only the providers' own https hosts, even for settings stored before that rule; it
//! follows no redirect, stops reading an oversized answer, never passes a provider's text on to the
//! tenant, and survives a token answer whose `expires_in` overflows a clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use seatsync::boxapi::{AppCredentials, RetryPolicy};
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync::reports::{ReportsConfig, ReportsService};
use seatsync::settings::SettingsStore;
use seatsync::sso::{ActivityProvider, HttpOptions, SsoConfig, SsoError, provider};
use seatsync::storage::{BoxTokenSet, TokenKind};
use seatsync::sync::{LicenseStore, SqsQueue, SyncKind, SyncMessage, SyncOptions, SyncService, Syncer, TenantOutcome};
use seatsync::tokens::{TokenProvider, TokenProviderOptions, TokenVault};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::TestBox;
use seatsync_tests::sync::enterprise;
use secrecy::SecretString;
use serde_json::json;
use sso_sim::{
    Endpoint, EntraConfig, EntraSim, Fault, GoogleConfig, GoogleSim, OktaConfig, OktaSim, SsoPerson, TestKey,
};

const MARKER: &str = "zz-provider-text-7c41-must-not-reach-the-tenant";

/// What the simulators need: the test-only allowance of `http://127.0.0.1:<port>`, quick retries.
fn sim_options() -> HttpOptions {
    HttpOptions {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(20),
        },
        max_pages: 100,
        ..HttpOptions::for_loopback_simulators()
    }
}

/// A loopback listener that counts the connections it accepts and answers none.
struct Listener {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start() -> Listener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Listener { addr, accepted, task }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Fixture {
    aws: TestAws,
    tb: TestBox,
    app: AppCredentials,
    queue: SqsQueue,
}

impl Fixture {
    async fn new() -> Fixture {
        seatsync_tests::logs::capture_to_suite_log();
        let mut sim = enterprise(30);
        sim.enterprise.plan = box_sim::Plan::Business;
        let app = AppCredentials {
            client_id: sim.client_id.clone(),
            client_secret: SecretString::from(sim.client_secret.clone()),
        };
        let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(sim));
        let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
        let url = sqs
            .create_queue()
            .queue_name(format!("sync-{}", uuid::Uuid::new_v4().simple()))
            .send()
            .await
            .expect("create a queue on moto")
            .queue_url
            .expect("a queue url");
        Fixture {
            queue: SqsQueue { client: sqs, url },
            aws,
            tb,
            app,
        }
    }

    /// usage-sync as deployed, except for `sso_http`.
    fn service(&self, sso_http: HttpOptions) -> SyncService {
        let app = self.app.clone();
        let tokens = TokenProvider::new(
            Arc::new(self.aws.secret_store()),
            self.aws.table(),
            self.tb.client.clone(),
            app,
            TokenProviderOptions::default(),
        );
        SyncService {
            table: self.aws.table(),
            connections: Connections::new(self.aws.table()),
            settings: SettingsStore::new(self.aws.table()),
            secrets: self.aws.secret_store(),
            syncer: Syncer {
                store: Arc::new(self.aws.table()),
                tokens: Arc::new(tokens),
                box_api: self.tb.client.clone(),
                options: SyncOptions {
                    requests_per_minute: 60_000,
                    ..SyncOptions::default()
                },
            },
            sso_http,
        }
    }

    /// A Business-plan tenant (activity from SSO) whose stored SSO settings are `sso`, written
    /// straight to the store as settings from before the host rule would be.
    async fn sso_tenant(&self, name: &str, sso: &SsoConfig) -> TenantId {
        let tenant = TenantId::parse(name).unwrap();
        let pair = self.tb.sim.issue_tokens(&self.tb.sim.primary_admin_id());
        let tokens = BoxTokenSet {
            kind: TokenKind::OAuth,
            access_token: SecretString::from(pair.access_token),
            access_expires_at: Utc::now() + chrono::Duration::minutes(50),
            refresh_token: Some(SecretString::from(pair.refresh_token)),
            obtained_at: Utc::now(),
            client_id: None,
            client_secret: None,
            enterprise_id: Some(seatsync_tests::boxsim::enterprise_id(&self.tb.sim.enterprise_id())),
        };
        TokenVault::write(&self.aws.secret_store(), &tenant, &tokens, &"0".repeat(40))
            .await
            .unwrap();
        let record = ConnectionRecord {
            status: ConnectionStatus::Connected,
            method: ConnectMethod::OAuth,
            enterprise_id: seatsync_tests::boxsim::enterprise_id(&self.tb.sim.enterprise_id()),
            enterprise_name: Some("Acme Inc.".into()),
            connected_by_box_id: seatsync_tests::boxsim::box_id(&self.tb.sim.primary_admin_id()),
            connected_by_login: None,
            connected_by_sub: "sub-1".into(),
            scopes: vec![],
            connected_at: Utc::now(),
            activity_source: ActivitySource::Sso,
            status_reason: None,
            status_since: Utc::now(),
            last_sync_at: None,
        };
        Connections::new(self.aws.table()).save(&tenant, &record).await.unwrap();
        let name = self.aws.secret_store().sso_secret_name(&tenant);
        self.aws
            .secret_store()
            .write_json(&name, sso, &"1".repeat(40))
            .await
            .unwrap();
        tenant
    }
}

fn message(tenant: &TenantId) -> SyncMessage {
    SyncMessage {
        tenant: tenant.clone(),
        kind: SyncKind::Full,
        slot: "slot-1".into(),
        continuation: false,
    }
}

fn okta_at(base_url: &str) -> SsoConfig {
    SsoConfig::Okta {
        base_url: url::Url::parse(base_url).unwrap(),
        box_app_instance_id: "0oa1boxapp".into(),
        api_token: SecretString::from("00okta-token"),
    }
}

#[tokio::test]
async fn stored_sso_settings_pointing_at_loopback_make_the_sync_refuse_without_a_request() {
    let f = Fixture::new().await;
    let runtime_api = Listener::start().await;
    let loopback = format!("http://{}", runtime_api.addr);
    let entra: SsoConfig = serde_json::from_value(json!({
        "provider": "entra", "login_base": loopback, "graph_base": "https://graph.microsoft.com",
        "tenant_id": "t1", "client_id": "c1", "client_secret": "s1", "box_app_id": "b1",
    }))
    .unwrap();
    let google: SsoConfig = serde_json::from_value(json!({
        "provider": "google", "token_uri": format!("{loopback}/token"),
        "reports_base": "https://admin.googleapis.com",
        "service_account_email": "sa@p.iam.gserviceaccount.com", "private_key": TestKey::shared().private_pem,
        "subject": "admin@acme.example",
    }))
    .unwrap();
    // The functions' own options: no override.
    let service = f.service(HttpOptions::default());
    for (name, sso) in [("okta", okta_at(&loopback)), ("entra", entra), ("google", google)] {
        let tenant = f.sso_tenant(name, &sso).await;
        let outcome = service.run(&f.queue, &message(&tenant), None).await;
        assert!(
            !matches!(outcome, TenantOutcome::Done(_)),
            "{name}: a sync against loopback completed: {outcome:?}"
        );
        assert_eq!(runtime_api.connections(), 0, "{name}: a request reached loopback");
    }
}

#[tokio::test]
async fn a_refused_stored_sso_endpoint_is_explained_in_the_last_sync() {
    let f = Fixture::new().await;
    let runtime_api = Listener::start().await;
    let tenant = f
        .sso_tenant("okta", &okta_at(&format!("http://{}", runtime_api.addr)))
        .await;
    let service = f.service(HttpOptions::default());

    let outcome = service.run(&f.queue, &message(&tenant), None).await;

    assert!(
        matches!(outcome, TenantOutcome::Failed { retry: false, .. }),
        "a refused endpoint is not retried: {outcome:?}"
    );
    let last = f
        .aws
        .table()
        .get_checkpoint(&tenant)
        .await
        .unwrap()
        .and_then(|c| c.last_run)
        .expect("the refused sync is on the record");
    let error = last.error.unwrap_or_default();
    assert!(
        error.contains("okta"),
        "the tenant is told which setting to fix: {error}"
    );
    assert_eq!(runtime_api.connections(), 0);
}

#[tokio::test]
async fn a_redirect_from_the_provider_is_not_followed() {
    let okta = OktaSim::start(OktaConfig {
        users: vec![SsoPerson::new("ann@acme.example").signed_in(Utc::now() - TimeDelta::hours(1))],
        ..OktaConfig::default()
    })
    .await
    .unwrap();
    let elsewhere = Listener::start().await;
    okta.inject(
        Endpoint::OktaLogs,
        1,
        Fault::Redirect(format!("http://{}/api/v1/logs", elsewhere.addr)),
    );
    let config = SsoConfig::Okta {
        base_url: okta.base_url().parse().unwrap(),
        box_app_instance_id: okta.app_instance_id().to_owned(),
        api_token: SecretString::from(okta.api_token().to_owned()),
    };
    let client = provider(&config, sim_options()).unwrap();
    let result = client.last_sign_ins(Utc::now() - TimeDelta::days(1), Utc::now()).await;
    assert_eq!(elsewhere.connections(), 0, "the redirect was followed");
    assert!(result.is_err(), "a redirect is not an answer: {result:?}");
}

#[tokio::test]
async fn an_oversized_answer_stops_reading_with_a_bounded_error() {
    let okta = OktaSim::start(OktaConfig::default()).await.unwrap();
    // Valid JSON (an empty page) padded to 40 MiB: only the size is wrong.
    let padded = format!("[{}]", " ".repeat(40 << 20));
    okta.inject(
        Endpoint::OktaLogs,
        1,
        Fault::Raw {
            status: 200,
            body: padded,
        },
    );
    let config = SsoConfig::Okta {
        base_url: okta.base_url().parse().unwrap(),
        box_app_instance_id: okta.app_instance_id().to_owned(),
        api_token: SecretString::from(okta.api_token().to_owned()),
    };
    let client = provider(&config, sim_options()).unwrap();
    let err = client
        .last_sign_ins(Utc::now() - TimeDelta::days(1), Utc::now())
        .await
        .expect_err("an oversized page is refused");
    assert!(matches!(err, SsoError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(!err.is_transient(), "retrying would read it again: {err:?}");
    assert_eq!(okta.counters().total(Endpoint::OktaLogs), 1, "read once, not retried");
}

#[tokio::test]
async fn a_provider_error_text_never_reaches_the_tenant() {
    let f = Fixture::new().await;
    let okta = OktaSim::start(OktaConfig::default()).await.unwrap();
    let body = json!({"errorCode": MARKER, "errorSummary": MARKER, "errorId": MARKER,
        "errorCauses": [{"errorSummary": MARKER}]});
    okta.inject(
        Endpoint::OktaLogs,
        1,
        Fault::Raw {
            status: 400,
            body: body.to_string(),
        },
    );
    let config = SsoConfig::Okta {
        base_url: okta.base_url().parse().unwrap(),
        box_app_instance_id: okta.app_instance_id().to_owned(),
        api_token: SecretString::from(okta.api_token().to_owned()),
    };
    let tenant = f.sso_tenant("acme", &config).await;
    let outcome = f.service(sim_options()).run(&f.queue, &message(&tenant), None).await;
    let last = f
        .aws
        .table()
        .get_checkpoint(&tenant)
        .await
        .unwrap()
        .and_then(|c| c.last_run)
        .expect("the failed run is recorded");
    let error = last.error.clone().expect("the run says why it failed");
    assert!(error.contains("okta") && error.contains("400"), "{error}");
    assert!(
        !error.contains(MARKER),
        "the provider's text reached last_sync.error: {error}"
    );
    assert!(!format!("{outcome:?}").contains(MARKER), "{outcome:?}");

    let reports = ReportsService::new(
        ReportsConfig {
            tenant_claim: "tenant_id".into(),
            sync_queue_url: f.queue.url.clone(),
        },
        f.aws.table(),
        f.aws.secret_store(),
        Arc::new(SqsQueue {
            client: f.queue.client.clone(),
            url: f.queue.url.clone(),
        }),
    );
    let answer = serde_json::to_string(&reports.licenses(&tenant).await.unwrap()).unwrap();
    assert!(answer.contains("400"), "{answer}");
    assert!(
        !answer.contains(MARKER),
        "the provider's text reached GET /licenses: {answer}"
    );
}

#[tokio::test]
async fn provider_texts_in_token_errors_and_malformed_pages_are_not_passed_on() {
    let entra = EntraSim::start(EntraConfig::default()).await.unwrap();
    let c = entra.config().clone();
    let entra_config: SsoConfig = serde_json::from_value(json!({
        "provider": "entra", "login_base": entra.login_base(), "graph_base": entra.graph_base(),
        "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": c.client_secret, "box_app_id": c.box_app_id,
    }))
    .unwrap();
    let since = Utc::now() - TimeDelta::days(1);
    let aad = json!({"error": MARKER, "error_description": format!("AADSTS{MARKER}: {MARKER}\r\nTrace ID: x")});
    entra.inject(
        Endpoint::EntraToken,
        1,
        Fault::Raw {
            status: 400,
            body: aad.to_string(),
        },
    );
    let graph = json!({"error": {"code": MARKER, "message": MARKER}});
    entra.inject(
        Endpoint::EntraSignIns,
        1,
        Fault::Raw {
            status: 400,
            body: graph.to_string(),
        },
    );
    // A 2xx page of the wrong shape: serde's message would quote the value.
    let wrong_shape = json!({"value": MARKER});
    entra.inject(
        Endpoint::EntraSignIns,
        2,
        Fault::Raw {
            status: 200,
            body: wrong_shape.to_string(),
        },
    );
    for _ in 0..3 {
        let err = provider(&entra_config, sim_options())
            .unwrap()
            .last_sign_ins(since, Utc::now())
            .await
            .expect_err("each injected answer is an error");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(MARKER), "the provider's text came back: {text}");
    }

    let google = GoogleSim::start(GoogleConfig::default()).await.unwrap();
    let google_config: SsoConfig = serde_json::from_value(json!({
        "provider": "google", "token_uri": google.token_uri(), "reports_base": google.reports_base(),
        "service_account_email": google.config().service_account_email,
        "private_key": TestKey::shared().private_pem, "subject": google.config().admin_email,
    }))
    .unwrap();
    let oauth = json!({"error": MARKER, "error_description": MARKER});
    google.inject(
        Endpoint::GoogleToken,
        1,
        Fault::Raw {
            status: 400,
            body: oauth.to_string(),
        },
    );
    let api = json!({"error": {"code": 403, "message": MARKER, "status": MARKER,
        "errors": [{"reason": MARKER, "message": MARKER}]}});
    google.inject(
        Endpoint::GoogleActivities,
        1,
        Fault::Raw {
            status: 403,
            body: api.to_string(),
        },
    );
    for _ in 0..2 {
        let err: SsoError = provider(&google_config, sim_options())
            .unwrap()
            .last_sign_ins(since, Utc::now())
            .await
            .expect_err("each injected answer is an error");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(MARKER), "the provider's text came back: {text}");
    }
}

#[tokio::test]
async fn a_token_answer_with_a_huge_expires_in_does_not_panic() {
    let person = || SsoPerson::new("ann@acme.example").signed_in(Utc::now() - TimeDelta::hours(1));
    let entra = EntraSim::start(EntraConfig {
        users: vec![person()],
        token_expires_in: u64::MAX,
        ..EntraConfig::default()
    })
    .await
    .unwrap();
    let c = entra.config().clone();
    let entra_config: SsoConfig = serde_json::from_value(json!({
        "provider": "entra", "login_base": entra.login_base(), "graph_base": entra.graph_base(),
        "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": c.client_secret, "box_app_id": c.box_app_id,
    }))
    .unwrap();
    let google = GoogleSim::start(GoogleConfig {
        users: vec![person()],
        token_expires_in: u64::MAX,
        ..GoogleConfig::default()
    })
    .await
    .unwrap();
    let google_config: SsoConfig = serde_json::from_value(json!({
        "provider": "google", "token_uri": google.token_uri(), "reports_base": google.reports_base(),
        "service_account_email": google.config().service_account_email,
        "private_key": TestKey::shared().private_pem, "subject": google.config().admin_email,
    }))
    .unwrap();
    for config in [entra_config, google_config] {
        let client: Box<dyn ActivityProvider> = provider(&config, sim_options()).unwrap();
        // Run on its own task: a panic there is an Err here, not a torn-down test.
        let found =
            tokio::spawn(async move { client.last_sign_ins(Utc::now() - TimeDelta::days(1), Utc::now()).await })
                .await
                .expect("no panic on a huge expires_in")
                .expect("the token is used");
        assert!(found.contains_key("ann@acme.example"), "{found:?}");
    }
}

/// The simulators' loopback allowance is a code-level switch: no deployed function sets it, no
/// environment variable or template parameter reaches it, and the functions' default refuses it.
#[test]
fn no_deployed_function_can_enable_the_loopback_simulator_override() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stack = vec![root.join("functions")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("read a source file");
                for switch in [
                    "with_loopback_simulators",
                    "for_loopback_simulators",
                    "with_sso_outbound",
                ] {
                    assert!(!text.contains(switch), "{} calls {switch}", path.display());
                }
            }
        }
    }
    assert!(files >= 5, "only {files} function sources were searched");
    let outbound = std::fs::read_to_string(root.join("shared/src/sso/outbound.rs")).expect("read the outbound policy");
    assert!(
        !outbound.contains("env::var") && !outbound.contains("std::env"),
        "the policy reads the environment"
    );
    let template = std::fs::read_to_string(root.join("infra/template.yaml")).expect("read the template");
    assert!(
        !template.to_lowercase().contains("loopback"),
        "the template mentions loopback"
    );
    assert!(
        !HttpOptions::default().outbound.allows_loopback_simulators(),
        "the functions' default options allow loopback"
    );
}

//! The actions API under test: the real router over an `ActionsService` on this test's moto table
//! and secret prefix, a Box simulator per test whose enterprise is connected with live simulator
//! tokens, and the license state filled by a real sync first. Box calls are counted from the
//! moment the fixture is ready (`box_calls`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use box_sim::{EnterpriseSpec, SimConfig};
use chrono::{Duration, Utc};
use seatsync::actions::{ActionTimings, ActionsConfig, ActionsService, router};
use seatsync::audit::{AuditLog, AuditRecord};
use seatsync::boxapi::{AppCredentials, Role, UserStatus};
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::{BoxUserId, TenantId};
use seatsync::license::{Activity, UserKind, UserLicense};
use seatsync::settings::{SettingsStore, TenantSettings};
use seatsync::storage::{BoxTokenSet, TokenKind};
use seatsync::sync::{LicenseStore, LicenseSummary, SyncKind, SyncOutcome, SyncPlan};
use seatsync::tokens::{TokenProvider, TokenProviderOptions, TokenVault};
use seatsync_tests::apigw::{ApiRequest, ApiResponse};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::{TestBox, sim_config};
use seatsync_tests::sync::{options, syncer};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const TENANT: &str = "acme";

/// A simulated enterprise with every kind of user the rails care about.
pub fn enterprise(seed: u64, enterprise_id: &str) -> SimConfig {
    SimConfig {
        seed,
        enterprise: EnterpriseSpec {
            enterprise_id: enterprise_id.into(),
            users: 80,
            history_days: 180,
            never_logged_in: 0.10,
            admins: 0.02,
            coadmins: 0.05,
            app_users: 0.03,
            content_owners: 0.5,
            inactive_users: 0.05,
            ..EnterpriseSpec::default()
        },
        ..sim_config()
    }
}

pub struct Actions {
    pub aws: TestAws,
    pub tb: TestBox,
    pub router: Router,
    pub tenant: TenantId,
}

impl Actions {
    pub async fn new() -> Self {
        Self::with_scopes(None).await
    }

    /// `scopes`: the connection's scopes (`None`: everything, `root_readwrite` included).
    pub async fn with_scopes(scopes: Option<&[&str]>) -> Self {
        let sim = enterprise(42, "81723516");
        let app = AppCredentials {
            client_id: sim.client_id.clone(),
            client_secret: SecretString::from(sim.client_secret.clone()),
        };
        let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(sim));
        let tenant = TenantId::parse(TENANT).unwrap();
        sync_into(&aws, &tb, &tenant).await;
        let admin = tb.sim.primary_admin_id();
        let pair = match scopes {
            None => tb.sim.issue_tokens(&admin),
            Some(scopes) => tb.sim.issue_tokens_with_scopes(&admin, scopes),
        };
        let tokens = BoxTokenSet {
            kind: TokenKind::OAuth,
            access_token: SecretString::from(pair.access_token),
            access_expires_at: Utc::now() + Duration::minutes(50),
            refresh_token: Some(SecretString::from(pair.refresh_token)),
            obtained_at: Utc::now(),
            client_id: None,
            client_secret: None,
            enterprise_id: Some(seatsync_tests::boxsim::enterprise_id(&tb.sim.enterprise_id())),
        };
        TokenVault::write(&aws.secret_store(), &tenant, &tokens, &"0".repeat(40))
            .await
            .unwrap();
        let record = ConnectionRecord {
            status: ConnectionStatus::Connected,
            method: ConnectMethod::OAuth,
            enterprise_id: seatsync_tests::boxsim::enterprise_id(&tb.sim.enterprise_id()),
            enterprise_name: Some("Acme Inc.".into()),
            connected_by_box_id: seatsync_tests::boxsim::box_id(&admin),
            connected_by_login: None,
            connected_by_sub: "person-of-acme".into(),
            scopes: vec![],
            connected_at: Utc::now(),
            activity_source: ActivitySource::BoxEvents,
            status_reason: None,
            status_since: Utc::now(),
            last_sync_at: Some(Utc::now()),
        };
        Connections::new(aws.table()).save(&tenant, &record).await.unwrap();
        let provider = TokenProvider::new(
            Arc::new(aws.secret_store()),
            aws.table(),
            tb.client.clone(),
            app,
            TokenProviderOptions::default(),
        );
        let config = ActionsConfig {
            tenant_claim: "tenant_id".into(),
            app_secret_id: "unused-in-tests".into(),
        };
        // A change needs well under a second here: a small write budget leaves the deadline
        // tests room on a busy machine.
        let timings = ActionTimings {
            write_budget: std::time::Duration::from_secs(4),
            ..ActionTimings::default()
        };
        let service =
            ActionsService::new(config, aws.table(), Arc::new(provider), tb.client.clone()).with_timings(timings);
        tb.sim.reset_counters();
        Self {
            router: router(Arc::new(service)),
            aws,
            tb,
            tenant,
        }
    }

    pub fn claims(tenant: &str) -> Value {
        json!({ "sub": format!("person-of-{tenant}"), "tenant_id": tenant })
    }

    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        request.send(&self.router).await
    }

    /// `POST path` as this tenant's admin with a JSON body and, when given, an Idempotency-Key.
    pub async fn post(&self, path: &str, body: Value, key: Option<&str>) -> ApiResponse {
        let mut request = ApiRequest::authorized("POST", path, Self::claims(TENANT)).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        self.send(request).await
    }

    pub async fn deactivate(&self, user: &str, body: Value, key: &str) -> ApiResponse {
        self.post(&format!("/users/{user}/deactivate"), body, Some(key)).await
    }

    pub async fn delete(&self, user: &str, query: &str, key: Option<&str>) -> ApiResponse {
        let mut request =
            ApiRequest::authorized("DELETE", &format!("/users/{user}"), Self::claims(TENANT)).query(query);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        self.send(request).await
    }

    /// Requests answered by the simulator since the fixture was ready.
    pub fn box_calls(&self) -> u64 {
        self.tb.sim.counters().total_all()
    }

    pub async fn users(&self) -> HashMap<BoxUserId, UserLicense> {
        LicenseStore::load_users(&self.aws.table(), &self.tenant).await.unwrap()
    }

    pub async fn user(&self, id: &str) -> UserLicense {
        LicenseStore::get_user(&self.aws.table(), &self.tenant, &seatsync_tests::boxsim::box_id(id))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("user {id} is stored"))
    }

    pub async fn summary(&self) -> LicenseSummary {
        LicenseStore::get_summary(&self.aws.table(), &self.tenant)
            .await
            .unwrap()
            .expect("a summary")
    }

    pub async fn audit(&self) -> Vec<AuditRecord> {
        AuditLog::new(self.aws.table())
            .list(&self.tenant, 1000, None)
            .await
            .unwrap()
            .items
    }

    pub async fn set_settings(&self, change: impl FnOnce(&mut TenantSettings)) {
        let store = SettingsStore::new(self.aws.table());
        let mut settings = store.get(&self.tenant).await.unwrap();
        change(&mut settings);
        store.put(&self.tenant, &settings).await.unwrap();
    }

    /// Stored users matching `filter`, sorted by id (deterministic picks), never the connected account.
    pub async fn pick(&self, filter: impl Fn(&UserLicense) -> bool) -> Vec<UserLicense> {
        let admin = self.tb.sim.primary_admin_id();
        let mut users: Vec<_> = self
            .users()
            .await
            .into_values()
            .filter(|u| u.box_user_id != admin && filter(u))
            .collect();
        users.sort_by(|a, b| a.box_user_id.cmp(&b.box_user_id));
        users
    }

    /// Plain, active-status managed users idle for more than 90 days (or never active).
    pub async fn idle_users(&self, owns_content: bool) -> Vec<UserLicense> {
        self.pick(|u| plain(u) && u.owns_content == owns_content && idle(u, 90))
            .await
    }

    pub async fn recently_active(&self) -> UserLicense {
        let cutoff = Utc::now() - Duration::days(10);
        self.pick(|u| plain(u) && matches!(u.signals().strongest(), Activity::Seen { at, .. } if at > cutoff))
            .await
            .into_iter()
            .next()
            .expect("a user active in the last 10 days")
    }

    pub async fn with_role(&self, role: Role) -> UserLicense {
        self.pick(|u| u.kind == UserKind::Managed && u.role == Some(role) && u.status == UserStatus::Active)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("a {role:?}"))
    }
}

/// A managed, active, non-admin user.
pub fn plain(u: &UserLicense) -> bool {
    u.kind == UserKind::Managed
        && u.status == UserStatus::Active
        && u.removed_at.is_none()
        && u.role == Some(Role::User)
}

/// Idle for `days` by the strongest signal (login or content), as the recent-activity rail judges.
pub fn idle(u: &UserLicense, days: i64) -> bool {
    match u.signals().strongest() {
        Activity::Seen { at, .. } => at < Utc::now() - Duration::days(days),
        Activity::Never => true,
        Activity::NoData => false,
    }
}

/// A full sync of `tb`'s enterprise into `tenant`'s license state.
pub async fn sync_into(aws: &TestAws, tb: &TestBox, tenant: &TenantId) {
    let plan = SyncPlan {
        tenant: tenant.clone(),
        kind: SyncKind::Full,
        source: ActivitySource::BoxEvents,
        settings: TenantSettings::default(),
        sso: None,
        deadline: None,
    };
    let run = syncer(tb, Arc::new(aws.table()), options()).sync(&plan).await.unwrap();
    assert_eq!(run.outcome, SyncOutcome::Succeeded, "{run:?}");
}

/// The answer's JSON after asserting 200.
pub fn ok(response: &ApiResponse) -> Value {
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    response.json()
}

impl Actions {
    /// Like [`Actions::deactivate`], in a Lambda invocation whose deadline is `deadline_in` away
    /// (lambda_http puts the invocation's context in the request extensions).
    pub async fn deactivate_within(
        &self,
        user: &str,
        body: Value,
        key: &str,
        deadline_in: std::time::Duration,
    ) -> ApiResponse {
        send_within(&self.router, deactivate_request(user, &body, key), deadline_in).await
    }
}

pub fn deactivate_request(user: &str, body: &Value, key: &str) -> ApiRequest {
    ApiRequest::authorized("POST", &format!("/users/{user}/deactivate"), Actions::claims(TENANT))
        .json(body)
        .header("idempotency-key", key)
}

/// Sends `request` through `router` as an invocation with `deadline_in` left.
pub async fn send_within(router: &Router, request: ApiRequest, deadline_in: std::time::Duration) -> ApiResponse {
    use lambda_http::RequestExt as _;
    use tower::ServiceExt as _;
    let deadline = std::time::SystemTime::now() + deadline_in;
    let mut context = lambda_http::Context::default();
    context.deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let request = request.into_request().with_lambda_context(context);
    let response = router.clone().oneshot(request).await.expect("routers are infallible");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("read the response body")
        .to_vec();
    ApiResponse { status, headers, body }
}

/// The summary as it should be: counted from the stored users (the computed time aside).
pub async fn summary_matches_users(f: &Actions) {
    let stored = f.summary().await;
    let users = f.users().await;
    let counted = seatsync::sync::engine::summarize(
        users.values(),
        stored.activity_source,
        stored.activity_provider.clone(),
        stored.history_since,
        stored.computed_at,
    );
    assert_eq!(
        stored, counted,
        "the stored summary equals the count of the stored users"
    );
}

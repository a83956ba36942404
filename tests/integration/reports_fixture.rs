//! The licenses API under test: the real router over a `ReportsService` on this test's moto table,
//! secret prefix and SQS queue, driven with API Gateway v2 events; plus ways to fill a tenant's
//! license state (a real sync against the Box simulator, or users written directly).

use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Duration, Utc};
use seatsync::boxapi::{Role, UserStatus};
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync::license::{Activity, ActivityOrigin, UserKind, UserLicense};
use seatsync::reports::{ReportsConfig, ReportsService, router};
use seatsync::settings::TenantSettings;
use seatsync::storage::Table;
use seatsync::sync::{LicenseStore, SqsQueue, SyncKind, SyncMessage, SyncOutcome, SyncPlan};
use seatsync_tests::apigw::{ApiRequest, ApiResponse};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::TestBox;
use seatsync_tests::sync::{enterprise, options, syncer};
use serde_json::{Value, json};

pub struct Reports {
    pub aws: TestAws,
    pub router: Router,
    pub table: Table,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

pub fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

pub fn claims(tenant: &str) -> Value {
    json!({ "sub": format!("person-of-{tenant}"), "tenant_id": tenant })
}

impl Reports {
    pub async fn new() -> Self {
        let aws = TestAws::new().await;
        let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("reports-{}", uuid::Uuid::new_v4().simple()))
            .send()
            .await
            .expect("create a queue on moto")
            .queue_url
            .expect("a queue url");
        let queue = SqsQueue {
            client: sqs.clone(),
            url: queue_url.clone(),
        };
        let config = ReportsConfig {
            tenant_claim: "tenant_id".into(),
            sync_queue_url: queue_url.clone(),
        };
        let service = ReportsService::new(config, aws.table(), aws.secret_store(), Arc::new(queue));
        Self {
            router: router(Arc::new(service)),
            table: aws.table(),
            aws,
            sqs,
            queue_url,
        }
    }

    pub async fn send(&self, request: ApiRequest) -> ApiResponse {
        request.send(&self.router).await
    }

    /// `GET path?query` as `tenant`.
    pub async fn get(&self, tenant: &str, path: &str, query: &str) -> ApiResponse {
        self.send(ApiRequest::authorized("GET", path, claims(tenant)).query(query))
            .await
    }

    /// `GET path?query` as `tenant`, expecting 200 JSON.
    pub async fn get_json(&self, tenant: &str, path: &str, query: &str) -> Value {
        let response = self.get(tenant, path, query).await;
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        response.json()
    }

    pub async fn put_settings(&self, tenant: &str, body: &Value) -> ApiResponse {
        self.send(ApiRequest::authorized("PUT", "/settings", claims(tenant)).json(body))
            .await
    }

    /// Every user of `tenant` through the JSON list, following cursors; the ids in order.
    pub async fn all_user_ids(&self, tenant: &str, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut q = query.to_owned();
            if let Some(c) = &cursor {
                q = format!("{q}&cursor={c}");
            }
            let page = self.get_json(tenant, "/licenses/users", &q).await;
            ids.extend(
                page["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["box_user_id"].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return ids,
            }
        }
        panic!("the cursor never ended");
    }

    /// Saves a connection record for `tenant` (no tokens: the licenses API never calls Box).
    pub async fn connect(&self, tenant: &str, status: ConnectionStatus) {
        let record = ConnectionRecord {
            status,
            method: ConnectMethod::OAuth,
            enterprise_id: seatsync_tests::boxsim::enterprise_id("123"),
            enterprise_name: Some("Acme Inc.".into()),
            connected_by_box_id: seatsync_tests::boxsim::box_id("1"),
            connected_by_login: None,
            connected_by_sub: "sub-1".into(),
            scopes: vec![],
            connected_at: Utc::now(),
            activity_source: ActivitySource::BoxEvents,
            status_reason: None,
            status_since: Utc::now(),
            last_sync_at: None,
        };
        Connections::new(self.table.clone())
            .save(&self.tenant_id(tenant), &record)
            .await
            .unwrap();
    }

    fn tenant_id(&self, t: &str) -> TenantId {
        tenant(t)
    }

    /// A real full sync of `users` simulated Box users into `tenant`'s state; returns the simulator.
    pub async fn sync_from_simulator(&self, tenant_name: &str, users: usize) -> TestBox {
        let tb = TestBox::start(enterprise(users)).await;
        self.connect(tenant_name, ConnectionStatus::Connected).await;
        let plan = SyncPlan {
            tenant: tenant(tenant_name),
            kind: SyncKind::Full,
            source: ActivitySource::BoxEvents,
            settings: TenantSettings::default(),
            sso: None,
            deadline: None,
        };
        let run = syncer(&tb, Arc::new(self.table.clone()), options())
            .sync(&plan)
            .await
            .unwrap();
        assert_eq!(run.outcome, SyncOutcome::Succeeded);
        tb
    }

    /// Writes users directly (no sync), and the license summary a sync would leave for every
    /// stored user (the lists' totals come from it).
    pub async fn put_users(&self, tenant_name: &str, users: &[UserLicense]) {
        let t = tenant(tenant_name);
        let written = self.table.put_users(&t, users).await.unwrap();
        assert_eq!(written, users.len());
        let all = self.table.load_users(&t).await.unwrap();
        let summary = seatsync::sync::engine::summarize(
            all.values(),
            seatsync::connection::ActivitySource::BoxEvents,
            "box".into(),
            None,
            Utc::now(),
        );
        self.table.put_summary(&t, &summary).await.unwrap();
    }

    /// Every message on the queue (received and deleted).
    pub async fn queued(&self) -> Vec<SyncMessage> {
        let mut all = Vec::new();
        for _ in 0..10 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                all.push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        all
    }
}

/// A managed, active user last seen `days_ago` days ago (`None`: never).
pub fn user(id: u64, days_ago: Option<i64>) -> UserLicense {
    let now = Utc::now();
    UserLicense {
        box_user_id: seatsync_tests::boxsim::box_id(&id.to_string()),
        login: Some(format!("user{id}@acme.com")),
        name: Some(format!("User {id}")),
        status: UserStatus::Active,
        role: Some(Role::User),
        kind: UserKind::Managed,
        created_at: None,
        owns_content: false,
        login_activity: match days_ago {
            Some(d) => Activity::Seen {
                at: now - Duration::days(d),
                origin: ActivityOrigin::BoxLogin,
            },
            None => Activity::Never,
        },
        content_activity: Activity::NoData,
        first_seen_at: now - Duration::days(400),
        last_seen_at: now,
        removed_at: None,
    }
}

pub fn at(user: &Value) -> Option<DateTime<Utc>> {
    user["last_activity_at"]
        .as_str()
        .map(|t| DateTime::parse_from_rfc3339(t).unwrap().to_utc())
}

/// Sends a request and reads a body of any size (the shared helper stops at 1 MB; CSV exports are
/// larger).
pub async fn send_big(router: &Router, request: ApiRequest) -> (u16, http::HeaderMap, String) {
    use tower::ServiceExt as _;
    let response = router.clone().oneshot(request.into_request()).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).expect("UTF-8 body"))
}

/// Parses CSV text strictly by RFC 4180 (quoted fields, doubled quotes, CRLF records).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "records end with CRLF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            '"' | '\n' => panic!("a bare {c:?} outside quotes"),
            _ => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "the text ends with a complete record"
    );
    records
}

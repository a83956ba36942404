//! A Lambda Runtime API on loopback, so a function's real binary can be started as Lambda starts
//! it: the test queues events, the binary polls `/invocation/next` and posts its answers back.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use tokio::sync::Notify;

/// What the function posted back for one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// `response` or `error`.
    pub kind: &'static str,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<(String, serde_json::Value)>>,
    results: Mutex<Vec<Invocation>>,
    init_errors: Mutex<Vec<serde_json::Value>>,
    first_poll: Mutex<Option<Instant>>,
    queued: Notify,
    answered: Notify,
}

/// The fake Runtime API; stops with the test's runtime.
#[derive(Clone)]
pub struct FakeRuntimeApi {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

impl FakeRuntimeApi {
    pub async fn start() -> FakeRuntimeApi {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeRuntimeApi { inner, addr }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event; returns its request id.
    pub fn invoke(&self, event: serde_json::Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.inner.queue.lock().expect("queue").push_back((id.clone(), event));
        self.inner.queued.notify_one();
        id
    }

    /// Waits (bounded) for the answer to `request_id`.
    pub async fn answer(&self, request_id: &str, timeout: Duration) -> Option<Invocation> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.inner.answered.notified();
            if let Some(found) = self
                .inner
                .results
                .lock()
                .expect("results")
                .iter()
                .find(|r| r.request_id == request_id)
            {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// When the binary first asked for work (the end of its init phase).
    pub fn first_poll(&self) -> Option<Instant> {
        *self.inner.first_poll.lock().expect("first poll")
    }

    pub fn init_errors(&self) -> Vec<serde_json::Value> {
        self.inner.init_errors.lock().expect("init errors").clone()
    }
}

/// Environment a function needs to run against this API (plus the function's own variables).
pub fn lambda_env(api: &FakeRuntimeApi, function_name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.runtime_api()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn next(State(inner): State<Arc<Inner>>) -> (StatusCode, HeaderMap, String) {
    inner
        .first_poll
        .lock()
        .expect("first poll")
        .get_or_insert_with(Instant::now);
    loop {
        let notified = inner.queued.notified();
        if let Some((id, event)) = inner.queue.lock().expect("queue").pop_front() {
            let mut headers = HeaderMap::new();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 60_000)
                .unwrap_or_default();
            headers.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).expect("uuid header"),
            );
            headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline as u64));
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:test"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            return (StatusCode::OK, headers, event.to_string());
        }
        notified.await;
    }
}

fn record(inner: &Inner, request_id: String, kind: &'static str, body: &Bytes) {
    let body = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    inner
        .results
        .lock()
        .expect("results")
        .push(Invocation { request_id, kind, body });
    inner.answered.notify_waiters();
}

async fn response(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&inner, id, "response", &body);
    StatusCode::ACCEPTED
}

async fn error(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&inner, id, "error", &body);
    StatusCode::ACCEPTED
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    inner.init_errors.lock().expect("init errors").push(body);
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (payload 2.0) event as Lambda delivers it, with JWT claims.
pub fn http_api_event(method: &str, path: &str, claims: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "accept": "application/json", "host": "api.seatsync.test" },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "authorizer": { "jwt": { "claims": claims, "scopes": null } },
            "domainName": "api.seatsync.test",
            "domainPrefix": "api",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test" },
            "requestId": "req-1",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "28/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_824_000_000u64
        },
        "isBase64Encoded": false
    })
}

/// A function binary started as Lambda starts it, against a fresh [`FakeRuntimeApi`].
pub struct RunningFunction {
    pub api: FakeRuntimeApi,
    pub started: Instant,
    pub child: tokio::process::Child,
}

/// Starts `binary` with the Lambda environment plus `env`; the process is killed on drop.
pub async fn start_function(binary: &str, name: &str, env: &[(&str, &str)]) -> RunningFunction {
    let api = FakeRuntimeApi::start().await;
    let started = Instant::now();
    let child = tokio::process::Command::new(binary)
        .envs(lambda_env(&api, name))
        .envs(env.iter().copied())
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the function binary");
    RunningFunction { api, started, child }
}

/// The variables every function reads at cold start, pointing nowhere reachable (init must not call out).
pub const BASE_ENV: [(&str, &str); 3] = [
    ("TABLE_NAME", "seatsync-test"),
    ("BOX_API_BASE", "http://127.0.0.1:9"),
    ("BOX_ACCOUNT_BASE", "http://127.0.0.1:9"),
];

/// Starts `binary` against this test's moto resources (table, secret prefix, endpoint) plus `env`.
pub async fn start_function_on_aws(
    binary: &str,
    name: &str,
    aws: &crate::aws::TestAws,
    env: &[(&str, &str)],
) -> RunningFunction {
    let api = FakeRuntimeApi::start().await;
    let started = Instant::now();
    let child = tokio::process::Command::new(binary)
        .envs(lambda_env(&api, name))
        .envs(BASE_ENV)
        .envs(env.iter().copied())
        .envs([
            ("TABLE_NAME", aws.table_name.as_str()),
            ("SECRET_PREFIX", aws.secret_prefix.as_str()),
            ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the function binary");
    RunningFunction { api, started, child }
}

/// Stores the deployment's app secret (`{client_id, client_secret, cookie_key}`) on moto; returns its name.
pub async fn store_app_secret(aws: &crate::aws::TestAws) -> String {
    let name = format!("{}app", aws.secret_prefix);
    let value = serde_json::json!({ "client_id": "cid", "client_secret": "app-secret", "cookie_key": "k".repeat(40) });
    aws.secret_store()
        .write_json(&name, &value, &"0".repeat(32))
        .await
        .expect("store the app secret");
    name
}

/// Starts `binary` with `env` and asserts that it stops at cold start with an error naming `variable`.
pub async fn assert_cold_start_fails_naming(binary: &str, name: &str, env: &[(&str, &str)], variable: &str) {
    let f = start_function(binary, name, env).await;
    let output = tokio::time::timeout(Duration::from_secs(30), f.child.wait_with_output())
        .await
        .expect("the process exits")
        .expect("its output");
    assert!(!output.status.success(), "{name} started without a valid {variable}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(variable), "{name}, {variable}: {stderr}");
}

/// Like [`start_function_on_aws`], but the binary's AWS endpoint is `endpoint` (e.g. a proxy in
/// front of moto) and its stderr goes to `stderr` (a long run must not fill an unread pipe).
pub async fn start_function_via_endpoint(
    binary: &str,
    name: &str,
    aws: &crate::aws::TestAws,
    endpoint: &str,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> RunningFunction {
    let api = FakeRuntimeApi::start().await;
    let started = Instant::now();
    let child = tokio::process::Command::new(binary)
        .envs(lambda_env(&api, name))
        .envs(BASE_ENV)
        .envs(env.iter().copied())
        .envs([
            ("TABLE_NAME", aws.table_name.as_str()),
            ("SECRET_PREFIX", aws.secret_prefix.as_str()),
            ("AWS_ENDPOINT_URL", endpoint),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the function binary");
    RunningFunction { api, started, child }
}

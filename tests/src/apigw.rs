//! API Gateway HTTP API (payload 2.0) events as Lambda delivers them — with query, headers,
//! cookies, body and JWT claims — turned into requests by lambda_http itself
//! (`lambda_http::request::from_str`, which puts the request context in the extensions exactly
//! as in Lambda), and sent through a real axum router.

use axum::Router;
use base64::Engine as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// One request to build.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    cookies: Vec<String>,
    body: Option<Vec<u8>>,
    claims: Option<Value>,
}

impl ApiRequest {
    /// A request without an authorizer (as the OAuth callback receives it).
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: String::new(),
            headers: vec![
                ("accept".into(), "application/json".into()),
                ("host".into(), "api.seatsync.test".into()),
            ],
            cookies: Vec::new(),
            body: None,
            claims: None,
        }
    }

    /// A request whose JWT the API Gateway authorizer verified, with these claims.
    pub fn authorized(method: &str, path: &str, claims: Value) -> Self {
        Self {
            claims: Some(claims),
            ..Self::new(method, path)
        }
    }

    /// The raw query string (without `?`).
    pub fn query(mut self, raw: &str) -> Self {
        self.query = raw.to_owned();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A `name=value` cookie (API Gateway passes cookies in their own array).
    pub fn cookie(mut self, pair: &str) -> Self {
        self.cookies.push(pair.to_owned());
        self
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(self, body: &Value) -> Self {
        self.raw_body("application/json", body.to_string().into_bytes())
    }

    /// Any body bytes with a content type (non-UTF-8 bytes travel base64-encoded, as in Lambda).
    pub fn raw_body(mut self, content_type: &str, bytes: Vec<u8>) -> Self {
        self.headers.push(("content-type".into(), content_type.to_owned()));
        self.body = Some(bytes);
        self
    }

    /// The event JSON Lambda would deliver.
    pub fn event(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let (body, base64) = match &self.body {
            None => (Value::Null, false),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => (Value::String(text.to_owned()), false),
                Err(_) => (
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    true,
                ),
            },
        };
        let route_key = format!("{} {}", self.method, self.path);
        let mut context = json!({
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.seatsync.test",
            "domainPrefix": "api",
            "http": { "method": self.method, "path": self.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test" },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": "28/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_824_000_000u64
        });
        if let Some(claims) = &self.claims {
            context["authorizer"] = json!({ "jwt": { "claims": claims, "scopes": null } });
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": base64
        });
        if !self.cookies.is_empty() {
            event["cookies"] = json!(self.cookies);
        }
        if !body.is_null() {
            event["body"] = body;
        }
        event
    }

    /// The request lambda_http builds from the event.
    pub fn into_request(self) -> lambda_http::Request {
        self.try_into_request()
            .expect("lambda_http accepts the API Gateway v2 event")
    }

    /// `None` when lambda_http itself refuses the event (API Gateway would never deliver it).
    pub fn try_into_request(self) -> Option<lambda_http::Request> {
        lambda_http::request::from_str(&self.event().to_string()).ok()
    }

    /// Sends the request through `router` and collects the answer.
    pub async fn send(self, router: &Router) -> ApiResponse {
        let request = self.into_request();
        send_request(router, request).await
    }

    /// [`ApiRequest::send`] for requests lambda_http may refuse to build (property tests).
    pub async fn try_send(self, router: &Router) -> Option<ApiResponse> {
        let request = self.try_into_request()?;
        Some(send_request(router, request).await)
    }
}

async fn send_request(router: &Router, request: lambda_http::Request) -> ApiResponse {
    {
        let response = router.clone().oneshot(request).await.expect("routers are infallible");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("read the response body")
            .to_vec();
        ApiResponse { status, headers, body }
    }
}

/// An answer, fully read.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem+json answer with this status; returns the problem.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let problem = self.json();
        assert_eq!(problem["status"], status);
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
        problem
    }
}

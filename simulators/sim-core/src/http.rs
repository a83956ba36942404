//! A request as the simulators' handlers read it, and the reply they give.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;

/// A parsed request: method, path, decoded query pairs (in order, repeats kept), headers, body.
#[derive(Debug)]
pub struct Req {
    pub method: hyper::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// Reads the whole request (an unreadable body reads as empty).
    pub async fn read(req: Request<Incoming>) -> Req {
        let (parts, body) = req.into_parts();
        let query = parts
            .uri
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Req {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            headers: parts.headers,
            body,
        }
    }
    /// The first value of query parameter `k`.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    /// The token of an `Authorization: Bearer` header.
    pub fn bearer(&self) -> Option<String> {
        self.header(http::header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|s| s.trim().to_string())
    }
    /// The body as an `application/x-www-form-urlencoded` form.
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// A reply's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    Json(Value),
    /// Sent verbatim with this content type.
    Text {
        content_type: &'static str,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::with_body(status, Body::Json(body))
    }
    pub fn empty(status: u16) -> Reply {
        Reply::with_body(status, Body::Empty)
    }
    pub fn text(status: u16, content_type: &'static str, text: impl Into<String>) -> Reply {
        Reply::with_body(
            status,
            Body::Text {
                content_type,
                text: text.into(),
            },
        )
    }
    fn with_body(status: u16, body: Body) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let mut b = Response::builder().status(self.status);
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let (content_type, bytes) = match self.body {
            Body::Empty => (None, Bytes::new()),
            Body::Json(v) => (
                Some("application/json"),
                Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            ),
            Body::Text { content_type, text } => (Some(content_type), Bytes::from(text)),
        };
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        b.body(Full::new(bytes))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

/// Returned by a handler to make the server close the connection without answering.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated dropped connection")
    }
}

impl std::error::Error for DropConnection {}

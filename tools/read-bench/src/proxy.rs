//! A counting proxy on loopback in front of moto: forwards every request unchanged and, for
//! DynamoDB answers (`X-Amz-Target: DynamoDB_20120810.<Op>`), adds up calls, items read
//! (`ScannedCount`, else `Count`, or the items a Get returned) and response bytes. The bench sends
//! one API request at a time, so the counts between two snapshots belong to that request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode};
use serde::Serialize;

const DYNAMO_PREFIX: &str = "DynamoDB_20120810.";
/// Largest request body forwarded (DynamoDB's own limit is 16 MB for a batch write).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// DynamoDB traffic seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub calls: u64,
    /// Items DynamoDB read: `ScannedCount` of a Query or Scan (before any filter), items returned
    /// by GetItem and BatchGetItem.
    pub items_read: u64,
    /// Items returned (`Count` of a Query or Scan, after filters).
    pub items_returned: u64,
    pub response_bytes: u64,
    /// Calls per operation (`Query`, `GetItem`, `UpdateItem`, …).
    pub ops: BTreeMap<String, u64>,
}

impl Counts {
    /// What was added since `before`.
    pub fn since(&self, before: &Counts) -> Counts {
        let mut ops = BTreeMap::new();
        for (op, n) in &self.ops {
            let d = n - before.ops.get(op).copied().unwrap_or(0);
            if d > 0 {
                ops.insert(op.clone(), d);
            }
        }
        Counts {
            calls: self.calls - before.calls,
            items_read: self.items_read - before.items_read,
            items_returned: self.items_returned - before.items_returned,
            response_bytes: self.response_bytes - before.response_bytes,
            ops,
        }
    }

    fn add(&mut self, op: &str, body: &[u8]) {
        let (read, returned) = items_in(op, body);
        self.calls += 1;
        self.items_read += read;
        self.items_returned += returned;
        self.response_bytes += body.len() as u64;
        *self.ops.entry(op.to_owned()).or_default() += 1;
    }
}

/// Items read and returned by one DynamoDB answer of operation `op`. Error answers and
/// operations that read nothing count 0.
pub fn items_in(op: &str, body: &[u8]) -> (u64, u64) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (0, 0);
    };
    match op {
        "Query" | "Scan" => {
            let count = v["Count"].as_u64().unwrap_or(0);
            (v["ScannedCount"].as_u64().unwrap_or(count), count)
        }
        "GetItem" => {
            let n = u64::from(v.get("Item").is_some_and(|i| i.is_object()));
            (n, n)
        }
        "BatchGetItem" => {
            let n = v["Responses"]
                .as_object()
                .map(|tables| {
                    tables
                        .values()
                        .filter_map(|t| t.as_array())
                        .map(|a| a.len() as u64)
                        .sum()
                })
                .unwrap_or(0);
            (n, n)
        }
        _ => (0, 0),
    }
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    counts: Mutex<Counts>,
}

/// The running proxy; stops with the runtime.
#[derive(Clone)]
pub struct CountingProxy {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

impl CountingProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream` (moto's URL).
    pub async fn start(upstream: &str) -> anyhow::Result<CountingProxy> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(600))
            .build()?;
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            counts: Mutex::new(Counts::default()),
        });
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CountingProxy { inner, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn snapshot(&self) -> Counts {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "connection" | "transfer-encoding" | "keep-alive" | "upgrade" | "content-length"
    )
}

async fn forward(State(inner): State<Arc<Inner>>, request: Request) -> Response<Body> {
    match try_forward(&inner, request).await {
        Ok(response) => response,
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(format!("read-bench proxy: {e:#}")))
            .unwrap_or_default(),
    }
}

async fn try_forward(inner: &Inner, request: Request) -> anyhow::Result<Response<Body>> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await?;
    let op = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(DYNAMO_PREFIX))
        .map(str::to_owned);
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = inner
        .client
        .request(parts.method.clone(), format!("{}{path}", inner.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    let answer = out.send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes: Bytes = answer.bytes().await?;
    if let Some(op) = op {
        inner
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(&op, &bytes);
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    Ok(response.body(Body::from(bytes))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_answer_counts_scanned_items_and_bytes() {
        let body = br#"{"Count":2,"Items":[{"pk":{"S":"a"}},{"pk":{"S":"b"}}],"ScannedCount":5,"LastEvaluatedKey":{"pk":{"S":"b"}}}"#;
        assert_eq!(items_in("Query", body), (5, 2));
        let mut c = Counts::default();
        c.add("Query", body);
        c.add("Query", br#"{"Count":3,"Items":[],"ScannedCount":3}"#);
        assert_eq!(c.calls, 2);
        assert_eq!(c.items_read, 8);
        assert_eq!(c.items_returned, 5);
        assert_eq!(c.response_bytes, body.len() as u64 + 39);
        assert_eq!(c.ops["Query"], 2);
    }

    #[test]
    fn gets_batches_errors_and_writes() {
        assert_eq!(items_in("Query", br#"{"Count":4,"Items":[]}"#), (4, 4));
        assert_eq!(items_in("GetItem", br#"{"Item":{"pk":{"S":"a"}}}"#), (1, 1));
        assert_eq!(items_in("GetItem", br#"{}"#), (0, 0));
        assert_eq!(
            items_in(
                "BatchGetItem",
                br#"{"Responses":{"t":[{"a":{"S":"1"}},{"a":{"S":"2"}}]},"UnprocessedKeys":{}}"#
            ),
            (2, 2)
        );
        assert_eq!(items_in("UpdateItem", br#"{"Attributes":{}}"#), (0, 0));
        assert_eq!(
            items_in(
                "Query",
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}"#
            ),
            (0, 0)
        );
        assert_eq!(items_in("Query", b"not json"), (0, 0));
    }

    #[test]
    fn differences_between_snapshots() {
        let mut a = Counts::default();
        a.add("GetItem", br#"{"Item":{}}"#);
        let before = a.clone();
        a.add("Query", br#"{"Count":1,"ScannedCount":10}"#);
        a.add("UpdateItem", b"{}");
        let d = a.since(&before);
        assert_eq!((d.calls, d.items_read, d.items_returned), (2, 10, 1));
        assert_eq!(d.ops.keys().collect::<Vec<_>>(), ["Query", "UpdateItem"]);
    }
}

//! The HTTP plumbing both simulators share: a hyper server on loopback that can close a connection
//! without answering, seeded random faults, scripted nth-request faults, latency and counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::{Counters, Endpoint, Fault, Faults};

/// A parsed request, as the provider handlers see it.
pub(crate) struct Req {
    pub method: hyper::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// A verbatim body instead of `body`.
    pub raw: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            raw: None,
        }
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// What a provider simulator plugs into the shared server.
pub(crate) trait App: Send + Sync + 'static {
    fn route(&self, method: &hyper::Method, path: &str) -> Option<Endpoint>;
    /// The provider's own shape of an injected error answer.
    fn fault_reply(&self, ep: Endpoint, status: u16, retry_after_secs: u64) -> Reply;
    fn handle(&self, ep: Endpoint, req: &Req) -> Reply;
}

pub(crate) struct FaultState {
    pub faults: Faults,
    rng: ChaCha8Rng,
    seen: HashMap<Endpoint, u64>,
    injected: Vec<(Endpoint, u64, Fault)>,
}

pub(crate) struct Core {
    pub faults: Mutex<FaultState>,
    pub counters: Mutex<Counters>,
}

impl Core {
    pub fn new(seed: u64, faults: Faults) -> Core {
        Core {
            faults: Mutex::new(FaultState {
                faults,
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA_0175),
                seen: HashMap::new(),
                injected: Vec::new(),
            }),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The `nth` request (1-based, counted from now) to `ep` gets `fault`, once.
    pub fn inject(&self, ep: Endpoint, nth: u64, fault: Fault) {
        let mut f = lock(&self.faults);
        let target = f.seen.get(&ep).copied().unwrap_or(0) + nth.max(1);
        f.injected.push((ep, target, fault));
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.faults).faults = faults;
    }

    pub fn counters(&self) -> Counters {
        lock(&self.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.counters) = Counters::default();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server; stops when dropped.
pub(crate) struct Running {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Running {
    pub async fn start<A: App>(app: Arc<A>, core: Arc<Core>) -> anyhow::Result<Running> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        anyhow::ensure!(addr.ip().is_loopback(), "sso-sim binds loopback only, not {addr}");
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(listener, app, core, stop_rx));
        Ok(Running {
            addr,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve<A: App>(
    listener: tokio::net::TcpListener,
    app: Arc<A>,
    core: Arc<Core>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (app, core, mut stop) = (app.clone(), core.clone(), stop.clone());
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let (app, core) = (app.clone(), core.clone());
                async move { handle(&*app, &core, req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated dropped connection")
    }
}
impl std::error::Error for DropConnection {}

async fn handle<A: App>(app: &A, core: &Core, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
    };
    let Some(ep) = app.route(&req.method, &req.path) else {
        return Ok(to_response(Reply::json(
            404,
            serde_json::json!({"error": "not_found", "path": req.path}),
        )));
    };

    let (latency, retry_after_secs, faults) = {
        let mut f = lock(&core.faults);
        let seen = {
            let s = f.seen.entry(ep).or_default();
            *s += 1;
            *s
        };
        let injected = f
            .injected
            .iter()
            .position(|(e, n, _)| *e == ep && *n == seen)
            .map(|i| f.injected.remove(i).2);
        let cfg = f.faults.clone();
        let roll: f64 = f.rng.random();
        let random = if roll < cfg.share_drop {
            Some(Fault::Drop)
        } else if roll < cfg.share_drop + cfg.share_5xx {
            let status = [500u16, 502, 503][f.rng.random_range(0..3)];
            Some(Fault::Status {
                status,
                retry_after: None,
            })
        } else if roll < cfg.share_drop + cfg.share_5xx + cfg.share_429 {
            Some(Fault::Status {
                status: 429,
                retry_after: None,
            })
        } else {
            None
        };
        (cfg.latency, cfg.retry_after_secs, [injected, random])
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    for fault in faults.into_iter().flatten() {
        match fault {
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Redirect(location) => {
                let reply = Reply::json(302, serde_json::json!({})).header("location", location);
                lock(&core.counters).record(ep, reply.status);
                return Ok(to_response(reply));
            }
            Fault::Raw { status, body } => {
                let reply = Reply {
                    status,
                    headers: Vec::new(),
                    body: None,
                    raw: Some(body),
                };
                lock(&core.counters).record(ep, reply.status);
                return Ok(to_response(reply));
            }
            Fault::Drop => {
                lock(&core.counters).record_drop(ep);
                return Err(DropConnection);
            }
            Fault::Status { status, retry_after } => {
                let reply = app.fault_reply(ep, status, retry_after.unwrap_or(retry_after_secs));
                lock(&core.counters).record(ep, reply.status);
                return Ok(to_response(reply));
            }
        }
    }
    let reply = app.handle(ep, &req);
    lock(&core.counters).record(ep, reply.status);
    Ok(to_response(reply))
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let bytes = match (reply.raw, reply.body) {
        (Some(raw), _) => {
            b = b.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(raw)
        }
        (None, Some(v)) => {
            b = b.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        (None, None) => Bytes::new(),
    };
    b.body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

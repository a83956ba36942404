//! box-sim's HTTP side: the simulator's shared state, the request pipeline (faults, rate limit,
//! handler, contract check, counters) and the error answers every endpoint gives. The serving
//! itself is `sim_core`'s; each endpoint lives in its own file behind a small router.

mod api;
mod events;
mod oauth;
mod router;
mod user_admin;
mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim_core::{Body, DropConnection, FaultPlan, RandomFault, Reply, Req, Shares};

use crate::contract::SpecValidator;
use crate::state::{Clock, State, new_rng};
use crate::{ContractReport, Counters, Endpoint, Fault, Faults, SimConfig};
use router::Route;

pub struct Shared {
    pub config: SimConfig,
    pub clock: Clock,
    pub state: Mutex<State>,
    pub faults: Mutex<FaultState>,
    pub counters: Mutex<Counters>,
    pub contract: Mutex<ContractReport>,
    pub(crate) validator: Option<Arc<SpecValidator>>,
    request_seq: Mutex<ChaCha8Rng>,
}

pub struct FaultState {
    pub faults: Faults,
    plan: FaultPlan<Endpoint, Fault>,
    /// The `stream_position` of the last events request, for [`Fault::RepeatPreviousPage`].
    previous_events_position: Option<String>,
    rate: HashMap<String, (i64, u32)>,
}

impl FaultState {
    pub fn inject(&mut self, ep: Endpoint, nth: u64, fault: Fault) {
        self.plan.inject(ep, nth, fault);
    }

    pub fn received(&self, ep: Endpoint) -> u64 {
        self.plan.received(ep)
    }
}

impl Shared {
    pub fn new(config: SimConfig, validator: Option<Arc<SpecValidator>>) -> Shared {
        let now = config.now.unwrap_or_else(Utc::now);
        let state = crate::generator::generate(&config, now);
        Shared {
            clock: Clock::new(now),
            state: Mutex::new(state),
            faults: Mutex::new(FaultState {
                faults: config.faults.clone(),
                plan: FaultPlan::new(new_rng(config.seed, 3)),
                previous_events_position: None,
                rate: HashMap::new(),
            }),
            counters: Mutex::new(Counters::default()),
            contract: Mutex::new(ContractReport::default()),
            validator,
            request_seq: Mutex::new(new_rng(config.seed, 4)),
            config,
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a handler reads of a request.
struct Ctx {
    query: Vec<(String, String)>,
    bearer: Option<String>,
    body: Bytes,
    now: DateTime<Utc>,
}

impl Ctx {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    /// Comma-separated and repeated values alike (`fields`, `event_type`).
    fn list(&self, k: &str) -> Option<Vec<String>> {
        let v: Vec<String> = self
            .query
            .iter()
            .filter(|(n, _)| n == k || n == &format!("{k}[]"))
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect();
        (!v.is_empty()).then_some(v)
    }
    fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// One request: latency, an injected fault for it, then the configured random ones; the rate
/// limit; the endpoint; a fault after the handler; then counting and the contract check.
pub async fn handle(shared: Arc<Shared>, req: Req) -> Result<Reply, DropConnection> {
    let bearer = req.bearer();
    let Req {
        method,
        path,
        query,
        body,
        ..
    } = req;

    let Some(route) = router::route(&method, &path) else {
        return Ok(client_error(
            &shared,
            404,
            "not_found",
            &format!("Not Found: {method} {path}"),
        ));
    };

    let (latency, injected, random) = {
        let mut f = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        let injected = f.plan.arrive(route.ep);
        let faults = f.faults.clone();
        let shares = Shares {
            drop: faults.share_drop,
            status_5xx: faults.share_5xx,
            status_429: faults.share_429,
        };
        let random = f.plan.roll(shares).map(|fault| match fault {
            RandomFault::Drop => Fault::Drop,
            RandomFault::Status(status) => Fault::Status {
                status,
                retry_after: (status == 503 || status == 429).then_some(faults.retry_after_secs),
            },
        });
        (faults.latency, injected, random)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut after_handler = None;
    let mut query = query;
    for fault in [injected, random].into_iter().flatten() {
        match fault {
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Drop => {
                sim_core::lock(&shared.counters).record_drop(route.ep);
                return Err(DropConnection);
            }
            Fault::Status { status, retry_after } => {
                let reply = fault_reply(&shared, status, retry_after);
                return Ok(finish(&shared, &method, &route, reply));
            }
            Fault::AfterHandler { .. } | Fault::DropAfterHandler => after_handler = Some(fault),
            Fault::RepeatPreviousPage => {
                let previous = shared
                    .faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .previous_events_position
                    .clone();
                query.retain(|(k, _)| k != "stream_position");
                if let Some(p) = previous {
                    query.push(("stream_position".into(), p));
                }
            }
        }
    }
    if route.ep == Endpoint::Events {
        let requested = query
            .iter()
            .find(|(k, _)| k == "stream_position")
            .map(|(_, v)| v.clone());
        let mut f = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.previous_events_position = requested;
    }

    let now = shared.clock.now();
    let ctx = Ctx {
        query,
        bearer,
        body,
        now,
    };
    let reply = match route.ep {
        Endpoint::Authorize => oauth::authorize(&shared, &ctx),
        Endpoint::Token => oauth::token(&shared, &ctx),
        Endpoint::Revoke => oauth::revoke(&shared, &ctx),
        _ => match api::rate_limit(&shared, &ctx) {
            Some(reply) => reply,
            None => api::api(&shared, &ctx, &route),
        },
    };
    match after_handler {
        Some(Fault::DropAfterHandler) => {
            sim_core::lock(&shared.counters).record_drop(route.ep);
            Err(DropConnection)
        }
        Some(Fault::AfterHandler { status }) => {
            Ok(finish(&shared, &method, &route, fault_reply(&shared, status, None)))
        }
        _ => Ok(finish(&shared, &method, &route, reply)),
    }
}

/// Counts the answer and, with a validator, checks a JSON body against Box's OpenAPI file.
fn finish(shared: &Shared, method: &http::Method, route: &Route, reply: Reply) -> Reply {
    sim_core::lock(&shared.counters).record(route.ep, reply.status);
    if let (Some(v), Body::Json(body)) = (&shared.validator, &reply.body) {
        let result = v.validate(method.as_str(), route.template, reply.status, body);
        let mut report = sim_core::lock(&shared.contract);
        report.checked += 1;
        if let Err(errors) = result {
            report.violations.push(format!(
                "{method} {} {}: {}",
                route.template,
                reply.status,
                errors.join("; ")
            ));
        }
    }
    reply
}

fn request_id(shared: &Shared) -> String {
    let n: u64 = sim_core::lock(&shared.request_seq).random();
    format!("{n:016x}")
}

fn client_error(shared: &Shared, status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "type": "error",
            "status": status,
            "code": code,
            "message": message,
            "context_info": {"message": message},
            "help_url": "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/",
            "request_id": request_id(shared),
        }),
    )
}

fn fault_reply(shared: &Shared, status: u16, retry_after: Option<u64>) -> Reply {
    let (code, message) = match status {
        429 => (
            "rate_limit_exceeded",
            "Request rate limit exceeded, please try again later",
        ),
        500 => ("internal_server_error", "Internal Server Error"),
        502 => ("bad_gateway", "Bad Gateway"),
        503 => ("unavailable", "Unavailable"),
        400 => ("bad_request", "Bad Request"),
        401 => ("unauthorized", "Unauthorized"),
        403 => ("forbidden", "Forbidden"),
        404 => ("not_found", "Not Found"),
        _ => ("simulated_fault", "Simulated fault"),
    };
    if status == 401 {
        return unauthorized();
    }
    let mut reply = client_error(shared, status, code, message);
    if let Some(s) = retry_after {
        reply = reply.header("retry-after", s.to_string());
    }
    reply
}

fn unauthorized() -> Reply {
    Reply::empty(401).header(
        "www-authenticate",
        "Bearer realm=\"Service\", error=\"invalid_token\", error_description=\"The access token provided is invalid.\"",
    )
}

fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::json(400, json!({"error": error, "error_description": description}))
}

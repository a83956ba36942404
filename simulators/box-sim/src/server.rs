//! The HTTP side: connection handling (so a fault can close a connection with no response), routing,
//! fault injection, contract checks and the endpoint handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::contract::SpecValidator;
use crate::state::{ANON, Clock, EventKind, State, Subject, UserRec, default_scopes, fmt_time, new_rng, ts};
use crate::{ContractReport, Counters, Endpoint, Fault, Faults, Plan, SimConfig, UserStatus};

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
    rng: ChaCha8Rng,
    seen: HashMap<Endpoint, u64>,
    injected: Vec<(Endpoint, u64, Fault)>,
    /// The `stream_position` of the last events request, for [`Fault::RepeatPreviousPage`].
    previous_events_position: Option<String>,
    rate: HashMap<String, (i64, u32)>,
}

impl FaultState {
    pub fn inject(&mut self, ep: Endpoint, nth: u64, fault: Fault) {
        let target = self.seen.get(&ep).copied().unwrap_or(0) + nth.max(1);
        self.injected.push((ep, target, fault));
    }

    pub fn received(&self, ep: Endpoint) -> u64 {
        self.seen.get(&ep).copied().unwrap_or(0)
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
                rng: new_rng(config.seed, 3),
                seen: HashMap::new(),
                injected: Vec::new(),
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

pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = shared.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(shared, req).await }
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

enum Body {
    Empty,
    Json(Value),
    Html(String),
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

impl Reply {
    fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: Body::Json(v),
        }
    }
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: Body::Empty,
        }
    }
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Reply {
        self.headers.push((k, v.into()));
        self
    }
}

struct Route {
    ep: Endpoint,
    template: &'static str,
    user_id: Option<String>,
}

fn route(method: &hyper::Method, path: &str) -> Option<Route> {
    use hyper::Method as M;
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let r = |ep, template| {
        Some(Route {
            ep,
            template,
            user_id: None,
        })
    };
    match (method, segs.as_slice()) {
        (&M::GET, ["api", "oauth2", "authorize"]) => r(Endpoint::Authorize, "/authorize"),
        (&M::POST, ["oauth2", "token"]) => r(Endpoint::Token, "/oauth2/token"),
        (&M::POST, ["oauth2", "revoke"]) => r(Endpoint::Revoke, "/oauth2/revoke"),
        (&M::GET, ["2.0", "users", "me"]) => r(Endpoint::UsersMe, "/users/me"),
        (&M::GET, ["2.0", "users"]) => r(Endpoint::Users, "/users"),
        (&M::GET, ["2.0", "events"]) => r(Endpoint::Events, "/events"),
        (&M::POST, ["2.0", "users", "terminate_sessions"]) => {
            r(Endpoint::TerminateSessions, "/users/terminate_sessions")
        }
        (m, ["2.0", "users", id]) if *m == M::GET || *m == M::PUT || *m == M::DELETE => Some(Route {
            ep: match *m {
                M::GET => Endpoint::UserGet,
                M::PUT => Endpoint::UserUpdate,
                _ => Endpoint::UserDelete,
            },
            template: "/users/{user_id}",
            user_id: Some(id.to_string()),
        }),
        (&M::PUT, ["2.0", "users", id, "folders", "0"]) => Some(Route {
            ep: Endpoint::TransferContent,
            template: "/users/{user_id}/folders/0",
            user_id: Some(id.to_string()),
        }),
        _ => None,
    }
}

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

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|s| s.trim().to_string());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let Some(route) = route(&method, &path) else {
        let reply = client_error(&shared, 404, "not_found", &format!("Not Found: {method} {path}"));
        return Ok(to_response(&shared, reply));
    };

    // Faults: latency, then an injected fault for this request, then the configured random ones.
    let (latency, injected, random) = {
        let mut f = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        let seen = {
            let s = f.seen.entry(route.ep).or_default();
            *s += 1;
            *s
        };
        let injected = f
            .injected
            .iter()
            .position(|(ep, n, _)| *ep == route.ep && *n == seen)
            .map(|i| f.injected.remove(i).2);
        let faults = f.faults.clone();
        let roll: f64 = f.rng.random();
        let random = if roll < faults.share_drop {
            Some(Fault::Drop)
        } else if roll < faults.share_drop + faults.share_5xx {
            let status = [500u16, 502, 503][f.rng.random_range(0..3)];
            Some(Fault::Status {
                status,
                retry_after: (status == 503).then_some(faults.retry_after_secs),
            })
        } else if roll < faults.share_drop + faults.share_5xx + faults.share_429 {
            Some(Fault::Status {
                status: 429,
                retry_after: Some(faults.retry_after_secs),
            })
        } else {
            None
        };
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
                shared.counters.lock().unwrap().record_drop(route.ep);
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
        Endpoint::Authorize => authorize(&shared, &ctx),
        Endpoint::Token => token(&shared, &ctx),
        Endpoint::Revoke => revoke(&shared, &ctx),
        _ => match rate_limit(&shared, &ctx) {
            Some(reply) => reply,
            None => api(&shared, &ctx, &route),
        },
    };
    match after_handler {
        Some(Fault::DropAfterHandler) => {
            shared.counters.lock().unwrap().record_drop(route.ep);
            Err(DropConnection)
        }
        Some(Fault::AfterHandler { status }) => {
            Ok(finish(&shared, &method, &route, fault_reply(&shared, status, None)))
        }
        _ => Ok(finish(&shared, &method, &route, reply)),
    }
}

fn finish(shared: &Shared, method: &hyper::Method, route: &Route, reply: Reply) -> Response<Full<Bytes>> {
    shared.counters.lock().unwrap().record(route.ep, reply.status);
    if let (Some(v), Body::Json(body)) = (&shared.validator, &reply.body) {
        let result = v.validate(method.as_str(), route.template, reply.status, body);
        let mut report = shared.contract.lock().unwrap();
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
    to_response(shared, reply)
}

fn to_response(_shared: &Shared, reply: Reply) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        b = b.header(*k, v);
    }
    let (ct, bytes) = match reply.body {
        Body::Empty => (None, Bytes::new()),
        Body::Json(v) => (
            Some("application/json"),
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
        ),
        Body::Html(h) => (Some("text/html; charset=utf-8"), Bytes::from(h)),
    };
    if let Some(ct) = ct {
        b = b.header(http::header::CONTENT_TYPE, ct);
    }
    b.body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn request_id(shared: &Shared) -> String {
    let n: u64 = shared.request_seq.lock().unwrap().random();
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

/// Box's limit is per user and minute; here per access token and simulated minute.
fn rate_limit(shared: &Shared, ctx: &Ctx) -> Option<Reply> {
    let token = ctx.bearer.as_ref()?;
    let mut f = shared.faults.lock().unwrap();
    let limit = f.faults.rate_limit_per_minute?;
    let minute = ctx.now.timestamp().div_euclid(60);
    let entry = f.rate.entry(token.clone()).or_insert((minute, 0));
    if entry.0 != minute {
        *entry = (minute, 0);
    }
    entry.1 += 1;
    if entry.1 <= limit {
        return None;
    }
    drop(f);
    let wait = 60 - ctx.now.timestamp().rem_euclid(60);
    Some(fault_reply(shared, 429, Some(wait as u64)))
}

// ---------------------------------------------------------------- OAuth

fn html(status: u16, title: &str, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: Body::Html(format!(
            "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
        )),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{q}")
}

fn authorize(shared: &Shared, ctx: &Ctx) -> Reply {
    let cfg = &shared.config;
    if ctx.q("client_id") != Some(cfg.client_id.as_str()) {
        return html(400, "Invalid client", "<p>invalid_client: unknown client_id</p>");
    }
    let redirect = match (ctx.q("redirect_uri"), &cfg.redirect_uri) {
        (Some(r), Some(want)) if r == want => r.to_string(),
        (Some(_), Some(_)) => return html(400, "Invalid redirect", "<p>redirect_uri_mismatch</p>"),
        (Some(r), None) => r.to_string(),
        (None, Some(want)) => want.clone(),
        (None, None) => return html(400, "Invalid request", "<p>redirect_uri is required</p>"),
    };
    let state_param = ctx.q("state").unwrap_or("").to_string();
    if ctx.q("response_type") != Some("code") {
        return Reply::empty(302).header(
            "location",
            with_query(
                &redirect,
                &[("error", "unsupported_response_type"), ("state", &state_param)],
            ),
        );
    }
    let scopes: Vec<String> = match ctx.q("scope") {
        Some(s) if !s.trim().is_empty() => s.split_whitespace().map(str::to_string).collect(),
        _ => default_scopes(),
    };
    let consent_given = cfg.auto_consent || ctx.q("sim_consent") == Some("1");
    if !consent_given {
        let mut params: Vec<(String, String)> = ctx.query.clone();
        params.push(("sim_consent".into(), "1".into()));
        let href = with_query(
            "/api/oauth2/authorize",
            &params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        );
        return html(
            200,
            "Grant access to Box",
            &format!(
                "<p>The app wants: {}</p><a id=\"grant\" href=\"{}\">Grant access to Box</a>",
                escape(&scopes.join(" ")),
                escape(&href)
            ),
        );
    }
    let mut st = shared.st();
    if st.deny_consent {
        return Reply::empty(302).header(
            "location",
            with_query(
                &redirect,
                &[
                    ("error", "access_denied"),
                    ("error_description", "The user denied access to your application"),
                    ("state", &state_param),
                ],
            ),
        );
    }
    let user = st.consenting_user.clone();
    let code = st.issue_code(&user, scopes, Some(redirect.clone()), ctx.now);
    Reply::empty(302).header(
        "location",
        with_query(&redirect, &[("code", &code), ("state", &state_param)]),
    )
}

fn token(shared: &Shared, ctx: &Ctx) -> Reply {
    let cfg = &shared.config;
    let form = ctx.form();
    let get = |k: &str| form.get(k).map(String::as_str);
    let Some(grant) = get("grant_type") else {
        return oauth_error("invalid_request", "Invalid grant_type parameter or parameter missing");
    };
    let client_ok =
        get("client_id") == Some(cfg.client_id.as_str()) && get("client_secret") == Some(cfg.client_secret.as_str());
    match grant {
        "authorization_code" | "refresh_token" | "client_credentials" => {}
        _ => {
            return oauth_error(
                "unsupported_grant_type",
                "Invalid grant_type parameter or parameter missing",
            );
        }
    }
    if !client_ok {
        return oauth_error("invalid_client", "The client credentials are invalid");
    }
    let mut st = shared.st();
    let ttl = cfg.access_token_ttl.as_secs();
    let pair_reply = |pair: crate::TokenPair| {
        Reply::json(
            200,
            json!({
                "access_token": pair.access_token,
                "expires_in": ttl,
                "token_type": "bearer",
                "restricted_to": [],
                "refresh_token": pair.refresh_token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            }),
        )
    };
    match grant {
        "authorization_code" => {
            let Some(code) = get("code") else {
                return oauth_error("invalid_request", "Missing parameter: \"code\"");
            };
            // A code is single-use: any exchange attempt consumes it.
            let Some(grant) = st.codes.remove(code) else {
                return oauth_error("invalid_grant", "Auth code doesn't exist or is invalid for the client");
            };
            if grant.expires_at <= ctx.now {
                return oauth_error("invalid_grant", "The authorization code has expired");
            }
            if let Some(r) = get("redirect_uri")
                && (cfg.redirect_uri.as_deref().is_some_and(|w| w != r)
                    || grant.redirect_uri.as_deref().is_some_and(|g| g != r))
            {
                return oauth_error(
                    "invalid_grant",
                    "The redirect_uri does not match the one used to authorize",
                );
            }
            if st.user_index(&grant.user_id).is_none() {
                return oauth_error("invalid_grant", "The user no longer exists");
            }
            let pair = st.issue_pair(Subject::User(grant.user_id), grant.scopes, ctx.now);
            pair_reply(pair)
        }
        "refresh_token" => {
            let Some(rt) = get("refresh_token") else {
                return oauth_error("invalid_request", "Missing parameter: \"refresh_token\"");
            };
            let Some(old) = st.refresh.remove(rt) else {
                return oauth_error("invalid_grant", "Invalid refresh token");
            };
            // Rotation: the old access token dies with its refresh token.
            st.access.remove(&old.access);
            if old.expires_at <= ctx.now {
                return oauth_error("invalid_grant", "Refresh token has expired");
            }
            let pair = st.issue_pair(old.subject, old.scopes, ctx.now);
            pair_reply(pair)
        }
        _ => {
            if !cfg.ccg_enabled {
                return oauth_error(
                    "unauthorized_client",
                    "The grant type is unauthorized for this client_id",
                );
            }
            if get("box_subject_type") != Some("enterprise") {
                return oauth_error("invalid_request", "box_subject_type must be enterprise");
            }
            if get("box_subject_id") != Some(st.enterprise_id.as_str()) {
                return oauth_error("invalid_grant", "Grant credentials are invalid");
            }
            let access = st.issue_access_only(Subject::ServiceAccount, default_scopes(), ctx.now);
            Reply::json(
                200,
                json!({
                    "access_token": access,
                    "expires_in": ttl,
                    "token_type": "bearer",
                    "restricted_to": [],
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                }),
            )
        }
    }
}

fn revoke(shared: &Shared, ctx: &Ctx) -> Reply {
    let cfg = &shared.config;
    let form = ctx.form();
    if form.get("client_id") != Some(&cfg.client_id) || form.get("client_secret") != Some(&cfg.client_secret) {
        return oauth_error("invalid_client", "The client credentials are invalid");
    }
    let Some(token) = form.get("token") else {
        return oauth_error("invalid_request", "Missing parameter: \"token\"");
    };
    shared.st().revoke(token);
    Reply::empty(200)
}

// ---------------------------------------------------------------- 2.0 API

fn api(shared: &Shared, ctx: &Ctx, route: &Route) -> Reply {
    let mut st = shared.st();
    let Some(tok) = ctx
        .bearer
        .as_ref()
        .and_then(|b| st.access.get(b))
        .filter(|t| t.expires_at > ctx.now)
        .cloned()
    else {
        return unauthorized();
    };
    let Some(me) = st.subject_user(&tok.subject).cloned() else {
        return unauthorized();
    };
    if me.status == UserStatus::Inactive {
        return unauthorized();
    }
    let is_admin = st.is_admin(&tok.subject);
    let has_scope = |s: &str| tok.scopes.iter().any(|x| x == s);
    let forbidden = |st: &State| {
        let _ = st;
        client_error(
            shared,
            403,
            "access_denied_insufficient_permissions",
            "Access denied - insufficient permission",
        )
    };
    let insufficient_scope = |scope: &str| {
        client_error(
            shared,
            403,
            "insufficient_scope",
            &format!("The request requires higher privileges than provided by the access token ({scope})"),
        )
        .header(
            "www-authenticate",
            format!("Bearer realm=\"Service\", error=\"insufficient_scope\", error_description=\"{scope}\""),
        )
    };
    let fields = ctx.list("fields");
    match route.ep {
        Endpoint::UsersMe => Reply::json(200, user_json(&st, &me, fields.as_deref())),
        Endpoint::UserGet => {
            let id = route.user_id.as_deref().unwrap_or("");
            match st.user_index(id) {
                Some(i) if is_admin || st.users[i].id == me.id => {
                    Reply::json(200, user_json(&st, &st.users[i], fields.as_deref()))
                }
                Some(_) => forbidden(&st),
                None => client_error(shared, 404, "not_found", "Not Found"),
            }
        }
        Endpoint::Users => {
            if !is_admin {
                return forbidden(&st);
            }
            if !has_scope("manage_managed_users") {
                return insufficient_scope("manage_managed_users");
            }
            list_users(shared, &st, ctx, fields.as_deref())
        }
        Endpoint::UserUpdate => {
            let id = route.user_id.as_deref().unwrap_or("");
            let Some(i) = st.user_index(id) else {
                return client_error(shared, 404, "not_found", "Not Found");
            };
            if !is_admin {
                return forbidden(&st);
            }
            if !has_scope("manage_managed_users") {
                return insufficient_scope("manage_managed_users");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&ctx.body) else {
                return client_error(shared, 400, "bad_request", "Invalid JSON body");
            };
            let new_status = match body.get("status") {
                None => None,
                Some(Value::String(s)) => match UserStatus::parse(s) {
                    Some(s) => Some(s),
                    None => {
                        return client_error(
                            shared,
                            400,
                            "invalid_parameter",
                            &format!("Invalid value '{s}' for parameter 'status'"),
                        );
                    }
                },
                Some(_) => {
                    return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'status'");
                }
            };
            if let Some(Value::String(n)) = body.get("name") {
                st.users[i].name = n.chars().take(50).collect();
            }
            if let Some(s) = new_status {
                st.users[i].status = s;
            }
            st.users[i].modified_at = ctx.now;
            let actor = actor_index(&st, &tok.subject);
            st.push_event(EventKind::EditUser, actor, ctx.now, ctx.now);
            Reply::json(200, user_json(&st, &st.users[i], fields.as_deref()))
        }
        Endpoint::UserDelete => {
            let id = route.user_id.as_deref().unwrap_or("");
            let Some(i) = st.user_index(id) else {
                return client_error(shared, 404, "not_found", "Not Found");
            };
            if !is_admin {
                return forbidden(&st);
            }
            if !has_scope("manage_managed_users") {
                return insufficient_scope("manage_managed_users");
            }
            let force = ctx.q("force") == Some("true");
            if st.users[i].owns_content && !force {
                return client_error(shared, 400, "bad_request", "User has managed content");
            }
            st.users[i].deleted = true;
            let actor = actor_index(&st, &tok.subject);
            st.push_event(EventKind::DeleteUser, actor, ctx.now, ctx.now);
            Reply::empty(204)
        }
        Endpoint::TransferContent => {
            let id = route.user_id.as_deref().unwrap_or("");
            if !is_admin {
                return forbidden(&st);
            }
            if !has_scope("root_readwrite") {
                return insufficient_scope("root_readwrite");
            }
            let Some(src) = st.user_index(id) else {
                return client_error(shared, 404, "not_found", "Not Found");
            };
            let body: Value = serde_json::from_slice(&ctx.body).unwrap_or(Value::Null);
            let Some(dest_id) = body.pointer("/owned_by/id").and_then(Value::as_str) else {
                return client_error(shared, 400, "bad_request", "Missing parameter 'owned_by.id'");
            };
            let Some(dest) = st.user_index(dest_id) else {
                return client_error(shared, 404, "not_found", "Destination user not found");
            };
            if src == dest {
                return client_error(shared, 400, "bad_request", "Cannot transfer content to the same user");
            }
            let size = st.users[src].space_used;
            let folder_id = st.next_folder_id;
            st.next_folder_id += 1;
            let (sl, sn) = (st.users[src].login.clone(), st.users[src].name.clone());
            st.users[src].owns_content = false;
            st.users[src].space_used = 0;
            st.users[dest].owns_content = true;
            st.users[dest].space_used += size;
            let d = &st.users[dest];
            let owner = json!({"type": "user", "id": d.id, "name": d.name, "login": d.login});
            let at = fmt_time(ctx.now);
            Reply::json(
                200,
                json!({
                    "type": "folder",
                    "id": folder_id.to_string(),
                    "etag": "0",
                    "sequence_id": "0",
                    "name": format!("{sl} - {sn}'s Files and Folders"),
                    "created_at": at,
                    "modified_at": at,
                    "description": "",
                    "size": size,
                    "path_collection": {"total_count": 1, "entries": [{"type": "folder", "id": "0", "name": "All Files"}]},
                    "created_by": owner,
                    "modified_by": owner,
                    "owned_by": owner,
                    "item_status": "active",
                    "has_collaborations": false,
                }),
            )
        }
        Endpoint::TerminateSessions => {
            if !is_admin {
                return forbidden(&st);
            }
            let body: Value = serde_json::from_slice(&ctx.body).unwrap_or(Value::Null);
            let strs = |k: &str| -> Vec<String> {
                body.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default()
            };
            let (ids, logins) = (strs("user_ids"), strs("user_logins"));
            if ids.is_empty() && logins.is_empty() {
                return client_error(shared, 400, "bad_request", "user_ids or user_logins is required");
            }
            let mut targets = Vec::new();
            for id in &ids {
                match st.user_index(id) {
                    Some(i) => targets.push(st.users[i].id.clone()),
                    None => {
                        return client_error(shared, 404, "not_found", &format!("User {id} not found"));
                    }
                }
            }
            for login in &logins {
                match st
                    .users
                    .iter()
                    .find(|u| !u.deleted && u.login.eq_ignore_ascii_case(login))
                {
                    Some(u) => targets.push(u.id.clone()),
                    None => {
                        return client_error(shared, 404, "not_found", &format!("User {login} not found"));
                    }
                }
            }
            st.terminated.extend(targets);
            Reply::json(
                202,
                json!({"message": "Request is successful, please check the admin events for the status of the job"}),
            )
        }
        Endpoint::Events => {
            if st.plan == Plan::Business {
                return client_error(
                    shared,
                    403,
                    "forbidden",
                    "The enterprise event stream is not available on this plan",
                );
            }
            if !is_admin {
                return forbidden(&st);
            }
            if !has_scope("manage_enterprise_properties") {
                return insufficient_scope("manage_enterprise_properties");
            }
            events(shared, &st, ctx)
        }
        Endpoint::Authorize | Endpoint::Token | Endpoint::Revoke => client_error(shared, 404, "not_found", "Not Found"),
    }
}

fn actor_index(st: &State, s: &Subject) -> u32 {
    match s {
        Subject::User(id) => st.user_index(id).map_or(0, |i| i as u32),
        Subject::ServiceAccount => 0,
    }
}

const MINI: [&str; 4] = ["type", "id", "name", "login"];
const STANDARD: [&str; 17] = [
    "type",
    "id",
    "name",
    "login",
    "created_at",
    "modified_at",
    "language",
    "timezone",
    "space_amount",
    "space_used",
    "max_upload_size",
    "status",
    "job_title",
    "phone",
    "address",
    "avatar_url",
    "notification_email",
];

fn user_json(st: &State, u: &UserRec, fields: Option<&[String]>) -> Value {
    let enterprise = if u.is_external {
        json!({"type": "enterprise", "id": "99000001", "name": "Partner Co."})
    } else {
        json!({"type": "enterprise", "id": st.enterprise_id, "name": st.enterprise_name})
    };
    let mut full = json!({
        "type": "user",
        "id": u.id,
        "name": u.name,
        "login": u.login,
        "created_at": fmt_time(u.created_at),
        "modified_at": fmt_time(u.modified_at),
        "language": "en",
        "timezone": "America/Los_Angeles",
        "space_amount": 999_999_999_999_999i64,
        "space_used": u.space_used,
        "max_upload_size": 53_687_091_200i64,
        "status": u.status.as_str(),
        "job_title": "",
        "phone": "",
        "address": "",
        "avatar_url": format!("https://app.box.com/api/avatar/large/{}", u.id),
        "notification_email": null,
        "role": u.role.as_str(),
        "tracking_codes": [],
        "can_see_managed_users": !u.is_external,
        "is_sync_enabled": true,
        "is_external_collab_restricted": false,
        "is_exempt_from_device_limits": false,
        "is_exempt_from_login_verification": false,
        "enterprise": enterprise,
        "my_tags": [],
        "hostname": "https://app.box.com/",
        "is_platform_access_only": u.is_app_user,
    });
    if u.is_app_user
        && let Some(o) = full.as_object_mut()
    {
        o.insert("external_app_user_id".into(), json!(format!("ext-{}", u.id)));
    }
    let Value::Object(map) = full else {
        return Value::Null;
    };
    let keep = |k: &str| match fields {
        _ if k == "role" && u.role == crate::Role::Withheld => false,
        Some(f) => MINI.contains(&k) || f.iter().any(|x| x == k),
        None => STANDARD.contains(&k),
    };
    Value::Object(map.into_iter().filter(|(k, _)| keep(k)).collect())
}

fn list_users(shared: &Shared, st: &State, ctx: &Ctx, fields: Option<&[String]>) -> Reply {
    let user_type = ctx.q("user_type").unwrap_or("all");
    let (managed, external) = match user_type {
        "all" => (true, true),
        "managed" => (true, false),
        "external" => (false, true),
        other => {
            return client_error(
                shared,
                400,
                "invalid_parameter",
                &format!("Invalid value '{other}' for parameter 'user_type'"),
            );
        }
    };
    let term = ctx.q("filter_term").map(str::to_lowercase).filter(|t| !t.is_empty());
    let limit = match ctx.q("limit").map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if n > 0 => n.min(1000) as usize,
        Some(_) => {
            return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'limit'");
        }
    };
    // Box finds an external user only by its exact login (never without a term), and an exact
    // external match is then the only answer, even for `user_type=all`.
    let exact_external = external
        && term.as_ref().is_some_and(|t| {
            st.users
                .iter()
                .any(|u| !u.deleted && u.is_external && u.login.to_lowercase() == *t)
        });
    let matches = |u: &&UserRec| {
        !u.deleted
            && match &term {
                _ if u.is_external => exact_external && term.as_ref() == Some(&u.login.to_lowercase()),
                _ if exact_external || !managed => false,
                None => true,
                Some(t) => u.login.to_lowercase().starts_with(t) || u.name.to_lowercase().starts_with(t),
            }
    };
    if ctx.q("usemarker") == Some("true") {
        let start = match ctx.q("marker").filter(|m| !m.is_empty()) {
            None => 0,
            Some(m) => match decode_marker(m) {
                Some(id) => st
                    .users
                    .partition_point(|u| u.id.len() < id.len() || (u.id.len() == id.len() && u.id < id)),
                None => {
                    return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'marker'");
                }
            },
        };
        let mut page: Vec<&UserRec> = Vec::with_capacity(limit);
        let mut next = None;
        for u in st.users[start..].iter().filter(matches) {
            if page.len() == limit {
                next = Some(encode_marker(&u.id));
                break;
            }
            page.push(u);
        }
        let entries: Vec<Value> = page.iter().map(|u| user_json(st, u, fields)).collect();
        return Reply::json(200, json!({"limit": limit, "next_marker": next, "entries": entries}));
    }
    let offset = match ctx.q("offset").map(str::parse::<i64>) {
        None => 0usize,
        Some(Ok(n)) if (0..=10_000).contains(&n) => n as usize,
        Some(Ok(n)) if n > 10_000 => {
            return client_error(
                shared,
                400,
                "invalid_parameter",
                "Invalid value for parameter 'offset': offset must not exceed 10000; use marker-based paging",
            );
        }
        Some(_) => {
            return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'offset'");
        }
    };
    let all: Vec<&UserRec> = st.users.iter().filter(matches).collect();
    let entries: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|u| user_json(st, u, fields))
        .collect();
    Reply::json(
        200,
        json!({
            "total_count": all.len(),
            "limit": limit,
            "offset": offset,
            "order": [{"by": "id", "direction": "ASC"}],
            "entries": entries,
        }),
    )
}

fn encode_marker(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sim-user:{id}"))
}

fn decode_marker(m: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(m).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let id = s.strip_prefix("sim-user:")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

fn parse_time(shared: &Shared, ctx: &Ctx, k: &str) -> Result<Option<i64>, Reply> {
    match ctx.q(k) {
        None | Some("") => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.timestamp()))
            .map_err(|_| {
                client_error(
                    shared,
                    400,
                    "invalid_parameter",
                    &format!("Invalid value '{v}' for parameter '{k}'"),
                )
            }),
    }
}

fn events(shared: &Shared, st: &State, ctx: &Ctx) -> Reply {
    match ctx.q("stream_type") {
        Some("admin_logs") => {}
        other => {
            return client_error(
                shared,
                400,
                "invalid_parameter",
                &format!(
                    "The simulator serves stream_type=admin_logs only, not {:?}",
                    other.unwrap_or("all")
                ),
            );
        }
    }
    let kinds: Option<Vec<Option<EventKind>>> = ctx
        .list("event_type")
        .map(|v| v.iter().map(|s| EventKind::parse(s)).collect());
    let (after, before) = match (
        parse_time(shared, ctx, "created_after"),
        parse_time(shared, ctx, "created_before"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let limit = match ctx.q("limit").map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if n > 0 => n.min(500) as usize,
        Some(_) => {
            return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'limit'");
        }
    };
    // The ordered prefix is searched by time; the late events after it are filtered one by one.
    let evs = &st.events;
    let sorted = &evs[..st.sorted_len];
    let lo = after.map_or(0, |a| sorted.partition_point(|e| e.at < a));
    let hi = before.map_or(sorted.len(), |b| sorted.partition_point(|e| e.at < b));
    let in_window = |e: &crate::state::Ev| after.is_none_or(|a| e.at >= a) && before.is_none_or(|b| e.at < b);
    let start = match ctx.q("stream_position") {
        None | Some("") | Some("0") => lo,
        Some("now") => evs.len(),
        Some(p) => match p.parse::<usize>() {
            Ok(p) => p.max(lo),
            Err(_) => {
                return client_error(
                    shared,
                    400,
                    "invalid_parameter",
                    "Invalid value for parameter 'stream_position'",
                );
            }
        },
    };
    let take = {
        let mut f = shared.faults.lock().unwrap();
        let short = f.faults.short_pages;
        if limit > 1 && short > 0.0 && f.rng.random_bool(short.clamp(0.0, 1.0)) {
            f.rng.random_range(1..limit)
        } else {
            limit
        }
    };
    let mut entries = Vec::with_capacity(take);
    let mut pos = start;
    while pos < evs.len() && entries.len() < take {
        if pos >= hi && pos < sorted.len() {
            pos = sorted.len();
            continue;
        }
        let e = evs[pos];
        pos += 1;
        if pos > sorted.len() && !in_window(&e) {
            continue;
        }
        if let Some(k) = &kinds
            && !k.contains(&Some(e.kind))
        {
            continue;
        }
        entries.push(event_json(st, &e));
    }
    // Exhausted: the position stays where it was so the client can poll again later.
    let next = if entries.is_empty() { start } else { pos };
    Reply::json(
        200,
        json!({"chunk_size": entries.len(), "next_stream_position": next.to_string(), "entries": entries}),
    )
}

fn event_json(st: &State, e: &crate::state::Ev) -> Value {
    let user = if e.user == ANON {
        json!({"type": "user", "id": "2", "name": "Unknown User", "login": format!("unknown.{}@{}", e.seq % 97, st.domain)})
    } else {
        let u = &st.users[e.user as usize];
        json!({"type": "user", "id": u.id, "name": u.name, "login": u.login})
    };
    let ip = std::net::Ipv4Addr::from(e.ip).to_string();
    let details = match e.kind {
        EventKind::FailedLogin => json!({"failure_reason": "invalid_password"}),
        EventKind::Login | EventKind::AdminLogin => json!({"client_type": "web"}),
        _ => json!({}),
    };
    json!({
        "type": "event",
        "event_id": st.event_id(e.seq),
        "created_at": fmt_time(ts(e.at)),
        "recorded_at": fmt_time(ts(e.at + e.lag as i64)),
        "created_by": user,
        "event_type": e.kind.as_str(),
        "ip_address": ip,
        "session_id": format!("{:x}", crate::state::splitmix(e.seq as u64 ^ st.seed) & 0xffff_ffff_ffff),
        "source": user,
        "additional_details": details,
    })
}

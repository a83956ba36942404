//! Microsoft Entra ID through Microsoft Graph, as `sso-activity.md` describes it: client-credentials
//! tokens at `/{tenant}/oauth2/v2.0/token`, `GET /v1.0/auditLogs/signIns` (`$filter` on `appId` and
//! `createdDateTime`, `$top` up to 1000, `@odata.nextLink`, newest first, 30 days kept, 403
//! `Authentication_RequestFromNonPremiumTenantOrB2CTenant` without P1/P2) and `GET /v1.0/users` with
//! `signInActivity` (tenant-wide; `lastSignInDateTime` counts failures, `lastSuccessfulSignInDateTime`
//! does not; at most 120 users a page when it is selected).

mod graph;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::server::{App, Core, Reply, Req, Running, lock};
use crate::{Endpoint, Faults, SsoPerson};

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const NON_PREMIUM: &str = "Authentication_RequestFromNonPremiumTenantOrB2CTenant";

#[derive(Debug, Clone)]
pub struct EntraConfig {
    pub seed: u64,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// The Box enterprise application's `appId`.
    pub box_app_id: String,
    /// Entra ID P1/P2: without it the sign-in logs answer 403.
    pub premium: bool,
    pub users: Vec<SsoPerson>,
    /// Successful sign-ins of random people to other apps: in the logs under other `appId`s, and in
    /// the tenant-wide `signInActivity`.
    pub other_app_sign_ins: usize,
    pub faults: Faults,
    /// The `expires_in` of the token answers (3599; a huge value tests a client's overflow guard).
    pub token_expires_in: u64,
    /// Sign-in logs older than this are gone (30 days with P1/P2).
    pub retention_days: i64,
}

impl Default for EntraConfig {
    fn default() -> Self {
        EntraConfig {
            seed: 42,
            tenant_id: "8f3c1a52-7d0e-4b8a-9e61-2f5d0c4b7a10".into(),
            client_id: "b1d2c3e4-0000-4000-8000-5eat5ync0001".into(),
            client_secret: "sim-entra-client-secret".into(),
            box_app_id: "e3a0f1b2-9c8d-4e7f-a6b5-c4d3e2f1a0b9".into(),
            premium: true,
            users: Vec::new(),
            other_app_sign_ins: 0,
            faults: Faults::default(),
            token_expires_in: 3599,
            retention_days: 30,
        }
    }
}

const OTHER_APPS: [(&str, &str); 2] = [
    ("00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online"),
    ("cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "Microsoft Teams Services"),
];

#[derive(Debug, Clone)]
struct SignInRec {
    at: DateTime<Utc>,
    id: String,
    person: usize,
    /// `None`: the Box app; `Some(i)`: `OTHER_APPS[i]`.
    other_app: Option<usize>,
    error_code: i64,
}

/// `lastSignInDateTime` (any outcome) and `lastSuccessfulSignInDateTime` of one person.
type Activity = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

struct Entra {
    config: EntraConfig,
    /// Newest first, as Graph returns them.
    sign_ins: Vec<SignInRec>,
    /// Per person: (lastSignInDateTime, lastSuccessfulSignInDateTime).
    activity: Vec<Activity>,
    tokens: Mutex<HashMap<String, DateTime<Utc>>>,
    issued: Mutex<Vec<String>>,
    rng: Mutex<ChaCha8Rng>,
    started: DateTime<Utc>,
    addr: std::sync::OnceLock<std::net::SocketAddr>,
}

/// A running Entra (login + Graph) simulator on one port. Stops on drop or [`EntraSim::shutdown`].
pub struct EntraSim {
    entra: Arc<Entra>,
    running: Running,
}

impl EntraSim {
    pub async fn start(config: EntraConfig) -> anyhow::Result<EntraSim> {
        let now = Utc::now().trunc_subsecs(0);
        let oldest = now - TimeDelta::days(config.retention_days);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0xE47A);
        let mut all = Vec::new();
        for (i, p) in config.users.iter().enumerate() {
            all.extend(p.sign_ins.iter().map(|at| (at.trunc_subsecs(0), i, None, 0)));
            all.extend(p.failed.iter().map(|at| (at.trunc_subsecs(0), i, None, 50126)));
        }
        let span = (now - oldest).num_seconds().max(1);
        for _ in 0..config.other_app_sign_ins {
            if config.users.is_empty() {
                break;
            }
            let person = rng.random_range(0..config.users.len());
            let at = now - TimeDelta::seconds(rng.random_range(0..span));
            all.push((at, person, Some(rng.random_range(0..OTHER_APPS.len())), 0));
        }
        let mut activity = vec![(None, None); config.users.len()];
        let mut sign_ins = Vec::new();
        for (at, person, other_app, error_code) in all {
            if at > now {
                continue;
            }
            let a: &mut Activity = &mut activity[person];
            a.0 = a.0.max(Some(at));
            if error_code == 0 {
                a.1 = a.1.max(Some(at));
            }
            if at >= oldest {
                sign_ins.push(SignInRec {
                    at,
                    id: sim_core::guid(&mut rng),
                    person,
                    other_app,
                    error_code,
                });
            }
        }
        sign_ins.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        let core = Arc::new(Core::new(config.seed, config.faults.clone()));
        let entra = Arc::new(Entra {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed ^ 0x70CE)),
            config,
            sign_ins,
            activity,
            tokens: Mutex::new(HashMap::new()),
            issued: Mutex::new(Vec::new()),
            started: now,
            addr: std::sync::OnceLock::new(),
        });
        let running = Running::start(entra.clone(), core.clone()).await?;
        let _ = entra.addr.set(running.addr);
        Ok(EntraSim { entra, running })
    }

    /// Base of the token endpoint (`login_base` of the client): `http://127.0.0.1:<port>`.
    pub fn login_base(&self) -> String {
        format!("http://{}", self.running.addr)
    }
    /// Base of Graph (`graph_base` of the client); the same server.
    pub fn graph_base(&self) -> String {
        self.login_base()
    }
    pub fn config(&self) -> &EntraConfig {
        &self.entra.config
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.entra.started
    }

    /// Every person's latest successful Box sign-in that the logs still hold, keyed by lower-cased
    /// Box login.
    pub fn ground_truth(&self) -> HashMap<String, DateTime<Utc>> {
        let mut truth: HashMap<String, DateTime<Utc>> = HashMap::new();
        for s in self
            .entra
            .sign_ins
            .iter()
            .filter(|s| s.other_app.is_none() && s.error_code == 0)
        {
            let login = self.entra.config.users[s.person].box_login.to_lowercase();
            let slot = truth.entry(login).or_insert(s.at);
            *slot = (*slot).max(s.at);
        }
        truth
    }

    /// Every person's tenant-wide `lastSuccessfulSignInDateTime` (any app), keyed by lower-cased Box
    /// login; people who never signed in successfully are absent.
    pub fn tenant_wide_truth(&self) -> HashMap<String, DateTime<Utc>> {
        self.entra
            .config
            .users
            .iter()
            .zip(&self.entra.activity)
            .filter_map(|(p, a)| a.1.map(|at| (p.box_login.to_lowercase(), at)))
            .collect()
    }

    /// Records the sign-in logs hold for the Box app (successes and failures).
    pub fn box_sign_in_count(&self) -> usize {
        self.entra.sign_ins.iter().filter(|s| s.other_app.is_none()).count()
    }

    /// Makes every issued access token invalid, as if they had expired.
    pub fn expire_tokens(&self) {
        lock(&self.entra.tokens).clear();
    }
    /// Every access token ever issued (to check that none reaches a log).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.entra.issued).clone()
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn graph_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": fmt_time(Utc::now()),
                "request-id": format!("{:032x}", rand::rng().random::<u128>()),
                "client-request-id": format!("{:032x}", rand::rng().random::<u128>()),
            },
        }}),
    )
}

fn aad_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "error": error,
            "error_description": format!("{description}\r\nTrace ID: sim\r\nCorrelation ID: sim\r\nTimestamp: {}", fmt_time(Utc::now())),
            "error_codes": [description.split(':').next().unwrap_or_default().trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)],
            "timestamp": fmt_time(Utc::now()),
        }),
    )
}

impl Entra {
    fn base(&self) -> String {
        format!(
            "http://{}",
            self.addr.get().copied().unwrap_or(([127, 0, 0, 1], 0).into())
        )
    }

    fn bearer_ok(&self, req: &Req) -> bool {
        let Some(token) = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        lock(&self.tokens)
            .get(token.trim())
            .is_some_and(|exp| *exp > Utc::now())
    }

    fn token(&self, req: &Req) -> Reply {
        let tenant = req.path.trim_start_matches('/').split('/').next().unwrap_or_default();
        if tenant != self.config.tenant_id {
            return aad_error(
                400,
                "invalid_request",
                &format!("AADSTS90002: Tenant '{tenant}' not found."),
            );
        }
        let form = req.form();
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if get("grant_type") != "client_credentials" {
            return aad_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        if get("client_id") != self.config.client_id {
            return aad_error(
                400,
                "unauthorized_client",
                "AADSTS700016: Application was not found in the directory.",
            );
        }
        if get("client_secret") != self.config.client_secret {
            return aad_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            );
        }
        if get("scope") != GRAPH_SCOPE {
            return aad_error(
                400,
                "invalid_scope",
                "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
            );
        }
        let token = {
            let mut rng = lock(&self.rng);
            let raw: [u8; 32] = rng.random();
            format!("eyJ0eXAiOiJKV1Qi.{}", URL_SAFE_NO_PAD.encode(raw))
        };
        lock(&self.tokens).insert(token.clone(), Utc::now() + TimeDelta::seconds(3599));
        lock(&self.issued).push(token.clone());
        Reply::json(
            200,
            json!({"token_type": "Bearer", "expires_in": self.config.token_expires_in, "ext_expires_in": 3599, "access_token": token}),
        )
    }
}

impl App for Entra {
    fn route(&self, method: &http::Method, path: &str) -> Option<Endpoint> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        match (method, segs.as_slice()) {
            (&http::Method::POST, [_tenant, "oauth2", "v2.0", "token"]) => Some(Endpoint::EntraToken),
            (&http::Method::GET, ["v1.0", "auditLogs", "signIns"]) => Some(Endpoint::EntraSignIns),
            (&http::Method::GET, ["v1.0", "users"]) => Some(Endpoint::EntraUsers),
            _ => None,
        }
    }

    fn fault_reply(&self, ep: Endpoint, status: u16, retry_after_secs: u64) -> Reply {
        if ep == Endpoint::EntraToken {
            return match status {
                429 => aad_error(429, "temporarily_unavailable", "AADSTS50196: The server is busy.")
                    .header("Retry-After", retry_after_secs.to_string()),
                s if s >= 500 => aad_error(
                    s,
                    "temporarily_unavailable",
                    "AADSTS90033: A transient error has occurred.",
                ),
                s => aad_error(s, "invalid_request", "AADSTS90000: Simulated fault."),
            };
        }
        match status {
            429 => graph_error(429, "TooManyRequests", "Too many requests.")
                .header("Retry-After", retry_after_secs.to_string()),
            401 => graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            ),
            403 => graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            503 => graph_error(503, "ServiceUnavailable", "Service is unavailable.").header("Retry-After", "1"),
            s if s >= 500 => graph_error(s, "UnknownError", "An unexpected error occurred."),
            s => graph_error(s, "BadRequest", "Simulated fault."),
        }
    }

    fn handle(&self, ep: Endpoint, req: &Req) -> Reply {
        if ep == Endpoint::EntraToken {
            return self.token(req);
        }
        if !self.bearer_ok(req) {
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            );
        }
        match ep {
            Endpoint::EntraSignIns => self.sign_ins(req),
            _ => self.users(req),
        }
    }
}

impl std::ops::Deref for EntraSim {
    type Target = Running;

    /// Faults, counters and shutdown, as every provider's simulator has them.
    fn deref(&self) -> &Running {
        &self.running
    }
}

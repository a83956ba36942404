//! Google Workspace as `sso-activity.md` describes it: an OAuth token endpoint (`POST /token`) that
//! takes a service account's RS256 assertion (RFC 7523 `jwt-bearer`), verifies it against the public
//! key the simulator was given, and honours domain-wide delegation (`sub`, delegated scopes); and the
//! Admin SDK Reports API `GET /admin/reports/v1/activity/users/{userKey}/applications/saml` with
//! `eventName`, `filters` (`name==value`, `name<>value`, comma = and), `startTime`, `endTime`,
//! `maxResults` (1..=1000), `pageToken`/`nextPageToken`, `customerId`, newest first, 180 days kept.
//! Only the impersonated admin may read reports; other subjects get 403. SAML `login_success` and
//! `login_failure` activities are held for Box and for other apps.

mod key;
mod reports;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub use key::TestKey;
use key::pem_der;
use token::oauth_error;

use crate::server::{App, Core, Reply, Req, Running, lock};
use crate::{Endpoint, Faults, SsoPerson};

pub const REPORTS_SCOPE: &str = "https://www.googleapis.com/auth/admin.reports.audit.readonly";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `application_name` of the Box SAML app.
pub const BOX_APP: &str = "Box";
const OTHER_APPS: [&str; 3] = ["Slack", "Zoom", "Atlassian Cloud"];
const SAML_PARAMETERS: [&str; 7] = [
    "application_name",
    "initiated_by",
    "orgunit_path",
    "failure_type",
    "saml_status_code",
    "saml_second_level_status_code",
    "device_id",
];
/// Other applications the Reports API knows: valid, but the simulator holds no activity for them.
const OTHER_REPORT_APPS: [&str; 6] = ["login", "admin", "drive", "token", "mobile", "user_accounts"];

#[derive(Debug, Clone)]
pub struct GoogleConfig {
    pub seed: u64,
    pub service_account_email: String,
    /// The service account's public key (SPKI PEM): assertions must verify against it.
    pub public_key_pem: String,
    /// The super admin with report rights: the only subject whose tokens may read reports.
    pub admin_email: String,
    pub customer_id: String,
    /// The scopes domain-wide delegation grants the service account.
    pub delegated_scopes: Vec<String>,
    /// People; their `idp_login` is the Google account (`actor.email`).
    pub users: Vec<SsoPerson>,
    /// SAML activities of other apps (Slack, Zoom, Atlassian) at random times, a tenth of them failures.
    pub other_app_events: usize,
    pub faults: Faults,
    /// The `expires_in` of the token answers (3599; a huge value tests a client's overflow guard).
    pub token_expires_in: u64,
    /// Activities older than this are gone, and `startTime` is raised to it.
    pub retention_days: i64,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        GoogleConfig {
            seed: 42,
            service_account_email: "seatsync-reports@acme-sim-4711.iam.gserviceaccount.com".into(),
            public_key_pem: TestKey::shared().public_pem.clone(),
            admin_email: "it-admin@acme.example".into(),
            customer_id: "C03sim4711".into(),
            delegated_scopes: vec![REPORTS_SCOPE.into()],
            users: Vec::new(),
            other_app_events: 0,
            faults: Faults::default(),
            token_expires_in: 3599,
            retention_days: 180,
        }
    }
}

#[derive(Debug, Clone)]
struct Activity {
    at: DateTime<Utc>,
    qualifier: i64,
    person: usize,
    /// `None`: Box; `Some(i)`: `OTHER_APPS[i]`.
    other_app: Option<usize>,
    success: bool,
}

impl Activity {
    fn app(&self) -> &'static str {
        self.other_app.map_or(BOX_APP, |i| OTHER_APPS[i])
    }
    fn event_name(&self) -> &'static str {
        if self.success { "login_success" } else { "login_failure" }
    }
    fn cursor(&self) -> (DateTime<Utc>, i64) {
        (self.at, self.qualifier)
    }
}

/// An access token's expiry and impersonated subject (`None`: the service account itself).
type Grant = (DateTime<Utc>, Option<String>);

struct Google {
    config: GoogleConfig,
    public_key_der: Vec<u8>,
    /// Newest first, as the Reports API returns them.
    activities: Vec<Activity>,
    tokens: Mutex<HashMap<String, Grant>>,
    issued: Mutex<Vec<String>>,
    /// The query of every activities request that reached the handler.
    requests: Mutex<Vec<Vec<(String, String)>>>,
    /// Activities requests (1-based, counted by the handler) answered 403 `userRateLimitExceeded`.
    quota_403: Mutex<Vec<u64>>,
    handled: Mutex<u64>,
    rng: Mutex<ChaCha8Rng>,
    started: DateTime<Utc>,
    addr: OnceLock<std::net::SocketAddr>,
}

/// A running Google (OAuth token endpoint + Reports API) simulator on one port. Stops on drop or
/// [`GoogleSim::shutdown`].
pub struct GoogleSim {
    google: Arc<Google>,
    running: Running,
}

impl GoogleSim {
    pub async fn start(config: GoogleConfig) -> anyhow::Result<GoogleSim> {
        let public_key_der = pem_der(&config.public_key_pem)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| anyhow::anyhow!("public_key_pem is not PEM"))?;
        let now = Utc::now().trunc_subsecs(3);
        let oldest = now - TimeDelta::days(config.retention_days);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x600613);
        let mut activities = Vec::new();
        let mut push = |rng: &mut ChaCha8Rng, at: DateTime<Utc>, person, other_app, success| {
            let at = at.trunc_subsecs(3);
            if at >= oldest && at <= now {
                activities.push(Activity {
                    at,
                    qualifier: rng.random_range(-(1i64 << 62)..(1i64 << 62)),
                    person,
                    other_app,
                    success,
                });
            }
        };
        for (i, p) in config.users.iter().enumerate() {
            for at in &p.sign_ins {
                push(&mut rng, *at, i, None, true);
            }
            for at in &p.failed {
                push(&mut rng, *at, i, None, false);
            }
        }
        let span_ms = (now - oldest).num_milliseconds().max(1);
        for _ in 0..config.other_app_events {
            if config.users.is_empty() {
                break;
            }
            let person = rng.random_range(0..config.users.len());
            let at = now - TimeDelta::milliseconds(rng.random_range(0..span_ms));
            let app = rng.random_range(0..OTHER_APPS.len());
            let success = rng.random_bool(0.9);
            push(&mut rng, at, person, Some(app), success);
        }
        activities.sort_by_key(|a| std::cmp::Reverse(a.cursor()));
        let core = Arc::new(Core::new(config.seed, config.faults.clone()));
        let google = Arc::new(Google {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed ^ 0x70CE)),
            config,
            public_key_der,
            activities,
            tokens: Mutex::new(HashMap::new()),
            issued: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            quota_403: Mutex::new(Vec::new()),
            handled: Mutex::new(0),
            started: now,
            addr: OnceLock::new(),
        });
        let running = Running::start(google.clone(), core.clone()).await?;
        let _ = google.addr.set(running.addr);
        Ok(GoogleSim { google, running })
    }

    /// The token endpoint (`token_uri` of the client, and the `aud` the assertion must carry):
    /// `http://127.0.0.1:<port>/token`.
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.running.addr)
    }
    /// Base of the Reports API (`reports_base` of the client); the same server.
    pub fn reports_base(&self) -> String {
        format!("http://{}", self.running.addr)
    }
    pub fn config(&self) -> &GoogleConfig {
        &self.google.config
    }
    /// When the simulator started: activities are placed relative to this instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.google.started
    }
    /// The oldest instant the reports still hold.
    pub fn retention_start(&self) -> DateTime<Utc> {
        self.google.started - TimeDelta::days(self.google.config.retention_days)
    }

    /// Every person's latest successful Box sign-in the reports still hold, keyed by lower-cased Box
    /// login. People without one are absent.
    pub fn ground_truth(&self) -> HashMap<String, DateTime<Utc>> {
        let mut truth: HashMap<String, DateTime<Utc>> = HashMap::new();
        for a in self
            .google
            .activities
            .iter()
            .filter(|a| a.success && a.other_app.is_none())
        {
            let login = self.google.config.users[a.person].box_login.to_lowercase();
            let slot = truth.entry(login).or_insert(a.at);
            *slot = (*slot).max(a.at);
        }
        truth
    }

    /// Activities held, all apps and outcomes.
    pub fn activity_count(&self) -> usize {
        self.google.activities.len()
    }
    /// Activities a correct query returns: successful Box sign-ins.
    pub fn box_sign_in_count(&self) -> usize {
        self.google
            .activities
            .iter()
            .filter(|a| a.success && a.other_app.is_none())
            .count()
    }

    /// The query of every activities request the handler saw, in order.
    pub fn activity_requests(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.google.requests).clone()
    }

    /// The `nth` activities request reaching the handler (1-based, counted from now) is answered
    /// 403 `userRateLimitExceeded`: Google's other way of saying 429.
    pub fn inject_quota_403(&self, nth: u64) {
        let seen = *lock(&self.google.handled);
        lock(&self.google.quota_403).push(seen + nth.max(1));
    }

    /// Makes every issued access token invalid, as if they had expired.
    pub fn expire_tokens(&self) {
        lock(&self.google.tokens).clear();
    }
    /// Every access token ever issued (to check that none reaches a log).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.google.issued).clone()
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Google's API error shape.
fn api_error(status: u16, state: &str, reason: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": state,
        }}),
    )
}

fn bad_request(message: &str) -> Reply {
    api_error(400, "INVALID_ARGUMENT", "invalid", message)
}

fn not_authorized() -> Reply {
    api_error(
        403,
        "PERMISSION_DENIED",
        "forbidden",
        "Not Authorized to access this resource/api",
    )
}

impl App for Google {
    fn route(&self, method: &http::Method, path: &str) -> Option<Endpoint> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        match (method, segs.as_slice()) {
            (&http::Method::POST, ["token"]) => Some(Endpoint::GoogleToken),
            (
                &http::Method::GET,
                [
                    "admin",
                    "reports",
                    "v1",
                    "activity",
                    "users",
                    _user,
                    "applications",
                    _app,
                ],
            ) => Some(Endpoint::GoogleActivities),
            _ => None,
        }
    }

    fn fault_reply(&self, ep: Endpoint, status: u16, retry_after_secs: u64) -> Reply {
        if ep == Endpoint::GoogleToken {
            return match status {
                429 => oauth_error(429, "rate_limit_exceeded", "Rate limit exceeded.")
                    .header("Retry-After", retry_after_secs.to_string()),
                s if s >= 500 => oauth_error(s, "internal_failure", "Backend Error"),
                s => oauth_error(s, "invalid_request", "Simulated fault."),
            };
        }
        match status {
            429 => api_error(
                429,
                "RESOURCE_EXHAUSTED",
                "rateLimitExceeded",
                "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute'.",
            )
            .header("Retry-After", retry_after_secs.to_string()),
            401 => api_error(401, "UNAUTHENTICATED", "authError", "Invalid Credentials"),
            403 => not_authorized(),
            503 => api_error(
                503,
                "UNAVAILABLE",
                "backendError",
                "The service is currently unavailable.",
            ),
            s if s >= 500 => api_error(s, "INTERNAL", "backendError", "Internal error encountered."),
            s => bad_request(&format!("Simulated fault {s}.")),
        }
    }

    fn handle(&self, ep: Endpoint, req: &Req) -> Reply {
        match ep {
            Endpoint::GoogleToken => self.token(req),
            _ => self.activities(req),
        }
    }
}

impl std::ops::Deref for GoogleSim {
    type Target = Running;

    /// Faults, counters and shutdown, as every provider's simulator has them.
    fn deref(&self) -> &Running {
        &self.running
    }
}

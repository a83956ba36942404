//! Google Workspace as `sso-activity.md` describes it: an OAuth token endpoint (`POST /token`) that
//! takes a service account's RS256 assertion (RFC 7523 `jwt-bearer`), verifies it against the public
//! key the simulator was given, and honours domain-wide delegation (`sub`, delegated scopes); and the
//! Admin SDK Reports API `GET /admin/reports/v1/activity/users/{userKey}/applications/saml` with
//! `eventName`, `filters` (`name==value`, `name<>value`, comma = and), `startTime`, `endTime`,
//! `maxResults` (1..=1000), `pageToken`/`nextPageToken`, `customerId`, newest first, 180 days kept.
//! Only the impersonated admin may read reports; other subjects get 403. SAML `login_success` and
//! `login_failure` activities are held for Box and for other apps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::server::{App, Core, Reply, Req, Running, lock};
use crate::{Counters, Endpoint, Fault, Faults, SsoPerson};

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

/// An RSA key pair for tests only, generated at run time: never a real service account's key.
#[derive(Clone)]
pub struct TestKey {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the form of `private_key` in Google's JSON key file.
    pub private_pem: String,
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_pem: String,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// A fresh 2048-bit key pair.
    pub fn generate() -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let private = pair.as_der().expect("PKCS#8 encoding");
        let public = pair.public_key().as_der().expect("SPKI encoding");
        TestKey {
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            public_pem: pem("PUBLIC KEY", public.as_ref()),
        }
    }

    /// One key pair per process (key generation takes a moment): the default of [`GoogleConfig`].
    pub fn shared() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(TestKey::generate)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD.decode(b64).ok()
}

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
    core: Arc<Core>,
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
        Ok(GoogleSim { google, core, running })
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

    pub fn set_faults(&self, faults: Faults) {
        self.core.set_faults(faults);
    }
    /// The `nth` request (1-based, counted from now) to `ep` gets `fault`, once.
    pub fn inject(&self, ep: Endpoint, nth: u64, fault: Fault) {
        self.core.inject(ep, nth, fault);
    }
    pub fn counters(&self) -> Counters {
        self.core.counters()
    }
    pub fn reset_counters(&self) {
        self.core.reset_counters();
    }
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(status, json!({"error": error, "error_description": description}))
}

fn invalid_grant(description: &str) -> Reply {
    oauth_error(400, "invalid_grant", description)
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

/// One `filters` clause: `name==value` or `name<>value`.
#[derive(Debug)]
struct Filter {
    name: String,
    equal: bool,
    value: String,
}

fn parse_filters(filters: &str) -> Result<Vec<Filter>, String> {
    filters
        .split(',')
        .filter(|c| !c.trim().is_empty())
        .map(|clause| {
            let (name, value, equal) = if let Some((n, v)) = clause.split_once("==") {
                (n, v, true)
            } else if let Some((n, v)) = clause.split_once("<>") {
                (n, v, false)
            } else {
                return Err(format!("Invalid filters: {clause}"));
            };
            let name = name.trim();
            if !SAML_PARAMETERS.contains(&name) {
                return Err(format!("Invalid filters: unknown parameter {name}"));
            }
            Ok(Filter {
                name: name.to_string(),
                equal,
                value: value.to_string(),
            })
        })
        .collect()
}

fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&Utc))
}

fn encode_page_token(c: (DateTime<Utc>, i64)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", c.0.timestamp_millis(), c.1))
}

fn decode_page_token(s: &str) -> Option<(DateTime<Utc>, i64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (ms, q) = raw.split_once(':')?;
    Some((DateTime::from_timestamp_millis(ms.parse().ok()?)?, q.parse().ok()?))
}

impl Google {
    fn token_uri(&self) -> String {
        format!(
            "http://{}/token",
            self.addr.get().copied().unwrap_or(([127, 0, 0, 1], 0).into())
        )
    }

    /// The claims of an assertion whose RS256 signature verifies against the configured key.
    fn verified_claims(&self, assertion: &str) -> Result<Value, Reply> {
        let malformed = || invalid_grant("Invalid JWT: malformed assertion.");
        let mut parts = assertion.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let json = |part: &str| -> Option<Value> { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok() };
        let header_json = json(header).ok_or_else(malformed)?;
        if header_json["alg"] != "RS256" {
            return Err(invalid_grant("Invalid JWT: the algorithm must be RS256."));
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        let signed = &assertion[..header.len() + 1 + claims.len()];
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key_der)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| invalid_grant("Invalid JWT Signature."))?;
        json(claims).ok_or_else(malformed)
    }

    fn token(&self, req: &Req) -> Reply {
        let form = req.form();
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        if get("grant_type") != JWT_BEARER {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {}", get("grant_type")),
            );
        }
        let claims = match self.verified_claims(get("assertion")) {
            Ok(c) => c,
            Err(reply) => return reply,
        };
        if claims["iss"] != self.config.service_account_email.as_str() {
            return invalid_grant("Invalid grant: account not found");
        }
        if claims["aud"] != self.token_uri().as_str() {
            return invalid_grant("Invalid JWT: Failed audience check.");
        }
        let now = Utc::now().timestamp();
        let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
        let timely = matches!((iat, exp), (Some(iat), Some(exp))
            if iat <= now + 60 && exp > now && exp > iat && exp - iat <= 3600);
        if !timely {
            return invalid_grant(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
        let scopes: Vec<&str> = claims["scope"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if scopes.is_empty() {
            return oauth_error(
                400,
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.",
            );
        }
        let subject = claims["sub"].as_str().map(str::to_lowercase);
        if let Some(sub) = &subject {
            let known = self.config.admin_email.eq_ignore_ascii_case(sub)
                || self.config.users.iter().any(|u| u.idp_login.eq_ignore_ascii_case(sub));
            if !known {
                return invalid_grant("Invalid email or User ID");
            }
            if !scopes
                .iter()
                .all(|s| self.config.delegated_scopes.iter().any(|d| d == s))
            {
                return oauth_error(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
                );
            }
        }
        let token = {
            let mut rng = lock(&self.rng);
            let raw: [u8; 48] = rng.random();
            format!("ya29.c.{}", URL_SAFE_NO_PAD.encode(raw))
        };
        lock(&self.tokens).insert(token.clone(), (Utc::now() + TimeDelta::seconds(3599), subject));
        lock(&self.issued).push(token.clone());
        Reply::json(
            200,
            json!({"access_token": token, "expires_in": self.config.token_expires_in, "token_type": "Bearer"}),
        )
    }

    /// The impersonated subject of a valid bearer token, if there is one (`Some(None)`: the
    /// service account itself).
    fn bearer_subject(&self, req: &Req) -> Option<Option<String>> {
        let token = req.header("authorization")?.strip_prefix("Bearer ")?.trim();
        lock(&self.tokens)
            .get(token)
            .filter(|(exp, _)| *exp > Utc::now())
            .map(|(_, sub)| sub.clone())
    }

    fn activities(&self, req: &Req) -> Reply {
        let Some(subject) = self.bearer_subject(req) else {
            return api_error(
                401,
                "UNAUTHENTICATED",
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            );
        };
        let nth = {
            let mut handled = lock(&self.handled);
            *handled += 1;
            *handled
        };
        lock(&self.requests).push(req.query.clone());
        {
            let mut quota = lock(&self.quota_403);
            if let Some(i) = quota.iter().position(|n| *n == nth) {
                quota.remove(i);
                return api_error(
                    403,
                    "PERMISSION_DENIED",
                    "userRateLimitExceeded",
                    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
                );
            }
        }
        if !subject.is_some_and(|s| self.config.admin_email.eq_ignore_ascii_case(&s)) {
            return not_authorized();
        }
        let segs: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
        let (user_key, application) = (segs[segs.len() - 3], segs[segs.len() - 1]);
        if application != "saml" {
            if OTHER_REPORT_APPS.contains(&application) {
                return Reply::json(200, json!({"kind": "admin#reports#activities", "etag": "\"sim\""}));
            }
            return bad_request(&format!("Invalid value '{application}' for applicationName"));
        }
        if req.q("customerId").is_some_and(|c| c != self.config.customer_id) {
            return not_authorized();
        }
        let event_name = req.q("eventName");
        if event_name.is_some_and(|e| !matches!(e, "login_success" | "login_failure")) {
            return bad_request("Invalid eventName");
        }
        let filters = match req.q("filters").map(parse_filters).transpose() {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => return bad_request(&e),
        };
        let now = Utc::now();
        let oldest = now - TimeDelta::days(self.config.retention_days);
        let start = match req.q("startTime").map(|v| parse_time(v).ok_or(v)).transpose() {
            Ok(s) => s.unwrap_or(oldest).max(oldest),
            Err(_) => return bad_request("Invalid value for startTime"),
        };
        let end = match req.q("endTime").map(|v| parse_time(v).ok_or(v)).transpose() {
            Ok(e) => e.unwrap_or(now),
            Err(_) => return bad_request("Invalid value for endTime"),
        };
        if end < start {
            return bad_request("Start time must be less than or equal to the end time");
        }
        let max = match req.q("maxResults").map(str::parse::<usize>).transpose() {
            Ok(m) => m.unwrap_or(1000),
            Err(_) => return bad_request("Invalid value for maxResults"),
        };
        if !(1..=1000).contains(&max) {
            return bad_request("Invalid value for maxResults: must be within [1, 1000]");
        }
        let after = match req.q("pageToken").map(|t| decode_page_token(t).ok_or(t)).transpose() {
            Ok(a) => a,
            Err(_) => return bad_request("Invalid value for pageToken"),
        };
        let users = &self.config.users;
        let keep = |a: &&Activity| {
            a.at >= start
                && a.at <= end
                && after.is_none_or(|c| a.cursor() < c)
                && event_name.is_none_or(|e| a.event_name() == e)
                && (user_key == "all" || users[a.person].idp_login.eq_ignore_ascii_case(user_key))
                && filters.iter().all(|f| {
                    let value = match f.name.as_str() {
                        "application_name" => Some(a.app()),
                        "initiated_by" => Some("idp"),
                        "orgunit_path" => Some("/"),
                        "failure_type" if !a.success => Some("failure_app_not_configured_for_user"),
                        _ => None,
                    };
                    (value == Some(f.value.as_str())) == f.equal
                })
        };
        let mut matching = self.activities.iter().filter(keep);
        let page: Vec<&Activity> = matching.by_ref().take(max).collect();
        let more = matching.next().is_some();
        let mut body = json!({"kind": "admin#reports#activities", "etag": "\"sim\""});
        if !page.is_empty() {
            body["items"] = Value::Array(page.iter().map(|a| self.render(a)).collect());
        }
        if more && let Some(last) = page.last() {
            body["nextPageToken"] = json!(encode_page_token(last.cursor()));
        }
        Reply::json(200, body)
    }

    fn render(&self, a: &Activity) -> Value {
        let p = &self.config.users[a.person];
        let mut parameters = vec![
            json!({"name": "application_name", "value": a.app()}),
            json!({"name": "initiated_by", "value": "idp"}),
            json!({"name": "orgunit_path", "value": "/"}),
        ];
        if a.success {
            parameters.push(json!({"name": "saml_status_code", "value": "SUCCESS_URI"}));
        } else {
            parameters.push(json!({"name": "failure_type", "value": "failure_app_not_configured_for_user"}));
            parameters.push(json!({"name": "saml_status_code", "value": "REQUESTER_URI"}));
            parameters.push(json!({"name": "saml_second_level_status_code", "value": "REQUEST_DENIED_URI"}));
        }
        json!({
            "kind": "admin#reports#activity",
            "id": {
                "time": fmt_time(a.at),
                "uniqueQualifier": a.qualifier.to_string(),
                "applicationName": "saml",
                "customerId": self.config.customer_id,
            },
            "etag": format!("\"sim/{}\"", a.qualifier),
            "actor": {"callerType": "USER", "email": p.idp_login, "profileId": format!("1{:020}", a.person)},
            "ipAddress": "203.0.113.7",
            "events": [{"type": "login", "name": a.event_name(), "parameters": parameters}],
        })
    }
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

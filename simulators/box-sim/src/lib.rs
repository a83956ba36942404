//! A Box API simulator: a real HTTP server on loopback that follows `box-api.md` closely enough for the
//! seatsync connector to be tested end to end (OAuth, users, admin_logs events), with deterministic
//! generated enterprises, injectable faults, a controllable clock and optional contract validation of
//! every response against Box's own OpenAPI file.

mod content;
pub mod contract;
mod generator;
mod server;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use state::{ALL_SCOPES, EventKind};

/// Everything a simulator run is built from. Same seed and spec give the same enterprise.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub enterprise: EnterpriseSpec,
    pub faults: Faults,
    pub client_id: String,
    pub client_secret: String,
    /// When `Some`, authorize requires exactly this `redirect_uri`, and a token request that carries a
    /// `redirect_uri` must carry this one.
    pub redirect_uri: Option<String>,
    /// `GET authorize` redirects at once as if the consenting user clicked "Grant access".
    pub auto_consent: bool,
    pub access_token_ttl: Duration,
    pub ccg_enabled: bool,
    /// When `Some`, every JSON response is validated against this OpenAPI file before it is sent.
    pub contract_spec: Option<PathBuf>,
    /// Simulated "now" at start; the clock then runs in real time plus whatever `advance` adds.
    pub now: Option<DateTime<Utc>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            enterprise: EnterpriseSpec::default(),
            faults: Faults::default(),
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            redirect_uri: None,
            auto_consent: true,
            access_token_ttl: Duration::from_secs(3600),
            ccg_enabled: true,
            contract_spec: None,
            now: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Plan {
    #[default]
    Enterprise,
    Business,
}

/// Shares of the users who log in at all, by habit. Normalised, so they need not add up to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginFrequency {
    /// About every working day.
    pub daily: f64,
    /// About once a week.
    pub weekly: f64,
    /// About once a month.
    pub monthly: f64,
    /// Logged in early in the history, then stopped (last login well over 90 days ago when the
    /// history is long enough).
    pub dormant: f64,
}

impl Default for LoginFrequency {
    fn default() -> Self {
        LoginFrequency {
            daily: 0.35,
            weekly: 0.30,
            monthly: 0.20,
            dormant: 0.15,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EnterpriseSpec {
    /// Empty means "derive from the seed".
    pub enterprise_id: String,
    pub name: String,
    pub plan: Plan,
    pub users: usize,
    pub history_days: u32,
    pub never_logged_in: f64,
    pub admins: f64,
    pub coadmins: f64,
    pub app_users: f64,
    pub external_users: usize,
    pub content_owners: f64,
    pub inactive_users: f64,
    pub login_frequency: LoginFrequency,
    pub total_login_events: Option<u64>,
    pub other_events: bool,
    /// Generate content events (UPLOAD, PREVIEW, ...): about ten per login, plus 2% anonymous
    /// shared-link traffic. Off, the stream holds logins and admin events only, as before issue 11.
    pub content_events: bool,
    /// Exactly this many content events (anonymous ones included), spread over users as their
    /// habits say. `None`: ten per expected login (scaled like `total_login_events` when that is set).
    pub total_content_events: Option<u64>,
    /// Share of the plain users who log in at all who work through Box Drive, mobile apps or
    /// integrations: content events up to today and no LOGIN for the last 200 days (with a shorter
    /// history, none at all). Only with `content_events`.
    pub drive_only: f64,
    /// Share of the plain users who log in at all who never touch content. Only with `content_events`.
    pub login_only: f64,
}

impl Default for EnterpriseSpec {
    fn default() -> Self {
        EnterpriseSpec {
            enterprise_id: "81723516".into(),
            name: "Acme Inc.".into(),
            plan: Plan::Enterprise,
            users: 50,
            history_days: 180,
            never_logged_in: 0.10,
            admins: 0.02,
            coadmins: 0.04,
            app_users: 0.04,
            external_users: 3,
            content_owners: 0.6,
            inactive_users: 0.06,
            login_frequency: LoginFrequency::default(),
            total_login_events: None,
            other_events: true,
            content_events: true,
            total_content_events: None,
            drive_only: 0.10,
            login_only: 0.15,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub latency: Duration,
    pub share_429: f64,
    pub retry_after_secs: u64,
    pub share_5xx: f64,
    pub share_drop: f64,
    pub rate_limit_per_minute: Option<u32>,
    pub short_pages: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            share_429: 0.0,
            retry_after_secs: 1,
            share_5xx: 0.0,
            share_drop: 0.0,
            rate_limit_per_minute: None,
            short_pages: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Authorize,
    Token,
    Revoke,
    UsersMe,
    Users,
    UserGet,
    UserUpdate,
    UserDelete,
    TransferContent,
    TerminateSessions,
    Events,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status (a ClientError body; `retry-after` header when given) without
    /// touching any state.
    Status { status: u16, retry_after: Option<u64> },
    /// Close the connection without any response.
    Drop,
    /// Wait, then handle the request normally.
    Delay(Duration),
    /// Handle the request (state changes as usual), then answer this status instead: the
    /// "503 after the write took effect" that Box documents.
    AfterHandler { status: u16 },
    /// Handle the request (state changes as usual), then close the connection with no answer.
    DropAfterHandler,
    /// Events only: serve the page at the stream position of the previous events request
    /// again (with that page's `next_stream_position`), as a replayed position would.
    RepeatPreviousPage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Coadmin,
    User,
    /// Box leaves `role` out of the answer (a role this API version cannot express); a client
    /// must not read it as a plain user.
    Withheld,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coadmin => "coadmin",
            Role::User => "user",
            Role::Withheld => "withheld",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Inactive,
    CannotDeleteEdit,
    CannotDeleteEditUpload,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
            UserStatus::CannotDeleteEdit => "cannot_delete_edit",
            UserStatus::CannotDeleteEditUpload => "cannot_delete_edit_upload",
        }
    }
    pub fn parse(s: &str) -> Option<UserStatus> {
        Some(match s {
            "active" => UserStatus::Active,
            "inactive" => UserStatus::Inactive,
            "cannot_delete_edit" => UserStatus::CannotDeleteEdit,
            "cannot_delete_edit_upload" => UserStatus::CannotDeleteEditUpload,
            _ => return None,
        })
    }
}

macro_rules! str_eq {
    ($t:ty) => {
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
    };
}
str_eq!(Role);
str_eq!(UserStatus);

/// Ground truth about one user, as the simulator holds it (deleted users are gone).
#[derive(Debug, Clone, PartialEq)]
pub struct SimUser {
    pub id: String,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub status: UserStatus,
    pub is_app_user: bool,
    pub is_external: bool,
    pub owns_content: bool,
    pub created_at: DateTime<Utc>,
    /// The latest LOGIN event of this user, if any.
    pub last_login: Option<DateTime<Utc>>,
    /// The latest content event (UPLOAD, PREVIEW, ...) of this user, if any; anonymous
    /// (shared-link) events are nobody's.
    pub last_content: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

/// Requests answered, by endpoint and status; dropped connections are counted apart.
pub type Counters = sim_core::Counters<Endpoint>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContractReport {
    pub checked: u64,
    pub violations: Vec<String>,
}

/// Handle on a running simulator. Clones share the server; it stops when the last handle drops or on
/// `shutdown()`.
#[derive(Clone)]
pub struct BoxSim {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<server::Shared>,
    /// Stops the server when dropped.
    running: sim_core::Running,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.shared.validator.is_some() {
            let report = self.shared.contract.lock().unwrap_or_else(|e| e.into_inner()).clone();
            contract::append_to_suite_log(&report);
        }
    }
}

impl BoxSim {
    /// Starts on an ephemeral loopback port.
    pub async fn start(config: SimConfig) -> anyhow::Result<BoxSim> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`, which must be a loopback address: the simulator hands out tokens to anyone.
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> anyhow::Result<BoxSim> {
        anyhow::ensure!(addr.ip().is_loopback(), "box-sim binds loopback only, not {addr}");
        let validator = match &config.contract_spec {
            Some(path) => Some(contract::SpecValidator::load(path)?),
            None => None,
        };
        let shared = Arc::new(server::Shared::new(config, validator));
        let serving = shared.clone();
        let running =
            sim_core::Running::start("box-sim", addr, move |req| server::handle(serving.clone(), req)).await?;
        Ok(BoxSim {
            handle: Arc::new(Handle { shared, running }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.running.addr()
    }
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr())
    }
    pub fn account_base(&self) -> String {
        self.api_base()
    }

    pub async fn shutdown(self) {
        self.handle.running.shutdown().await;
    }

    fn st(&self) -> std::sync::MutexGuard<'_, state::State> {
        self.handle.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.handle.shared.clock.now()
    }
    pub fn advance(&self, d: Duration) {
        self.handle.shared.clock.advance(d)
    }

    pub fn set_faults(&self, f: Faults) {
        sim_core::lock(&self.handle.shared.faults).faults = f;
    }
    /// Requests to `endpoint` received so far (counted on arrival, before any fault or delay;
    /// [`Counters`] count answers).
    pub fn requests_received(&self, endpoint: Endpoint) -> u64 {
        sim_core::lock(&self.handle.shared.faults).received(endpoint)
    }
    /// The `nth` request (1-based, counted from now) to `endpoint` gets `fault`, once.
    pub fn inject(&self, endpoint: Endpoint, nth: u64, fault: Fault) {
        sim_core::lock(&self.handle.shared.faults).inject(endpoint, nth, fault);
    }

    pub fn enterprise_id(&self) -> String {
        self.st().enterprise_id.clone()
    }
    pub fn primary_admin_id(&self) -> String {
        self.st().users[0].id.clone()
    }
    /// Id of the service account that client-credentials tokens act as.
    pub fn service_account_id(&self) -> String {
        self.st().service_account.id.clone()
    }
    /// A fresh access/refresh pair for `user_id` with all scopes, as if it came from the token
    /// endpoint. Panics when the user does not exist.
    pub fn issue_tokens(&self, user_id: &str) -> TokenPair {
        let now = self.now();
        let mut st = self.st();
        assert!(st.user_index(user_id).is_some(), "issue_tokens: no user {user_id}");
        st.issue_pair(state::Subject::User(user_id.to_string()), state::default_scopes(), now)
    }
    /// Like `issue_tokens` with only the given scopes.
    pub fn issue_tokens_with_scopes(&self, user_id: &str, scopes: &[&str]) -> TokenPair {
        let now = self.now();
        let mut st = self.st();
        assert!(st.user_index(user_id).is_some(), "issue_tokens: no user {user_id}");
        let scopes = scopes.iter().map(|s| s.to_string()).collect();
        st.issue_pair(state::Subject::User(user_id.to_string()), scopes, now)
    }
    /// An authorization code as if `user_id` consented now (with the configured redirect_uri).
    pub fn issue_code(&self, user_id: &str) -> String {
        let now = self.now();
        let redirect = self.handle.shared.config.redirect_uri.clone();
        let mut st = self.st();
        assert!(st.user_index(user_id).is_some(), "issue_code: no user {user_id}");
        st.issue_code(user_id, state::default_scopes(), redirect, now)
    }
    pub fn set_consenting_user(&self, user_id: &str) {
        self.st().consenting_user = user_id.to_string();
    }
    pub fn set_deny_consent(&self, deny: bool) {
        self.st().deny_consent = deny;
    }
    pub fn set_plan(&self, plan: Plan) {
        self.st().plan = plan;
    }
    pub fn plan(&self) -> Plan {
        self.st().plan
    }
    /// Every code, access token and refresh token ever issued.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.st().issued_secrets.clone()
    }

    pub fn users(&self) -> Vec<SimUser> {
        let st = self.st();
        st.users.iter().filter(|u| !u.deleted).map(|u| st.sim_user(u)).collect()
    }
    /// The users a `GET /users` without a `filter_term` lists: all but the external ones, which
    /// Box finds only by their exact login.
    pub fn listed_users(&self) -> Vec<SimUser> {
        self.users().into_iter().filter(|u| !u.is_external).collect()
    }
    pub fn user(&self, id: &str) -> Option<SimUser> {
        let st = self.st();
        let i = st.user_index(id)?;
        Some(st.sim_user(&st.users[i]))
    }
    /// Changes a user's role, as an admin would in the Admin Console. Panics when the user does not exist.
    pub fn set_role(&self, id: &str, role: Role) {
        let mut st = self.st();
        let i = st.user_index(id).unwrap_or_else(|| panic!("set_role: no user {id}"));
        st.users[i].role = role;
    }
    /// Appends a LOGIN event for `user_id` at `at` (may be in the past: a late event, which lands
    /// at the end of the stream). Panics when the user does not exist.
    pub fn record_login(&self, user_id: &str, at: DateTime<Utc>) {
        let now = self.now();
        let mut st = self.st();
        let i = st
            .user_index(user_id)
            .unwrap_or_else(|| panic!("record_login: no user {user_id}"));
        st.push_event(state::EventKind::Login, i as u32, at, now);
    }
    /// Appends a LOGIN event for `user_id` created at `created_at` that becomes visible only now:
    /// it lands at the end of the admin_logs stream, after events created later than it (Box's
    /// admin_logs favours completeness over latency). Panics when the user does not exist.
    pub fn record_delayed_login(&self, user_id: &str, created_at: DateTime<Utc>) {
        let now = self.now();
        let mut st = self.st();
        let i = st
            .user_index(user_id)
            .unwrap_or_else(|| panic!("record_delayed_login: no user {user_id}"));
        st.push_delayed_event(state::EventKind::Login, i as u32, created_at, now);
    }
    /// Appends an event of `kind` by `user_id` at `at` (late when older than the stream's newest:
    /// it lands at the end). Ground truth moves only for a LOGIN (`last_login`) or a content kind
    /// (`last_content`). Panics when the user does not exist.
    pub fn record_event(&self, user_id: &str, kind: EventKind, at: DateTime<Utc>) {
        let now = self.now();
        let mut st = self.st();
        let i = st
            .user_index(user_id)
            .unwrap_or_else(|| panic!("record_event: no user {user_id}"));
        st.push_event(kind, i as u32, at, now);
    }
    /// Like `record_event`, visible only now (see `record_delayed_login`).
    pub fn record_delayed_event(&self, user_id: &str, kind: EventKind, created_at: DateTime<Utc>) {
        let now = self.now();
        let mut st = self.st();
        let i = st
            .user_index(user_id)
            .unwrap_or_else(|| panic!("record_delayed_event: no user {user_id}"));
        st.push_delayed_event(kind, i as u32, created_at, now);
    }
    /// Appends an event by the anonymous user (id 2), e.g. a shared-link PREVIEW.
    pub fn record_anonymous_event(&self, kind: EventKind, at: DateTime<Utc>) {
        let now = self.now();
        self.st().push_event(kind, state::ANON, at, now);
    }
    pub fn login_event_count(&self) -> u64 {
        self.st().login_events
    }
    /// Content events in the stream, anonymous ones included.
    pub fn content_event_count(&self) -> u64 {
        self.st().content_events
    }
    /// All events of any type held in the admin_logs stream.
    pub fn event_count(&self) -> u64 {
        self.st().events.len() as u64
    }
    /// User ids named in terminate_sessions calls, one entry per user per call.
    pub fn terminated_sessions(&self) -> Vec<String> {
        self.st().terminated.clone()
    }

    pub fn counters(&self) -> Counters {
        sim_core::lock(&self.handle.shared.counters).clone()
    }
    pub fn reset_counters(&self) {
        *sim_core::lock(&self.handle.shared.counters) = Counters::default();
    }
    pub fn contract_report(&self) -> ContractReport {
        sim_core::lock(&self.handle.shared.contract).clone()
    }
}

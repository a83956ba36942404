//! The simulator's mutable world: users, the admin_logs event stream, OAuth grants and tokens.
//! Events are kept as a time-sorted Vec of small records so a million of them stay cheap and a page
//! is a binary search plus a short scan; a stream position is an index into that Vec.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Plan, Role, SimUser, TokenPair, UserStatus};

pub const ALL_SCOPES: [&str; 4] = [
    "manage_managed_users",
    "manage_groups",
    "manage_enterprise_properties",
    "root_readwrite",
];

pub fn default_scopes() -> Vec<String> {
    ALL_SCOPES.iter().map(|s| s.to_string()).collect()
}

const CODE_TTL_SECS: i64 = 30;
const REFRESH_TTL_DAYS: i64 = 60;

/// Simulated time: the start instant plus real elapsed time plus whatever tests advanced.
pub struct Clock {
    start_sim: DateTime<Utc>,
    start_real: Instant,
    advanced: Mutex<Duration>,
}

impl Clock {
    pub fn new(start: DateTime<Utc>) -> Clock {
        Clock {
            start_sim: start,
            start_real: Instant::now(),
            advanced: Mutex::new(Duration::ZERO),
        }
    }
    pub fn now(&self) -> DateTime<Utc> {
        let adv = *sim_core::lock(&self.advanced);
        let d = self.start_real.elapsed() + adv;
        self.start_sim + chrono::Duration::from_std(d).unwrap_or_default()
    }
    pub fn advance(&self, d: Duration) {
        *sim_core::lock(&self.advanced) += d;
    }
}

#[derive(Debug, Clone)]
pub struct UserRec {
    pub id: String,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub status: UserStatus,
    pub is_app_user: bool,
    pub is_external: bool,
    pub owns_content: bool,
    pub space_used: i64,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub deleted: bool,
    /// Unix seconds of the latest LOGIN event.
    pub last_login: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    Login,
    AdminLogin,
    FailedLogin,
    EditUser,
    DeleteUser,
    ChangeAdminRole,
    NewUser,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Login => "LOGIN",
            EventKind::AdminLogin => "ADMIN_LOGIN",
            EventKind::FailedLogin => "FAILED_LOGIN",
            EventKind::EditUser => "EDIT_USER",
            EventKind::DeleteUser => "DELETE_USER",
            EventKind::ChangeAdminRole => "CHANGE_ADMIN_ROLE",
            EventKind::NewUser => "NEW_USER",
        }
    }
    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "LOGIN" => EventKind::Login,
            "ADMIN_LOGIN" => EventKind::AdminLogin,
            "FAILED_LOGIN" => EventKind::FailedLogin,
            "EDIT_USER" => EventKind::EditUser,
            "DELETE_USER" => EventKind::DeleteUser,
            "CHANGE_ADMIN_ROLE" => EventKind::ChangeAdminRole,
            "NEW_USER" => EventKind::NewUser,
            _ => return None,
        })
    }
}

/// One admin_logs event, 24 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Ev {
    /// Unix seconds.
    pub at: i64,
    /// Stable sequence number; the event_id is derived from it.
    pub seq: u32,
    /// Index into `users`; `ANON` for the anonymous user (id 2).
    pub user: u32,
    pub ip: u32,
    /// Seconds between created_at and recorded_at (late events are recorded long after).
    pub lag: u32,
    pub kind: EventKind,
}

pub const ANON: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    ServiceAccount,
}

#[derive(Debug, Clone)]
pub struct AccessTok {
    pub subject: Subject,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub refresh: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RefreshTok {
    pub subject: Subject,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub access: String,
}

#[derive(Debug, Clone)]
pub struct Code {
    pub user_id: String,
    pub scopes: Vec<String>,
    pub redirect_uri: Option<String>,
    pub expires_at: DateTime<Utc>,
}

pub struct State {
    pub enterprise_id: String,
    pub enterprise_name: String,
    pub domain: String,
    pub plan: Plan,
    pub users: Vec<UserRec>,
    pub index: HashMap<String, usize>,
    pub service_account: UserRec,
    /// The admin_logs stream in the order events became visible (positions are indexes, never
    /// shifted): first `sorted_len` events in `created_at` order, then late events as they arrived.
    pub events: Vec<Ev>,
    /// Length of the `created_at`-ordered prefix of `events`.
    pub sorted_len: usize,
    pub next_seq: u32,
    pub login_events: u64,
    pub seed: u64,
    pub access_ttl: Duration,
    pub access: HashMap<String, AccessTok>,
    pub refresh: HashMap<String, RefreshTok>,
    pub codes: HashMap<String, Code>,
    pub issued_secrets: Vec<String>,
    pub consenting_user: String,
    pub deny_consent: bool,
    pub terminated: Vec<String>,
    pub next_folder_id: u64,
    pub secret_rng: ChaCha8Rng,
}

pub fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl State {
    pub fn user_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied().filter(|&i| !self.users[i].deleted)
    }

    pub fn sim_user(&self, u: &UserRec) -> SimUser {
        SimUser {
            id: u.id.clone(),
            login: u.login.clone(),
            name: u.name.clone(),
            role: u.role,
            status: u.status,
            is_app_user: u.is_app_user,
            is_external: u.is_external,
            owns_content: u.owns_content,
            created_at: u.created_at,
            last_login: u.last_login.map(ts),
        }
    }

    pub fn subject_user(&self, s: &Subject) -> Option<&UserRec> {
        match s {
            Subject::User(id) => self.user_index(id).map(|i| &self.users[i]),
            Subject::ServiceAccount => Some(&self.service_account),
        }
    }

    /// Admins, co-admins and the client-credentials service account may manage the enterprise.
    pub fn is_admin(&self, s: &Subject) -> bool {
        match s {
            Subject::ServiceAccount => true,
            Subject::User(_) => self
                .subject_user(s)
                .is_some_and(|u| matches!(u.role, Role::Admin | Role::Coadmin) && u.status == UserStatus::Active),
        }
    }

    fn secret(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let s: String = (0..len)
            .map(|_| ALPHABET[self.secret_rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        self.issued_secrets.push(s.clone());
        s
    }

    pub fn issue_code(
        &mut self,
        user_id: &str,
        scopes: Vec<String>,
        redirect_uri: Option<String>,
        now: DateTime<Utc>,
    ) -> String {
        let code = self.secret(32);
        let expires_at = now + chrono::Duration::seconds(CODE_TTL_SECS);
        self.codes.insert(
            code.clone(),
            Code {
                user_id: user_id.to_string(),
                scopes,
                redirect_uri,
                expires_at,
            },
        );
        code
    }

    pub fn issue_pair(&mut self, subject: Subject, scopes: Vec<String>, now: DateTime<Utc>) -> TokenPair {
        let access_token = self.secret(32);
        let refresh_token = self.secret(64);
        let ttl = chrono::Duration::from_std(self.access_ttl).unwrap_or_default();
        self.access.insert(
            access_token.clone(),
            AccessTok {
                subject: subject.clone(),
                scopes: scopes.clone(),
                expires_at: now + ttl,
                refresh: Some(refresh_token.clone()),
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshTok {
                subject,
                scopes,
                expires_at: now + chrono::Duration::days(REFRESH_TTL_DAYS),
                access: access_token.clone(),
            },
        );
        TokenPair {
            access_token,
            refresh_token,
        }
    }

    pub fn issue_access_only(&mut self, subject: Subject, scopes: Vec<String>, now: DateTime<Utc>) -> String {
        let access_token = self.secret(32);
        let ttl = chrono::Duration::from_std(self.access_ttl).unwrap_or_default();
        self.access.insert(
            access_token.clone(),
            AccessTok {
                subject,
                scopes,
                expires_at: now + ttl,
                refresh: None,
            },
        );
        access_token
    }

    /// Revokes a token and the other half of its pair.
    pub fn revoke(&mut self, token: &str) {
        if let Some(a) = self.access.remove(token)
            && let Some(r) = a.refresh
        {
            self.refresh.remove(&r);
        }
        if let Some(r) = self.refresh.remove(token) {
            self.access.remove(&r.access);
        }
    }

    /// Appends an event to the stream, visible now. An event older than the newest one already in
    /// the stream is a late event: it goes to the stream's end with its older `created_at` (as in
    /// Box's admin_logs, which favours completeness over latency), and gets a lag so recorded_at is
    /// "now". Positions already handed out never shift.
    pub fn push_event(&mut self, kind: EventKind, user: u32, at: DateTime<Utc>, now: DateTime<Utc>) {
        let in_order =
            self.sorted_len == self.events.len() && self.events.last().is_none_or(|e| e.at <= at.timestamp());
        self.push_event_at_end(kind, user, at, now, in_order);
    }

    /// Appends an event at the stream's end whatever its `created_at` (a delayed event).
    pub fn push_delayed_event(&mut self, kind: EventKind, user: u32, at: DateTime<Utc>, now: DateTime<Utc>) {
        self.push_event_at_end(kind, user, at, now, false);
    }

    fn push_event_at_end(&mut self, kind: EventKind, user: u32, at: DateTime<Utc>, now: DateTime<Utc>, in_order: bool) {
        let at_s = at.timestamp();
        let lag = (now.timestamp() - at_s).clamp(0, u32::MAX as i64) as u32;
        let seq = self.next_seq;
        self.next_seq += 1;
        let ip = ip_for(self.seed, user, seq);
        self.events.push(Ev {
            at: at_s,
            seq,
            user,
            ip,
            lag,
            kind,
        });
        if in_order {
            self.sorted_len = self.events.len();
        }
        if kind == EventKind::Login {
            self.login_events += 1;
            if let Some(u) = self.users.get_mut(user as usize) {
                u.last_login = Some(u.last_login.map_or(at_s, |l| l.max(at_s)));
            }
        }
    }

    pub fn event_id(&self, seq: u32) -> String {
        // Looks like Box's hex ids and is stable for a given seed and sequence number.
        let a = splitmix(self.seed ^ (seq as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let b = splitmix(a ^ seq as u64);
        format!("{a:016x}{b:016x}")
    }
}

pub fn ip_for(seed: u64, user: u32, seq: u32) -> u32 {
    // Most logins of a user come from one address; a few from elsewhere.
    let h = splitmix(seed ^ ((user as u64) << 20));
    if splitmix(h ^ seq as u64) % 10 == 0 {
        (splitmix(h ^ seq as u64 ^ 0xABCD) as u32) | 0x0A00_0000
    } else {
        h as u32
    }
}

pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn new_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)))
}

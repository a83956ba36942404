//! The simulator's mutable world: users, the admin_logs event stream, OAuth grants and tokens.
//! Events are kept as a time-sorted Vec of 24-byte records so eleven million of them (logins and
//! content) stay cheap and a page is a binary search plus a short scan; a stream position is an
//! index into that Vec. Filtering by type is a bitmask test per event: even a type with no event
//! at all scans 11M events in about 35 ms (release), so no per-type index is kept.

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
    /// Unix seconds of the latest content event (upload, preview, ...).
    pub last_content: Option<i64>,
}

/// The admin_logs event types the simulator generates, with Box's names. Content kinds are the
/// events that show someone used Box without an interactive login (Box Drive, mobile, integrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    Login,
    AdminLogin,
    FailedLogin,
    EditUser,
    DeleteUser,
    ChangeAdminRole,
    NewUser,
    Upload,
    Download,
    Preview,
    Edit,
    Copy,
    Move,
    Rename,
    Delete,
    ContentAccess,
    CommentCreate,
    CollaborationInvite,
    CollaborationAccept,
    Share,
}

impl EventKind {
    /// Every kind, in declaration order (so `ALL[k as usize] == k`).
    pub const ALL: [EventKind; 20] = [
        EventKind::Login,
        EventKind::AdminLogin,
        EventKind::FailedLogin,
        EventKind::EditUser,
        EventKind::DeleteUser,
        EventKind::ChangeAdminRole,
        EventKind::NewUser,
        EventKind::Upload,
        EventKind::Download,
        EventKind::Preview,
        EventKind::Edit,
        EventKind::Copy,
        EventKind::Move,
        EventKind::Rename,
        EventKind::Delete,
        EventKind::ContentAccess,
        EventKind::CommentCreate,
        EventKind::CollaborationInvite,
        EventKind::CollaborationAccept,
        EventKind::Share,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Login => "LOGIN",
            EventKind::AdminLogin => "ADMIN_LOGIN",
            EventKind::FailedLogin => "FAILED_LOGIN",
            EventKind::EditUser => "EDIT_USER",
            EventKind::DeleteUser => "DELETE_USER",
            EventKind::ChangeAdminRole => "CHANGE_ADMIN_ROLE",
            EventKind::NewUser => "NEW_USER",
            EventKind::Upload => "UPLOAD",
            EventKind::Download => "DOWNLOAD",
            EventKind::Preview => "PREVIEW",
            EventKind::Edit => "EDIT",
            EventKind::Copy => "COPY",
            EventKind::Move => "MOVE",
            EventKind::Rename => "RENAME",
            EventKind::Delete => "DELETE",
            EventKind::ContentAccess => "CONTENT_ACCESS",
            EventKind::CommentCreate => "COMMENT_CREATE",
            EventKind::CollaborationInvite => "COLLABORATION_INVITE",
            EventKind::CollaborationAccept => "COLLABORATION_ACCEPT",
            EventKind::Share => "SHARE",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Something done to a file or folder: use of Box that needs no `LOGIN` event.
    /// `FAILED_LOGIN` and `ADMIN_LOGIN` are neither content nor a login.
    pub fn is_content(self) -> bool {
        self as u8 >= EventKind::Upload as u8
    }

    fn bit(self) -> u32 {
        1 << self as u8
    }
}

/// A set of event kinds as a bitmask, so filtering millions of events costs one AND each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindSet(u32);

impl KindSet {
    pub fn with(self, k: EventKind) -> KindSet {
        KindSet(self.0 | k.bit())
    }
    pub fn contains(self, k: EventKind) -> bool {
        self.0 & k.bit() != 0
    }
}

/// One admin_logs event, 24 bytes (11 million of them fit in about 260 MB). The IP address is
/// derived from seed, user and sequence number when the event is served.
#[derive(Debug, Clone, Copy)]
pub struct Ev {
    /// Unix seconds.
    pub at: i64,
    /// Stable sequence number; the event_id is derived from it.
    pub seq: u32,
    /// Index into `users`; `ANON` for the anonymous user (id 2).
    pub user: u32,
    /// Seconds between created_at and recorded_at (late events are recorded long after).
    pub lag: u32,
    pub kind: EventKind,
}

const _: () = assert!(std::mem::size_of::<Ev>() == 24);

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
    pub content_events: u64,
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
            last_content: u.last_content.map(ts),
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
        self.events.push(Ev {
            at: at_s,
            seq,
            user,
            lag,
            kind,
        });
        if in_order {
            self.sorted_len = self.events.len();
        }
        self.note_activity(kind, user, at_s);
    }

    /// Keeps the ground truth and counters in step with one more event. The anonymous user (id 2)
    /// is nobody's activity, and a FAILED_LOGIN or ADMIN_LOGIN is not a login.
    pub fn note_activity(&mut self, kind: EventKind, user: u32, at: i64) {
        let latest = |v: Option<i64>| Some(v.map_or(at, |l| l.max(at)));
        if kind == EventKind::Login {
            self.login_events += 1;
            if let Some(u) = self.users.get_mut(user as usize) {
                u.last_login = latest(u.last_login);
            }
        } else if kind.is_content() {
            self.content_events += 1;
            if user != ANON
                && let Some(u) = self.users.get_mut(user as usize)
            {
                u.last_content = latest(u.last_content);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_box_name() {
        for (i, k) in EventKind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i, "ALL is in declaration order");
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("upload"), None, "Box's names are upper case");
        assert_eq!(EventKind::parse("ITEM_UPLOAD"), None);
    }

    #[test]
    fn the_issue_11_kinds_are_content_and_login_kinds_are_not() {
        for name in [
            "UPLOAD",
            "DOWNLOAD",
            "PREVIEW",
            "EDIT",
            "COPY",
            "DELETE",
            "CONTENT_ACCESS",
            "COMMENT_CREATE",
            "COLLABORATION_INVITE",
            "COLLABORATION_ACCEPT",
            "SHARE",
        ] {
            assert!(EventKind::parse(name).is_some_and(EventKind::is_content), "{name}");
        }
        for name in ["LOGIN", "FAILED_LOGIN", "ADMIN_LOGIN", "EDIT_USER", "NEW_USER"] {
            assert!(EventKind::parse(name).is_some_and(|k| !k.is_content()), "{name}");
        }
    }

    #[test]
    fn a_kind_set_holds_what_was_added() {
        let s = KindSet::default().with(EventKind::Login).with(EventKind::Share);
        assert!(s.contains(EventKind::Login) && s.contains(EventKind::Share));
        assert!(!s.contains(EventKind::FailedLogin) && !s.contains(EventKind::Upload));
    }
}

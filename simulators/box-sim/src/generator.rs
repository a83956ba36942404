//! Deterministic enterprise generator: the same seed and spec give the same users, ids and events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::content;
use crate::state::{ANON, Ev, EventKind, State, UserRec, new_rng, splitmix};
use crate::{Role, SimConfig, UserStatus};

const FIRST: &[&str] = &[
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "chris",
    "karen",
    "daniel",
    "lisa",
    "matthew",
    "nancy",
    "anthony",
    "betty",
    "mark",
    "sandra",
    "paul",
    "ashley",
    "steven",
    "emily",
    "andrew",
    "donna",
    "kevin",
    "michelle",
    "brian",
    "carol",
    "george",
    "amanda",
];
const LAST: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
];

#[derive(Clone, Copy, PartialEq)]
enum Habit {
    Never,
    Daily,
    Weekly,
    Monthly,
    Dormant,
}

/// How a user who logs in at all uses content (see `content.rs`).
#[derive(Clone, Copy, PartialEq)]
enum Use {
    /// Content events spread like their logins.
    LoginsAndContent,
    /// Content events most days up to today, no LOGIN in the last `DRIVE_ONLY_QUIET_DAYS`.
    DriveOnly,
    /// Logins, no content event at all.
    LoginOnly,
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn share(n: usize, f: f64) -> usize {
    ((n as f64) * f.clamp(0.0, 1.0)).round() as usize
}

pub fn generate(config: &SimConfig, now: DateTime<Utc>) -> State {
    let spec = &config.enterprise;
    let seed = config.seed;
    let mut rng = new_rng(seed, 1);
    let enterprise_id = if spec.enterprise_id.is_empty() {
        (10_000_000 + splitmix(seed) % 90_000_000).to_string()
    } else {
        spec.enterprise_id.clone()
    };
    let slug: String = spec
        .name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let domain = format!("{}.example.com", if slug.is_empty() { "enterprise" } else { &slug });
    let now_s = now.timestamp();
    let history_s = spec.history_days.max(1) as i64 * 86_400;
    let start_s = now_s - history_s;

    let n = spec.users.max(1);
    let n_app = share(n, spec.app_users);
    let total = n + n_app + spec.external_users;
    let mut next_id: u64 = 20_000_000_000 + splitmix(seed ^ 7) % 1_000_000_000;
    let mut users = Vec::with_capacity(total);
    let mut name_counts: HashMap<(usize, usize), u32> = HashMap::new();
    for i in 0..total {
        next_id += 1 + rng.random_range(0..1000u64);
        let is_app_user = i >= n && i < n + n_app;
        let is_external = i >= n + n_app;
        let (f, l) = (rng.random_range(0..FIRST.len()), rng.random_range(0..LAST.len()));
        let k = name_counts.entry((f, l)).or_default();
        *k += 1;
        let (name, login) = if is_app_user {
            (
                format!("Integration Bot {}", i - n + 1),
                format!("AppUser_{next_id}@boxdevedition.com"),
            )
        } else if is_external {
            (
                format!("{} {}", cap(FIRST[f]), cap(LAST[l])),
                format!("{}.{}.{}@partner.example.org", FIRST[f], LAST[l], k),
            )
        } else {
            (
                format!("{} {}", cap(FIRST[f]), cap(LAST[l])),
                format!("{}.{}.{}@{domain}", FIRST[f], LAST[l], k),
            )
        };
        // Accounts were created before the history window, spread over two years.
        let created = start_s - rng.random_range(0..(2 * 365 * 86_400i64));
        users.push(UserRec {
            id: next_id.to_string(),
            login,
            name,
            role: Role::User,
            status: UserStatus::Active,
            is_app_user,
            is_external,
            owns_content: false,
            space_used: 0,
            created_at: crate::state::ts(created),
            modified_at: crate::state::ts(created + rng.random_range(0..86_400i64 * 30)),
            deleted: false,
            last_login: None,
            last_content: None,
        });
    }

    // Roles, states and habits of the managed (non-app) users. Index 0 is the primary admin.
    let mut order: Vec<usize> = (1..n).collect();
    order.shuffle(&mut rng);
    let n_admins = share(n, spec.admins).max(1);
    let n_coadmins = share(n, spec.coadmins).min(n.saturating_sub(n_admins));
    users[0].role = Role::Admin;
    for &i in order.iter().take(n_admins - 1) {
        users[i].role = Role::Admin;
    }
    for &i in order.iter().skip(n_admins - 1).take(n_coadmins) {
        users[i].role = Role::Coadmin;
    }
    let mut habits = vec![Habit::Never; total];
    let plain: Vec<usize> = (1..n).filter(|&i| users[i].role == Role::User).collect();
    let mut never = plain.clone();
    never.shuffle(&mut rng);
    never.truncate(share(n, spec.never_logged_in).min(plain.len()));
    let never_set: std::collections::HashSet<usize> = never.iter().copied().collect();
    let lf = &spec.login_frequency;
    let weights = [
        lf.daily.max(0.0),
        lf.weekly.max(0.0),
        lf.monthly.max(0.0),
        lf.dormant.max(0.0),
    ];
    let wsum: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    for (i, habit) in habits.iter_mut().enumerate().take(n) {
        if never_set.contains(&i) {
            continue;
        }
        if i == 0 || users[i].role != Role::User {
            *habit = Habit::Daily;
            continue;
        }
        let mut x = rng.random::<f64>() * wsum;
        *habit = Habit::Dormant;
        for (w, h) in weights
            .iter()
            .zip([Habit::Daily, Habit::Weekly, Habit::Monthly, Habit::Dormant])
        {
            if x < *w {
                *habit = h;
                break;
            }
            x -= w;
        }
    }
    // Inactive users: prefer dormant and never-logged-in ones, never the primary admin.
    let mut candidates: Vec<usize> = (1..n).filter(|&i| users[i].role == Role::User).collect();
    candidates.shuffle(&mut rng);
    candidates.sort_by_key(|&i| match habits[i] {
        Habit::Dormant | Habit::Never => 0,
        _ => 1,
    });
    for &i in candidates.iter().take(share(n, spec.inactive_users)) {
        users[i].status = UserStatus::Inactive;
        if habits[i] != Habit::Never {
            habits[i] = Habit::Dormant;
        }
    }
    // Content owners among managed users; the primary admin always owns content.
    let mut owners: Vec<usize> = (1..n).collect();
    owners.shuffle(&mut rng);
    owners.truncate(share(n, spec.content_owners).saturating_sub(1));
    owners.push(0);
    for i in owners {
        users[i].owns_content = true;
        users[i].space_used = rng.random_range(1_000_000..50_000_000_000i64);
    }

    // LOGIN events: each user has an expected count from their habit; a requested total scales them.
    let days = spec.history_days.max(1) as f64;
    let dormant_end = if spec.history_days > 150 {
        now_s - 120 * 86_400
    } else {
        start_s + history_s / 3
    };
    let rate = |h: Habit| match h {
        Habit::Never => 0.0,
        Habit::Daily => days * 5.0 / 7.0 * 0.9,
        Habit::Weekly => days / 7.0,
        Habit::Monthly => days / 30.0,
        Habit::Dormant => ((dormant_end - start_s) as f64 / 86_400.0 / 10.0).max(1.0),
    };
    // Drive-only users' logins, if any, fall before their quiet period.
    let quiet_start = now_s - (content::DRIVE_ONLY_QUIET_DAYS + 1) * 86_400;
    let drive_login_share = if quiet_start - start_s >= 86_400 {
        (quiet_start - start_s) as f64 / history_s as f64
    } else {
        0.0
    };
    let uses = if spec.content_events {
        content_uses(spec, &users, &habits, &plain, &mut new_rng(seed, 5))
    } else {
        vec![Use::LoginsAndContent; total]
    };
    let expected: Vec<f64> = (0..total)
        .map(|i| match uses[i] {
            Use::DriveOnly => rate(habits[i]) * drive_login_share,
            _ => rate(habits[i]),
        })
        .collect();
    let sum: f64 = expected.iter().sum();
    let mut counts: Vec<u64> = match spec.total_login_events {
        Some(want) if sum > 0.0 => distribute(&expected, want, &mut rng),
        Some(_) => vec![0; total],
        None => expected
            .iter()
            .map(|&e| if e > 0.0 { e.round().max(1.0) as u64 } else { 0 })
            .collect(),
    };
    if spec.total_login_events.is_none() {
        // Daily users log in close to today so the ground truth looks like a real tenant.
        for (i, c) in counts.iter_mut().enumerate() {
            if habits[i] == Habit::Daily && expected[i] > 0.0 {
                *c = (*c).max(1);
            }
        }
    }
    let total_logins: u64 = counts.iter().sum();
    let content_counts = if spec.content_events {
        // Content follows each user's habit, 10 to a login; a requested total scales it, and a
        // requested login total scales it alike so the proportion holds.
        let content_rate: Vec<f64> = (0..total)
            .map(|i| match uses[i] {
                Use::LoginOnly => 0.0,
                Use::DriveOnly => content::PER_LOGIN * rate(Habit::Daily),
                Use::LoginsAndContent => content::PER_LOGIN * rate(habits[i]),
            })
            .collect();
        content_counts(spec, &content_rate, sum, &mut new_rng(seed, 6))
    } else {
        ContentCounts {
            users: vec![0; total],
            anonymous: 0,
        }
    };
    let total_content = content_counts.users.iter().sum::<u64>() + content_counts.anonymous;
    let mut raw: Vec<Ev> = Vec::with_capacity((total_logins + total_logins / 2 + total_content) as usize + n / 10 + 16);
    let ev = |at: i64, user: u32, kind: EventKind| Ev {
        at,
        seq: 0,
        user,
        lag: 0,
        kind,
    };
    let window = |i: usize| {
        if habits[i] == Habit::Dormant {
            (start_s, dormant_end.max(start_s + 1))
        } else {
            (start_s, now_s)
        }
    };
    for (i, &c) in counts.iter().enumerate() {
        let (lo, hi) = if uses[i] == Use::DriveOnly {
            (start_s, quiet_start.max(start_s + 1))
        } else {
            window(i)
        };
        for _ in 0..c {
            raw.push(ev(rng.random_range(lo..hi), i as u32, EventKind::Login));
        }
    }
    let logins = raw.len();
    // Content draws from its own random stream, so switching content off leaves the logins as
    // they were.
    let mut draws = content::Draws::new(seed);
    for (i, &c) in content_counts.users.iter().enumerate() {
        let (lo, hi) = if uses[i] == Use::DriveOnly {
            (start_s, now_s)
        } else {
            window(i)
        };
        for _ in 0..c {
            let at = draws.time(lo, hi);
            raw.push(ev(at, i as u32, content::kind_for(draws.next())));
        }
    }
    for _ in 0..content_counts.anonymous {
        let at = draws.time(start_s, now_s);
        raw.push(ev(at, ANON, content::anonymous_kind_for(draws.next())));
    }
    if spec.other_events {
        // Admins' logins also show as ADMIN_LOGIN on some days; failed logins hit anyone, including
        // users who never logged in, and some are by the anonymous user (id 2).
        for k in 0..logins {
            let Ev { at, user: u, .. } = raw[k];
            if users[u as usize].role != Role::User && rng.random_bool(0.3) {
                raw.push(ev(at - 5, u, EventKind::AdminLogin));
            }
        }
        let n_failed = (logins / 20).max(3);
        for _ in 0..n_failed {
            let u = if rng.random_bool(0.2) {
                ANON
            } else {
                rng.random_range(0..n) as u32
            };
            raw.push(ev(rng.random_range(start_s..now_s), u, EventKind::FailedLogin));
        }
        let n_admin_ops = (n / 10).max(2);
        for _ in 0..n_admin_ops {
            let kind = [EventKind::EditUser, EventKind::NewUser, EventKind::ChangeAdminRole][rng.random_range(0..3)];
            raw.push(ev(rng.random_range(start_s..now_s), 0, kind));
        }
    }
    // One integer key (time, user, kind) sorts faster than a tuple in debug builds; flipping the
    // sign bit keeps times before 1970 in order.
    raw.sort_unstable_by_key(|e| {
        ((((e.at as u64) ^ (1 << 63)) as u128) << 40) | ((e.user as u128) << 8) | e.kind as u128
    });
    let mut events = raw;
    for (seq, e) in events.iter_mut().enumerate() {
        let seq = seq as u32;
        e.seq = seq;
        e.lag = (seq % 7) * 13;
        let latest = |v: Option<i64>| Some(v.map_or(e.at, |l| l.max(e.at)));
        if e.kind == EventKind::Login {
            let u = &mut users[e.user as usize];
            u.last_login = latest(u.last_login);
        } else if e.kind.is_content() && e.user != ANON {
            let u = &mut users[e.user as usize];
            u.last_content = latest(u.last_content);
        }
    }
    let next_seq = events.len() as u32;

    let index = users.iter().enumerate().map(|(i, u)| (u.id.clone(), i)).collect();
    let sa_id = (next_id + 1000).to_string();
    let service_account = UserRec {
        id: sa_id.clone(),
        login: format!(
            "AutomationUser_{sa_id}_{:08x}@boxdevedition.com",
            splitmix(seed ^ 99) as u32
        ),
        name: "seatsync Service Account".into(),
        role: Role::Admin,
        status: UserStatus::Active,
        is_app_user: true,
        is_external: false,
        owns_content: false,
        space_used: 0,
        created_at: crate::state::ts(start_s),
        modified_at: crate::state::ts(start_s),
        deleted: false,
        last_login: None,
        last_content: None,
    };
    let consenting_user = users[0].id.clone();
    State {
        enterprise_id,
        enterprise_name: spec.name.clone(),
        domain,
        plan: spec.plan,
        users,
        index,
        service_account,
        sorted_len: events.len(),
        events,
        next_seq,
        login_events: total_logins,
        content_events: total_content,
        seed,
        access_ttl: config.access_token_ttl,
        access: HashMap::new(),
        refresh: HashMap::new(),
        codes: HashMap::new(),
        issued_secrets: Vec::new(),
        consenting_user,
        deny_consent: false,
        terminated: Vec::new(),
        next_folder_id: 100_000_000_000 + splitmix(seed ^ 5) % 1_000_000_000,
        secret_rng: new_rng(seed, 2),
    }
}

/// Splits the plain users who log in at all into drive-only, login-only and the rest. Drive-only
/// users come from the active ones with a living habit (a dormant user has stopped working).
fn content_uses(
    spec: &crate::EnterpriseSpec,
    users: &[UserRec],
    habits: &[Habit],
    plain: &[usize],
    rng: &mut impl Rng,
) -> Vec<Use> {
    let mut uses = vec![Use::LoginsAndContent; users.len()];
    let mut base: Vec<usize> = plain.iter().copied().filter(|&i| habits[i] != Habit::Never).collect();
    let n_drive = share(base.len(), spec.drive_only);
    let n_login_only = share(base.len(), spec.login_only);
    base.shuffle(rng);
    let mut drive = 0;
    for &i in &base {
        if drive < n_drive && users[i].status == UserStatus::Active && habits[i] != Habit::Dormant {
            uses[i] = Use::DriveOnly;
            drive += 1;
        }
    }
    let rest: Vec<usize> = base.into_iter().filter(|&i| uses[i] != Use::DriveOnly).collect();
    for i in rest.into_iter().take(n_login_only) {
        uses[i] = Use::LoginOnly;
    }
    uses
}

struct ContentCounts {
    users: Vec<u64>,
    anonymous: u64,
}

/// Each user's number of content events and the anonymous ones. `login_expected` is the sum of
/// the users' expected logins, which a requested login total scales.
fn content_counts(
    spec: &crate::EnterpriseSpec,
    rate: &[f64],
    login_expected: f64,
    rng: &mut impl Rng,
) -> ContentCounts {
    let sum: f64 = rate.iter().sum();
    let anon_for =
        |by_users: u64| (by_users as f64 * content::ANONYMOUS_SHARE / (1.0 - content::ANONYMOUS_SHARE)).round() as u64;
    if sum <= 0.0 {
        // Nobody works on content: what remains is shared-link traffic.
        return ContentCounts {
            users: vec![0; rate.len()],
            anonymous: spec.total_content_events.unwrap_or(0),
        };
    }
    match (spec.total_content_events, spec.total_login_events) {
        (Some(want), _) => {
            let anonymous = (want as f64 * content::ANONYMOUS_SHARE).round() as u64;
            ContentCounts {
                users: distribute(rate, want - anonymous, rng),
                anonymous,
            }
        }
        (None, Some(logins)) if login_expected > 0.0 => {
            let by_users = (sum * logins as f64 / login_expected).round() as u64;
            ContentCounts {
                users: distribute(rate, by_users, rng),
                anonymous: anon_for(by_users),
            }
        }
        (None, Some(_)) => ContentCounts {
            users: vec![0; rate.len()],
            anonymous: 0,
        },
        (None, None) => {
            let users: Vec<u64> = rate
                .iter()
                .map(|&e| if e > 0.0 { e.round().max(1.0) as u64 } else { 0 })
                .collect();
            let anonymous = anon_for(users.iter().sum());
            ContentCounts { users, anonymous }
        }
    }
}

/// Exactly `want` events over users in proportion to `expected` (floors, then the remainder one
/// by one to random users who expect any). `expected` must have a positive sum.
fn distribute(expected: &[f64], want: u64, rng: &mut impl Rng) -> Vec<u64> {
    let sum: f64 = expected.iter().sum();
    let scale = want as f64 / sum;
    let mut c: Vec<u64> = expected.iter().map(|e| (e * scale).floor() as u64).collect();
    let mut left = want.saturating_sub(c.iter().sum());
    let active: Vec<usize> = (0..expected.len()).filter(|&i| expected[i] > 0.0).collect();
    while left > 0 {
        c[active[rng.random_range(0..active.len())]] += 1;
        left -= 1;
    }
    c
}

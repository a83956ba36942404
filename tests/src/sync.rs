//! Helpers for sync tests: a seeded enterprise, a syncer over this test's moto table, and the
//! license numbers computed independently from the simulator's ground truth.

use std::collections::HashMap;
use std::sync::Arc;

use box_sim::{EnterpriseSpec, SimConfig, SimUser};
use chrono::{DateTime, Duration, Utc};
use seatsync::ids::{BoxUserId, TenantId};
use seatsync::license::{Activity, UserLicense};
use seatsync::sync::{LicenseStore, SyncOptions, Syncer};
use seatsync::tokens::StaticToken;
use secrecy::SecretString;

use crate::boxsim::{TestBox, sim_config};

/// The acceptance enterprise: 10% never logged in, 2% admins, 3% app users, 180 days of logins,
/// drive-only and login-only users. Content events are 20 per user rather than the simulator's
/// realistic ten per login: the tests need every kind of user, not millions of pages read by a debug
/// build (the benchmark reads the realistic volume).
pub fn enterprise(users: usize) -> SimConfig {
    SimConfig {
        enterprise: EnterpriseSpec {
            users,
            total_content_events: Some(users as u64 * 20),
            history_days: 180,
            never_logged_in: 0.10,
            admins: 0.02,
            app_users: 0.03,
            ..EnterpriseSpec::default()
        },
        ..sim_config()
    }
}

/// Options for tests: quick, several slices, a generous budget.
pub fn options() -> SyncOptions {
    SyncOptions {
        requests_per_minute: 60_000,
        ..SyncOptions::default()
    }
}

pub fn syncer(tb: &TestBox, store: Arc<dyn LicenseStore>, options: SyncOptions) -> Syncer {
    Syncer {
        store,
        tokens: Arc::new(StaticToken(SecretString::from(
            tb.sim.issue_tokens(&tb.sim.primary_admin_id()).access_token,
        ))),
        box_api: tb.client.clone(),
        options,
    }
}

pub fn tenant() -> TenantId {
    TenantId::parse("acme").expect("a valid tenant id")
}

/// What the report should say, computed from the simulator's users (not from seatsync's code).
#[derive(Debug, PartialEq, Eq)]
pub struct Truth {
    pub seat_holders: u32,
    pub deactivated: u32,
    pub admins: u32,
    pub app_users: u32,
    pub external_users: u32,
    pub never_logged_in: u32,
    pub inactive_30: u32,
    pub inactive_60: u32,
    pub inactive_90: u32,
    pub active_60: u32,
    /// Content activity within 30, 60 and 90 days.
    pub working: [u32; 3],
    /// A login but no content activity within 30, 60 and 90 days.
    pub login_only: [u32; 3],
}

pub fn truth(users: &[SimUser], now: DateTime<Utc>) -> Truth {
    let seat: Vec<_> = users.iter().filter(|u| !u.is_app_user && !u.is_external).collect();
    let active: Vec<_> = seat.iter().filter(|u| u.status != "inactive").collect();
    let cutoff = |days: i64| (now - Duration::days(days)).date_naive();
    // The default signal: any activity, the later of the last login and the last content event.
    let within = |t: Option<DateTime<Utc>>, days: i64| t.is_some_and(|t| t.date_naive() >= cutoff(days));
    let inactive = |days: i64| {
        active
            .iter()
            .filter(|u| !within(u.last_login, days) && !within(u.last_content, days))
            .count() as u32
    };
    let working = |days: i64| active.iter().filter(|u| within(u.last_content, days)).count() as u32;
    let login_only = |days: i64| {
        active
            .iter()
            .filter(|u| within(u.last_login, days) && !within(u.last_content, days))
            .count() as u32
    };
    Truth {
        seat_holders: seat.len() as u32,
        deactivated: seat.iter().filter(|u| u.status == "inactive").count() as u32,
        admins: seat.iter().filter(|u| u.role == "admin" || u.role == "coadmin").count() as u32,
        app_users: users.iter().filter(|u| u.is_app_user).count() as u32,
        // Box returns an external user only to a filter_term equal to its login, so the sync
        // lists none and the figure stays 0 whatever the enterprise holds.
        external_users: 0,
        never_logged_in: active
            .iter()
            .filter(|u| u.last_login.is_none() && u.last_content.is_none())
            .count() as u32,
        inactive_30: inactive(30),
        inactive_60: inactive(60),
        inactive_90: inactive(90),
        active_60: active.len() as u32 - inactive(60),
        working: [working(30), working(60), working(90)],
        login_only: [login_only(30), login_only(60), login_only(90)],
    }
}

/// Stored users without the bookkeeping timestamps, for comparing two stores' states.
pub fn comparable(users: HashMap<BoxUserId, UserLicense>) -> HashMap<BoxUserId, UserLicense> {
    let epoch = DateTime::<Utc>::from_timestamp(0, 0).expect("epoch");
    users
        .into_iter()
        .map(|(id, u)| {
            (
                id,
                UserLicense {
                    first_seen_at: epoch,
                    last_seen_at: epoch,
                    ..u
                },
            )
        })
        .collect()
}

/// The latest content activity a stored user has, if any.
pub fn last_content(user: &UserLicense) -> Option<DateTime<Utc>> {
    user.content_activity.at()
}

/// The report's working and login-only counts at 30, 60 and 90 days.
pub fn report_states(report: &seatsync::sync::LicenseReport) -> ([u32; 3], [u32; 3]) {
    let at = |days: u16| report.activity_by_threshold.iter().find(|t| t.days == days);
    let pick = |f: fn(&seatsync::sync::ThresholdCounts) -> Option<u32>| {
        [30, 60, 90].map(|d| at(d).and_then(f).unwrap_or(u32::MAX))
    };
    (pick(|t| t.working), pick(|t| t.login_only))
}

/// The latest login a stored user has, if any.
pub fn last_login(user: &UserLicense) -> Option<DateTime<Utc>> {
    match user.login_activity {
        Activity::Seen { at, .. } => Some(at),
        _ => None,
    }
}

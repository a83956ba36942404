//! License arithmetic: from Box users and their last activity to the numbers a buyer reads
//! (seats in use, inactive at 30/60/90 days, never logged in, deactivated).
//!
//! Box facts that shape it: app users (`is_platform_access_only`) hold no paid seat; a
//! deactivated user still holds one; only reducing the subscription lowers the bill.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::boxapi::{Event, LOGIN_EVENT, User, UserStatus};

/// The inactivity thresholds every report shows.
pub const INACTIVE_DAYS: [i64; 3] = [30, 60, 90];

/// Folds LOGIN events into each user's latest login (events of other types are ignored, and so
/// is Box's anonymous user).
pub fn fold_last_logins<'a>(last: &mut HashMap<String, DateTime<Utc>>, events: impl IntoIterator<Item = &'a Event>) {
    for event in events {
        if event.event_type.as_deref() != Some(LOGIN_EVENT) {
            continue;
        }
        let (Some(by), Some(at)) = (&event.created_by, event.created_at) else {
            continue;
        };
        if by.id == crate::boxapi::ANONYMOUS_USER_ID {
            continue;
        }
        last.entry(by.id.clone())
            .and_modify(|t| *t = (*t).max(at))
            .or_insert(at);
    }
}

/// Seat counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SeatCounts {
    /// Managed users that hold a paid seat (app users excluded; deactivated users included).
    pub seat_holders: u64,
    pub admins: u64,
    pub app_users: u64,
    pub deactivated: u64,
    /// Active seat holders who logged in within 30 days.
    pub active_30d: u64,
    /// Active seat holders with no login for at least 30, 60, 90 days (never-logged-in included).
    pub inactive_30d: u64,
    pub inactive_60d: u64,
    pub inactive_90d: u64,
    /// Active seat holders with no login in the whole history read.
    pub never_logged_in: u64,
}

/// Counts seats for users whose last login is known from `last_login`.
pub fn count_seats(users: &[User], last_login: &HashMap<String, DateTime<Utc>>, now: DateTime<Utc>) -> SeatCounts {
    let mut c = SeatCounts::default();
    for user in users {
        if user.is_platform_access_only {
            c.app_users += 1;
            continue;
        }
        c.seat_holders += 1;
        if user.role.is_some_and(|r| r.is_admin()) {
            c.admins += 1;
        }
        if user.status == UserStatus::Inactive {
            c.deactivated += 1;
            continue;
        }
        let idle = last_login.get(&user.id).map(|t| now - *t);
        if idle.is_none() {
            c.never_logged_in += 1;
        }
        let inactive_for = |days: i64| idle.is_none_or(|d| d >= Duration::days(days));
        if inactive_for(30) {
            c.inactive_30d += 1;
        } else {
            c.active_30d += 1;
        }
        c.inactive_60d += u64::from(inactive_for(60));
        c.inactive_90d += u64::from(inactive_for(90));
    }
    c
}

/// What kind of Box account a user is; only managed users hold paid seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    Managed,
    /// `is_platform_access_only`: a service identity of a custom app; holds no seat.
    AppUser,
    /// A collaborator from outside the enterprise; holds no seat of this enterprise.
    External,
}

/// Where a user's last-activity date came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityOrigin {
    /// A `LOGIN` event in Box's enterprise event stream.
    BoxLogin,
    /// A successful SSO sign-in to the Box app in Okta's System Log.
    Okta,
    /// A successful sign-in to the Box app in Entra ID's sign-in logs.
    Entra,
    /// Entra's tenant-wide `lastSuccessfulSignInDateTime`: any app, so a weaker signal.
    EntraTenantWide,
    /// A SAML login to Box in Google Workspace's reports.
    Google,
}

/// A user's activity as far as the tenant's source can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Activity {
    /// Last active at `at`, according to `origin`.
    Seen { at: DateTime<Utc>, origin: ActivityOrigin },
    /// The source covers this user and has no activity in the history read.
    Never,
    /// The SSO provider has no identity matching this user: unknown, never counted as inactive.
    NoData,
}

impl Activity {
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            Activity::Seen { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// The later of two observations; `Seen` beats `Never` beats `NoData`.
    pub fn latest(self, other: Activity) -> Activity {
        match (self, other) {
            (Activity::Seen { at: a, .. }, Activity::Seen { at: b, .. }) => {
                if b > a {
                    other
                } else {
                    self
                }
            }
            (Activity::Seen { .. }, _) => self,
            (_, Activity::Seen { .. }) => other,
            (Activity::Never, _) | (_, Activity::Never) => Activity::Never,
            _ => Activity::NoData,
        }
    }
}

/// One Box user's license state (`TENANT#<t>` / `USER#<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLicense {
    pub box_user_id: String,
    pub login: Option<String>,
    pub name: Option<String>,
    pub status: UserStatus,
    pub role: Option<crate::boxapi::Role>,
    pub kind: UserKind,
    pub created_at: Option<DateTime<Utc>>,
    /// Box reports storage used by the user's own content; a user who owns content cannot be
    /// deleted until it is transferred.
    pub owns_content: bool,
    pub activity: Activity,
    pub first_seen_at: DateTime<Utc>,
    /// When a sync last wrote this item; for a user still present, the tenant's last complete
    /// sync is the better "last seen" (unchanged items are not rewritten).
    pub last_seen_at: DateTime<Utc>,
    /// Set once a complete listing no longer contains the user.
    pub removed_at: Option<DateTime<Utc>>,
}

impl UserLicense {
    /// The license state of a listed Box user, given what was known before.
    pub fn from_box(
        user: &User,
        kind: UserKind,
        activity: Activity,
        previous: Option<&UserLicense>,
        now: DateTime<Utc>,
    ) -> Self {
        let activity = previous.map_or(activity, |p| p.activity.latest(activity));
        UserLicense {
            box_user_id: user.id.clone(),
            login: user.login.clone(),
            name: user.name.clone(),
            status: user.status,
            role: user.role,
            kind,
            created_at: user.created_at,
            owns_content: user.space_used.unwrap_or(0) > 0,
            activity,
            first_seen_at: previous.map_or(now, |p| p.first_seen_at),
            last_seen_at: now,
            removed_at: None,
        }
    }

    /// Holds a paid seat: managed users, active or deactivated.
    pub fn holds_seat(&self) -> bool {
        self.kind == UserKind::Managed && self.removed_at.is_none()
    }

    /// Equal for billing and reporting purposes (ignores `last_seen_at`), so an unchanged user
    /// is not rewritten on every sync.
    pub fn same_state(&self, other: &UserLicense) -> bool {
        UserLicense {
            last_seen_at: other.last_seen_at,
            ..self.clone()
        } == *other
    }
}

/// Counts of seat holders by the UTC day of their last activity: enough to answer "inactive for
/// N days" at any later moment without reading every user, and cheap to adjust when one user's
/// activity changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityHistogram {
    /// `YYYY-MM-DD` → active-status seat holders last active that day.
    pub by_day: std::collections::BTreeMap<chrono::NaiveDate, u32>,
    pub never: u32,
    pub no_data: u32,
}

impl ActivityHistogram {
    pub fn add(&mut self, activity: &Activity) {
        match activity {
            Activity::Seen { at, .. } => *self.by_day.entry(at.date_naive()).or_default() += 1,
            Activity::Never => self.never += 1,
            Activity::NoData => self.no_data += 1,
        }
    }

    pub fn remove(&mut self, activity: &Activity) {
        match activity {
            Activity::Seen { at, .. } => {
                let day = at.date_naive();
                if let Some(n) = self.by_day.get_mut(&day) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.by_day.remove(&day);
                    }
                }
            }
            Activity::Never => self.never = self.never.saturating_sub(1),
            Activity::NoData => self.no_data = self.no_data.saturating_sub(1),
        }
    }

    /// Seat holders with activity on or after `now - days` (by UTC day).
    pub fn active_within(&self, days: i64, now: DateTime<Utc>) -> u32 {
        let cutoff = (now - Duration::days(days)).date_naive();
        self.by_day.range(cutoff..).map(|(_, n)| *n).sum::<u32>()
    }

    /// Seat holders with no activity for at least `days` days, never-active included and
    /// no-data excluded (unknown is not inactive).
    pub fn inactive_for(&self, days: i64, now: DateTime<Utc>) -> u32 {
        let cutoff = (now - Duration::days(days)).date_naive();
        self.by_day.range(..cutoff).map(|(_, n)| *n).sum::<u32>() + self.never
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxapi::{Role, UserMini};

    fn user(id: &str, role: Role, status: UserStatus, app: bool) -> User {
        User {
            id: id.into(),
            name: None,
            login: Some(format!("{id}@example.com")),
            status,
            role: Some(role),
            created_at: None,
            modified_at: None,
            space_used: None,
            is_platform_access_only: app,
            enterprise: None,
        }
    }

    fn login(id: &str, by: &str, at: DateTime<Utc>, kind: &str) -> Event {
        Event {
            event_id: id.into(),
            event_type: Some(kind.into()),
            created_at: Some(at),
            created_by: Some(UserMini {
                id: by.into(),
                login: None,
            }),
            ip_address: None,
        }
    }

    #[test]
    fn only_login_events_count_and_the_latest_wins() {
        let now = Utc::now();
        let events = [
            login("e1", "1", now - Duration::days(10), "LOGIN"),
            login("e2", "1", now - Duration::days(2), "LOGIN"),
            login("e3", "1", now, "FAILED_LOGIN"),
            login("e4", "2", now, "ADMIN_LOGIN"),
            login("e5", "2", now, "LOGIN"),
        ];
        let mut last = HashMap::new();
        fold_last_logins(&mut last, events.iter().take(4));
        assert_eq!(last["1"], now - Duration::days(2));
        assert!(!last.contains_key("2"), "ADMIN_LOGIN is not a Box login");
        fold_last_logins(&mut last, [login("e6", ANON, now, "LOGIN")].iter());
        assert!(!last.contains_key(ANON));
    }
    const ANON: &str = crate::boxapi::ANONYMOUS_USER_ID;

    #[test]
    fn seats_are_counted_as_box_bills_them() {
        let now = Utc::now();
        let users = vec![
            user("1", Role::Admin, UserStatus::Active, false),
            user("2", Role::User, UserStatus::Active, false),
            user("3", Role::User, UserStatus::Active, false),
            user("4", Role::User, UserStatus::Inactive, false),
            user("5", Role::User, UserStatus::Active, true),
            user("6", Role::User, UserStatus::Active, false),
        ];
        let last: HashMap<_, _> = [
            ("1".to_string(), now - Duration::days(1)),
            ("2".to_string(), now - Duration::days(45)),
            ("6".to_string(), now - Duration::days(100)),
        ]
        .into();
        let c = count_seats(&users, &last, now);
        assert_eq!(c.seat_holders, 5, "app users hold no seat; deactivated users do");
        assert_eq!((c.admins, c.app_users, c.deactivated), (1, 1, 1));
        assert_eq!(c.never_logged_in, 1);
        assert_eq!(
            (c.active_30d, c.inactive_30d, c.inactive_60d, c.inactive_90d),
            (1, 3, 2, 2)
        );
    }
}

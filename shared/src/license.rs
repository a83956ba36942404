//! License arithmetic: from Box users and their last activity to the numbers a buyer reads
//! (seats in use, inactive at 30/60/90 days, never logged in, deactivated).
//!
//! Box facts that shape it: app users (`is_platform_access_only`) hold no paid seat; a
//! deactivated user still holds one; only reducing the subscription lowers the bill.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::boxapi::{User, UserStatus};
use crate::ids::BoxUserId;

/// The inactivity thresholds every report shows.
pub const INACTIVE_DAYS: [i64; 3] = [30, 60, 90];

/// The first UTC calendar day that still counts as "active within `days` days" at `now`.
///
/// The rule every report, list, filter and bulk selection applies: a user is *inactive for N days*
/// when the UTC calendar day of their last activity is before `today − N` (UTC). Activity at any
/// time on that day itself still counts as within N days, so the answer does not change with the
/// hour of the day the question is asked.
pub fn active_since(days: i64, now: DateTime<Utc>) -> NaiveDate {
    (now - Duration::days(days)).date_naive()
}

/// Whether activity at `at` is older than `days` days at `now`, by [`active_since`]'s rule.
pub fn inactive_for(at: DateTime<Utc>, days: i64, now: DateTime<Utc>) -> bool {
    at.date_naive() < active_since(days, now)
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
    pub box_user_id: BoxUserId,
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
    /// The license state of a listed Box user, given what was known before. `id` is `user.id`,
    /// checked where it was read from Box.
    pub fn from_box(
        id: BoxUserId,
        user: &User,
        kind: UserKind,
        activity: Activity,
        previous: Option<&UserLicense>,
        now: DateTime<Utc>,
    ) -> Self {
        let activity = previous.map_or(activity, |p| p.activity.latest(activity));
        UserLicense {
            box_user_id: id,
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
        let cutoff = active_since(days, now);
        self.by_day.range(cutoff..).map(|(_, n)| *n).sum::<u32>()
    }

    /// Seat holders with no activity for at least `days` days, never-active included and
    /// no-data excluded (unknown is not inactive).
    pub fn inactive_for(&self, days: i64, now: DateTime<Utc>) -> u32 {
        let cutoff = active_since(days, now);
        self.by_day.range(..cutoff).map(|(_, n)| *n).sum::<u32>() + self.never
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `USER#<id>` item as the sync has stored it since the id was a plain string.
    const STORED_USER: &str = r#"{"box_user_id":"20000001234","login":"ann@example.com","name":"Ann","status":"active","role":"user","kind":"managed","created_at":"2025-01-02T03:04:05Z","owns_content":true,"activity":{"state":"seen","at":"2026-11-02T09:30:00Z","origin":"box_login"},"first_seen_at":"2026-01-01T00:00:00Z","last_seen_at":"2026-11-30T00:00:00Z","removed_at":null}"#;

    #[test]
    fn stored_user_licenses_still_decode_and_encode_byte_for_byte() {
        let user: UserLicense = serde_json::from_str(STORED_USER).unwrap();
        assert_eq!(user.box_user_id, BoxUserId::parse("20000001234").unwrap());
        assert_eq!(serde_json::to_string(&user).unwrap(), STORED_USER);
    }

    #[test]
    fn a_stored_user_whose_id_is_not_a_box_id_is_refused() {
        let forged = STORED_USER.replace("20000001234", "1#USER#2");
        assert!(serde_json::from_str::<UserLicense>(&forged).is_err());
    }

    #[test]
    fn inactivity_is_counted_in_utc_calendar_days() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T11:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        assert_eq!(active_since(30, now), NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        // Later in the day than `now`, 30 days back: still within 30 days.
        assert!(!inactive_for(at("2026-11-01T00:00:00Z"), 30, now));
        assert!(!inactive_for(at("2026-11-01T23:59:59Z"), 30, now));
        // The day before: inactive for 30 days, whatever the hour.
        assert!(inactive_for(at("2026-10-31T23:59:59Z"), 30, now));
        assert!(!inactive_for(at("2026-10-31T23:59:59Z"), 31, now));
    }
}

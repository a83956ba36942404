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
    /// A content event in Box's enterprise event stream (upload, download, preview, edit, share…):
    /// use of Box, also through Box Drive, the mobile apps or integrations, with or without a login.
    BoxContent,
}

/// Which signal the inactivity threshold counts (a tenant setting). Whatever it is, the safety
/// rails refuse to change a user with recent activity of either kind (the strongest signal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivitySignal {
    /// The later of the last login and the last content activity.
    #[default]
    Any,
    /// The last login only (seatsync's behaviour before content events were read).
    Login,
    /// The last content activity only: a user who logs in but never opens a file counts as
    /// inactive. Where content activity is not available (activity from an SSO provider), the
    /// last login stands in (see [`ActivitySignal::effective`]).
    Content,
}

impl ActivitySignal {
    /// The signal that can actually be counted: content activity exists only in Box's event
    /// stream, so a tenant whose activity comes from its SSO provider is counted by logins.
    pub fn effective(self, content_available: bool) -> ActivitySignal {
        match self {
            ActivitySignal::Content if !content_available => ActivitySignal::Login,
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActivitySignal::Any => "any",
            ActivitySignal::Login => "login",
            ActivitySignal::Content => "content",
        }
    }
}

/// What a seat holder did with Box within a threshold of N days, from their two dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageState {
    /// Content activity (upload, edit, preview…) within the threshold, logged in or not.
    Working,
    /// Logged in within the threshold, but no content activity within it.
    LoginOnly,
    /// Activity of some kind in the history read, none within the threshold.
    Inactive,
    /// No activity of either kind in the whole history read.
    Never,
    /// The SSO provider has no identity for this user: unknown, never counted as inactive.
    NoData,
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

    pub fn seen(at: DateTime<Utc>, origin: ActivityOrigin) -> Activity {
        Activity::Seen { at, origin }
    }

    /// No content activity known: for stored users from before content events were read, and for
    /// tenants whose activity comes from an SSO provider (which has no content events).
    pub fn is_no_data(&self) -> bool {
        matches!(self, Activity::NoData)
    }

    fn no_data() -> Activity {
        Activity::NoData
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
    /// The last login: a Box `LOGIN` event, or a sign-in to the Box app at the SSO provider.
    #[serde(rename = "activity")]
    pub login_activity: Activity,
    /// The last content activity (a Box content event); `NoData` where it is not available.
    /// Absent from items stored before content events were read, and left out when `NoData` so
    /// such items keep their bytes.
    #[serde(default = "Activity::no_data", skip_serializing_if = "Activity::is_no_data")]
    pub content_activity: Activity,
    pub first_seen_at: DateTime<Utc>,
    /// When a sync last wrote this item; for a user still present, the tenant's last complete
    /// sync is the better "last seen" (unchanged items are not rewritten).
    pub last_seen_at: DateTime<Utc>,
    /// Set once a complete listing no longer contains the user.
    pub removed_at: Option<DateTime<Utc>>,
}

impl UserLicense {
    /// The license state of a listed Box user, given what was known before. `id` is `user.id`,
    /// checked where it was read from Box. Each date only moves forward.
    pub fn from_box(
        id: BoxUserId,
        user: &User,
        kind: UserKind,
        seen: Signals,
        previous: Option<&UserLicense>,
        now: DateTime<Utc>,
    ) -> Self {
        let seen = previous.map_or(seen, |p| p.signals().latest(seen));
        UserLicense {
            box_user_id: id,
            login: user.login.clone(),
            name: user.name.clone(),
            status: user.status,
            role: user.role,
            kind,
            created_at: user.created_at,
            owns_content: user.space_used.unwrap_or(0) > 0,
            login_activity: seen.login,
            content_activity: seen.content,
            first_seen_at: previous.map_or(now, |p| p.first_seen_at),
            last_seen_at: now,
            removed_at: None,
        }
    }

    /// Both dates, as one value.
    pub fn signals(&self) -> Signals {
        Signals {
            login: self.login_activity,
            content: self.content_activity,
        }
    }

    /// Replaces both dates.
    pub fn set_signals(&mut self, signals: Signals) {
        self.login_activity = signals.login;
        self.content_activity = signals.content;
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

/// A user's two dates: the last login and the last content activity, each with its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    pub login: Activity,
    pub content: Activity,
}

impl Signals {
    /// No activity of either kind in the history read.
    pub const NEVER: Signals = Signals {
        login: Activity::Never,
        content: Activity::Never,
    };

    /// A source without content events (an SSO provider): only the login is known.
    pub fn login_only(login: Activity) -> Signals {
        Signals {
            login,
            content: Activity::NoData,
        }
    }

    /// Each date the later of the two observations.
    pub fn latest(self, other: Signals) -> Signals {
        Signals {
            login: self.login.latest(other.login),
            content: self.content.latest(other.content),
        }
    }

    /// The strongest signal: the later of the two dates. What the safety rails judge by, so a
    /// user who works in Box every day without logging in is never taken for inactive.
    pub fn strongest(&self) -> Activity {
        match (self.login, self.content) {
            // Content unknown (an SSO tenant, or not read yet): the login says all there is.
            (login, Activity::NoData) => login,
            (Activity::NoData, Activity::Never) => Activity::Never,
            (login, content) => login.latest(content),
        }
    }

    /// The activity the inactivity threshold counts, by the tenant's `signal`.
    pub fn by_signal(&self, signal: ActivitySignal) -> Activity {
        match signal {
            ActivitySignal::Any => self.strongest(),
            ActivitySignal::Login => self.login,
            // Content unknown: the login stands in, as `ActivitySignal::effective` says.
            ActivitySignal::Content if self.content.is_no_data() => self.login,
            ActivitySignal::Content => self.content,
        }
    }

    /// What the user did within `days` days at `now` (UTC calendar days, see [`active_since`]).
    pub fn state(&self, days: i64, now: DateTime<Utc>) -> UsageState {
        let within = |a: Activity| a.at().is_some_and(|at| !inactive_for(at, days, now));
        if within(self.content) {
            UsageState::Working
        } else if within(self.login) {
            UsageState::LoginOnly
        } else {
            match self.strongest() {
                Activity::Seen { .. } => UsageState::Inactive,
                Activity::Never => UsageState::Never,
                Activity::NoData => UsageState::NoData,
            }
        }
    }

    /// Inactive for `days` days by `signal`: no activity of that kind since then, or none at all.
    /// Unknown (`NoData`) is never inactive.
    pub fn inactive_by(&self, signal: ActivitySignal, days: i64, now: DateTime<Utc>) -> bool {
        match self.by_signal(signal) {
            Activity::Seen { at, .. } => inactive_for(at, days, now),
            Activity::Never => true,
            Activity::NoData => false,
        }
    }
}

/// One more user last active on `at`'s UTC day.
fn count_day(by_day: &mut std::collections::BTreeMap<NaiveDate, u32>, at: DateTime<Utc>) {
    *by_day.entry(at.date_naive()).or_default() += 1;
}

/// One user fewer on `at`'s UTC day; a day that reaches zero is dropped, so the map stays small.
fn uncount_day(by_day: &mut std::collections::BTreeMap<NaiveDate, u32>, at: DateTime<Utc>) {
    let day = at.date_naive();
    if let Some(n) = by_day.get_mut(&day) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            by_day.remove(&day);
        }
    }
}

/// Counts of one signal's dates by UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    /// `YYYY-MM-DD` → users last active that day.
    pub by_day: std::collections::BTreeMap<NaiveDate, u32>,
    /// Users without any activity of this kind in the history read.
    pub never: u32,
}

impl DayCounts {
    fn add(&mut self, activity: &Activity) {
        match activity {
            Activity::Seen { at, .. } => count_day(&mut self.by_day, *at),
            Activity::Never => self.never += 1,
            Activity::NoData => {}
        }
    }

    fn remove(&mut self, activity: &Activity) {
        match activity {
            Activity::Seen { at, .. } => uncount_day(&mut self.by_day, *at),
            Activity::Never => self.never = self.never.saturating_sub(1),
            Activity::NoData => {}
        }
    }

    /// Users with activity on or after `now - days` (by UTC day).
    pub fn within(&self, days: i64, now: DateTime<Utc>) -> u32 {
        self.by_day.range(active_since(days, now)..).map(|(_, n)| *n).sum()
    }

    /// Users whose last activity is before `now - days` (by UTC day), never-active ones included.
    pub fn before(&self, days: i64, now: DateTime<Utc>) -> u32 {
        self.by_day
            .range(..active_since(days, now))
            .map(|(_, n)| *n)
            .sum::<u32>()
            + self.never
    }
}

/// Counts of seat holders by the UTC day of their last activity: enough to answer "inactive for
/// N days" (by any signal) and "working or login-only within N days" at any later moment without
/// reading every user, and cheap to adjust when one user's dates change.
///
/// Three day counts, because the states need them: the strongest signal (`by_day`, `never`,
/// `no_data`: the later of the two dates), logins alone and content alone. Working within N =
/// content within N; login-only within N = strongest within N − working within N.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityHistogram {
    /// `YYYY-MM-DD` → active-status seat holders whose strongest signal is that day.
    pub by_day: std::collections::BTreeMap<NaiveDate, u32>,
    /// Neither a login nor content activity in the history read.
    pub never: u32,
    /// Unknown (SSO provider without an identity for the user).
    pub no_data: u32,
    /// Last logins alone (absent in summaries stored before content events were read).
    #[serde(default)]
    pub login: DayCounts,
    /// Last content activity alone; users whose content activity is unknown are not in it.
    #[serde(default)]
    pub content: DayCounts,
}

impl ActivityHistogram {
    pub fn add(&mut self, signals: &Signals) {
        match signals.strongest() {
            Activity::Seen { at, .. } => count_day(&mut self.by_day, at),
            Activity::Never => self.never += 1,
            Activity::NoData => self.no_data += 1,
        }
        self.login.add(&signals.login);
        self.content.add(&signals.content);
    }

    pub fn remove(&mut self, signals: &Signals) {
        match signals.strongest() {
            Activity::Seen { at, .. } => uncount_day(&mut self.by_day, at),
            Activity::Never => self.never = self.never.saturating_sub(1),
            Activity::NoData => self.no_data = self.no_data.saturating_sub(1),
        }
        self.login.remove(&signals.login);
        self.content.remove(&signals.content);
    }

    /// Seat holders with activity of any kind on or after `now - days` (by UTC day).
    pub fn active_within(&self, days: i64, now: DateTime<Utc>) -> u32 {
        let cutoff = active_since(days, now);
        self.by_day.range(cutoff..).map(|(_, n)| *n).sum::<u32>()
    }

    /// Seat holders with content activity within `days` days.
    pub fn working_within(&self, days: i64, now: DateTime<Utc>) -> u32 {
        self.content.within(days, now)
    }

    /// Seat holders who logged in within `days` days without content activity within them.
    pub fn login_only_within(&self, days: i64, now: DateTime<Utc>) -> u32 {
        self.active_within(days, now)
            .saturating_sub(self.working_within(days, now))
    }

    /// Seat holders with no activity for at least `days` days, never-active included and
    /// no-data excluded (unknown is not inactive), by the strongest signal.
    pub fn inactive_for(&self, days: i64, now: DateTime<Utc>) -> u32 {
        let cutoff = active_since(days, now);
        self.by_day.range(..cutoff).map(|(_, n)| *n).sum::<u32>() + self.never
    }

    /// Seat holders inactive for `days` days by `signal` (see [`Signals::inactive_by`]).
    pub fn inactive_by(&self, signal: ActivitySignal, days: i64, now: DateTime<Utc>) -> u32 {
        match signal {
            ActivitySignal::Any => self.inactive_for(days, now),
            ActivitySignal::Login => self.login.before(days, now),
            // Users whose content is unknown count by their login, as `Signals::by_signal` says;
            // the report asks for `Content` only where content is available for everyone.
            ActivitySignal::Content => self.content.before(days, now),
        }
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

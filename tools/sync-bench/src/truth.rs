//! The simulator's per-user ground truth (`box-sim --truth FILE`) and the checks the bench makes
//! against it: every stored user's two dates after the full read, and the published 30/60/90
//! counts at the moment of publication. The totals of `--summary` cannot show a user whose date is
//! wrong while another's is wrong the other way; a per-user comparison can.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use seatsync::ids::BoxUserId;
use seatsync::license::{Activity, ActivityOrigin, ActivitySignal, Signals, UsageState, UserLicense};
use seatsync::settings::TenantSettings;
use seatsync::sync::LicenseReport;
use serde::{Deserialize, Serialize};

/// One line of the truth file (the fields the checks need).
#[derive(Debug, Clone, Deserialize)]
pub struct TruthUser {
    pub id: String,
    pub status: String,
    pub is_app_user: bool,
    pub is_external: bool,
    pub last_login: Option<DateTime<Utc>>,
    pub last_content: Option<DateTime<Utc>>,
}

impl TruthUser {
    /// Counted in the report: a managed user (not an app user, not external) who is not
    /// deactivated, as the engine's histogram counts them.
    fn counts_in_report(&self) -> bool {
        !self.is_app_user && !self.is_external && self.status != "inactive"
    }

    fn signals(&self) -> Signals {
        let seen = |at: Option<DateTime<Utc>>, origin| match at {
            Some(at) => Activity::Seen { at, origin },
            None => Activity::Never,
        };
        Signals {
            login: seen(self.last_login, ActivityOrigin::BoxLogin),
            content: seen(self.last_content, ActivityOrigin::BoxContent),
        }
    }
}

pub fn load(path: &Path) -> anyhow::Result<Vec<TruthUser>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let user = serde_json::from_str(&line).with_context(|| format!("{} line {}", path.display(), n + 1))?;
        users.push(user);
    }
    Ok(users)
}

/// Every listable user's two stored dates against the truth.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DateCheck {
    /// Listable users (managed and app users) in the truth file.
    pub checked: u64,
    /// Listable users the store does not hold.
    pub missing: u64,
    pub login_mismatches: u64,
    pub content_mismatches: u64,
    /// The first mismatch, to start looking from.
    pub example: Option<String>,
}

impl DateCheck {
    pub fn exact(&self) -> bool {
        self.checked > 0 && self.missing == 0 && self.login_mismatches == 0 && self.content_mismatches == 0
    }
}

/// `Never` ↔ no date; `Seen` ↔ the same instant; `NoData` matches nothing (Box's events cover
/// every user).
fn same(stored: &Activity, truth: Option<DateTime<Utc>>) -> bool {
    match (stored, truth) {
        (Activity::Seen { at, .. }, Some(t)) => *at == t,
        (Activity::Never, None) => true,
        _ => false,
    }
}

pub fn check_dates(truth: &[TruthUser], stored: &HashMap<BoxUserId, UserLicense>) -> DateCheck {
    let by_id: HashMap<&str, &UserLicense> = stored.iter().map(|(id, u)| (id.as_str(), u)).collect();
    let mut check = DateCheck::default();
    // External users cannot be listed on Box, so the sync stores none of them.
    for t in truth.iter().filter(|t| !t.is_external) {
        check.checked += 1;
        let Some(user) = by_id.get(t.id.as_str()) else {
            check.missing += 1;
            check.example.get_or_insert_with(|| format!("user {} not stored", t.id));
            continue;
        };
        let login_ok = same(&user.login_activity, t.last_login);
        let content_ok = same(&user.content_activity, t.last_content);
        if !login_ok {
            check.login_mismatches += 1;
        }
        if !content_ok {
            check.content_mismatches += 1;
        }
        if !(login_ok && content_ok) {
            check.example.get_or_insert_with(|| {
                format!(
                    "user {}: stored login {:?} content {:?}, truth login {:?} content {:?}",
                    t.id, user.login_activity, user.content_activity, t.last_login, t.last_content
                )
            });
        }
    }
    check
}

/// (days, working, login-only, inactive) at one threshold.
pub type ThresholdRow = (u16, Option<u32>, Option<u32>, u32);

/// The published figures the benchmark holds to the truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub inactive_30: u32,
    pub inactive_60: u32,
    pub inactive_90: u32,
    /// (days, working, login-only, inactive) at 30, 60, 90 and the threshold.
    pub by_threshold: Vec<ThresholdRow>,
}

impl Counts {
    pub fn of(report: &LicenseReport) -> Counts {
        Counts {
            inactive_30: report.inactive_30_days,
            inactive_60: report.inactive_60_days,
            inactive_90: report.inactive_90_days,
            by_threshold: report
                .activity_by_threshold
                .iter()
                .map(|t| (t.days, t.working, t.login_only, t.inactive))
                .collect(),
        }
    }

    /// The counts the truth gives at `now`, user by user, with the per-user rules
    /// (`Signals::inactive_by`, `Signals::state`) rather than the histogram the sync built.
    pub fn from_truth(truth: &[TruthUser], settings: &TenantSettings, now: DateTime<Utc>) -> Counts {
        let signal: ActivitySignal = settings.activity_signal.effective(true);
        let holders: Vec<Signals> = truth
            .iter()
            .filter(|t| t.counts_in_report())
            .map(TruthUser::signals)
            .collect();
        let count = |f: &dyn Fn(&Signals) -> bool| holders.iter().filter(|s| f(s)).count() as u32;
        let inactive = |days: i64| count(&|s| s.inactive_by(signal, days, now));
        let threshold = i64::from(settings.inactivity_threshold_days);
        let mut thresholds = vec![30_i64, 60, 90];
        if !thresholds.contains(&threshold) {
            thresholds.push(threshold);
            thresholds.sort_unstable();
        }
        Counts {
            inactive_30: inactive(30),
            inactive_60: inactive(60),
            inactive_90: inactive(90),
            by_threshold: thresholds
                .into_iter()
                .map(|days| {
                    (
                        u16::try_from(days).unwrap_or(u16::MAX),
                        Some(count(&|s| s.state(days, now) == UsageState::Working)),
                        Some(count(&|s| s.state(days, now) == UsageState::LoginOnly)),
                        inactive(days),
                    )
                })
                .collect(),
        }
    }

    /// "inactive 30/60/90 a/b/c; working … login-only …" for the table.
    pub fn brief(&self) -> String {
        let list = |f: &dyn Fn(&ThresholdRow) -> Option<u32>| {
            self.by_threshold
                .iter()
                .map(|t| f(t).map_or("-".to_string(), |n| n.to_string()))
                .collect::<Vec<_>>()
                .join("/")
        };
        format!(
            "inactive {}/{}/{}, working {}, login-only {}",
            self.inactive_30,
            self.inactive_60,
            self.inactive_90,
            list(&|t| t.1),
            list(&|t| t.2)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    fn user(id: &str, login: Option<&str>, content: Option<&str>) -> TruthUser {
        TruthUser {
            id: id.into(),
            status: "active".into(),
            is_app_user: false,
            is_external: false,
            last_login: login.map(at),
            last_content: content.map(at),
        }
    }

    #[test]
    fn a_truth_line_from_the_simulator_is_read() {
        let line = r#"{"id":"20000000001","login":"a@example.com","role":"user","status":"active","is_app_user":false,"is_external":false,"last_login":"2026-11-02T09:30:00+00:00","last_content":null}"#;
        let u: TruthUser = serde_json::from_str(line).unwrap();
        assert_eq!(u.last_login, Some(at("2026-11-02T09:30:00Z")));
        assert_eq!(u.last_content, None);
    }

    #[test]
    fn a_stored_never_matches_no_date_and_a_date_matches_only_itself() {
        let t = at("2026-11-02T09:30:00Z");
        let seen = Activity::Seen {
            at: t,
            origin: ActivityOrigin::BoxLogin,
        };
        assert!(same(&Activity::Never, None));
        assert!(same(&seen, Some(t)));
        assert!(!same(&seen, Some(t + chrono::Duration::seconds(1))));
        assert!(!same(&Activity::Never, Some(t)));
        assert!(!same(&Activity::NoData, None));
    }

    #[test]
    fn truth_counts_tell_working_login_only_and_inactive_users_apart() {
        let now = at("2026-12-01T12:00:00Z");
        let truth = vec![
            user("1", Some("2026-11-30T00:00:00Z"), Some("2026-11-29T00:00:00Z")), // working
            user("2", Some("2026-11-20T00:00:00Z"), None),                         // login-only
            user("3", Some("2026-09-01T00:00:00Z"), Some("2026-10-15T00:00:00Z")), // working at 60
            user("4", None, None),                                                 // never
        ];
        let c = Counts::from_truth(&truth, &TenantSettings::default(), now);
        assert_eq!((c.inactive_30, c.inactive_60, c.inactive_90), (2, 1, 1));
        assert_eq!(c.by_threshold[0], (30, Some(1), Some(1), 2));
        assert_eq!(c.by_threshold[1], (60, Some(2), Some(1), 1));
    }

    #[test]
    fn deactivated_app_and_external_users_are_not_counted() {
        let now = at("2026-12-01T12:00:00Z");
        let mut off = user("1", None, None);
        off.status = "inactive".into();
        let mut app = user("2", None, None);
        app.is_app_user = true;
        let mut ext = user("3", None, None);
        ext.is_external = true;
        let c = Counts::from_truth(&[off, app, ext], &TenantSettings::default(), now);
        assert_eq!(c.inactive_30, 0);
    }
}

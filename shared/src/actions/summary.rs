//! How the tenant's license summary moves with each change an action makes: pure deltas per
//! change (a status set, a user deleted, a stored user refreshed from Box), merged per request and
//! applied to the stored summary by version, so no concurrent writer's adjustment is lost.

use super::ActionsService;
use crate::boxapi::UserStatus;
use crate::ids::TenantId;
use crate::license::{Signals, UserLicense};
use crate::sync::LicenseSummary;
use crate::sync::store::update_summary;

/// What the summary must change by after successful changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct SummaryDelta {
    pub deactivated: i64,
    pub admins: i64,
    pub seat_holders: i64,
    pub content_owners: i64,
    pub histogram_add: Vec<Signals>,
    pub histogram_remove: Vec<Signals>,
}

impl SummaryDelta {
    pub fn is_empty(&self) -> bool {
        self.deactivated == 0
            && self.admins == 0
            && self.seat_holders == 0
            && self.content_owners == 0
            && self.histogram_add.is_empty()
            && self.histogram_remove.is_empty()
    }

    pub fn merge(&mut self, other: SummaryDelta) {
        self.deactivated += other.deactivated;
        self.admins += other.admins;
        self.seat_holders += other.seat_holders;
        self.content_owners += other.content_owners;
        self.histogram_add.extend(other.histogram_add);
        self.histogram_remove.extend(other.histogram_remove);
    }

    pub fn apply(&self, summary: &mut LicenseSummary) {
        let adjust = |v: &mut u32, d: i64| *v = (i64::from(*v) + d).clamp(0, i64::from(u32::MAX)) as u32;
        adjust(&mut summary.deactivated, self.deactivated);
        adjust(&mut summary.admins, self.admins);
        adjust(&mut summary.seat_holders, self.seat_holders);
        adjust(&mut summary.content_owners, self.content_owners);
        for a in &self.histogram_remove {
            summary.histogram.remove(a);
        }
        for a in &self.histogram_add {
            summary.histogram.add(a);
        }
    }
}

/// What the summary loses with a deleted user (`before`: their state until then).
pub(super) fn deleted_delta(before: &UserLicense) -> SummaryDelta {
    let mut delta = SummaryDelta::default();
    if before.holds_seat() {
        delta.seat_holders -= 1;
        match before.status {
            UserStatus::Inactive => delta.deactivated -= 1,
            UserStatus::Active => delta.histogram_remove.push(before.signals()),
            _ => {}
        }
        if before.owns_content {
            delta.content_owners -= 1;
        }
        if before.role.is_some_and(|r| r.is_admin()) {
            delta.admins -= 1;
        }
    }
    delta
}

/// What the summary gains or loses when a user's status becomes `after` (`before`: their state
/// until then). Only active seat holders count in the activity histogram.
pub(super) fn status_delta(before: &UserLicense, after: UserStatus) -> SummaryDelta {
    let mut delta = SummaryDelta::default();
    if before.holds_seat() && before.status != after {
        match after {
            UserStatus::Inactive => {
                delta.deactivated += 1;
                if before.status == UserStatus::Active {
                    delta.histogram_remove.push(before.signals());
                }
            }
            UserStatus::Active => {
                if before.status == UserStatus::Inactive {
                    delta.deactivated -= 1;
                }
                delta.histogram_add.push(before.signals());
            }
            _ => {}
        }
    }
    delta
}

/// What the summary changes by when a stored user is refreshed from Box's answer (role and
/// content; the status is left to the change itself).
pub(super) fn refresh_delta(before: &UserLicense, after: &UserLicense) -> SummaryDelta {
    let mut delta = SummaryDelta::default();
    if before.holds_seat() {
        let admin = |u: &UserLicense| i64::from(u.role.is_some_and(|r| r.is_admin()));
        delta.admins = admin(after) - admin(before);
        delta.content_owners = i64::from(after.owns_content) - i64::from(before.owns_content);
    }
    delta
}

impl ActionsService {
    /// Adjusts the summary by `delta` without losing a concurrent writer's adjustment.
    pub(super) async fn apply_summary(
        &self,
        tenant: &TenantId,
        delta: &SummaryDelta,
    ) -> Result<(), crate::storage::StoreError> {
        if delta.is_empty() {
            return Ok(());
        }
        update_summary(&self.table, tenant, |summary| delta.apply(summary))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::boxapi::Role;
    use crate::license::{Activity, ActivityOrigin, UserKind};

    fn now() -> DateTime<Utc> {
        "2026-11-30T12:00:00Z".parse().expect("a time")
    }

    fn seen() -> Activity {
        Activity::Seen {
            at: now(),
            origin: ActivityOrigin::BoxLogin,
        }
    }

    fn license(status: UserStatus) -> UserLicense {
        UserLicense {
            box_user_id: crate::ids::BoxUserId::parse("11").unwrap(),
            login: None,
            name: None,
            status,
            role: Some(Role::User),
            kind: UserKind::Managed,
            created_at: None,
            owns_content: false,
            login_activity: seen(),
            content_activity: Activity::NoData,
            first_seen_at: now(),
            last_seen_at: now(),
            removed_at: None,
        }
    }

    fn summary() -> LicenseSummary {
        LicenseSummary {
            computed_at: now(),
            activity_source: crate::connection::ActivitySource::BoxEvents,
            activity_provider: "box".into(),
            history_since: None,
            history_complete: true,
            content_activity: true,
            seat_holders: 1,
            deactivated: 0,
            admins: 0,
            app_users: 0,
            external_users: 0,
            content_owners: 0,
            histogram: Default::default(),
            user_index_version: crate::storage::user_index::USER_INDEX_VERSION,
        }
    }

    #[test]
    fn summary_deltas_never_go_below_zero() {
        let mut s = summary();
        let delta = SummaryDelta {
            deactivated: -1,
            seat_holders: -2,
            histogram_remove: vec![Signals::NEVER],
            ..SummaryDelta::default()
        };
        delta.apply(&mut s);
        assert_eq!((s.deactivated, s.seat_holders, s.histogram.never), (0, 0, 0));
    }

    #[test]
    fn merged_deltas_add_up() {
        let mut delta = status_delta(&license(UserStatus::Active), UserStatus::Inactive);
        delta.merge(status_delta(&license(UserStatus::Active), UserStatus::Inactive));
        assert_eq!(delta.deactivated, 2);
        assert_eq!(delta.histogram_remove.len(), 2);
        assert!(SummaryDelta::default().is_empty());
        assert!(!delta.is_empty());
    }

    #[test]
    fn deactivating_an_active_seat_holder_counts_them_deactivated_and_out_of_the_histogram() {
        let delta = status_delta(&license(UserStatus::Active), UserStatus::Inactive);
        assert_eq!(
            delta,
            SummaryDelta {
                deactivated: 1,
                histogram_remove: vec![license(UserStatus::Active).signals()],
                ..SummaryDelta::default()
            }
        );
    }

    #[test]
    fn reactivating_puts_the_user_back_in_the_histogram() {
        let delta = status_delta(&license(UserStatus::Inactive), UserStatus::Active);
        assert_eq!(
            delta,
            SummaryDelta {
                deactivated: -1,
                histogram_add: vec![license(UserStatus::Inactive).signals()],
                ..SummaryDelta::default()
            }
        );
    }

    #[test]
    fn a_status_already_held_changes_nothing() {
        assert!(status_delta(&license(UserStatus::Inactive), UserStatus::Inactive).is_empty());
    }

    #[test]
    fn users_without_a_seat_do_not_move_the_summary() {
        let mut external = license(UserStatus::Active);
        external.kind = UserKind::External;
        assert!(status_delta(&external, UserStatus::Inactive).is_empty());
        assert!(deleted_delta(&external).is_empty());
    }

    #[test]
    fn deleting_an_inactive_admin_content_owner_takes_them_out_of_every_count() {
        let mut before = license(UserStatus::Inactive);
        before.owns_content = true;
        before.role = Some(Role::Coadmin);
        assert_eq!(
            deleted_delta(&before),
            SummaryDelta {
                seat_holders: -1,
                deactivated: -1,
                content_owners: -1,
                admins: -1,
                ..SummaryDelta::default()
            }
        );
    }

    #[test]
    fn deleting_an_active_user_takes_them_out_of_the_histogram() {
        let delta = deleted_delta(&license(UserStatus::Active));
        assert_eq!((delta.seat_holders, delta.histogram_remove.len()), (-1, 1));
    }

    #[test]
    fn a_refresh_counts_a_new_admin_and_content_found_at_box() {
        let before = license(UserStatus::Active);
        let mut after = before.clone();
        after.role = Some(Role::Admin);
        after.owns_content = true;
        let delta = refresh_delta(&before, &after);
        assert_eq!((delta.admins, delta.content_owners), (1, 1));
    }
}

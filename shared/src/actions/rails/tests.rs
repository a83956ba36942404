//! The rails, tested as pure functions: no AWS, no Box.

use super::*;
use crate::connection::{ActivitySource, ConnectMethod};
use crate::ids::EnterpriseId;
use crate::license::ActivityOrigin;
use chrono::Duration;

const USER: &str = "11";

fn id(s: &str) -> BoxUserId {
    BoxUserId::parse(s).expect("a Box user id")
}

fn now() -> DateTime<Utc> {
    "2026-11-30T12:00:00Z".parse().expect("a time")
}

/// A managed, active user with no role issue, idle for a year, owning nothing.
fn license(box_user_id: &str) -> UserLicense {
    UserLicense {
        box_user_id: BoxUserId::parse(box_user_id).unwrap(),
        login: Some(format!("user{box_user_id}@example.com")),
        name: None,
        status: UserStatus::Active,
        role: Some(Role::User),
        kind: UserKind::Managed,
        created_at: None,
        owns_content: false,
        login_activity: seen_days_ago(365),
        content_activity: Activity::NoData,
        first_seen_at: now(),
        last_seen_at: now(),
        removed_at: None,
    }
}

fn seen_days_ago(days: i64) -> Activity {
    Activity::Seen {
        at: now() - Duration::days(days),
        origin: ActivityOrigin::BoxLogin,
    }
}

fn connection(status: ConnectionStatus) -> ConnectionRecord {
    ConnectionRecord {
        status,
        method: ConnectMethod::OAuth,
        enterprise_id: EnterpriseId::parse("42").unwrap(),
        enterprise_name: None,
        connected_by_box_id: BoxUserId::parse("900").unwrap(),
        connected_by_login: None,
        connected_by_sub: "admin".into(),
        scopes: Vec::new(),
        connected_at: now(),
        activity_source: ActivitySource::BoxEvents,
        status_reason: None,
        status_since: now(),
        last_sync_at: None,
    }
}

/// Runs the stored-state rails with a connected tenant and default settings, unless changed.
struct Case {
    connection: Option<ConnectionRecord>,
    settings: TenantSettings,
    options: Options,
    stored: Option<UserLicense>,
    target: Option<UserLicense>,
}

impl Case {
    fn new() -> Self {
        Self {
            connection: Some(connection(ConnectionStatus::Connected)),
            settings: TenantSettings::default(),
            options: Options {
                reason: Some("left the company".into()),
                ..Options::default()
            },
            stored: Some(license(USER)),
            target: None,
        }
    }

    fn check(&self, action: &Action) -> Option<Refusal> {
        let facts = Facts {
            connection: self.connection.as_ref(),
            settings: &self.settings,
            options: &self.options,
            now: now(),
        };
        check(&facts, &id(USER), self.stored.as_ref(), action, self.target.as_ref())
    }

    fn stored(mut self, change: impl FnOnce(&mut UserLicense)) -> Self {
        if let Some(u) = self.stored.as_mut() {
            change(u);
        }
        self
    }
}

fn delete_to(to: &str) -> Action {
    Action::Delete {
        transfer_to: Some(id(to)),
    }
}

#[test]
fn an_idle_managed_user_of_a_connected_tenant_passes_every_rail() {
    for action in [
        Action::Deactivate,
        Action::Reactivate,
        Action::Delete { transfer_to: None },
    ] {
        assert_eq!(Case::new().check(&action), None, "{action:?}");
    }
}

#[test]
fn users_not_in_the_license_state_are_not_found() {
    let mut case = Case::new();
    case.stored = None;
    assert_eq!(case.check(&Action::Deactivate), Some(Refusal::NotFound));
}

#[test]
fn users_removed_from_box_are_not_found() {
    let case = Case::new().stored(|u| u.removed_at = Some(now()));
    assert_eq!(case.check(&Action::Deactivate), Some(Refusal::NotFound));
}

#[test]
fn app_users_are_never_changed() {
    let case = Case::new().stored(|u| u.kind = UserKind::AppUser);
    assert_eq!(
        case.check(&Action::Deactivate),
        Some(Refusal::NotManaged(UserKind::AppUser))
    );
}

#[test]
fn external_collaborators_are_never_changed() {
    let case = Case::new().stored(|u| u.kind = UserKind::External);
    assert_eq!(
        case.check(&Action::Delete { transfer_to: None }),
        Some(Refusal::NotManaged(UserKind::External))
    );
}

#[test]
fn admins_are_never_deactivated() {
    let case = Case::new().stored(|u| u.role = Some(Role::Admin));
    assert_eq!(case.check(&Action::Deactivate), Some(Refusal::Admin));
}

#[test]
fn co_admins_are_never_deleted() {
    let case = Case::new().stored(|u| u.role = Some(Role::Coadmin));
    assert_eq!(case.check(&Action::Delete { transfer_to: None }), Some(Refusal::Admin));
}

#[test]
fn the_account_seatsync_is_connected_through_is_never_changed() {
    let mut case = Case::new();
    if let Some(c) = case.connection.as_mut() {
        c.connected_by_box_id = BoxUserId::parse(USER).unwrap();
    }
    assert_eq!(case.check(&Action::Deactivate), Some(Refusal::ConnectedAccount));
}

#[test]
fn protected_logins_match_ignoring_case_and_spaces() {
    let mut case = Case::new();
    case.settings.protected_logins = vec![format!("  USER{USER}@Example.com ")];
    assert_eq!(case.check(&Action::Reactivate), Some(Refusal::ProtectedLogin));
}

#[test]
fn recently_active_users_keep_their_access() {
    let case = Case::new().stored(|u| u.login_activity = seen_days_ago(3));
    let threshold = case.settings.inactivity_threshold_days;
    assert_eq!(
        case.check(&Action::Deactivate),
        Some(Refusal::RecentlyActive {
            days: 3,
            threshold,
            at: now() - Duration::days(3),
            origin: ActivityOrigin::BoxLogin,
        })
    );
}

fn content_days_ago(days: i64) -> Activity {
    Activity::Seen {
        at: now() - Duration::days(days),
        origin: ActivityOrigin::BoxContent,
    }
}

#[test]
fn a_drive_only_user_is_refused_as_recently_active_whatever_the_signal() {
    for signal in [ActivitySignal::Any, ActivitySignal::Login, ActivitySignal::Content] {
        let mut case = Case::new().stored(|u| {
            u.login_activity = seen_days_ago(200);
            u.content_activity = content_days_ago(2);
        });
        case.settings.activity_signal = signal;
        let refusal = case.check(&Action::Deactivate);
        assert!(
            matches!(
                refusal,
                Some(Refusal::RecentlyActive {
                    days: 2,
                    origin: ActivityOrigin::BoxContent,
                    ..
                })
            ),
            "{signal:?}: {refusal:?}"
        );
        let detail = refusal.unwrap().detail(USER, &Action::Deactivate);
        let day = (now() - Duration::days(2)).format("%Y-%m-%d").to_string();
        assert!(detail.contains("content activity") && detail.contains(&day), "{detail}");
    }
}

#[test]
fn a_login_only_user_is_refused_as_recently_active_whatever_the_signal() {
    for signal in [ActivitySignal::Any, ActivitySignal::Login, ActivitySignal::Content] {
        let mut case = Case::new().stored(|u| {
            u.login_activity = seen_days_ago(2);
            u.content_activity = Activity::Never;
        });
        case.settings.activity_signal = signal;
        let refusal = case.check(&Action::Deactivate);
        assert!(
            matches!(
                refusal,
                Some(Refusal::RecentlyActive {
                    days: 2,
                    origin: ActivityOrigin::BoxLogin,
                    ..
                })
            ),
            "{signal:?}: {refusal:?}"
        );
        let detail = refusal.unwrap().detail(USER, &Action::Deactivate);
        assert!(detail.contains("a login to Box on 2026-11-28"), "{detail}");
    }
}

#[test]
fn an_override_with_a_reason_passes_the_recent_activity_rail() {
    let mut case = Case::new().stored(|u| u.login_activity = seen_days_ago(3));
    case.options.override_recent_activity = true;
    assert_eq!(case.check(&Action::Deactivate), None);
}

#[test]
fn an_override_without_a_reason_does_not_pass_the_recent_activity_rail() {
    let mut case = Case::new().stored(|u| u.login_activity = seen_days_ago(3));
    case.options.override_recent_activity = true;
    case.options.reason = Some("   ".into());
    assert!(matches!(
        case.check(&Action::Deactivate),
        Some(Refusal::RecentlyActive { .. })
    ));
}

#[test]
fn reactivating_a_recently_active_user_is_allowed() {
    let case = Case::new().stored(|u| u.login_activity = seen_days_ago(0));
    assert_eq!(case.check(&Action::Reactivate), None);
}

#[test]
fn content_owners_are_not_deleted_without_a_transfer() {
    let case = Case::new().stored(|u| u.owns_content = true);
    assert_eq!(
        case.check(&Action::Delete { transfer_to: None }),
        Some(Refusal::OwnsContent)
    );
}

#[test]
fn content_owners_may_be_deactivated() {
    let case = Case::new().stored(|u| u.owns_content = true);
    assert_eq!(case.check(&Action::Deactivate), None);
}

#[test]
fn content_owners_are_deleted_with_a_transfer_to_a_managed_active_user() {
    let mut case = Case::new().stored(|u| u.owns_content = true);
    case.target = Some(license("12"));
    assert_eq!(case.check(&delete_to("12")), None);
}

#[test]
fn content_is_never_transferred_to_the_user_being_deleted() {
    let mut case = Case::new();
    case.target = Some(license(USER));
    assert!(matches!(
        case.check(&delete_to(USER)),
        Some(Refusal::BadTransferTarget(why)) if why.contains("another user")
    ));
}

#[test]
fn content_is_never_transferred_to_a_user_not_in_the_license_state() {
    let case = Case::new();
    assert!(matches!(
        case.check(&delete_to("12")),
        Some(Refusal::BadTransferTarget(why)) if why.contains("not in this tenant's license state")
    ));
}

#[test]
fn content_is_never_transferred_to_an_inactive_or_unmanaged_user() {
    for change in [
        (|t: &mut UserLicense| t.status = UserStatus::Inactive) as fn(&mut UserLicense),
        |t| t.kind = UserKind::External,
    ] {
        let mut target = license("12");
        change(&mut target);
        let mut case = Case::new();
        case.target = Some(target);
        assert!(matches!(
            case.check(&delete_to("12")),
            Some(Refusal::BadTransferTarget(why)) if why.contains("must be a managed, active user")
        ));
    }
}

#[test]
fn tenants_without_a_connection_change_no_one() {
    let mut case = Case::new();
    case.connection = None;
    assert!(matches!(
        case.check(&Action::Deactivate),
        Some(Refusal::NotConnected(why)) if why.contains("no Box connection")
    ));
}

#[test]
fn tenants_whose_connection_needs_reauthorizing_change_no_one_and_say_why() {
    let mut case = Case::new();
    case.connection = Some(ConnectionRecord {
        status_reason: Some("grant revoked".into()),
        ..connection(ConnectionStatus::ReauthRequired)
    });
    assert!(matches!(
        case.check(&Action::Reactivate),
        Some(Refusal::NotConnected(why)) if why.contains("(grant revoked)")
    ));
}

#[test]
fn the_first_rail_that_applies_is_the_one_reported() {
    let mut case = Case::new().stored(|u| {
        u.role = Some(Role::Admin);
        u.login_activity = seen_days_ago(1);
    });
    case.connection = None;
    assert_eq!(case.check(&Action::Deactivate), Some(Refusal::Admin));
}

fn box_user(role: &str, enterprise: Option<&str>) -> User {
    let mut json = serde_json::json!({"id": USER, "type": "user", "role": role});
    if let Some(id) = enterprise {
        json["enterprise"] = serde_json::json!({"id": id, "type": "enterprise", "name": "E"});
    }
    serde_json::from_value(json).expect("a Box user")
}

#[test]
fn box_rails_let_a_plain_user_of_the_connected_enterprise_through() {
    assert_eq!(box_rails(&box_user("user", Some("42")), Some("42")), None);
    assert_eq!(box_rails(&box_user("user", None), Some("42")), None);
}

#[test]
fn box_rails_refuse_users_of_another_enterprise() {
    assert_eq!(
        box_rails(&box_user("user", Some("7")), Some("42")),
        Some(Refusal::OtherEnterprise)
    );
}

#[test]
fn box_rails_refuse_administrators_box_reports() {
    assert_eq!(
        box_rails(&box_user("admin", Some("42")), Some("42")),
        Some(Refusal::Admin)
    );
    assert_eq!(
        box_rails(&box_user("coadmin", Some("42")), Some("42")),
        Some(Refusal::Admin)
    );
}

#[test]
fn box_rails_refuse_roles_seatsync_does_not_know() {
    assert_eq!(
        box_rails(&box_user("something-new", Some("42")), Some("42")),
        Some(Refusal::UnknownRole)
    );
    let mut no_role = box_user("user", Some("42"));
    no_role.role = None;
    assert_eq!(box_rails(&no_role, Some("42")), Some(Refusal::UnknownRole));
}

#[test]
fn box_rails_refuse_app_users_box_reports() {
    let mut app = box_user("user", Some("42"));
    app.is_platform_access_only = true;
    assert_eq!(
        box_rails(&app, Some("42")),
        Some(Refusal::NotManaged(UserKind::AppUser))
    );
}

/// Activity `hours` before `now()`'s time of day, `days` days back: on the same UTC calendar day
/// as `now() - days` when `hours` is less than 12.
fn seen_days_and_hours_ago(days: i64, hours: i64) -> Activity {
    Activity::Seen {
        at: now() - Duration::days(days) - Duration::hours(hours),
        origin: ActivityOrigin::BoxLogin,
    }
}

#[test]
fn activity_earlier_on_the_threshold_day_still_counts_as_recent() {
    let case = Case::new().stored(|u| u.login_activity = seen_days_and_hours_ago(60, 2));
    assert_eq!(case.settings.inactivity_threshold_days, 60);
    assert!(
        matches!(case.check(&Action::Deactivate), Some(Refusal::RecentlyActive { .. })),
        "active on the UTC day 60 days ago is within 60 days, as the users list shows it"
    );
    let older = Case::new().stored(|u| u.login_activity = seen_days_and_hours_ago(61, 0));
    assert_eq!(older.check(&Action::Deactivate), None);
}

#[test]
fn bulk_criteria_select_the_users_the_users_list_shows_inactive() {
    let at = |activity: Activity| {
        let mut u = license(USER);
        u.login_activity = activity;
        u
    };
    // 30 days and 2 hours ago: the same UTC day as 30 days ago, so not inactive for 30 days.
    assert!(!selected_as_inactive(
        &at(seen_days_and_hours_ago(30, 2)),
        ActivitySignal::Any,
        30,
        now()
    ));
    assert!(selected_as_inactive(
        &at(seen_days_and_hours_ago(31, 0)),
        ActivitySignal::Any,
        30,
        now()
    ));
    assert!(selected_as_inactive(
        &at(Activity::Never),
        ActivitySignal::Any,
        30,
        now()
    ));
    assert!(!selected_as_inactive(
        &at(Activity::NoData),
        ActivitySignal::Any,
        30,
        now()
    ));
    let mut deactivated = at(Activity::Never);
    deactivated.status = UserStatus::Inactive;
    assert!(!selected_as_inactive(&deactivated, ActivitySignal::Any, 30, now()));
}

//! The safety rails: pure decisions, made before any Box write, on whether seatsync may change a
//! user at all, and the [`Refusal`] that says why not. [`check`] runs on the stored license state
//! (and the tenant's settings and connection); [`box_rails`] runs again on Box's own answer,
//! read right before the write. Neither touches AWS or Box, so each rail is unit-tested here.

use chrono::{DateTime, Duration, Utc};

use super::failure::Fault;
use super::{Action, Options};
use crate::boxapi::{Role, User, UserStatus};
use crate::connection::{ConnectionRecord, ConnectionStatus};
use crate::ids::BoxUserId;
use crate::license::{Activity, UserKind, UserLicense};
use crate::settings::TenantSettings;

/// Why a safety rail (or the state of things) stopped a change before Box changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not in this tenant's license state (or removed from Box since).
    NotFound,
    NotManaged(UserKind),
    Admin,
    /// Box's answer has no role seatsync knows: it may be an administrator.
    UnknownRole,
    /// Box says the user belongs to another enterprise than the connected one (state left from an
    /// earlier connection).
    OtherEnterprise,
    /// Too little of the invocation is left to finish a change; nothing was started.
    OutOfTime,
    /// Reading the user from Box right before the write failed: (what went wrong, what happened).
    BoxRead(Fault, String),
    ConnectedAccount,
    ProtectedLogin,
    RecentlyActive {
        days: i64,
        threshold: u16,
    },
    /// The connection cannot be used: (status, what to do).
    NotConnected(String),
    OwnsContent,
    /// `transfer_to` cannot receive the content.
    BadTransferTarget(String),
    DailyCap(u32),
}

impl Refusal {
    pub fn detail(&self, user: &str, action: &Action) -> String {
        let verb = action.verb();
        match self {
            Refusal::NotFound => format!(
                "Box user {user} is not in this tenant's license state (never synced, or no longer in Box); \
                 run a sync if the user was added recently"
            ),
            Refusal::NotManaged(kind) => format!(
                "Box user {user} is {} and holds no seat of this enterprise; seatsync does not {verb} such accounts",
                match kind {
                    UserKind::AppUser => "an app user (a custom app's service identity)",
                    UserKind::External => "an external collaborator",
                    UserKind::Managed => "a managed user",
                }
            ),
            Refusal::Admin => format!(
                "Box user {user} is an admin or co-admin of the enterprise; seatsync never changes administrators. \
                 Change their role in the Box Admin Console first"
            ),
            Refusal::UnknownRole => format!(
                "Box did not say which role user {user} has (or named one seatsync does not know); they may be \
                 an administrator, and seatsync never changes administrators. Nothing was changed"
            ),
            Refusal::OtherEnterprise => format!(
                "Box user {user} belongs to another Box enterprise than the one this tenant is connected to; \
                 seatsync acts only on users of the connected enterprise. Nothing was changed"
            ),
            Refusal::OutOfTime => format!(
                "this request had too little time left to {verb} Box user {user} safely; nothing was started. \
                 Retry with the same Idempotency-Key"
            ),
            Refusal::BoxRead(_, detail) => detail.clone(),
            Refusal::ConnectedAccount => format!(
                "Box user {user} is the account seatsync is connected through; changing it would cut seatsync off. \
                 Connect with another admin first"
            ),
            Refusal::ProtectedLogin => format!(
                "Box user {user} has a protected login (tenant settings `protected_logins`); remove it from the \
                 list to {verb} this user"
            ),
            Refusal::RecentlyActive { days, threshold } => format!(
                "Box user {user} was active {days} day(s) ago, within the tenant's inactivity threshold of \
                 {threshold} days; to {verb} them anyway, send `override_recent_activity: true` with a `reason`"
            ),
            Refusal::NotConnected(why) => why.clone(),
            Refusal::OwnsContent => format!(
                "Box user {user} still owns files or folders, and Box refuses to delete a user who owns content \
                 (deleting it would lose the files). Nothing was changed. Move the content to another user \
                 first: repeat the request with `?transfer_to=<box user id>`"
            ),
            Refusal::BadTransferTarget(why) => why.clone(),
            Refusal::DailyCap(cap) => format!(
                "the tenant's daily cap of {cap} user changes is reached (UTC day); try again tomorrow or raise \
                 `daily_action_cap` in the settings"
            ),
        }
    }
}

/// What the rails weigh besides the user: the tenant's connection and settings, the caller's
/// choices, and the time of the request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts<'a> {
    pub connection: Option<&'a ConnectionRecord>,
    pub settings: &'a TenantSettings,
    pub options: &'a Options,
    pub now: DateTime<Utc>,
}

/// The safety rails on the stored state, in order; the first that applies says no.
/// `transfer_target`: the stored state of `transfer_to`, for a delete that names one.
pub(super) fn check(
    facts: &Facts<'_>,
    user: &BoxUserId,
    stored: Option<&UserLicense>,
    action: &Action,
    transfer_target: Option<&UserLicense>,
) -> Option<Refusal> {
    let Some(u) = stored.filter(|u| u.removed_at.is_none()) else {
        return Some(Refusal::NotFound);
    };
    if u.kind != UserKind::Managed {
        return Some(Refusal::NotManaged(u.kind));
    }
    if u.role.is_some_and(|r| r.is_admin()) {
        return Some(Refusal::Admin);
    }
    if facts.connection.is_some_and(|c| c.connected_by_box_id == user.as_str()) {
        return Some(Refusal::ConnectedAccount);
    }
    if u.login.as_deref().is_some_and(|login| {
        facts
            .settings
            .protected_logins
            .iter()
            .any(|p| p.trim().eq_ignore_ascii_case(login.trim()))
    }) {
        return Some(Refusal::ProtectedLogin);
    }
    if action.removes_access()
        && let Activity::Seen { at, .. } = u.activity
    {
        let threshold = facts.settings.inactivity_threshold_days;
        let idle = facts.now - at;
        let overridden = facts.options.override_recent_activity
            && facts.options.reason.as_deref().is_some_and(|r| !r.trim().is_empty());
        if idle < Duration::days(i64::from(threshold)) && !overridden {
            return Some(Refusal::RecentlyActive {
                days: idle.num_days().max(0),
                threshold,
            });
        }
    }
    if let Action::Delete { transfer_to } = action
        && let Some(refusal) = transfer_rail(user, u, transfer_to.as_ref(), transfer_target)
    {
        return Some(refusal);
    }
    connection_rail(facts.connection)
}

/// A delete either finds no content to lose, or names a managed, active user to receive it.
fn transfer_rail(
    user: &BoxUserId,
    stored: &UserLicense,
    transfer_to: Option<&BoxUserId>,
    transfer_target: Option<&UserLicense>,
) -> Option<Refusal> {
    let Some(to) = transfer_to else {
        return stored.owns_content.then_some(Refusal::OwnsContent);
    };
    let bad = |why: String| Some(Refusal::BadTransferTarget(why));
    if to == user {
        return bad(format!(
            "`transfer_to` must name another user than the one being deleted ({to})"
        ));
    }
    match transfer_target.filter(|t| t.removed_at.is_none()) {
        None => bad(format!(
            "`transfer_to` user {to} is not in this tenant's license state; name a managed, \
             active user of this enterprise"
        )),
        Some(t) if t.kind != UserKind::Managed || t.status != UserStatus::Active => bad(format!(
            "`transfer_to` user {to} must be a managed, active user of this enterprise \
             (it is {} and {})",
            match t.kind {
                UserKind::Managed => "managed",
                UserKind::AppUser => "an app user",
                UserKind::External => "external",
            },
            t.status.as_str()
        )),
        Some(_) => None,
    }
}

/// Changes go through a usable connection only.
fn connection_rail(connection: Option<&ConnectionRecord>) -> Option<Refusal> {
    let why = match connection.map(|c| c.status) {
        Some(ConnectionStatus::Connected) => return None,
        Some(ConnectionStatus::ReauthRequired) => format!(
            "the Box connection must be authorized again ({}); a Box admin must reconnect \
             (POST /connections/box/start) before users can be changed",
            connection
                .and_then(|c| c.status_reason.clone())
                .unwrap_or_else(|| "Box refused the stored grant".into())
        ),
        Some(ConnectionStatus::Disconnected) | None => {
            "this tenant has no Box connection; a Box admin must connect (POST /connections/box/start) \
             before users can be changed"
                .into()
        }
    };
    Some(Refusal::NotConnected(why))
}

/// The rails on Box's own answer, right before the write. `enterprise_id`: the connected one.
pub(super) fn box_rails(user: &User, enterprise_id: Option<&str>) -> Option<Refusal> {
    if let (Some(theirs), Some(ours)) = (user.enterprise.as_ref(), enterprise_id)
        && theirs.id != ours
    {
        return Some(Refusal::OtherEnterprise);
    }
    if user.is_platform_access_only {
        return Some(Refusal::NotManaged(UserKind::AppUser));
    }
    match user.role {
        Some(role) if role.is_admin() => Some(Refusal::Admin),
        Some(Role::User) => None,
        _ => Some(Refusal::UnknownRole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{ActivitySource, ConnectMethod};
    use crate::license::ActivityOrigin;

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
            box_user_id: box_user_id.into(),
            login: Some(format!("user{box_user_id}@example.com")),
            name: None,
            status: UserStatus::Active,
            role: Some(Role::User),
            kind: UserKind::Managed,
            created_at: None,
            owns_content: false,
            activity: seen_days_ago(365),
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
            enterprise_id: "42".into(),
            enterprise_name: None,
            connected_by_box_id: "900".into(),
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
            c.connected_by_box_id = USER.into();
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
        let case = Case::new().stored(|u| u.activity = seen_days_ago(3));
        let threshold = case.settings.inactivity_threshold_days;
        assert_eq!(
            case.check(&Action::Deactivate),
            Some(Refusal::RecentlyActive { days: 3, threshold })
        );
    }

    #[test]
    fn an_override_with_a_reason_passes_the_recent_activity_rail() {
        let mut case = Case::new().stored(|u| u.activity = seen_days_ago(3));
        case.options.override_recent_activity = true;
        assert_eq!(case.check(&Action::Deactivate), None);
    }

    #[test]
    fn an_override_without_a_reason_does_not_pass_the_recent_activity_rail() {
        let mut case = Case::new().stored(|u| u.activity = seen_days_ago(3));
        case.options.override_recent_activity = true;
        case.options.reason = Some("   ".into());
        assert!(matches!(
            case.check(&Action::Deactivate),
            Some(Refusal::RecentlyActive { .. })
        ));
    }

    #[test]
    fn reactivating_a_recently_active_user_is_allowed() {
        let case = Case::new().stored(|u| u.activity = seen_days_ago(0));
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
            u.activity = seen_days_ago(1);
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
}

//! The safety rails: pure decisions, made before any Box write, on whether seatsync may change a
//! user at all, and the [`Refusal`] that says why not. [`check`] runs on the stored license state
//! (and the tenant's settings and connection); [`box_rails`] runs again on Box's own answer,
//! read right before the write. Neither touches AWS or Box, so each rail is unit-tested here.

use chrono::{DateTime, Utc};

use super::failure::Fault;
use super::{Action, Options};
use crate::boxapi::{Role, User, UserStatus};
use crate::connection::{ConnectionRecord, ConnectionStatus};
use crate::ids::BoxUserId;
use crate::license::{Activity, ActivityOrigin, ActivitySignal, UserKind, UserLicense};
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
    /// The strongest signal is within the threshold: `at` and `origin` name that activity (a
    /// content event or a login), so an admin sees why a user who never logs in is refused.
    RecentlyActive {
        days: i64,
        threshold: u16,
        at: DateTime<Utc>,
        origin: ActivityOrigin,
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
            Refusal::RecentlyActive {
                days,
                threshold,
                at,
                origin,
            } => format!(
                "Box user {user} was active {days} day(s) ago: {} on {}, within the tenant's inactivity threshold \
                 of {threshold} days (seatsync counts a login or content activity here, whatever the tenant's \
                 activity signal); to {verb} them anyway, send `override_recent_activity: true` with a `reason`",
                recent_activity(*origin),
                at.format("%Y-%m-%d"),
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

/// What the activity a refusal names was, in an admin's words.
fn recent_activity(origin: ActivityOrigin) -> &'static str {
    match origin {
        ActivityOrigin::BoxContent => {
            "content activity in Box (upload, edit, preview, download or share; also through Box Drive, the \
             mobile apps or integrations)"
        }
        ActivityOrigin::BoxLogin => "a login to Box",
        ActivityOrigin::Okta => "a sign-in to Box through Okta",
        ActivityOrigin::Entra => "a sign-in to Box through Entra ID",
        ActivityOrigin::EntraTenantWide => "a sign-in to an app of the Entra ID tenant",
        ActivityOrigin::Google => "a sign-in to Box through Google Workspace",
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
    if facts.connection.is_some_and(|c| c.connected_by_box_id == *user) {
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
    // The strongest signal, whatever the tenant's threshold counts: someone who works in Box
    // every day without logging in is not inactive.
    if action.removes_access()
        && let Activity::Seen { at, origin } = u.signals().strongest()
    {
        let threshold = facts.settings.inactivity_threshold_days;
        let idle = facts.now - at;
        let overridden = facts.options.override_recent_activity
            && facts.options.reason.as_deref().is_some_and(|r| !r.trim().is_empty());
        if !crate::license::inactive_for(at, i64::from(threshold), facts.now) && !overridden {
            return Some(Refusal::RecentlyActive {
                days: idle.num_days().max(0),
                threshold,
                at,
                origin,
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

/// Whether a bulk `criteria: {inactive_days}` request selects `u`: an active seat holder without
/// activity for `days` days by the tenant's `signal`, or never active. Users whose activity is
/// unknown are never selected. (The rails still refuse anyone with recent activity of any kind.)
pub(super) fn selected_as_inactive(u: &UserLicense, signal: ActivitySignal, days: u32, now: DateTime<Utc>) -> bool {
    u.holds_seat() && u.status == UserStatus::Active && u.signals().inactive_by(signal, i64::from(days), now)
}

#[cfg(test)]
mod tests;

//! License arithmetic: from Box users and their last activity to the numbers a buyer reads
//! (seats in use, inactive at 30/60/90 days, never logged in, deactivated).
//!
//! Box facts that shape it: app users (`is_platform_access_only`) hold no paid seat; a
//! deactivated user still holds one; only reducing the subscription lowers the bill.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

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

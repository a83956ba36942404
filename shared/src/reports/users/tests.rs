//! The in-memory list: cursors, states, signals.

use super::*;
use chrono::Duration;

fn user(id: &str, login: &str, activity: Activity) -> UserLicense {
    UserLicense {
        box_user_id: BoxUserId::parse(id).unwrap(),
        login: Some(login.into()),
        name: Some(format!("Name {id}")),
        status: UserStatus::Active,
        role: Some(Role::User),
        kind: UserKind::Managed,
        created_at: None,
        owns_content: false,
        login_activity: activity,
        content_activity: Activity::NoData,
        first_seen_at: Utc::now(),
        last_seen_at: Utc::now(),
        removed_at: None,
    }
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

#[test]
fn cursors_page_through_every_user_once_and_are_bound_to_query_and_tenant() {
    let now = Utc::now();
    let users: Vec<_> = (0..25)
        .map(|i| {
            let activity = match i % 5 {
                0 => Activity::Never,
                1 => Activity::NoData,
                _ => Activity::Seen {
                    at: now - Duration::days(i),
                    origin: ActivityOrigin::BoxLogin,
                },
            };
            user(&format!("{}", 100 + i), &format!("u{}@x.com", i % 7), activity)
        })
        .collect();
    for sort in ["last_activity", "login", "name"] {
        for order in ["asc", "desc"] {
            let mut query = query::read(&format!("sort={sort}&order={order}&limit=4"), false).unwrap();
            let mut seen = Vec::new();
            loop {
                let p = page(&tenant("a"), &query, 60, ActivitySignal::Any, users.clone(), now).unwrap();
                seen.extend(p.users.into_iter().map(|u| u.box_user_id));
                match p.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!((seen.len(), unique.len()), (25, 25), "{sort} {order}");
        }
    }
    let first = page(
        &tenant("a"),
        &query::read("limit=4", false).unwrap(),
        60,
        ActivitySignal::Any,
        users.clone(),
        now,
    )
    .unwrap();
    let cursor = first.next_cursor.unwrap();
    let other_tenant = query::read(&format!("limit=4&cursor={cursor}"), false).unwrap();
    assert!(page(&tenant("b"), &other_tenant, 60, ActivitySignal::Any, users.clone(), now).is_err());
    let other_query = query::read(&format!("sort=login&cursor={cursor}"), false).unwrap();
    assert!(page(&tenant("a"), &other_query, 60, ActivitySignal::Any, users.clone(), now).is_err());
    let same = query::read(&format!("limit=50&cursor={cursor}"), false).unwrap();
    assert_eq!(
        page(&tenant("a"), &same, 60, ActivitySignal::Any, users, now)
            .unwrap()
            .users
            .len(),
        21
    );
}

fn days_ago(now: DateTime<Utc>, days: i64, origin: ActivityOrigin) -> Activity {
    Activity::Seen {
        at: now - Duration::days(days),
        origin,
    }
}

/// A Drive-only user (content 2 days ago, login 200 days ago) and a login-only user (login 2
/// days ago, no content activity).
fn drive_and_login_only(now: DateTime<Utc>) -> Vec<UserLicense> {
    let mut drive = user("1", "drive@x.com", days_ago(now, 200, ActivityOrigin::BoxLogin));
    drive.content_activity = days_ago(now, 2, ActivityOrigin::BoxContent);
    let mut login_only = user("2", "login@x.com", days_ago(now, 2, ActivityOrigin::BoxLogin));
    login_only.content_activity = Activity::Never;
    vec![drive, login_only]
}

fn ids(tenant_signal: ActivitySignal, raw: &str, users: Vec<UserLicense>, now: DateTime<Utc>) -> Vec<String> {
    let q = query::read(raw, false).unwrap();
    page(&tenant("a"), &q, 30, tenant_signal, users, now)
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.box_user_id.as_str().to_owned())
        .collect()
}

#[test]
fn rows_show_working_and_login_only_users_with_both_dates() {
    let now = Utc::now();
    let q = query::read("sort=login", false).unwrap();
    let p = page(
        &tenant("a"),
        &q,
        30,
        ActivitySignal::Any,
        drive_and_login_only(now),
        now,
    )
    .unwrap();
    let (drive, login) = (&p.users[0], &p.users[1]);
    assert_eq!(drive.activity_state, ActivityState::Working);
    assert_eq!(drive.last_login_at, Some(now - Duration::days(200)));
    assert_eq!(drive.last_content_activity_at, Some(now - Duration::days(2)));
    assert_eq!(drive.last_content_source, Some(ActivityOrigin::BoxContent));
    assert_eq!(
        drive.last_activity_at,
        Some(now - Duration::days(2)),
        "any: the later date"
    );
    assert_eq!(login.activity_state, ActivityState::LoginOnly);
    assert_eq!(login.last_login_at, Some(now - Duration::days(2)));
    assert_eq!(login.last_content_activity_at, None);
    let by_login = page(
        &tenant("a"),
        &q,
        30,
        ActivitySignal::Login,
        drive_and_login_only(now),
        now,
    )
    .unwrap();
    assert_eq!(by_login.users[0].last_activity_at, Some(now - Duration::days(200)));
    assert_eq!(by_login.activity_signal, ActivitySignal::Login);
}

#[test]
fn the_inactive_filter_follows_the_tenants_signal() {
    let now = Utc::now();
    let users = drive_and_login_only(now);
    assert!(ids(ActivitySignal::Any, "state=inactive", users.clone(), now).is_empty());
    assert_eq!(
        ids(ActivitySignal::Content, "state=inactive", users.clone(), now),
        ["2"]
    );
    assert_eq!(ids(ActivitySignal::Login, "state=inactive", users.clone(), now), ["1"]);
    assert_eq!(ids(ActivitySignal::Content, "state=working", users.clone(), now), ["1"]);
    assert_eq!(
        ids(ActivitySignal::Content, "state=login_only", users.clone(), now),
        ["2"]
    );
    assert_eq!(
        ids(ActivitySignal::Any, "state=active&sort=login", users, now),
        ["1", "2"]
    );
}

#[test]
fn sorting_by_last_activity_follows_the_tenants_signal() {
    let now = Utc::now();
    let mut users = drive_and_login_only(now);
    users[1].login_activity = days_ago(now, 5, ActivityOrigin::BoxLogin);
    assert_eq!(
        ids(ActivitySignal::Any, "sort=last_activity", users.clone(), now),
        ["2", "1"]
    );
    assert_eq!(
        ids(ActivitySignal::Login, "sort=last_activity", users.clone(), now),
        ["1", "2"]
    );
    assert_eq!(
        ids(ActivitySignal::Content, "sort=last_activity", users, now),
        ["2", "1"]
    );
}

#[test]
fn a_cursor_is_bound_to_the_tenants_signal_and_rebuilt_from_a_row() {
    let now = Utc::now();
    let users: Vec<_> = (0..6)
        .map(|i| {
            let mut u = user(
                &format!("{}", 10 + i),
                "u@x.com",
                days_ago(now, 100 + i, ActivityOrigin::BoxLogin),
            );
            u.content_activity = if i % 3 == 0 {
                Activity::Never
            } else {
                days_ago(now, i, ActivityOrigin::BoxContent)
            };
            u
        })
        .collect();
    let q = query::read("limit=2", false).unwrap();
    let first = page(&tenant("a"), &q, 30, ActivitySignal::Content, users.clone(), now).unwrap();
    let cursor = first.next_cursor.clone().unwrap();
    let rebuilt = cursor_after(&tenant("a"), &q, ActivitySignal::Content, &first.users[1]);
    assert_eq!(rebuilt, cursor, "the row gives back the key the page sorted by");
    let next = query::read(&format!("limit=2&cursor={cursor}"), false).unwrap();
    assert!(page(&tenant("a"), &next, 30, ActivitySignal::Any, users.clone(), now).is_err());
    assert_eq!(
        page(&tenant("a"), &next, 30, ActivitySignal::Content, users, now)
            .unwrap()
            .users
            .len(),
        2
    );
}

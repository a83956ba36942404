//! Lists answered from the user indexes (issue 12) equal the whole-tenant list: over random tenants
//! on moto, every planned query (inactive by each signal and threshold, never, deactivated in each
//! order) pages through the same users in the same order, with the same total, as the in-memory
//! list computed from every stored user, and each page reads about what it holds.

use chrono::{Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use seatsync::boxapi::{Role, UserStatus};
use seatsync::connection::ActivitySource;
use seatsync::ids::{BoxUserId, TenantId};
use seatsync::license::{Activity, ActivityOrigin, ActivitySignal, UserKind, UserLicense};
use seatsync::reports::users::{ListFormat, UserParams, UserQuery, page};
use seatsync::settings::{SettingsStore, TenantSettings};
use seatsync::sync::LicenseStore;
use serde_json::Value;

use crate::reports_fixture::Reports;

const TENANT: &str = "acme";

fn activity(days_ago: Option<Option<i64>>, origin: ActivityOrigin) -> Activity {
    let now = Utc::now();
    match days_ago {
        None => Activity::Never,
        Some(None) => Activity::NoData,
        // Whole days plus a few seconds, so users share days and cutoffs fall between them.
        Some(Some(d)) => Activity::Seen {
            at: now - Duration::days(d) - Duration::seconds(d % 7),
            origin,
        },
    }
}

fn user_strategy() -> impl Strategy<Value = (u32, UserLicense)> {
    let text = prop::option::of(prop::sample::select(vec![
        "Ann", "ann", "Ann Lee", "bob", "Zoë", "b", "",
    ]));
    let when = prop::option::of(prop::option::weighted(0.95, 0i64..200));
    (
        1u32..5_000,
        text.clone(),
        text,
        prop::sample::select(vec![
            UserStatus::Active,
            UserStatus::Active,
            UserStatus::Active,
            UserStatus::Inactive,
            UserStatus::CannotDeleteEdit,
        ]),
        prop::sample::select(vec![
            UserKind::Managed,
            UserKind::Managed,
            UserKind::Managed,
            UserKind::AppUser,
        ]),
        prop::sample::select(vec![Role::User, Role::User, Role::Admin, Role::Coadmin]),
        when.clone(),
        when,
        prop::bool::weighted(0.05),
    )
        .prop_map(|(id, login, name, status, kind, role, login_at, content_at, removed)| {
            let now = Utc::now();
            (
                id,
                UserLicense {
                    box_user_id: BoxUserId::parse(&id.to_string()).unwrap(),
                    login: login.map(|l| format!("{l}{id}@example.com")),
                    name: name.map(str::to_owned),
                    status,
                    role: Some(role),
                    kind,
                    created_at: None,
                    owns_content: id % 3 == 0,
                    login_activity: activity(login_at, ActivityOrigin::BoxLogin),
                    content_activity: activity(content_at, ActivityOrigin::BoxContent),
                    first_seen_at: now - Duration::days(400),
                    last_seen_at: now,
                    removed_at: removed.then_some(now - Duration::days(1)),
                },
            )
        })
}

/// A tenant's users as its activity source leaves them: from Box's events a user has logins and
/// content activity or never; from an SSO provider content is unknown, and so is the login of a
/// user the provider does not know.
fn tenant_strategy() -> impl Strategy<Value = (Vec<UserLicense>, ActivitySource)> {
    (
        prop::collection::vec(user_strategy(), 0..90),
        prop::sample::select(vec![ActivitySource::BoxEvents, ActivitySource::Sso]),
    )
        .prop_map(|(users, source)| {
            let mut by_id = std::collections::BTreeMap::new();
            for (id, mut u) in users {
                if source == ActivitySource::Sso {
                    u.content_activity = Activity::NoData;
                } else {
                    for a in [&mut u.login_activity, &mut u.content_activity] {
                        if *a == Activity::NoData {
                            *a = Activity::Never;
                        }
                    }
                }
                by_id.insert(id, u);
            }
            (by_id.into_values().collect(), source)
        })
}

/// The planned queries, by signal.
const QUERIES: [&str; 9] = [
    "state=inactive",
    "state=inactive&inactive_days=30&order=desc",
    "state=inactive&inactive_days=60",
    "state=never",
    "state=never&order=desc",
    "state=deactivated",
    "state=deactivated&sort=name",
    "state=deactivated&sort=login&order=desc",
    "state=deactivated&sort=last_activity&order=desc",
];

fn ids(body: &Value) -> Vec<String> {
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["box_user_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn indexed_lists_page_through_the_same_users_in_the_same_order_as_the_whole_tenant() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(Reports::new());
    let tenant = TenantId::parse(TENANT).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let checked = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(
            &(
                tenant_strategy(),
                prop::sample::select(vec![
                    ActivitySignal::Any,
                    ActivitySignal::Login,
                    ActivitySignal::Content,
                ]),
            ),
            |((users, source), signal)| {
                rt.block_on(async {
                    // A fresh tenant state per case: the previous case's users are overwritten or removed.
                    let stored = r.table.load_users(&tenant).await.unwrap();
                    let gone: Vec<UserLicense> = stored
                        .into_values()
                        .filter(|s| !users.iter().any(|u| u.box_user_id == s.box_user_id))
                        .map(|mut s| {
                            // Out of every list: removed and no longer a seat holder.
                            s.removed_at = Some(Utc::now() - Duration::days(500));
                            s.kind = UserKind::External;
                            s
                        })
                        .collect();
                    r.table.put_users(&tenant, &gone).await.unwrap();
                    r.table.put_users(&tenant, &users).await.unwrap();
                    let all = r.table.load_users(&tenant).await.unwrap();
                    let summary =
                        seatsync::sync::engine::summarize(all.values(), source, "box".into(), None, Utc::now());
                    r.table.put_summary(&tenant, &summary).await.unwrap();
                    SettingsStore::new(r.table.clone())
                        .put(
                            &tenant,
                            &TenantSettings {
                                activity_signal: signal,
                                ..TenantSettings::default()
                            },
                        )
                        .await
                        .unwrap();
                    for raw in QUERIES {
                        let params: UserParams = seatsync::api::parse_query(Some(raw)).unwrap();
                        let query = UserQuery::from_params(params, ListFormat::Json).unwrap();
                        let days = query
                            .inactive_days
                            .unwrap_or(TenantSettings::default().inactivity_threshold_days);
                        let reference = page(
                            &tenant,
                            &UserQuery {
                                limit: 10_000,
                                ..query.clone()
                            },
                            days,
                            signal,
                            all.values().cloned(),
                            Utc::now(),
                        )
                        .unwrap();
                        let expected: Vec<String> = reference
                            .users
                            .iter()
                            .map(|u| u.box_user_id.as_str().to_owned())
                            .collect();
                        // Pages of 7 through the API.
                        let mut got = Vec::new();
                        let mut cursor: Option<String> = None;
                        for _ in 0..100 {
                            let q = match &cursor {
                                None => format!("{raw}&limit=7"),
                                Some(c) => format!("{raw}&limit=7&cursor={c}"),
                            };
                            let body = r.get_json(TENANT, "/licenses/users", &q).await;
                            prop_assert_eq!(
                                body["total"].as_u64(),
                                Some(reference.total as u64),
                                "{:?} {}: total",
                                signal,
                                raw
                            );
                            got.extend(ids(&body));
                            cursor = body["next_cursor"].as_str().map(str::to_owned);
                            if cursor.is_none() {
                                break;
                            }
                        }
                        prop_assert_eq!(&got, &expected, "{:?} {}: users and order", signal, raw);
                        checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(())
                })
            },
        )
        .unwrap();
    assert_eq!(checked.into_inner(), 12 * QUERIES.len());
}

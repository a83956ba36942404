//! Lists answered from the user indexes (issue 12) equal the whole-tenant list: over random tenants
//! on moto, every kind of query (each state, sort and order, kind and role filters, searches,
//! under each activity signal) pages through the same users in the same order, with the same
//! total where one is given, as the in-memory list computed from every stored user.

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

/// Queries of every kind: each state, sort and order, kind and role filters, searches.
const QUERIES: [&str; 33] = [
    "",
    "order=desc",
    "sort=login",
    "sort=name&order=desc",
    "kind=app_user",
    "kind=managed&sort=name",
    "state=inactive",
    "state=inactive&inactive_days=30&order=desc",
    "state=inactive&inactive_days=60",
    "state=inactive&sort=name",
    "state=inactive&kind=app_user",
    "state=never",
    "state=never&order=desc",
    "state=never&sort=login&order=desc",
    "state=deactivated",
    "state=deactivated&sort=name",
    "state=deactivated&sort=login&order=desc",
    "state=deactivated&sort=last_activity&order=desc",
    "state=working",
    "state=working&inactive_days=30&order=desc",
    "state=login_only&sort=login",
    "state=active",
    "state=no_data",
    "state=removed",
    "role=admin",
    "role=coadmin&sort=login&order=desc",
    "role=user&state=inactive",
    "q=ann",
    "q=b&state=inactive",
    "q=zo",
    "q=ANN%20L",
    "q=bob1&kind=managed",
    "q=a&state=deactivated",
];

/// Queries whose total the license summary cannot give (the answer's total is null).
fn uncounted(raw: &str) -> bool {
    raw.contains("q=") || raw.contains("role=user") || raw.contains("state=removed")
}

fn ids(body: &Value) -> Vec<String> {
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["box_user_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Random tenants per test.
const CASES: u32 = 8;

#[test]
fn lists_by_state_page_through_the_same_users_in_the_same_order_as_the_whole_tenant() {
    lists_equal_the_whole_tenant_list(&QUERIES[6..24]);
}

#[test]
fn unfiltered_lists_searches_and_roles_page_through_the_same_users_in_the_same_order_as_the_whole_tenant() {
    let queries: Vec<&str> = QUERIES[..6].iter().chain(&QUERIES[24..]).copied().collect();
    lists_equal_the_whole_tenant_list(&queries);
}

fn lists_equal_the_whole_tenant_list(queries: &[&str]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(Reports::new());
    let tenant = TenantId::parse(TENANT).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
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
                    for &raw in queries {
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
                        // Pages of 9 through the API.
                        let mut got = Vec::new();
                        let mut cursor: Option<String> = None;
                        for _ in 0..200 {
                            let q = match &cursor {
                                None => format!("{raw}&limit=9"),
                                Some(c) => format!("{raw}&limit=9&cursor={c}"),
                            };
                            let body = r.get_json(TENANT, "/licenses/users", &q).await;
                            // Uncounted lists are counted where the first page holds them all.
                            let whole = cursor.is_none() && body["next_cursor"].is_null();
                            let total = if uncounted(raw) && !whole {
                                None
                            } else {
                                reference.total
                            };
                            prop_assert_eq!(
                                body["total"].as_u64(),
                                total.map(|t| t as u64),
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
    assert_eq!(checked.into_inner(), CASES as usize * queries.len());
}

/// A search whose matches are mostly not in the state asked for ends its pages at the query bound;
/// each page must continue where the last one stopped reading, also in the name index, where a
/// user matching by login too was already listed at its login (review scenario: the cursor was
/// the user's list position, behind the entry read last, and paging went back and forth).
#[tokio::test]
async fn a_search_cut_short_by_its_query_bound_continues_where_it_stopped_reading() {
    let r = Reports::new().await;
    let now = Utc::now();
    let users: Vec<UserLicense> = (0..600u32)
        .map(|i| {
            // The last three never active; the rest active yesterday. Each matches `a` by its
            // login and its name.
            let active = if i >= 597 {
                Activity::Never
            } else {
                activity(Some(Some(1)), ActivityOrigin::BoxLogin)
            };
            UserLicense {
                box_user_id: BoxUserId::parse(&(1000 + i).to_string()).unwrap(),
                login: Some(format!("a{i:04}@example.com")),
                name: Some(format!("Azure {i}")),
                status: UserStatus::Active,
                role: Some(Role::User),
                kind: UserKind::Managed,
                created_at: None,
                owns_content: false,
                login_activity: active,
                content_activity: Activity::Never,
                first_seen_at: now - Duration::days(400),
                last_seen_at: now,
                removed_at: None,
            }
        })
        .collect();
    r.put_users(TENANT, &users).await;
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 200, "paging did not end: {got:?}");
        let q = match &cursor {
            None => "q=a&state=never&limit=2".to_owned(),
            Some(c) => format!("q=a&state=never&limit=2&cursor={c}"),
        };
        let body = r.get_json(TENANT, "/licenses/users", &q).await;
        got.extend(ids(&body));
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(got, ["1597", "1598", "1599"]);
    assert!(pages > 3, "the query bound cut pages short ({pages} pages)");
}

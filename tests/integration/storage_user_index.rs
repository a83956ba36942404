//! The user indexes (issue 12, storage part): every user write carries its index keys, the keys
//! order exactly like the in-memory users list, a changed user moves between segments and ranges,
//! and an "inactive 90 days, oldest first" list pages through the index reading only each page.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use proptest::prelude::*;
use seatsync::boxapi::{Role, UserStatus};
use seatsync::ids::{BoxUserId, TenantId};
use seatsync::license::{Activity, ActivityOrigin, ActivitySignal, UserKind, UserLicense, active_since};
use seatsync::storage::schema::{
    ACTIVITY_NEVER, ACTIVITY_SEEN, UserSegment, activity_seen_prefix, tenant_pk, text_key_prefix, user_sk, users_rpk,
    users_upk,
};
use seatsync::storage::user_index::{UserIndex, user_index};
use seatsync::storage::{Table, UserIndexPosition, UserIndexRange, VersionedOutcome};
use seatsync::sync::LicenseStore;
use seatsync_tests::aws::TestAws;

fn user(id: u32, login: Option<String>, name: Option<String>, login_at: Activity, content: Activity) -> UserLicense {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    UserLicense {
        box_user_id: BoxUserId::parse(&id.to_string()).unwrap(),
        login,
        name,
        status: UserStatus::Active,
        role: None,
        kind: UserKind::Managed,
        created_at: None,
        owns_content: false,
        login_activity: login_at,
        content_activity: content,
        first_seen_at: now,
        last_seen_at: now,
        removed_at: None,
    }
}

fn seen(at: DateTime<Utc>) -> Activity {
    Activity::seen(at, ActivityOrigin::BoxLogin)
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// Every page of `range` in partition `upk` of `index`, `page` users at a time; asserts each page
/// read at most one item more than it holds.
async fn all_pages(
    table: &Table,
    index: UserIndex,
    upk: &str,
    range: &UserIndexRange,
    page: u32,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut after: Option<UserIndexPosition> = None;
    let mut pages = 0;
    for _ in 0..1000 {
        let got = table
            .query_user_index(index, upk, range, true, after.as_ref(), page)
            .await
            .unwrap();
        pages += 1;
        assert!(got.users.len() <= page as usize, "a page holds at most the limit");
        assert!(
            got.items_read <= page + 1,
            "page {pages} read {} items for {} users",
            got.items_read,
            got.users.len()
        );
        ids.extend(got.users.iter().map(|u| u.box_user_id.as_str().to_owned()));
        if !got.more {
            return (ids, pages);
        }
        after = got.last;
    }
    panic!("more than 1000 pages");
}

async fn ids_in(table: &Table, index: UserIndex, upk: &str, range: UserIndexRange) -> Vec<String> {
    all_pages(table, index, upk, &range, 100).await.0
}

fn activity() -> impl Strategy<Value = Activity> {
    // Seconds from 1970 to 2100 plus microseconds and stray nanoseconds (the key keeps micros,
    // as the in-memory sort does).
    prop_oneof![
        Just(Activity::Never),
        Just(Activity::NoData),
        (0i64..4_102_444_800, 0u32..1_000_000_000)
            .prop_map(|(s, n)| Activity::seen(DateTime::from_timestamp(s, n).unwrap(), ActivityOrigin::BoxLogin)),
        // Many users on few instants, so ties broken by id are exercised.
        (0i64..3).prop_map(|s| Activity::seen(
            DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap(),
            ActivityOrigin::BoxContent
        )),
    ]
}

fn text() -> impl Strategy<Value = Option<String>> {
    // Printable text incl. non-ASCII and case pairs, prefixes of each other ("ann", "ann lee").
    prop::option::of(prop_oneof![
        "[a-cA-C ._-]{0,4}",
        "\\PC{0,6}",
        Just("Ann".to_string()),
        Just("ann lee".to_string()),
        Just("ÄNN".to_string()),
    ])
}

fn users() -> impl Strategy<Value = Vec<UserLicense>> {
    prop::collection::vec((text(), text(), activity(), activity()), 1..40).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (login, name, l, c))| user(i as u32 * 7 % 1000 + 1, login, name, l, c))
            .collect()
    })
}

/// The in-memory sort's key, as reports/users `sort_key` builds it.
fn activity_tuple(activity: Activity, id: &str) -> (i64, String) {
    let n = match activity {
        Activity::Never => i64::MIN,
        Activity::NoData => i64::MIN + 1,
        Activity::Seen { at, .. } => at.timestamp_micros(),
    };
    (n, id.to_owned())
}

/// As people read a login or name: any case, and `.`, `_`, `-` the same as a space.
fn text_tuple(text: Option<&str>, id: &str) -> (String, String) {
    let text = text.unwrap_or_default().replace(['.', '_', '-'], " ").to_lowercase();
    (text, id.to_owned())
}

fn order_by<K: Ord>(users: &[UserLicense], key: impl Fn(&UserLicense) -> K) -> Vec<String> {
    let mut sorted: Vec<&UserLicense> = users.iter().collect();
    sorted.sort_by_key(|u| key(u));
    sorted.iter().map(|u| u.box_user_id.as_str().to_owned()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn index_keys_order_like_the_in_memory_sort(users in users()) {
        let tenant = TenantId::parse("acme").unwrap();
        for signal in [ActivitySignal::Any, ActivitySignal::Login, ActivitySignal::Content] {
            let by_key = order_by(&users, |u| {
                let keys = user_index(&tenant, u);
                match signal {
                    ActivitySignal::Any => keys.k_any,
                    ActivitySignal::Login => keys.k_login,
                    ActivitySignal::Content => keys.k_content,
                }
            });
            let by_tuple = order_by(&users, |u| activity_tuple(u.signals().by_signal(signal), u.box_user_id.as_str()));
            prop_assert_eq!(by_key, by_tuple, "signal {:?}", signal);
        }
        let by_key = order_by(&users, |u| user_index(&tenant, u).k_loginname);
        let by_tuple = order_by(&users, |u| text_tuple(u.login.as_deref(), u.box_user_id.as_str()));
        prop_assert_eq!(by_key, by_tuple, "login");
        let by_key = order_by(&users, |u| user_index(&tenant, u).k_name);
        let by_tuple = order_by(&users, |u| text_tuple(u.name.as_deref(), u.box_user_id.as_str()));
        prop_assert_eq!(by_key, by_tuple, "name");
    }
}

#[tokio::test]
async fn every_user_write_carries_its_index_keys() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let tenant = acme();
    let at = Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).unwrap();
    let mut batch = vec![
        user(
            1,
            Some("Ann@Acme.test".into()),
            Some("Ann Lee".into()),
            seen(at),
            Activity::NoData,
        ),
        user(2, None, None, Activity::Never, Activity::Never),
    ];
    batch[1].kind = UserKind::AppUser;
    table.put_users(&tenant, &batch).await.unwrap();
    let mut single = user(
        3,
        Some("Bo@acme.test".into()),
        None,
        seen(at),
        seen(at + Duration::hours(1)),
    );
    single.status = UserStatus::Inactive;
    assert!(matches!(
        table.put_user_versioned(&tenant, &single, None).await.unwrap(),
        VersionedOutcome::Written { .. }
    ));
    let read = table
        .get_user_versioned(&tenant, &single.box_user_id)
        .await
        .unwrap()
        .unwrap();
    let mut changed = read.item.clone();
    changed.removed_at = Some(at);
    table
        .put_user_versioned(&tenant, &changed, Some(read.version))
        .await
        .unwrap();

    for written in batch.iter().chain([&changed]) {
        let raw = aws
            .dynamo
            .get_item()
            .table_name(&aws.table_name)
            .key("pk", AttributeValue::S(tenant_pk(&tenant)))
            .key("sk", AttributeValue::S(user_sk(written.box_user_id.as_str())))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        for (attribute, value) in user_index(&tenant, written).attributes() {
            assert_eq!(
                raw.get(attribute),
                Some(&AttributeValue::S(value.to_owned())),
                "user {} attribute {attribute}",
                written.box_user_id.as_str()
            );
        }
        // The index keys stay the adapter's: the record reads back as written.
        let back = table.get_user(&tenant, &written.box_user_id).await.unwrap().unwrap();
        assert_eq!(&back, written);
    }
    let segments: HashMap<&str, String> = [
        ("1", UserSegment::Seat),
        ("2", UserSegment::Other),
        ("3", UserSegment::Removed),
    ]
    .into_iter()
    .map(|(id, s)| (id, users_upk(&tenant, s)))
    .collect();
    for (id, upk) in segments {
        assert_eq!(ids_in(&table, UserIndex::Name, &upk, UserIndexRange::All).await, [id]);
    }
}

#[tokio::test]
async fn a_changed_user_moves_between_segments_and_ranges() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let tenant = acme();
    let now = Utc::now();
    let cutoff = active_since(90, now).and_hms_opt(0, 0, 0).unwrap().and_utc();
    let inactive = UserIndexRange::Between(ACTIVITY_SEEN.into(), activity_seen_prefix(cutoff));
    let seat = users_upk(&tenant, UserSegment::Seat);
    let deactivated = users_upk(&tenant, UserSegment::Deactivated);
    let old = user(
        5,
        Some("old@acme.test".into()),
        None,
        seen(now - Duration::days(200)),
        Activity::NoData,
    );
    let other = user(6, None, None, seen(now - Duration::days(1)), Activity::NoData);
    table.put_users(&tenant, &[old.clone(), other]).await.unwrap();
    assert_eq!(ids_in(&table, UserIndex::Any, &seat, inactive.clone()).await, ["5"]);
    assert_eq!(
        ids_in(&table, UserIndex::Any, &seat, UserIndexRange::All).await,
        ["5", "6"]
    );

    // Deactivated (the actions' path): leaves `seat`, appears in `deactivated`.
    let read = table
        .get_user_versioned(&tenant, &old.box_user_id)
        .await
        .unwrap()
        .unwrap();
    let mut next = read.item.clone();
    next.status = UserStatus::Inactive;
    table
        .put_user_versioned(&tenant, &next, Some(read.version))
        .await
        .unwrap();
    assert_eq!(ids_in(&table, UserIndex::Any, &seat, UserIndexRange::All).await, ["6"]);
    assert_eq!(
        ids_in(&table, UserIndex::Any, &deactivated, UserIndexRange::All).await,
        ["5"]
    );

    // Reactivated and seen today (the sync's path): back in `seat`, out of the inactive range.
    next.status = UserStatus::Active;
    next.login_activity = seen(now);
    table.put_users(&tenant, &[next]).await.unwrap();
    assert!(
        ids_in(&table, UserIndex::Any, &deactivated, UserIndexRange::All)
            .await
            .is_empty()
    );
    assert!(ids_in(&table, UserIndex::Any, &seat, inactive).await.is_empty());
    assert_eq!(
        ids_in(&table, UserIndex::Any, &seat, UserIndexRange::All).await,
        ["6", "5"]
    );
}

#[tokio::test]
async fn admins_are_in_the_role_index_only_while_they_are_admins() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let tenant = acme();
    let admins = users_rpk(&tenant, "admin");
    let coadmins = users_rpk(&tenant, "coadmin");
    let mut a = user(7, Some("Boss@acme.test".into()), None, Activity::Never, Activity::Never);
    a.role = Some(Role::Admin);
    let mut c = user(
        8,
        Some("deputy@acme.test".into()),
        None,
        Activity::Never,
        Activity::Never,
    );
    c.role = Some(Role::Coadmin);
    let mut u = user(
        9,
        Some("staff@acme.test".into()),
        None,
        Activity::Never,
        Activity::Never,
    );
    u.role = Some(Role::User);
    table.put_users(&tenant, &[a.clone(), c.clone(), u]).await.unwrap();
    assert_eq!(
        ids_in(&table, UserIndex::Role, &admins, UserIndexRange::All).await,
        ["7"]
    );
    assert_eq!(
        ids_in(&table, UserIndex::Role, &coadmins, UserIndexRange::All).await,
        ["8"]
    );

    // Demoted by the sync's path, promoted by the actions' path: each write moves the entry.
    a.role = Some(Role::User);
    table.put_users(&tenant, &[a]).await.unwrap();
    assert!(
        ids_in(&table, UserIndex::Role, &admins, UserIndexRange::All)
            .await
            .is_empty()
    );
    let read = table
        .get_user_versioned(&tenant, &c.box_user_id)
        .await
        .unwrap()
        .unwrap();
    let mut promoted = read.item.clone();
    promoted.role = Some(Role::Admin);
    table
        .put_user_versioned(&tenant, &promoted, Some(read.version))
        .await
        .unwrap();
    assert_eq!(
        ids_in(&table, UserIndex::Role, &admins, UserIndexRange::All).await,
        ["8"]
    );
    assert!(
        ids_in(&table, UserIndex::Role, &coadmins, UserIndexRange::All)
            .await
            .is_empty()
    );
    // Another tenant's role partition holds none of them.
    let other = users_rpk(&TenantId::parse("globex").unwrap(), "admin");
    assert!(
        ids_in(&table, UserIndex::Role, &other, UserIndexRange::All)
            .await
            .is_empty()
    );
}

/// A tenant of ~300 users of every kind: seat holders active, inactive, never active or without
/// data, deactivated, removed and app users, many on the cutoff's own day.
fn tenant_of_300(now: DateTime<Utc>) -> Vec<UserLicense> {
    let mut state: u64 = 0x5eed;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let cutoff = active_since(90, now).and_hms_opt(0, 0, 0).unwrap().and_utc();
    (1..=300u32)
        .map(|id| {
            let mut activity = || match next(10) {
                0 => Activity::Never,
                1 => Activity::NoData,
                // The cutoff's day and the day before: the edge of "inactive for 90 days".
                2 => seen(cutoff + Duration::seconds(next(2 * 86_400) as i64 - 86_400)),
                3 => seen(cutoff - Duration::days(1)),
                _ => seen(now - Duration::seconds(next(400 * 86_400) as i64)),
            };
            let (login, content) = (activity(), activity());
            let mut u = user(id, Some(format!("u{id}@acme.test")), None, login, content);
            match next(12) {
                0 => u.status = UserStatus::Inactive,
                1 => u.removed_at = Some(now),
                2 => u.kind = UserKind::AppUser,
                _ => {}
            }
            u
        })
        .collect()
}

#[tokio::test]
async fn inactive_90_oldest_first_pages_by_index_and_reads_only_the_page() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let tenant = acme();
    let now = Utc::now();
    let users = tenant_of_300(now);
    table.put_users(&tenant, &users).await.unwrap();
    let cutoff = active_since(90, now).and_hms_opt(0, 0, 0).unwrap().and_utc();
    let seat = users_upk(&tenant, UserSegment::Seat);

    for signal in [ActivitySignal::Any, ActivitySignal::Login, ActivitySignal::Content] {
        // The in-memory reference: the users list's `state=inactive` filter and its oldest-first order.
        let mut expected: Vec<&UserLicense> = users
            .iter()
            .filter(|u| u.holds_seat() && u.status == UserStatus::Active && u.signals().inactive_by(signal, 90, now))
            .collect();
        expected.sort_by_key(|u| activity_tuple(u.signals().by_signal(signal), u.box_user_id.as_str()));
        let expected: Vec<String> = expected.iter().map(|u| u.box_user_id.as_str().to_owned()).collect();
        assert!(
            expected.len() > 50,
            "the fixture has many inactive users: {}",
            expected.len()
        );

        let index = UserIndex::by_signal(signal);
        let (never, never_pages) = all_pages(
            &table,
            index,
            &seat,
            &UserIndexRange::BeginsWith(ACTIVITY_NEVER.into()),
            25,
        )
        .await;
        let before = UserIndexRange::Between(ACTIVITY_SEEN.into(), activity_seen_prefix(cutoff));
        let (dated, dated_pages) = all_pages(&table, index, &seat, &before, 25).await;
        let got: Vec<String> = never.into_iter().chain(dated).collect();
        assert_eq!(got, expected, "signal {signal:?}");
        assert!(never_pages + dated_pages <= expected.len() / 25 + 3, "pages of 25");
    }
}

#[tokio::test]
async fn search_prefix_is_case_insensitive_on_login_and_name() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let tenant = acme();
    let at = Utc::now();
    let users = vec![
        user(
            1,
            Some("Ann.Lee@Acme.test".into()),
            Some("Ann Lee".into()),
            seen(at),
            Activity::NoData,
        ),
        user(
            2,
            Some("anna@acme.test".into()),
            Some("ÄNNCHEN Müller".into()),
            seen(at),
            Activity::NoData,
        ),
        user(
            3,
            Some("BOB@acme.test".into()),
            Some("Bob ann".into()),
            seen(at),
            Activity::NoData,
        ),
        user(4, None, None, seen(at), Activity::NoData),
    ];
    table.put_users(&tenant, &users).await.unwrap();
    let seat = users_upk(&tenant, UserSegment::Seat);
    let search = |index, text: &str| {
        let table = table.clone();
        let seat = seat.clone();
        let range = UserIndexRange::BeginsWith(text_key_prefix(text));
        async move { ids_in(&table, index, &seat, range).await }
    };
    assert_eq!(search(UserIndex::LoginName, "ANN").await, ["1", "2"]);
    assert_eq!(search(UserIndex::LoginName, "ann.").await, ["1"]);
    assert_eq!(search(UserIndex::LoginName, "bOb@").await, ["3"]);
    assert_eq!(search(UserIndex::Name, "ann l").await, ["1"]);
    assert_eq!(search(UserIndex::Name, "änn").await, ["2"]);
    assert_eq!(search(UserIndex::Name, "ÄNNCHEN m").await, ["2"]);
    assert!(search(UserIndex::Name, "zed").await.is_empty());
    // Ordered by the lowercase text; a user without a name first (empty text).
    assert_eq!(search(UserIndex::Name, "").await, ["4", "1", "3", "2"]);
    // Descending, one at a time.
    let page = table
        .query_user_index(UserIndex::LoginName, &seat, &UserIndexRange::All, false, None, 1)
        .await
        .unwrap();
    assert_eq!(page.users[0].box_user_id.as_str(), "3");
    assert!(page.more);
    let next = table
        .query_user_index(
            UserIndex::LoginName,
            &seat,
            &UserIndexRange::All,
            false,
            page.last.as_ref(),
            1,
        )
        .await
        .unwrap();
    assert_eq!(next.users[0].box_user_id.as_str(), "2");
}

#[tokio::test]
async fn a_position_from_another_tenant_is_refused() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let tenant = acme();
    let users = vec![
        user(1, None, None, Activity::Never, Activity::Never),
        user(2, None, None, Activity::Never, Activity::Never),
    ];
    table.put_users(&tenant, &users).await.unwrap();
    let seat = users_upk(&tenant, UserSegment::Seat);
    let page = table
        .query_user_index(UserIndex::Any, &seat, &UserIndexRange::All, true, None, 1)
        .await
        .unwrap();
    let last = page.last.unwrap();
    let other = users_upk(&TenantId::parse("other").unwrap(), UserSegment::Seat);
    let err = table
        .query_user_index(UserIndex::Any, &other, &UserIndexRange::All, true, Some(&last), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, seatsync::storage::StoreError::InvalidCursor), "{err:?}");
}

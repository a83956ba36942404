//! The DynamoDB adapter against moto: conditional writes as outcomes, optimistic locking, batches,
//! TTL filtering, leases, single-use items and page cursors.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use seatsync::ids::TenantId;
use seatsync::storage::schema::{
    self, GSI1, GSI1_KEY_SCHEMA, SK_OAUTH_STATE, SK_USER_PREFIX, TABLE_KEY_SCHEMA, TTL_ATTRIBUTE, USER_INDEXES,
    tenant_pk, user_index_key_schema,
};
use seatsync::storage::{Key, LeaseOutcome, Page, PutOutcome, StoreError, Table, VersionedOutcome};
use seatsync_tests::aws::TestAws;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    writer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

fn note(writer: &str) -> Note {
    Note {
        writer: writer.to_owned(),
        expires_at: None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserRow {
    user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Connection {
    tenant: String,
    gsi1pk: String,
    gsi1sk: String,
}

fn tenant(name: &str) -> String {
    tenant_pk(&TenantId::parse(name).unwrap())
}

fn in_seconds(seconds: i64) -> i64 {
    Utc::now().timestamp() + seconds
}

#[tokio::test]
async fn table_is_created_with_the_key_schema_of_schema_rs() {
    let aws = TestAws::new().await;
    let described = aws
        .dynamo
        .describe_table()
        .table_name(&aws.table_name)
        .send()
        .await
        .unwrap();
    let table = described.table().unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        schema
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
            .collect::<Vec<_>>()
    };
    let expected = |schema: &[(&str, &str)]| {
        schema
            .iter()
            .map(|(a, t)| ((*a).to_owned(), (*t).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(table.key_schema()), expected(&TABLE_KEY_SCHEMA));
    let gsis = table.global_secondary_indexes();
    let mut wanted = vec![(GSI1, GSI1_KEY_SCHEMA)];
    wanted.extend(
        USER_INDEXES
            .iter()
            .map(|(name, partition, sort)| (*name, user_index_key_schema(partition, sort))),
    );
    assert_eq!(gsis.len(), wanted.len(), "gsi1 and the user GSIs");
    for (name, schema) in wanted {
        let gsi = gsis
            .iter()
            .find(|g| g.index_name() == Some(name))
            .unwrap_or_else(|| panic!("GSI {name} missing"));
        assert_eq!(keys(gsi.key_schema()), expected(&schema), "GSI {name}");
        assert_eq!(
            gsi.projection().and_then(|p| p.projection_type()),
            Some(&aws_sdk_dynamodb::types::ProjectionType::All),
            "GSI {name} projection"
        );
    }
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
    );
    let ttl = aws
        .dynamo
        .describe_time_to_live()
        .table_name(&aws.table_name)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some(TTL_ATTRIBUTE));
    assert_eq!(
        ttl.time_to_live_status(),
        Some(&aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_write_race_has_one_winner() {
    let aws = TestAws::new().await;
    let pk = tenant("race");
    for round in 0..10 {
        // put_new: two writers, one item.
        let sk = format!("NEW#{round}");
        let (a, b) = (aws.table(), aws.table());
        let (sk_a, sk_b, pk_a, pk_b) = (sk.clone(), sk.clone(), pk.clone(), pk.clone());
        let first = tokio::spawn(async move { a.put_new(&pk_a, &sk_a, &note("a")).await.unwrap() });
        let second = tokio::spawn(async move { b.put_new(&pk_b, &sk_b, &note("b")).await.unwrap() });
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let winners: Vec<_> = ["a", "b"]
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| *outcome == PutOutcome::Created)
            .map(|(writer, _)| writer)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert!(outcomes.contains(&PutOutcome::AlreadyExists));
        let stored: Note = aws.table().get(&pk, &sk).await.unwrap().unwrap();
        assert_eq!(stored.writer, winners[0]);

        // put_versioned: two writers from the same version.
        let sk = format!("VERSIONED#{round}");
        let table = aws.table();
        assert_eq!(
            table.put_versioned(&pk, &sk, &note("origin"), None).await.unwrap(),
            VersionedOutcome::Written { version: 1 }
        );
        let (a, b) = (aws.table(), aws.table());
        let (sk_a, sk_b, pk_a, pk_b) = (sk.clone(), sk.clone(), pk.clone(), pk.clone());
        let first = tokio::spawn(async move { a.put_versioned(&pk_a, &sk_a, &note("a"), Some(1)).await.unwrap() });
        let second = tokio::spawn(async move { b.put_versioned(&pk_b, &sk_b, &note("b"), Some(1)).await.unwrap() });
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let winners: Vec<_> = ["a", "b"]
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| *outcome == VersionedOutcome::Written { version: 2 })
            .map(|(writer, _)| writer)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert!(outcomes.contains(&VersionedOutcome::Conflict));
        let stored = table.get_versioned::<Note>(&pk, &sk).await.unwrap().unwrap();
        assert_eq!((stored.item.writer.as_str(), stored.version), (winners[0], 2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_writers_retry_and_lose_nothing() {
    let aws = TestAws::new().await;
    let (pk, sk) = (tenant("counter"), "COUNTER".to_owned());
    let table = aws.table();
    table
        .put_versioned(&pk, &sk, &Counter { count: 0 }, None)
        .await
        .unwrap();

    let writer = |table: Table, pk: String, sk: String| async move {
        let mut conflicts = 0u32;
        for _ in 0..20 {
            loop {
                assert!(conflicts < 1000, "unbounded conflicts");
                let current = table.get_versioned::<Counter>(&pk, &sk).await.unwrap().unwrap();
                let next = Counter {
                    count: current.item.count + 1,
                };
                match table
                    .put_versioned(&pk, &sk, &next, Some(current.version))
                    .await
                    .unwrap()
                {
                    VersionedOutcome::Written { .. } => break,
                    VersionedOutcome::Conflict => conflicts += 1,
                }
            }
        }
        conflicts
    };
    let a = tokio::spawn(writer(aws.table(), pk.clone(), sk.clone()));
    let b = tokio::spawn(writer(aws.table(), pk.clone(), sk.clone()));
    let conflicts = a.await.unwrap() + b.await.unwrap();

    let stored = table.get_versioned::<Counter>(&pk, &sk).await.unwrap().unwrap();
    assert_eq!(stored.item.count, 40, "after {conflicts} conflicts");
    assert_eq!(stored.version, 41);
}

#[tokio::test]
async fn unversioned_items_start_at_version_zero() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let pk = tenant("unversioned");
    table.put(&pk, "ITEM", &Counter { count: 7 }).await.unwrap();
    let read = table.get_versioned::<Counter>(&pk, "ITEM").await.unwrap().unwrap();
    assert_eq!((read.item.count, read.version), (7, 0));
    let next = Counter { count: 8 };
    assert_eq!(
        table.put_versioned(&pk, "ITEM", &next, None).await.unwrap(),
        VersionedOutcome::Conflict
    );
    assert_eq!(
        table.put_versioned(&pk, "ITEM", &next, Some(0)).await.unwrap(),
        VersionedOutcome::Written { version: 1 }
    );
    assert_eq!(
        table.put_versioned(&pk, "ITEM", &next, Some(0)).await.unwrap(),
        VersionedOutcome::Conflict
    );
    assert_eq!(
        table.put_versioned(&pk, "MISSING", &next, Some(0)).await.unwrap(),
        VersionedOutcome::Conflict
    );
    assert_eq!(
        table
            .get_versioned::<Counter>(&pk, "ITEM")
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
}

#[tokio::test]
async fn batch_put_writes_every_item() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let pk = tenant("batch");
    let items: Vec<(Key, UserRow)> = (0..1003)
        .map(|i| {
            let user_id = format!("{i:05}");
            (Key::new(&pk, schema::user_sk(&user_id)), UserRow { user_id })
        })
        .collect();

    let stats = table.batch_put(&items).await.unwrap();
    assert_eq!(stats.items_written, 1003);
    assert_eq!(stats.requests, 1003usize.div_ceil(25));
    assert_eq!(stats.unprocessed_retries, 0);

    let stored = all_pages::<UserRow>(&table, &pk, SK_USER_PREFIX, 1000).await;
    let expected: Vec<UserRow> = items.iter().map(|(_, row)| row.clone()).collect();
    assert_eq!(stored, expected);

    let keys: Vec<Key> = items.into_iter().map(|(key, _)| key).collect();
    let stats = table.batch_delete(&keys).await.unwrap();
    assert_eq!((stats.items_written, stats.requests), (1003, 41));
    assert!(all_pages::<UserRow>(&table, &pk, SK_USER_PREFIX, 1000).await.is_empty());
}

#[tokio::test]
async fn batch_with_a_repeated_key_is_refused_before_writing() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let pk = tenant("dup");
    let items = vec![
        (Key::new(&pk, "USER#1"), UserRow { user_id: "1".into() }),
        (Key::new(&pk, "USER#2"), UserRow { user_id: "2".into() }),
        (Key::new(&pk, "USER#1"), UserRow { user_id: "1b".into() }),
    ];
    assert!(matches!(
        table.batch_put(&items).await,
        Err(StoreError::DuplicateKeyInBatch)
    ));
    assert!(table.get::<UserRow>(&pk, "USER#2").await.unwrap().is_none());
}

#[tokio::test]
async fn expired_items_read_as_absent() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let pk = tenant("ttl");
    let expired = Note {
        writer: "old".into(),
        expires_at: Some(in_seconds(-5)),
    };
    let live = Note {
        writer: "live".into(),
        expires_at: Some(in_seconds(600)),
    };
    table.put(&pk, "ITEM#expired", &expired).await.unwrap();
    table.put(&pk, "ITEM#live", &live).await.unwrap();
    table.put(&pk, "ITEM#forever", &note("forever")).await.unwrap();

    assert_eq!(table.get::<Note>(&pk, "ITEM#expired").await.unwrap(), None);
    assert_eq!(table.get::<Note>(&pk, "ITEM#live").await.unwrap(), Some(live.clone()));
    assert_eq!(
        table.get::<Note>(&pk, "ITEM#forever").await.unwrap(),
        Some(note("forever"))
    );
    let listed: Vec<String> = all_pages::<Note>(&table, &pk, "ITEM#", 10)
        .await
        .into_iter()
        .map(|n| n.writer)
        .collect();
    assert_eq!(listed, ["forever", "live"]);

    // An expired item cannot be consumed, and a new item may take its place.
    assert_eq!(table.delete_if_exists::<Note>(&pk, "ITEM#expired").await.unwrap(), None);
    assert_eq!(
        table.put_new(&pk, "ITEM#expired", &note("new")).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        table.put_new(&pk, "ITEM#live", &note("new")).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(table.get::<Note>(&pk, "ITEM#expired").await.unwrap(), Some(note("new")));
}

#[tokio::test]
async fn lease_is_exclusive_until_expiry() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let pk = tenant("lease");
    let ttl = Duration::from_millis(1500);

    assert_eq!(
        table.try_acquire_lease(&pk, "refresh", "worker-a", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );
    let refused = table.try_acquire_lease(&pk, "refresh", "worker-b", ttl).await.unwrap();
    let LeaseOutcome::HeldBy { holder, expires_at } = refused else {
        panic!("second holder got {refused:?}")
    };
    assert_eq!(holder, "worker-a");
    assert!(expires_at > Utc::now() && expires_at <= Utc::now() + ttl);
    // Another lease name in the same partition is independent.
    assert_eq!(
        table.try_acquire_lease(&pk, "other", "worker-b", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );
    // The holder may extend its own lease.
    assert_eq!(
        table.try_acquire_lease(&pk, "refresh", "worker-a", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );

    // A non-holder's release changes nothing.
    assert!(!table.release_lease(&pk, "refresh", "worker-b").await.unwrap());
    assert!(matches!(
        table.try_acquire_lease(&pk, "refresh", "worker-b", ttl).await.unwrap(),
        LeaseOutcome::HeldBy { holder, .. } if holder == "worker-a"
    ));

    // worker-a "crashes": after the TTL, worker-b can take the lease.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(
        table.try_acquire_lease(&pk, "refresh", "worker-b", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );
    assert!(!table.release_lease(&pk, "refresh", "worker-a").await.unwrap());
    assert!(table.release_lease(&pk, "refresh", "worker-b").await.unwrap());
    assert_eq!(
        table.try_acquire_lease(&pk, "refresh", "worker-c", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PendingState {
    tenant: String,
    expires_at: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_state_cannot_be_consumed_twice() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let state = PendingState {
        tenant: "acme".into(),
        expires_at: in_seconds(600),
    };

    let pk = schema::oauth_state_pk("hash-1");
    assert_eq!(
        table.put_new(&pk, SK_OAUTH_STATE, &state).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        table.delete_if_exists(&pk, SK_OAUTH_STATE).await.unwrap(),
        Some(state.clone())
    );
    assert_eq!(
        table
            .delete_if_exists::<PendingState>(&pk, SK_OAUTH_STATE)
            .await
            .unwrap(),
        None
    );

    for round in 0..5 {
        let pk = schema::oauth_state_pk(&format!("hash-concurrent-{round}"));
        table.put_new(&pk, SK_OAUTH_STATE, &state).await.unwrap();
        let consumers: Vec<_> = (0..6)
            .map(|_| {
                let (table, pk) = (aws.table(), pk.clone());
                tokio::spawn(async move {
                    table
                        .delete_if_exists::<PendingState>(&pk, SK_OAUTH_STATE)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut consumed = Vec::new();
        for consumer in consumers {
            consumed.extend(consumer.await.unwrap());
        }
        assert_eq!(consumed, std::slice::from_ref(&state), "round {round}");
    }
}

#[tokio::test]
async fn query_pages_with_cursor() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let (a, b) = (tenant("tenant-a"), tenant("tenant-b"));
    let rows = |pk: &str, n: usize| -> Vec<(Key, UserRow)> {
        (0..n)
            .map(|i| {
                let user_id = format!("{i:03}");
                (Key::new(pk, schema::user_sk(&user_id)), UserRow { user_id })
            })
            .collect()
    };
    table.batch_put(&rows(&a, 23)).await.unwrap();
    table.batch_put(&rows(&b, 4)).await.unwrap();
    table
        .put(
            &a,
            schema::SK_SETTINGS,
            &UserRow {
                user_id: "not a user".into(),
            },
        )
        .await
        .unwrap();
    table
        .put(
            &a,
            "AUDIT#1",
            &UserRow {
                user_id: "not a user".into(),
            },
        )
        .await
        .unwrap();

    let mut pages = 0;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page: Page<UserRow> = table
            .query_prefix(&a, SK_USER_PREFIX, 5, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        pages += 1;
        seen.extend(page.items.into_iter().map(|row| row.user_id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
        assert!(pages < 20, "paging does not end");
    }
    let expected: Vec<String> = (0..23).map(|i| format!("{i:03}")).collect();
    assert_eq!(seen, expected);
    assert!((5..=6).contains(&pages), "{pages} pages");

    // The whole partition, with an empty prefix.
    assert_eq!(all_pages::<serde_json::Value>(&table, &a, "", 7).await.len(), 25);

    // GSI pages: connections by status, across tenants.
    for i in 0..7 {
        let t = format!("t{i}");
        let connection = Connection {
            tenant: t.clone(),
            gsi1pk: schema::connections_by_status_pk("connected"),
            gsi1sk: t.clone(),
        };
        table
            .put(&tenant(&t), schema::SK_CONNECTION_BOX, &connection)
            .await
            .unwrap();
    }
    let other = Connection {
        tenant: "tx".into(),
        gsi1pk: schema::connections_by_status_pk("reauth_required"),
        gsi1sk: "tx".into(),
    };
    table
        .put(&tenant("tx"), schema::SK_CONNECTION_BOX, &other)
        .await
        .unwrap();
    let connected = schema::connections_by_status_pk("connected");
    let mut tenants = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page: Page<Connection> = table.query_gsi1(&connected, 3, cursor.as_deref()).await.unwrap();
        tenants.extend(page.items.into_iter().map(|c| c.tenant));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "GSI paging does not end");
    assert_eq!(tenants, (0..7).map(|i| format!("t{i}")).collect());
}

#[tokio::test]
async fn forged_cursor_is_rejected() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let (a, b) = (tenant("victim"), tenant("attacker"));
    for pk in [&a, &b] {
        let rows: Vec<(Key, UserRow)> = (0..4)
            .map(|i| {
                (
                    Key::new(pk, schema::user_sk(&i.to_string())),
                    UserRow { user_id: i.to_string() },
                )
            })
            .collect();
        table.batch_put(&rows).await.unwrap();
    }
    let page: Page<UserRow> = table.query_prefix(&b, SK_USER_PREFIX, 2, None).await.unwrap();
    let attackers_cursor = page.next_cursor.expect("a second page");

    let invalid = |result: Result<Page<UserRow>, StoreError>| matches!(result, Err(StoreError::InvalidCursor));
    // A cursor from another partition, another prefix, or another index.
    assert!(invalid(
        table.query_prefix(&a, SK_USER_PREFIX, 2, Some(&attackers_cursor)).await
    ));
    assert!(invalid(
        table.query_prefix(&b, "AUDIT#", 2, Some(&attackers_cursor)).await
    ));
    assert!(invalid(table.query_gsi1(&b, 2, Some(&attackers_cursor)).await));
    // Tampered and nonsense cursors.
    let mut tampered = attackers_cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let long = "x".repeat(10_000);
    for bad in [
        tampered.as_str(),
        "",
        "not a cursor",
        "%%%",
        "eyJwayI6MX0",
        long.as_str(),
    ] {
        assert!(
            invalid(table.query_prefix(&a, SK_USER_PREFIX, 2, Some(bad)).await),
            "{bad:?}"
        );
    }
    // The genuine cursor still works where it belongs.
    let next: Page<UserRow> = table
        .query_prefix(&b, SK_USER_PREFIX, 2, Some(&attackers_cursor))
        .await
        .unwrap();
    assert_eq!(next.items.len(), 2);
}

async fn all_pages<T: serde::de::DeserializeOwned>(table: &Table, pk: &str, prefix: &str, limit: u32) -> Vec<T> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let page = table.query_prefix(pk, prefix, limit, cursor.as_deref()).await.unwrap();
        items.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return items;
        }
    }
    panic!("paging does not end");
}

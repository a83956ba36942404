//! Connection records in the table: the index fields are the storage layer's, written beside the
//! record, and items stored in the format written before (when the record carried `gsi1pk` and
//! `gsi1sk` itself) are still read and still found by status.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{TimeZone as _, Utc};
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync::storage::schema::{SK_CONNECTION_BOX, tenant_pk};
use seatsync_tests::aws::TestAws;

fn record(status: ConnectionStatus) -> ConnectionRecord {
    let at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0).unwrap();
    ConnectionRecord {
        status,
        method: ConnectMethod::OAuth,
        enterprise_id: seatsync_tests::boxsim::enterprise_id("90210"),
        enterprise_name: Some("Acme".into()),
        connected_by_box_id: seatsync_tests::boxsim::box_id("11"),
        connected_by_login: None,
        connected_by_sub: "admin@acme.test".into(),
        scopes: vec!["manage_managed_users".into()],
        connected_at: at,
        activity_source: ActivitySource::BoxEvents,
        status_reason: None,
        status_since: at,
        last_sync_at: Some(at),
    }
}

/// The item as written before the index fields left the record: the record's own fields plus
/// `gsi1pk` and `gsi1sk` as fields of it.
fn legacy_item(tenant: &TenantId, record: &ConnectionRecord) -> serde_json::Value {
    let mut item = serde_json::to_value(record).unwrap();
    item["gsi1pk"] = format!("CONNECTIONS#{}", record.status.as_str()).into();
    item["gsi1sk"] = tenant.as_str().into();
    item
}

async fn raw_item(aws: &TestAws, tenant: &TenantId) -> HashMap<String, AttributeValue> {
    aws.dynamo
        .get_item()
        .table_name(&aws.table_name)
        .key("pk", AttributeValue::S(tenant_pk(tenant)))
        .key("sk", AttributeValue::S(SK_CONNECTION_BOX.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

async fn tenants_with(connections: &Connections, status: ConnectionStatus) -> Vec<(TenantId, ConnectionRecord)> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = connections.page_by_status(status, 2, cursor.as_deref()).await.unwrap();
        found.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return found;
        }
    }
    panic!("paging by status does not end");
}

#[tokio::test]
async fn a_saved_connection_is_stored_exactly_as_before_the_index_fields_left_the_record() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let tenant = TenantId::parse("acme").unwrap();
    let record = record(ConnectionStatus::Connected);

    table
        .put(&tenant_pk(&tenant), SK_CONNECTION_BOX, &legacy_item(&tenant, &record))
        .await
        .unwrap();
    let before = raw_item(&aws, &tenant).await;

    Connections::new(table).save(&tenant, &record).await.unwrap();
    let after = raw_item(&aws, &tenant).await;

    assert_eq!(after, before);
    assert_eq!(after["gsi1pk"], AttributeValue::S("CONNECTIONS#connected".into()));
    assert_eq!(after["gsi1sk"], AttributeValue::S("acme".into()));
}

#[tokio::test]
async fn connections_stored_in_the_earlier_format_are_read_and_found_by_status() {
    let aws = TestAws::new().await;
    let table = aws.table();
    let connections = Connections::new(table.clone());
    let (acme, globex) = (TenantId::parse("acme").unwrap(), TenantId::parse("globex").unwrap());
    for (tenant, status) in [
        (&acme, ConnectionStatus::Connected),
        (&globex, ConnectionStatus::ReauthRequired),
    ] {
        table
            .put(
                &tenant_pk(tenant),
                SK_CONNECTION_BOX,
                &legacy_item(tenant, &record(status)),
            )
            .await
            .unwrap();
    }

    assert_eq!(
        connections.get(&acme).await.unwrap(),
        Some(record(ConnectionStatus::Connected))
    );
    assert_eq!(
        tenants_with(&connections, ConnectionStatus::Connected).await,
        vec![(acme.clone(), record(ConnectionStatus::Connected))]
    );

    // A status change files the record under its new status, by the same tenant.
    let changed = connections
        .set_status(
            &acme,
            ConnectionStatus::ReauthRequired,
            Some("refresh token revoked".into()),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(tenants_with(&connections, ConnectionStatus::Connected).await.is_empty());
    let mut reauth: Vec<TenantId> = tenants_with(&connections, ConnectionStatus::ReauthRequired)
        .await
        .into_iter()
        .map(|(tenant, _)| tenant)
        .collect();
    reauth.sort();
    assert_eq!(reauth, vec![acme.clone(), globex]);
    assert_eq!(connections.get(&acme).await.unwrap(), Some(changed));
    let stored = raw_item(&aws, &acme).await;
    assert_eq!(
        stored["gsi1pk"],
        AttributeValue::S("CONNECTIONS#reauth_required".into())
    );
    assert_eq!(stored["gsi1sk"], AttributeValue::S("acme".into()));
}

//! Creates the table as [`schema`](crate::storage::schema) describes it, for tests and local runs
//! (moto, `seatsync-local`). Production tables come from `infra/template.yaml`; this module is only
//! compiled with the `test-support` feature, so no function binary carries it.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use super::{StoreError, Table, sdk_error};
use crate::storage::schema::{
    GSI1, GSI1_KEY_SCHEMA, GSI1_PK, GSI1_SK, PK, SK, TABLE_KEY_SCHEMA, TTL_ATTRIBUTE, USER_INDEX_ATTRIBUTES,
    USER_INDEXES, user_index_key_schema,
};

impl Table {
    /// Creates the table exactly as [`schema`](super::schema) describes it (on-demand billing, string
    /// keys, GSI `gsi1` and the seven user GSIs projecting all attributes, TTL on [`TTL_ATTRIBUTE`]) and waits until it is
    /// active. For tests and the local demo; production tables come from the template.
    #[tracing::instrument(skip(client), fields(table = %name))]
    pub async fn create(client: Client, name: &str) -> Result<Self, StoreError> {
        let definitions = [PK, SK, GSI1_PK, GSI1_SK]
            .into_iter()
            .chain(USER_INDEX_ATTRIBUTES)
            .map(|attribute| {
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .context("building an attribute definition")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .set_key_schema(Some(key_schema(&GSI1_KEY_SCHEMA)?))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .context("building the GSI definition")?;
        let mut gsis = vec![gsi];
        for (index, partition, sort) in USER_INDEXES {
            gsis.push(
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .set_key_schema(Some(key_schema(&user_index_key_schema(partition, sort))?))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .context("building a user GSI definition")?,
            );
        }
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(definitions))
            .set_key_schema(Some(key_schema(&TABLE_KEY_SCHEMA)?))
            .set_global_secondary_indexes(Some(gsis))
            .send()
            .await;
        match created {
            Ok(_) => {}
            // The SDK retried a CreateTable whose answer timed out after the table was made (a
            // busy local endpoint): the name is the caller's own, so the table is this call's.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
                tracing::warn!("the table already exists; a retried create found its first attempt's table");
            }
            Err(e) => return Err(sdk_error(e, "creating the table")),
        }

        // Bounded wait: 60 × 0.5 s. moto is active at once; DynamoDB takes seconds.
        let mut active = false;
        for _ in 0..60 {
            let described = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| sdk_error(e, "describing the new table"))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                active = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !active {
            return Err(anyhow!("table {name} did not become active within 30 s").into());
        }

        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .context("building the TTL specification")?,
            )
            .send()
            .await
            .map_err(|e| sdk_error(e, "enabling TTL"))?;
        Ok(Self::new(client, name))
    }
}

fn key_schema(schema: &[(&str, &str)]) -> Result<Vec<KeySchemaElement>, StoreError> {
    schema
        .iter()
        .map(|(attribute, key_type)| {
            KeySchemaElement::builder()
                .attribute_name(*attribute)
                .key_type(KeyType::from(*key_type))
                .build()
                .context("building a key schema element")
                .map_err(StoreError::from)
        })
        .collect()
}

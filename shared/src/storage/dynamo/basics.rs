//! Table basics: read, write and delete one item, and page through a partition or the GSI.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{Item, decode, decode_indexed, encode, encode_indexed, is_expired, now_epoch_seconds, string};
use super::cursor::{CursorScope, decode_cursor, encode_cursor};
use super::{Gsi1Key, Indexed, Key, StoreError, Table, sdk_error};
use crate::storage::schema::{GSI1, GSI1_PK, PK, SK};

/// Largest page a query returns, whatever the caller asks: bounds memory per call.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page of a query; pass `next_cursor` back to get the next one. A page can hold fewer than
/// `limit` items (expired items are dropped) and the last page can be empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl Table {
    /// Reads one item (strongly consistent). Expired items read as `None`.
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn get<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<T>, StoreError> {
        self.get_raw(pk, sk).await?.map(decode).transpose()
    }

    /// Writes an item, replacing whatever was there.
    #[tracing::instrument(skip(self, item), fields(table = %self.name))]
    pub async fn put<T: Serialize>(&self, pk: &str, sk: &str, item: &T) -> Result<(), StoreError> {
        self.put_item(encode(&Key::new(pk, sk), item)?).await
    }

    /// [`Table::put`] that also files the item under `index` in the GSI.
    #[tracing::instrument(skip(self, item), fields(table = %self.name))]
    pub async fn put_indexed<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        index: &Gsi1Key,
        item: &T,
    ) -> Result<(), StoreError> {
        self.put_item(encode_indexed(&Key::new(pk, sk), index, item)?).await
    }

    async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error(e, "writing an item"))?;
        Ok(())
    }

    /// Deletes an item unconditionally (no error if it does not exist).
    #[tracing::instrument(skip(self), fields(table = %self.name))]
    pub async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key(PK, string(pk))
            .key(SK, string(sk))
            .send()
            .await
            .map_err(|e| sdk_error(e, "deleting an item"))?;
        Ok(())
    }

    /// One page of the items in partition `pk` whose sort key starts with `sk_prefix` (an empty
    /// prefix lists the whole partition), in sort-key order. Strongly consistent.
    #[tracing::instrument(skip(self, cursor), fields(table = %self.name))]
    pub async fn query_prefix<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        self.query_prefix_ordered(pk, sk_prefix, limit, cursor, true).await
    }

    /// [`Table::query_prefix`] newest first (descending sort key), e.g. for the audit trail.
    pub async fn query_prefix_desc<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        self.query_prefix_ordered(pk, sk_prefix, limit, cursor, false).await
    }

    async fn query_prefix_ordered<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: u32,
        cursor: Option<&str>,
        ascending: bool,
    ) -> Result<Page<T>, StoreError> {
        let start = cursor
            .map(|c| decode_cursor(c, &CursorScope::Table { pk, sk_prefix }))
            .transpose()?;
        let mut query = self
            .client
            .query()
            .table_name(&self.name)
            .consistent_read(true)
            .scan_index_forward(ascending)
            .limit(page_size(limit))
            .set_exclusive_start_key(start)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", string(pk));
        query = if sk_prefix.is_empty() {
            query.key_condition_expression("#pk = :pk")
        } else {
            query
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":prefix", string(sk_prefix))
        };
        let output = query.send().await.map_err(|e| sdk_error(e, "querying a partition"))?;
        page(output.items, output.last_evaluated_key, decode)
    }

    /// One page of the items whose `gsi1pk` is `gsi1pk`, in `gsi1sk` order (eventually consistent,
    /// as every GSI read is).
    #[tracing::instrument(skip(self, cursor), fields(table = %self.name))]
    pub async fn query_gsi1<T: DeserializeOwned>(
        &self,
        gsi1pk: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        let (items, last_key) = self.query_gsi1_raw(gsi1pk, limit, cursor).await?;
        page(items, last_key, decode)
    }

    /// [`Table::query_gsi1`] with each item's keys in the GSI (e.g. the tenant an index entry names).
    #[tracing::instrument(skip(self, cursor), fields(table = %self.name))]
    pub async fn query_gsi1_indexed<T: DeserializeOwned>(
        &self,
        gsi1pk: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Indexed<T>>, StoreError> {
        let (items, last_key) = self.query_gsi1_raw(gsi1pk, limit, cursor).await?;
        page(items, last_key, decode_indexed)
    }

    async fn query_gsi1_raw(
        &self,
        gsi1pk: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Option<Vec<Item>>, Option<Item>), StoreError> {
        let start = cursor
            .map(|c| decode_cursor(c, &CursorScope::Gsi1 { gsi1pk }))
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(GSI1)
            .limit(page_size(limit))
            .set_exclusive_start_key(start)
            .key_condition_expression("#g = :g")
            .expression_attribute_names("#g", GSI1_PK)
            .expression_attribute_values(":g", string(gsi1pk))
            .send()
            .await
            .map_err(|e| sdk_error(e, "querying gsi1"))?;
        Ok((output.items, output.last_evaluated_key))
    }

    pub(super) async fn get_raw(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let item = self.get_unfiltered(pk, sk, "reading an item").await?;
        let now = now_epoch_seconds();
        Ok(item.filter(|item| !is_expired(item, now)))
    }

    /// Reads one raw item (strongly consistent), expired or not.
    pub(super) async fn get_unfiltered(
        &self,
        pk: &str,
        sk: &str,
        doing: &'static str,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(PK, string(pk))
            .key(SK, string(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(e, doing))?;
        Ok(output.item)
    }
}

pub(super) fn page_size(limit: u32) -> i32 {
    limit.clamp(1, MAX_PAGE_SIZE) as i32
}

/// A page of the unexpired `items`, each decoded by `decode`.
fn page<T>(
    items: Option<Vec<Item>>,
    last_key: Option<Item>,
    decode: impl Fn(Item) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let now = now_epoch_seconds();
    let items = items
        .unwrap_or_default()
        .into_iter()
        .filter(|item| !is_expired(item, now))
        .map(decode)
        .collect::<Result<Vec<T>, _>>()?;
    let next_cursor = last_key.map(|key| encode_cursor(&key)).transpose()?;
    Ok(Page { items, next_cursor })
}

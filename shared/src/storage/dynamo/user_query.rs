//! Pages of users through the user GSIs: one `Query` on one tenant-and-segment partition, in the
//! index's sort order, reading at most the page asked for (see the user-index table in
//! [`schema`](crate::storage::schema)).

use anyhow::anyhow;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use super::codec::{Item, decode, string};
use super::{StoreError, Table, sdk_error};
use crate::license::UserLicense;
use crate::storage::schema::{PK, SK, SK_USER_PREFIX};
use crate::storage::user_index::UserIndex;

/// Which part of a partition a query reads, by the index's sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserIndexRange {
    /// Sort keys starting with the prefix (e.g. a lowercase search text, or `"0"`: never active).
    BeginsWith(String),
    /// Sort keys from `lo` to `hi`, both inclusive (e.g. `"2"` to the cutoff's seen prefix).
    Between(String, String),
    /// The whole partition.
    All,
}

/// Where a page ended: the last user's keys in the table and in the index, which is what
/// DynamoDB needs to continue after it (`ExclusiveStartKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserIndexPosition {
    pub pk: String,
    pub sk: String,
    /// The index's partition key (`upk`, or `rpk` in the role index).
    pub upk: String,
    /// The index's sort key of the last user.
    pub sort_key: String,
}

/// One page of users in index order.
#[derive(Debug, Clone, PartialEq)]
pub struct UserIndexPage {
    pub users: Vec<UserLicense>,
    /// The position of the last user of the page (`None` when the page is empty).
    pub last: Option<UserIndexPosition>,
    /// DynamoDB stopped at the limit (`LastEvaluatedKey`): there may be more after `last`.
    pub more: bool,
    /// Items DynamoDB read for this page (`ScannedCount`).
    pub items_read: u32,
    /// Read capacity the page consumed, where the endpoint reports it (`ReturnConsumedCapacity`).
    pub consumed_read_units: Option<f64>,
}

impl Table {
    /// One page (at most `limit` items, capped at [`MAX_PAGE_SIZE`](super::MAX_PAGE_SIZE)) of the
    /// users in partition `upk` of `index` whose sort key is in `range`, ascending when `forward`,
    /// after `start_after` (a position this query returned). Eventually consistent, as GSI reads are.
    #[tracing::instrument(skip(self, start_after), fields(table = %self.name, index = index.name()))]
    pub async fn query_user_index(
        &self,
        index: UserIndex,
        upk: &str,
        range: &UserIndexRange,
        forward: bool,
        start_after: Option<&UserIndexPosition>,
        limit: u32,
    ) -> Result<UserIndexPage, StoreError> {
        let sort = index.sort_attribute();
        let start = start_after
            .map(|position| start_key(index, upk, position))
            .transpose()?;
        let mut query = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(index.name())
            .scan_index_forward(forward)
            .limit(super::basics::page_size(limit))
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .set_exclusive_start_key(start)
            .expression_attribute_names("#u", index.partition_attribute())
            .expression_attribute_values(":u", string(upk));
        query = match range {
            UserIndexRange::All => query.key_condition_expression("#u = :u"),
            UserIndexRange::BeginsWith(prefix) if prefix.is_empty() => query.key_condition_expression("#u = :u"),
            UserIndexRange::BeginsWith(prefix) => query
                .key_condition_expression("#u = :u AND begins_with(#k, :p)")
                .expression_attribute_names("#k", sort)
                .expression_attribute_values(":p", string(prefix)),
            UserIndexRange::Between(lo, hi) => query
                .key_condition_expression("#u = :u AND #k BETWEEN :lo AND :hi")
                .expression_attribute_names("#k", sort)
                .expression_attribute_values(":lo", string(lo))
                .expression_attribute_values(":hi", string(hi)),
        };
        let output = query.send().await.map_err(|e| sdk_error(e, "querying a user index"))?;
        let items = output.items.unwrap_or_default();
        let last = items.last().map(|item| position_of(index, item)).transpose()?;
        let users = items.into_iter().map(decode).collect::<Result<Vec<UserLicense>, _>>()?;
        Ok(UserIndexPage {
            users,
            last,
            more: output.last_evaluated_key.is_some(),
            items_read: u32::try_from(output.scanned_count).unwrap_or(0),
            consumed_read_units: output.consumed_capacity.and_then(|c| c.capacity_units),
        })
    }
}

/// The `ExclusiveStartKey` after `position`, which must be a user of this partition.
fn start_key(index: UserIndex, upk: &str, position: &UserIndexPosition) -> Result<Item, StoreError> {
    // upk = USERS#<tenant>#<segment> (or #role:<role>); the position must name the same partition and a user item
    // of the same tenant, so a position can never reach another tenant's or segment's items.
    let tenant = upk
        .strip_prefix("USERS#")
        .and_then(|rest| rest.rsplit_once('#'))
        .map(|(tenant, _)| tenant)
        .ok_or(StoreError::InvalidCursor)?;
    if position.upk != upk || position.pk != format!("TENANT#{tenant}") || !position.sk.starts_with(SK_USER_PREFIX) {
        return Err(StoreError::InvalidCursor);
    }
    Ok(Item::from([
        (PK.to_owned(), string(&position.pk)),
        (SK.to_owned(), string(&position.sk)),
        (index.partition_attribute().to_owned(), string(&position.upk)),
        (index.sort_attribute().to_owned(), string(&position.sort_key)),
    ]))
}

fn position_of(index: UserIndex, item: &Item) -> Result<UserIndexPosition, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(StoreError::from(anyhow!("a user index entry without a string {name}"))),
    };
    Ok(UserIndexPosition {
        pk: text(PK)?,
        sk: text(SK)?,
        upk: text(index.partition_attribute())?,
        sort_key: text(index.sort_attribute())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(pk: &str, upk: &str) -> UserIndexPosition {
        UserIndexPosition {
            pk: pk.into(),
            sk: "USER#1".into(),
            upk: upk.into(),
            sort_key: "0\u{1}1".into(),
        }
    }

    #[test]
    fn a_position_cannot_leave_its_tenant_or_segment() {
        let upk = "USERS#acme#seat";
        let key = start_key(UserIndex::Name, upk, &position("TENANT#acme", upk)).unwrap();
        assert_eq!(key["k_name"], string("0\u{1}1"));
        for bad in [
            position("TENANT#other", upk),
            position("TENANT#acme", "USERS#acme#removed"),
            UserIndexPosition {
                sk: "SETTINGS".into(),
                ..position("TENANT#acme", upk)
            },
        ] {
            assert!(matches!(
                start_key(UserIndex::Name, upk, &bad),
                Err(StoreError::InvalidCursor)
            ));
        }
    }
}

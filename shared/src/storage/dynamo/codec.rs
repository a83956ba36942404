//! The codec between typed items and DynamoDB attribute maps: the key attributes, the version and
//! the expiry are the adapter's, every other attribute is the caller's (via `serde_dynamo`).

use std::collections::HashMap;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Key, StoreError};
use crate::storage::schema::{PK, SK, TTL_ATTRIBUTE, VERSION_ATTRIBUTE};

/// A raw DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn now_epoch_seconds() -> i64 {
    Utc::now().timestamp()
}

pub(super) fn key_item(key: &Key) -> Item {
    HashMap::from([(PK.to_owned(), string(&key.pk)), (SK.to_owned(), string(&key.sk))])
}

/// The caller's attributes plus the key; the attributes the adapter manages may not come from the caller.
pub(super) fn encode<T: Serialize>(key: &Key, value: &T) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(value).context("encoding an item")?;
    for reserved in [PK, SK, VERSION_ATTRIBUTE] {
        if item.contains_key(reserved) {
            return Err(StoreError::ReservedAttribute(reserved));
        }
    }
    item.extend(key_item(key));
    Ok(item)
}

/// The caller's attributes, without the ones the adapter manages.
pub(super) fn decode<T: DeserializeOwned>(mut item: Item) -> Result<T, StoreError> {
    for reserved in [PK, SK, VERSION_ATTRIBUTE] {
        item.remove(reserved);
    }
    Ok(serde_dynamo::aws_sdk_dynamodb_1::from_item(item).context("decoding an item")?)
}

pub(super) fn version_of(item: &Item) -> Result<u64, StoreError> {
    match item.get(VERSION_ATTRIBUTE) {
        None => Ok(0),
        Some(AttributeValue::N(n)) => Ok(n.parse().context("parsing an item's version")?),
        Some(_) => Err(anyhow!("an item's version attribute is not a number").into()),
    }
}

/// Expired when [`TTL_ATTRIBUTE`] is a number of epoch seconds not after `now`; matches the
/// condition `#exp <= :now` used by the conditional writes.
pub(super) fn is_expired(item: &Item, now: i64) -> bool {
    match item.get(TTL_ATTRIBUTE) {
        Some(AttributeValue::N(n)) => n.parse::<f64>().is_ok_and(|at| at <= now as f64),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_may_not_set_adapter_attributes() {
        #[derive(Serialize)]
        struct Sneaky {
            pk: String,
        }
        let err = encode(
            &Key::new("a", "b"),
            &Sneaky {
                pk: "TENANT#other".into(),
            },
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::ReservedAttribute("pk")));
    }

    #[test]
    fn expiry_is_inclusive_and_only_for_numbers() {
        let with = |v: AttributeValue| HashMap::from([(TTL_ATTRIBUTE.to_owned(), v)]);
        assert!(is_expired(&with(number(100)), 100));
        assert!(!is_expired(&with(number(101)), 100));
        assert!(!is_expired(&with(AttributeValue::Null(true)), 100));
        assert!(!is_expired(&HashMap::new(), 100));
    }
}

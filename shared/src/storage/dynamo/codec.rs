//! The codec between typed items and DynamoDB attribute maps: the key attributes, the version and
//! the expiry are the adapter's, every other attribute is the caller's (via `serde_dynamo`).

use std::collections::HashMap;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Gsi1Key, Indexed, Key, StoreError};
use crate::storage::schema::{GSI1_PK, GSI1_SK, PK, SK, TTL_ATTRIBUTE, USER_INDEX_ATTRIBUTES, VERSION_ATTRIBUTE};

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
    for reserved in [PK, SK, VERSION_ATTRIBUTE].into_iter().chain(USER_INDEX_ATTRIBUTES) {
        if item.contains_key(reserved) {
            return Err(StoreError::ReservedAttribute(reserved));
        }
    }
    item.extend(key_item(key));
    Ok(item)
}

/// [`encode`] plus string attributes the adapter manages beside the record (the user-index keys,
/// [`USER_INDEX_ATTRIBUTES`]); [`decode`] strips them again.
pub(super) fn encode_with<T: Serialize>(
    key: &Key,
    value: &T,
    extra: &[(&'static str, &str)],
) -> Result<Item, StoreError> {
    let mut item = encode(key, value)?;
    for (name, value) in extra {
        if !USER_INDEX_ATTRIBUTES.contains(name) {
            return Err(anyhow!("`{name}` is not an index attribute the adapter manages").into());
        }
        item.insert((*name).to_owned(), string(*value));
    }
    Ok(item)
}

/// [`encode`] plus the item's keys in the GSI, which the caller's attributes may not set themselves.
pub(super) fn encode_indexed<T: Serialize>(key: &Key, index: &Gsi1Key, value: &T) -> Result<Item, StoreError> {
    let mut item = encode(key, value)?;
    for reserved in [GSI1_PK, GSI1_SK] {
        if item.contains_key(reserved) {
            return Err(StoreError::ReservedAttribute(reserved));
        }
    }
    item.insert(GSI1_PK.to_owned(), string(&index.pk));
    item.insert(GSI1_SK.to_owned(), string(&index.sk));
    Ok(item)
}

/// An item read through the GSI: its GSI keys, and the caller's attributes without them.
pub(super) fn decode_indexed<T: DeserializeOwned>(mut item: Item) -> Result<Indexed<T>, StoreError> {
    let mut take = |name: &str| match item.remove(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::from(anyhow!("an indexed item without a string {name}"))),
    };
    let index = Gsi1Key::new(take(GSI1_PK)?, take(GSI1_SK)?);
    Ok(Indexed {
        index,
        item: decode(item)?,
    })
}

/// The caller's attributes, without the ones the adapter manages.
pub(super) fn decode<T: DeserializeOwned>(mut item: Item) -> Result<T, StoreError> {
    for reserved in [PK, SK, VERSION_ATTRIBUTE].into_iter().chain(USER_INDEX_ATTRIBUTES) {
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

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Record {
        status: String,
    }

    #[test]
    fn indexed_items_carry_their_gsi_keys_beside_the_record() {
        let index = Gsi1Key::new("CONNECTIONS#connected", "acme");
        let item = encode_indexed(
            &Key::new("TENANT#acme", "CONNECTION#box"),
            &index,
            &Record {
                status: "connected".into(),
            },
        )
        .unwrap();
        let names: std::collections::BTreeSet<&str> = item.keys().map(String::as_str).collect();
        assert_eq!(names, [GSI1_PK, GSI1_SK, PK, SK, "status"].into());
        assert_eq!(item[GSI1_PK], string("CONNECTIONS#connected"));
        assert_eq!(item[GSI1_SK], string("acme"));
        let read: Indexed<Record> = decode_indexed(item).unwrap();
        assert_eq!(read.index, index);
        assert_eq!(
            read.item,
            Record {
                status: "connected".into()
            }
        );
    }

    #[test]
    fn indexed_items_may_not_set_their_own_gsi_keys() {
        #[derive(Serialize)]
        struct Sneaky {
            gsi1sk: String,
        }
        let err = encode_indexed(
            &Key::new("a", "b"),
            &Gsi1Key::new("CONNECTIONS#connected", "a"),
            &Sneaky { gsi1sk: "other".into() },
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::ReservedAttribute("gsi1sk")));
    }

    #[test]
    fn an_index_read_without_gsi_keys_is_an_error() {
        let item = key_item(&Key::new("a", "b"));
        assert!(decode_indexed::<std::collections::HashMap<String, String>>(item).is_err());
    }

    #[test]
    fn index_attributes_are_written_beside_the_record_and_never_decoded_into_it() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            status: String,
        }
        let record = Strict {
            status: "active".into(),
        };
        let item = encode_with(
            &Key::new("TENANT#acme", "USER#1"),
            &record,
            &[("upk", "USERS#acme#seat"), ("k_name", "ann\u{1}1")],
        )
        .unwrap();
        assert_eq!(item["upk"], string("USERS#acme#seat"));
        assert_eq!(decode::<Strict>(item).unwrap(), record);
        #[derive(Serialize)]
        struct Sneaky {
            upk: String,
        }
        let err = encode(
            &Key::new("a", "b"),
            &Sneaky {
                upk: "USERS#other#seat".into(),
            },
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::ReservedAttribute("upk")));
        assert!(encode_with(&Key::new("a", "b"), &record, &[("pk", "x")]).is_err());
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

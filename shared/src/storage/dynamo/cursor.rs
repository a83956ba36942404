//! Page cursors: opaque to callers, and checked on the way back in so that a forged cursor is a
//! clean [`StoreError::InvalidCursor`] and can never leave the queried partition.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::StoreError;
use super::codec::Item;
use crate::storage::schema::{GSI1_PK, GSI1_SK, PK, SK};

/// Longest cursor accepted back from a client; real ones are a few hundred bytes.
const MAX_CURSOR_LEN: usize = 2048;

/// What a cursor may point into.
pub(super) enum CursorScope<'a> {
    Table { pk: &'a str, sk_prefix: &'a str },
    Gsi1 { gsi1pk: &'a str },
}

/// A cursor is base64url(JSON object of the string key attributes of `LastEvaluatedKey`).
pub(super) fn encode_cursor(last_key: &Item) -> Result<String, StoreError> {
    let mut fields = BTreeMap::new();
    for (name, value) in last_key {
        let AttributeValue::S(value) = value else {
            return Err(anyhow!("LastEvaluatedKey attribute {name} is not a string").into());
        };
        fields.insert(name.as_str(), value.as_str());
    }
    let json = serde_json::to_vec(&fields).context("encoding a page cursor")?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Turns a cursor back into an `ExclusiveStartKey`, accepting only the exact key attributes of the
/// query and a position inside the queried partition (and prefix). Anything else is
/// [`StoreError::InvalidCursor`]; the cursor's content is never echoed into errors or logs.
pub(super) fn decode_cursor(cursor: &str, scope: &CursorScope<'_>) -> Result<Item, StoreError> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(StoreError::InvalidCursor);
    }
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let fields: BTreeMap<String, String> = serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)?;
    let field = |name: &str| fields.get(name).map(String::as_str);
    let (expected, valid): (&[&str], bool) = match scope {
        CursorScope::Table { pk, sk_prefix } => (
            &[PK, SK],
            field(PK) == Some(*pk) && field(SK).is_some_and(|sk| sk.starts_with(sk_prefix)),
        ),
        CursorScope::Gsi1 { gsi1pk } => (
            &[PK, SK, GSI1_PK, GSI1_SK],
            field(GSI1_PK) == Some(*gsi1pk) && field(PK).is_some() && field(SK).is_some(),
        ),
    };
    let exact_keys = fields.len() == expected.len() && expected.iter().all(|name| fields.contains_key(*name));
    if !valid || !exact_keys {
        return Err(StoreError::InvalidCursor);
    }
    Ok(fields
        .into_iter()
        .map(|(name, value)| (name, AttributeValue::S(value)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::dynamo::Key;
    use crate::storage::dynamo::codec::key_item;

    #[test]
    fn cursors_round_trip_within_their_partition_only() {
        let key = key_item(&Key::new("TENANT#a", "USER#42"));
        let cursor = encode_cursor(&key).unwrap();
        let scope = CursorScope::Table {
            pk: "TENANT#a",
            sk_prefix: "USER#",
        };
        assert_eq!(decode_cursor(&cursor, &scope).unwrap(), key);
        for other in [
            CursorScope::Table {
                pk: "TENANT#b",
                sk_prefix: "USER#",
            },
            CursorScope::Table {
                pk: "TENANT#a",
                sk_prefix: "AUDIT#",
            },
            CursorScope::Gsi1 { gsi1pk: "TENANT#a" },
        ] {
            assert!(matches!(decode_cursor(&cursor, &other), Err(StoreError::InvalidCursor)));
        }
    }

    #[test]
    fn malformed_cursors_are_rejected_without_panicking() {
        let scope = CursorScope::Table {
            pk: "TENANT#a",
            sk_prefix: "",
        };
        let extra = URL_SAFE_NO_PAD.encode(r#"{"pk":"TENANT#a","sk":"X","other":"1"}"#);
        let non_string = URL_SAFE_NO_PAD.encode(r#"{"pk":"TENANT#a","sk":1}"#);
        let long = "A".repeat(MAX_CURSOR_LEN + 1);
        for bad in [
            "",
            "!!!",
            "e30",
            "bnVsbA",
            extra.as_str(),
            non_string.as_str(),
            long.as_str(),
        ] {
            assert!(
                matches!(decode_cursor(bad, &scope), Err(StoreError::InvalidCursor)),
                "{bad:?}"
            );
        }
    }
}

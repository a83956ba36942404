//! Newtypes for identifiers that cross a trust boundary. Each has a `parse` constructor that
//! rejects anything that could smuggle a key separator, a path segment or a control character into
//! a DynamoDB key, a Secrets Manager name or a Box URL; past the edge, code only sees valid values.

use std::borrow::Borrow;
use std::fmt;

/// Why an identifier was rejected; the message names the kind of identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

fn check(kind: &'static str, value: &str, max: usize, allowed: fn(char) -> bool) -> Result<(), InvalidId> {
    if value.is_empty() {
        return Err(InvalidId {
            kind,
            reason: "must not be empty",
        });
    }
    if value.len() > max {
        return Err(InvalidId {
            kind,
            reason: "is too long",
        });
    }
    if !value.chars().all(allowed) {
        return Err(InvalidId {
            kind,
            reason: "contains characters that are not allowed",
        });
    }
    Ok(())
}

/// A seatsync customer (one company). Comes only from the verified identity, never from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Letters, digits, `-` and `_`, at most 64 characters.
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        check("tenant id", value, 64, |c| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        })?;
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Box user id: Box ids are decimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BoxUserId(String);

impl BoxUserId {
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        check("Box user id", value, 20, |c| c.is_ascii_digit())?;
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Box enterprise id (decimal digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnterpriseId(String);

impl EnterpriseId {
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        check("Box enterprise id", value, 20, |c| c.is_ascii_digit())?;
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_conversions {
    ($($t:ident),*) => {$(
        impl TryFrom<String> for $t {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
        /// A valid id reads as its text anywhere text is wanted (the other way takes `parse`).
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
        /// Maps keyed by the id are looked up by its text (the hash and order are the text's).
        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_conversions!(TenantId, BoxUserId, EnterpriseId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_reject_key_separators_and_paths() {
        for bad in ["", "a#b", "../x", "a/b", "a b", "t\n", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(TenantId::parse("acme-01_x").unwrap().as_str(), "acme-01_x");
    }

    #[test]
    fn box_user_ids_are_digits_only() {
        assert!(BoxUserId::parse("12345").is_ok());
        for bad in ["", "12a", "1/../2", "-1", "123456789012345678901"] {
            assert!(BoxUserId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn maps_keyed_by_ids_are_looked_up_by_their_text() {
        let users = std::collections::HashMap::from([(BoxUserId::parse("12").unwrap(), "ann")]);
        assert_eq!(users.get("12"), Some(&"ann"));
        assert_eq!(users.get("13"), None);
        assert_eq!(BoxUserId::parse("12").unwrap(), "12");
    }

    #[test]
    fn ids_serialize_as_their_plain_text() {
        let id = EnterpriseId::parse("81723516").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"81723516\"");
    }

    #[test]
    fn ids_deserialize_through_parse() {
        assert!(serde_json::from_str::<BoxUserId>("\"12\"").is_ok());
        assert!(serde_json::from_str::<BoxUserId>("\"x\"").is_err());
    }
}

//! `PUT /settings` read field by field, so every refusal names its field: the tenant's settings,
//! the protected logins, and the SSO provider's credentials (checked against the outbound policy
//! and built once, without calling the provider).

use serde_json::{Map, Value};

use super::{MAX_DAILY_ACTION_CAP, MAX_PRICE_MINOR, MAX_PROTECTED_LOGINS, MAX_SEATS, ReportsError, invalid};
use crate::api::text::{printable, redact_quoted};
use crate::license::ActivitySignal;
use crate::settings::TenantSettings;
use crate::sso::{HttpOptions, OutboundPolicy, SsoConfig};

/// A validated `PUT /settings` body.
pub struct SettingsUpdate {
    pub settings: TenantSettings,
    pub sso: SsoChange,
}

pub enum SsoChange {
    /// `sso` absent: the stored provider and credentials stay.
    Keep,
    /// `sso: null`.
    Remove,
    Set(Box<SsoConfig>),
}

const EDITABLE: [&str; 9] = [
    "seats_purchased",
    "price_per_seat_year_minor",
    "currency",
    "inactivity_threshold_days",
    "activity_signal",
    "daily_action_cap",
    "protected_logins",
    "content_transfer",
    "sso",
];

/// Validates a `PUT /settings` body field by field, so every error names its field. Every field
/// but `sso` is required (a PUT replaces them all; send `null` to clear an optional one); `sso`
/// absent keeps the stored provider and credentials. SSO URLs must pass production's
/// [`OutboundPolicy`].
pub fn parse_settings(body: Map<String, Value>) -> Result<SettingsUpdate, ReportsError> {
    parse_settings_with(body, &OutboundPolicy::PROVIDERS_ONLY)
}

/// [`parse_settings`] with the SSO URLs checked against `outbound`.
pub fn parse_settings_with(
    body: Map<String, Value>,
    outbound: &OutboundPolicy,
) -> Result<SettingsUpdate, ReportsError> {
    if let Some(unknown) = body.keys().find(|k| !EDITABLE.contains(&k.as_str())) {
        let name = printable(unknown, 40);
        return Err(invalid(
            &name,
            format!("unknown field `{name}`; the settings are {}", EDITABLE.join(", ")),
        ));
    }
    let required = |field: &str| -> Result<&Value, ReportsError> {
        body.get(field).ok_or_else(|| {
            invalid(
                field,
                format!(
                    "`{field}` is required: PUT /settings replaces every setting (send null to clear an optional one)"
                ),
            )
        })
    };
    let optional_number = |field: &str, max: u64| -> Result<Option<u64>, ReportsError> {
        match required(field)? {
            Value::Null => Ok(None),
            v => v.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
                invalid(
                    field,
                    format!("`{field}` must be a whole number from 0 to {max}, or null"),
                )
            }),
        }
    };
    let seats_purchased = optional_number("seats_purchased", u64::from(MAX_SEATS))?.map(|n| n as u32);
    let price = optional_number("price_per_seat_year_minor", MAX_PRICE_MINOR)?;
    let currency = match required("currency")? {
        Value::Null => None,
        Value::String(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Some(c.clone()),
        _ => {
            return Err(invalid(
                "currency",
                "`currency` must be an ISO 4217 code of 3 upper-case letters (e.g. USD), or null",
            ));
        }
    };
    if price.is_some() && currency.is_none() {
        return Err(invalid(
            "currency",
            "`currency` is required when `price_per_seat_year_minor` is set",
        ));
    }
    let inactivity_threshold_days = required("inactivity_threshold_days")?
        .as_u64()
        .filter(|d| (1..=365).contains(d))
        .ok_or_else(|| {
            invalid(
                "inactivity_threshold_days",
                "`inactivity_threshold_days` must be a whole number from 1 to 365",
            )
        })? as u16;
    let daily_action_cap = required("daily_action_cap")?
        .as_u64()
        .filter(|n| *n <= u64::from(MAX_DAILY_ACTION_CAP))
        .ok_or_else(|| {
            invalid(
                "daily_action_cap",
                format!("`daily_action_cap` must be a whole number from 0 to {MAX_DAILY_ACTION_CAP}"),
            )
        })? as u32;
    let protected_logins = protected_logins(required("protected_logins")?)?;
    let content_transfer = required("content_transfer")?
        .as_bool()
        .ok_or_else(|| invalid("content_transfer", "`content_transfer` must be true or false"))?;
    // Optional, so that clients written before it existed keep working: absent means `any`.
    let activity_signal = match body.get("activity_signal") {
        None | Some(Value::Null) => ActivitySignal::Any,
        Some(value) => match value.as_str() {
            Some("any") => ActivitySignal::Any,
            Some("login") => ActivitySignal::Login,
            Some("content") => ActivitySignal::Content,
            _ => {
                return Err(invalid(
                    "activity_signal",
                    "`activity_signal` must be \"any\" (a login or content activity, the default), \"login\" or \"content\"",
                ));
            }
        },
    };
    let sso = match body.get("sso") {
        None => SsoChange::Keep,
        Some(Value::Null) => SsoChange::Remove,
        Some(value) => SsoChange::Set(Box::new(sso_config(value, outbound)?)),
    };
    Ok(SettingsUpdate {
        settings: TenantSettings {
            seats_purchased,
            price_per_seat_year_minor: price,
            currency,
            inactivity_threshold_days,
            daily_action_cap,
            protected_logins,
            sso_provider: None,
            content_transfer,
            activity_signal,
        },
        sso,
    })
}

fn protected_logins(value: &Value) -> Result<Vec<String>, ReportsError> {
    const FIELD: &str = "protected_logins";
    let list = value
        .as_array()
        .ok_or_else(|| invalid(FIELD, "`protected_logins` must be a list of email addresses"))?;
    if list.len() > MAX_PROTECTED_LOGINS {
        return Err(invalid(
            FIELD,
            format!("`protected_logins` holds at most {MAX_PROTECTED_LOGINS} logins"),
        ));
    }
    let mut logins = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let login = entry
            .as_str()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| is_email(s))
            .ok_or_else(|| invalid(FIELD, format!("`protected_logins[{i}]` is not a valid email address")))?;
        if !logins.contains(&login) {
            logins.push(login);
        }
    }
    Ok(logins)
}

/// A plausible email address: one `@`, a local part and a dotted domain, no spaces or controls.
fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-'))
}

fn sso_config(value: &Value, outbound: &OutboundPolicy) -> Result<SsoConfig, ReportsError> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid("sso", "`sso` must be null or {\"provider\": …, \"credentials\": {…}}"))?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "provider" | "credentials"))
    {
        let name = printable(unknown, 40);
        return Err(invalid(
            &format!("sso.{name}"),
            format!("unknown field `sso.{name}`; `sso` has provider and credentials"),
        ));
    }
    let provider = match object.get("provider").and_then(Value::as_str) {
        Some(p @ ("okta" | "entra" | "google")) => p,
        _ => {
            return Err(invalid(
                "sso.provider",
                "`sso.provider` must be one of okta, entra, google",
            ));
        }
    };
    let mut credentials = object
        .get("credentials")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| {
            invalid(
                "sso.credentials",
                format!("`sso.credentials` must be the {provider} credentials object"),
            )
        })?;
    match credentials.get("provider") {
        None => {}
        Some(Value::String(p)) if p == provider => {}
        Some(_) => {
            return Err(invalid(
                "sso.credentials.provider",
                "`sso.credentials.provider` differs from `sso.provider`",
            ));
        }
    }
    credentials.insert("provider".into(), Value::String(provider.to_owned()));
    let config: SsoConfig = serde_json::from_value(Value::Object(credentials)).map_err(|e| {
        invalid(
            "sso.credentials",
            format!(
                "`sso.credentials` are not valid {provider} credentials: {}",
                redact_quoted(&e.to_string())
            ),
        )
    })?;
    // Only the providers' own hosts: usage-sync calls these URLs from inside AWS.
    config.check_endpoints(outbound).map_err(|refused| {
        let field = format!("sso.credentials.{}", refused.field);
        let detail = format!("`{field}` is not allowed: {}", refused.reason);
        invalid(&field, detail)
    })?;
    // Builds the provider client once, which checks keys without calling the provider.
    let options = HttpOptions {
        outbound: *outbound,
        ..HttpOptions::default()
    };
    crate::sso::provider(&config, options).map_err(|e| {
        invalid(
            "sso.credentials",
            format!("`sso.credentials` are not usable: {}", redact_quoted(&e.to_string())),
        )
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Map<String, Value> {
        json!({
            "seats_purchased": 120, "price_per_seat_year_minor": 18000, "currency": "USD",
            "inactivity_threshold_days": 60, "daily_action_cap": 100,
            "protected_logins": ["CEO@Acme.com", "ceo@acme.com"], "content_transfer": false
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn settings_are_normalised() {
        let update = parse_settings(valid()).unwrap();
        assert_eq!(update.settings.protected_logins, vec!["ceo@acme.com"]);
        assert!(matches!(update.sso, SsoChange::Keep));
    }

    #[test]
    fn the_activity_signal_is_accepted_absent_null_or_named() {
        for (value, expected) in [
            (None, ActivitySignal::Any),
            (Some(json!(null)), ActivitySignal::Any),
            (Some(json!("login")), ActivitySignal::Login),
            (Some(json!("content")), ActivitySignal::Content),
        ] {
            let mut body = valid();
            if let Some(v) = value {
                body.insert("activity_signal".into(), v);
            }
            assert_eq!(parse_settings(body).unwrap().settings.activity_signal, expected);
        }
    }

    #[test]
    fn each_invalid_setting_names_its_field() {
        for (field, value) in [
            ("seats_purchased", json!(10_000_001)),
            ("seats_purchased", json!(-1)),
            ("price_per_seat_year_minor", json!(1_000_000_001u64)),
            ("currency", json!("usd")),
            ("inactivity_threshold_days", json!(0)),
            ("inactivity_threshold_days", json!(366)),
            ("daily_action_cap", json!(10_001)),
            ("protected_logins", json!(["not-an-email"])),
            ("content_transfer", json!("yes")),
            ("activity_signal", json!("drive")),
            ("sso.provider", json!({"provider": "ping", "credentials": {}})),
        ] {
            let key = field.split('.').next().unwrap();
            let mut body = valid();
            body.insert(key.into(), value);
            match parse_settings(body) {
                Err(ReportsError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
                _ => panic!("{field} accepted"),
            }
        }
    }
}

//! Reading configuration from the environment once, at cold start. A missing or malformed value
//! fails fast with a message that names the variable; optional values fall back to documented
//! defaults, never silently to something else.

use std::str::FromStr;

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads a variable through a lookup function, so tests can pass a map instead of the process env.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name)
            .map(|v| (*v).to_owned())
            .filter(|v| !v.trim().is_empty())
    }
}

/// A required variable.
pub fn required(env: &dyn Env, name: &'static str) -> Result<String, ConfigError> {
    env.get(name).ok_or(ConfigError::Missing(name))
}

/// An optional variable with a default.
pub fn or_default(env: &dyn Env, name: &'static str, default: &str) -> String {
    env.get(name).unwrap_or_else(|| default.to_owned())
}

/// An optional variable parsed into `T`, with a default when unset.
pub fn parsed_or<T: FromStr>(env: &dyn Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// An optional URL variable with a default; must be http(s) with a host.
pub fn url_or(env: &dyn Env, name: &'static str, default: &str) -> Result<url::Url, ConfigError> {
    http_url(name, &or_default(env, name, default))
}

/// Variable `name`'s value as a URL; must be http(s) with a host.
pub fn http_url(name: &'static str, raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
        name,
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be an http(s) URL with a host".into(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn missing_required_names_the_variable() {
        let env: HashMap<&str, &str> = HashMap::new();
        let err = required(&env, "TABLE_NAME").unwrap_err().to_string();
        assert!(err.contains("TABLE_NAME"), "{err}");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let env: HashMap<&str, &str> = [("BACKFILL_DAYS", "many"), ("BOX_API_BASE", "ftp://x")].into();
        let err = parsed_or::<u32>(&env, "BACKFILL_DAYS", 180).unwrap_err().to_string();
        assert!(err.contains("BACKFILL_DAYS"), "{err}");
        let err = url_or(&env, "BOX_API_BASE", "https://api.box.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("BOX_API_BASE"), "{err}");
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        let env: HashMap<&str, &str> = [("BACKFILL_DAYS", "30")].into();
        assert_eq!(parsed_or::<u32>(&env, "BACKFILL_DAYS", 180).unwrap(), 30);
        assert_eq!(parsed_or::<u32>(&env, "OTHER", 180).unwrap(), 180);
        assert_eq!(
            url_or(&env, "BOX_API_BASE", "https://api.box.com").unwrap().as_str(),
            "https://api.box.com/"
        );
    }
}

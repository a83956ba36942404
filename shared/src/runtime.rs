//! What every function builds once at cold start: its configuration, parsed from the
//! environment (failing fast, naming the variable), and its clients.

use crate::boxapi::{BoxClient, BoxEndpoints, ClientOptions, RetryPolicy};
use std::num::NonZeroU32;

use crate::config::{ConfigError, Env, or_default, required};
use crate::storage::{SecretStore, Table, load_aws_config};

/// Configuration shared by every function.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `TABLE_NAME`: the single DynamoDB table.
    pub table_name: String,
    /// `SECRET_PREFIX` (default `seatsync/`): the Secrets Manager namespace of this deployment.
    pub secret_prefix: String,
    /// `BOX_API_BASE`, `BOX_ACCOUNT_BASE`.
    pub box_endpoints: BoxEndpoints,
}

impl CommonConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required(env, "TABLE_NAME")?,
            secret_prefix: or_default(env, "SECRET_PREFIX", crate::storage::secrets::DEFAULT_PREFIX),
            box_endpoints: BoxEndpoints::from_env(env)?,
        })
    }
}

/// Configuration of every HTTP function's edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// `TENANT_REQUESTS_PER_MINUTE` (default 600, at least 1): requests each tenant may make per
    /// minute to one HTTP function ([`crate::api::TenantLimit`]).
    pub tenant_requests_per_minute: NonZeroU32,
}

impl ApiLimits {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        const NAME: &str = "TENANT_REQUESTS_PER_MINUTE";
        let tenant_requests_per_minute = match env.get(NAME) {
            None => NonZeroU32::new(crate::api::DEFAULT_REQUESTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid {
                name: NAME,
                reason: format!("`{}` is not a whole number from 1 to {}", raw.trim(), u32::MAX),
            })?,
        };
        Ok(Self {
            tenant_requests_per_minute,
        })
    }
}

/// The clients a function needs; built once and shared by every invocation of a warm instance.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The AWS SDK configuration, for clients only some functions need (e.g. SQS).
    pub sdk: aws_config::SdkConfig,
    pub table: Table,
    pub secrets: SecretStore,
    pub box_api: BoxClient,
}

impl Clients {
    /// `retry`: [`RetryPolicy::interactive`] for functions behind API Gateway (29 s), the default
    /// for the sync.
    pub async fn build(config: &CommonConfig, retry: RetryPolicy) -> anyhow::Result<Self> {
        let sdk = load_aws_config().await;
        Ok(Self {
            sdk: sdk.clone(),
            table: Table::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name.clone()),
            secrets: SecretStore::with_prefix(aws_sdk_secretsmanager::Client::new(&sdk), config.secret_prefix.clone()),
            box_api: BoxClient::new(
                config.box_endpoints.clone(),
                ClientOptions {
                    retry,
                    ..ClientOptions::default()
                },
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn table_name_is_required_and_the_rest_has_defaults() {
        let empty: HashMap<&str, &str> = HashMap::new();
        assert!(
            CommonConfig::from_env(&empty)
                .unwrap_err()
                .to_string()
                .contains("TABLE_NAME")
        );
        let env: HashMap<&str, &str> = [("TABLE_NAME", "t")].into();
        let config = CommonConfig::from_env(&env).unwrap();
        assert_eq!(config.secret_prefix, "seatsync/");
        assert_eq!(config.box_endpoints.api_base.as_str(), "https://api.box.com/");
    }

    #[test]
    fn the_tenant_request_limit_defaults_to_600_and_refuses_zero_naming_the_variable() {
        let limit = |env: HashMap<&str, &str>| ApiLimits::from_env(&env).map(|l| l.tenant_requests_per_minute.get());
        assert_eq!(limit(HashMap::new()).unwrap(), 600);
        assert_eq!(limit([("TENANT_REQUESTS_PER_MINUTE", " 25 ")].into()).unwrap(), 25);
        for bad in ["0", "-3", "many", "1.5", "99999999999"] {
            let err = limit([("TENANT_REQUESTS_PER_MINUTE", bad)].into())
                .unwrap_err()
                .to_string();
            assert!(err.contains("TENANT_REQUESTS_PER_MINUTE"), "{bad}: {err}");
        }
    }
}

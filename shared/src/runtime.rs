//! What every function builds once at cold start: its configuration, parsed from the
//! environment (failing fast, naming the variable), and its clients.

use crate::boxapi::{BoxClient, BoxEndpoints, ClientOptions, RetryPolicy};
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
}

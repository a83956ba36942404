//! The AWS SDK configuration every function and test uses: one place that decides timeouts and
//! retries, so no AWS call can hang a Lambda until its 900 s deadline or retry without bound.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

/// Time to open a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one call, including reading the response.
pub const OPERATION_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call including all its retries; well under API Gateway's 29 s.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts per call (the first one included) in the SDK's standard retry mode.
pub const MAX_ATTEMPTS: u32 = 3;

/// A loader with this project's timeouts and retry policy, for callers that must set more
/// (tests set static credentials and the endpoint). Everything else comes from the environment;
/// the SDK itself honours `AWS_ENDPOINT_URL`.
pub fn aws_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeout_config())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
}

/// The SDK configuration for production code; call once at cold start.
pub async fn load_aws_config() -> SdkConfig {
    aws_config_loader().load().await
}

fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(OPERATION_ATTEMPT_TIMEOUT)
        .operation_attempt_timeout(OPERATION_ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_has_bounded_time_and_attempts() {
        let config = aws_config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await;
        let timeouts = config.timeout_config().expect("timeouts set");
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(OPERATION_ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
        let retry = config.retry_config().expect("retry set");
        assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        assert_eq!(retry.mode(), aws_config::retry::RetryMode::Standard);
    }
}

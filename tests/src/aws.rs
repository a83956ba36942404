//! Fresh AWS resources per test on the local AWS endpoint (moto): a uniquely named table created
//! with the production schema, and a unique secret-name prefix. Tests never reach real AWS: the
//! endpoint must be a loopback address and the credentials are always static test ones.

use reqwest::Url;
use seatsync::storage::{SecretStore, Table, aws_config_loader};

/// Clients and resource names for one test.
pub struct TestAws {
    /// The local endpoint this test's resources live on.
    pub endpoint: String,
    pub sdk: aws_config::SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub table_name: String,
    pub secret_prefix: String,
}

impl TestAws {
    /// Connects to a local endpoint (one of `SEATSYNC_TEST_AWS_ENDPOINTS`, else `AWS_ENDPOINT_URL`)
    /// and creates this test's table.
    ///
    /// Panics (the test's setup failed) if no endpoint is set or one is not a loopback URL.
    pub async fn new() -> Self {
        crate::logs::capture_to_suite_log();
        let endpoint = local_endpoint();
        let region = std::env::var("AWS_REGION")
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        // Explicit static credentials and region: nothing is read from a profile or the EC2 metadata
        // service, and real credentials in the developer's environment are never used.
        let sdk = aws_config_loader()
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new(region))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "seatsync-tests",
            ))
            .load()
            .await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let table_name = format!("seatsync-test-{id}");
        let secret_prefix = format!("seatsync-test/{id}/");
        Table::create(dynamo.clone(), &table_name)
            .await
            .unwrap_or_else(|e| panic!("creating test table {table_name} on the local AWS endpoint: {e:#}"));
        Self {
            endpoint,
            sdk,
            dynamo,
            secrets,
            table_name,
            secret_prefix,
        }
    }

    /// The storage adapter for this test's table.
    pub fn table(&self) -> Table {
        Table::new(self.dynamo.clone(), &self.table_name)
    }

    /// The secret store for this test's prefix.
    pub fn secret_store(&self) -> SecretStore {
        SecretStore::with_prefix(self.secrets.clone(), &self.secret_prefix)
    }
}

/// The local endpoint for one test's resources, required to be a loopback http(s) URL. With
/// several servers (`SEATSYNC_TEST_AWS_ENDPOINTS`, space-separated; `scripts/test` starts one per
/// core, since moto serves on one), each new set of resources goes to a random one of them.
fn local_endpoint() -> String {
    let several: Vec<String> = std::env::var("SEATSYNC_TEST_AWS_ENDPOINTS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let raw = if several.is_empty() {
        let Some(raw) = std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.trim().is_empty()) else {
            panic!(
                "AWS_ENDPOINT_URL is not set: these tests need the local AWS endpoint (moto). \
                 Run them with `scripts/test`, or first `eval \"$(scripts/local-aws start)\"`."
            );
        };
        raw
    } else {
        several[usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % several.len()].clone()
    };
    check_loopback(&raw).unwrap_or_else(|reason| {
        panic!("local AWS endpoint {raw} {reason}; tests only talk to a local endpoint (scripts/local-aws start)")
    });
    raw
}

fn check_loopback(raw: &str) -> Result<(), &'static str> {
    let url = Url::parse(raw).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("is not an http(s) URL");
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err("is not a loopback address")
    }
}

#[cfg(test)]
mod tests {
    use super::check_loopback;

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://localhost:1",
            "http://[::1]:80",
            "http://127.1.2.3",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://10.0.0.1:5000",
            "http://127.0.0.1.evil.com",
            "file:///tmp",
            "nonsense",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }
}

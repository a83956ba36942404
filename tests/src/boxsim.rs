//! A Box simulator per test, with a Box client pointed at it. Every response the simulator
//! sends is checked against Box's OpenAPI file (when the file is present); a violation fails
//! the test that caused it.

use std::sync::Once;
use std::time::Duration;

use box_sim::{BoxSim, SimConfig};
use seatsync::boxapi::{BoxClient, BoxEndpoints, ClientOptions, RetryPolicy};
use seatsync::ids::{BoxUserId, EnterpriseId};
use secrecy::SecretString;

/// A running simulator and a client for it.
pub struct TestBox {
    pub sim: BoxSim,
    pub client: BoxClient,
}

/// Retries as in production, with short waits so tests stay quick (`retry-after` still honoured).
pub fn test_client_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        },
    }
}

/// A simulator config with contract checking on when Box's OpenAPI file is available.
/// A Box user id the simulator issued (always digits), as the client's methods take it.
pub fn box_id(id: &str) -> BoxUserId {
    BoxUserId::parse(id).expect("the simulator issues Box user ids of digits")
}

/// A Box enterprise id the simulator issued (always digits).
pub fn enterprise_id(id: &str) -> EnterpriseId {
    EnterpriseId::parse(id).expect("the simulator issues Box enterprise ids of digits")
}

pub fn sim_config() -> SimConfig {
    let spec = box_sim::contract::default_spec_path();
    static SKIP_NOTICE: Once = Once::new();
    if spec.is_none() {
        SKIP_NOTICE.call_once(|| {
            println!("contract: skipped: spec not found (../shared/box-openapi/openapi.json or SEATSYNC_BOX_OPENAPI)")
        });
    }
    SimConfig {
        contract_spec: spec,
        ..SimConfig::default()
    }
}

impl TestBox {
    pub async fn start(config: SimConfig) -> TestBox {
        crate::logs::capture_to_suite_log();
        crate::logs::record_secrets([config.client_secret.clone()]);
        let sim = BoxSim::start(config).await.expect("start the Box simulator");
        let client = client_for(&sim, test_client_options());
        TestBox { sim, client }
    }

    /// Tokens of the enterprise's primary admin.
    pub fn admin_token(&self) -> SecretString {
        SecretString::from(self.sim.issue_tokens(&self.sim.primary_admin_id()).access_token)
    }

    /// A fresh access token for any simulated user.
    pub fn token_for(&self, user_id: &str) -> SecretString {
        SecretString::from(self.sim.issue_tokens(user_id).access_token)
    }

    /// Asserts that every response so far matched Box's OpenAPI schemas; returns how many were checked.
    pub fn assert_contract(&self) -> u64 {
        let report = self.sim.contract_report();
        assert!(
            report.violations.is_empty(),
            "simulator responses violate Box's OpenAPI file:\n{}",
            report.violations.join("\n")
        );
        report.checked
    }
}

impl Drop for TestBox {
    fn drop(&mut self) {
        crate::logs::record_secrets(self.sim.issued_secrets());
        if !std::thread::panicking() {
            let checked = self.assert_contract();
            if checked > 0 {
                println!("contract: {checked} simulator responses checked against openapi.json, 0 violations");
            }
        }
    }
}

pub fn client_for(sim: &BoxSim, options: ClientOptions) -> BoxClient {
    let endpoints = BoxEndpoints::new(&sim.api_base(), &sim.account_base()).expect("simulator URLs parse");
    BoxClient::new(endpoints, options).expect("build Box client")
}

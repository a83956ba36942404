//! The token provider's test fixture: a connected tenant on this test's moto table and secret
//! prefix, a Box simulator whose tokens are live, and a vault that can fail or slow chosen calls
//! around the real Secrets Manager.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use box_sim::Endpoint;
use chrono::Utc;
use seatsync::boxapi::AppCredentials;
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync::storage::{BoxTokenSet, SecretError, SecretStore, TokenKind};
use seatsync::tokens::{TokenProvider, TokenProviderOptions, TokenVault};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::{TestBox, sim_config};
use secrecy::SecretString;

pub struct Fixture {
    pub aws: TestAws,
    pub tb: TestBox,
    pub tenant: TenantId,
    pub app: AppCredentials,
    pub store: SecretStore,
}

pub fn options() -> TokenProviderOptions {
    TokenProviderOptions {
        lease_ttl: Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        max_wait: Duration::from_secs(20),
        write_retry_max_delay: Duration::from_millis(200),
        ..TokenProviderOptions::default()
    }
}

impl Fixture {
    /// A connected tenant whose stored access token expires in `expires_in` (real time).
    pub async fn new(expires_in: chrono::Duration) -> Fixture {
        let aws = TestAws::new().await;
        let config = sim_config();
        let app = AppCredentials {
            client_id: config.client_id.clone(),
            client_secret: SecretString::from(config.client_secret.clone()),
        };
        let tb = TestBox::start(config).await;
        let tenant = TenantId::parse("acme").unwrap();
        let store = aws.secret_store();
        let pair = tb.sim.issue_tokens(&tb.sim.primary_admin_id());
        let tokens = BoxTokenSet {
            kind: TokenKind::OAuth,
            access_token: SecretString::from(pair.access_token),
            access_expires_at: Utc::now() + expires_in,
            refresh_token: Some(SecretString::from(pair.refresh_token)),
            obtained_at: Utc::now(),
            client_id: None,
            client_secret: None,
            enterprise_id: Some(seatsync_tests::boxsim::enterprise_id(&tb.sim.enterprise_id())),
        };
        TokenVault::write(&store, &tenant, &tokens, &"0".repeat(40))
            .await
            .unwrap();
        Connections::new(aws.table())
            .save(&tenant, &record(&tb.sim.enterprise_id()))
            .await
            .unwrap();
        tb.sim.reset_counters();
        Fixture {
            aws,
            tb,
            tenant,
            app,
            store,
        }
    }

    pub fn provider(&self, vault: Arc<dyn TokenVault>) -> TokenProvider {
        TokenProvider::new(
            vault,
            self.aws.table(),
            self.tb.client.clone(),
            self.app.clone(),
            options(),
        )
    }

    pub async fn stored(&self) -> BoxTokenSet {
        TokenVault::read(&self.store, &self.tenant)
            .await
            .unwrap()
            .expect("a stored token set")
    }

    pub async fn secret_versions(&self) -> usize {
        let out = self
            .aws
            .secrets
            .list_secret_version_ids()
            .secret_id(self.store.box_secret_name(&self.tenant))
            .include_deprecated(true)
            .send()
            .await
            .unwrap();
        out.versions().len()
    }

    pub fn token_calls(&self) -> u64 {
        self.tb.sim.counters().total(Endpoint::Token)
    }
}

pub fn record(enterprise_id: &str) -> ConnectionRecord {
    ConnectionRecord {
        status: ConnectionStatus::Connected,
        method: ConnectMethod::OAuth,
        enterprise_id: seatsync_tests::boxsim::enterprise_id(enterprise_id),
        enterprise_name: Some("Acme".into()),
        connected_by_box_id: seatsync_tests::boxsim::box_id("1"),
        connected_by_login: None,
        connected_by_sub: "sub-1".into(),
        scopes: vec![],
        connected_at: Utc::now(),
        activity_source: ActivitySource::BoxEvents,
        status_reason: None,
        status_since: Utc::now(),
        last_sync_at: None,
    }
}

/// A vault that fails chosen writes and can serve stale reads, around the real Secrets Manager.
pub struct TestVault {
    inner: SecretStore,
    /// The next this many writes fail.
    pub fail_writes: AtomicU32,
    /// While set, every write fails (Secrets Manager refusing writes for as long as the test says).
    pub refuse_writes: std::sync::atomic::AtomicBool,
    /// The next this many writes reach Secrets Manager, but their answer is lost (an error).
    pub lose_write_answers: AtomicU32,
    /// Each write waits this long (ms) before reaching Secrets Manager: a slow holder.
    pub write_delay_ms: AtomicU64,
    pub stale: std::sync::Mutex<Option<(BoxTokenSet, u32)>>,
    pub writes: AtomicU32,
}

impl TestVault {
    pub fn new(inner: SecretStore) -> Self {
        Self {
            inner,
            fail_writes: AtomicU32::new(0),
            refuse_writes: std::sync::atomic::AtomicBool::new(false),
            lose_write_answers: AtomicU32::new(0),
            write_delay_ms: AtomicU64::new(0),
            stale: std::sync::Mutex::new(None),
            writes: AtomicU32::new(0),
        }
    }
}

#[async_trait]
impl TokenVault for TestVault {
    async fn read(&self, tenant: &TenantId) -> Result<Option<BoxTokenSet>, SecretError> {
        if let Some((tokens, left)) = self.stale.lock().unwrap().as_mut().filter(|(_, left)| *left > 0) {
            *left -= 1;
            return Ok(Some(tokens.clone()));
        }
        TokenVault::read(&self.inner, tenant).await
    }
    async fn write(&self, tenant: &TenantId, tokens: &BoxTokenSet, request_token: &str) -> Result<(), SecretError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let delay = self.write_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.refuse_writes.load(Ordering::SeqCst) {
            return Err(SecretError::Throttled {
                doing: "writing a secret (refused by the test)",
            });
        }
        if self.fail_writes.load(Ordering::SeqCst) > 0 {
            self.fail_writes.fetch_sub(1, Ordering::SeqCst);
            return Err(SecretError::Throttled {
                doing: "writing a secret (injected)",
            });
        }
        let written = TokenVault::write(&self.inner, tenant, tokens, request_token).await;
        if written.is_ok() && self.lose_write_answers.load(Ordering::SeqCst) > 0 {
            self.lose_write_answers.fetch_sub(1, Ordering::SeqCst);
            return Err(SecretError::Unexpected(anyhow::anyhow!(
                "the answer to a stored write was lost (injected)"
            )));
        }
        written
    }
    async fn delete(&self, tenant: &TenantId) -> Result<(), SecretError> {
        TokenVault::delete(&self.inner, tenant).await
    }
}

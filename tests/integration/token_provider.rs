//! The token provider: one refresh however many instances ask, the rotated refresh token never
//! lost, `invalid_grant` handled without locking anyone out needlessly, 401 retried once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use box_sim::Endpoint;
use chrono::Utc;
use futures::future::join_all;
use seatsync::boxapi::{AppCredentials, BoxError};
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync::storage::schema::tenant_pk;
use seatsync::storage::{BoxTokenSet, SecretError, SecretStore, TokenKind};
use seatsync::tokens::{REFRESH_LEASE, TokenError, TokenProvider, TokenProviderOptions, TokenVault};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::{TestBox, sim_config};
use secrecy::{ExposeSecret, SecretString};

struct Fixture {
    aws: TestAws,
    tb: TestBox,
    tenant: TenantId,
    app: AppCredentials,
    store: SecretStore,
}

fn options() -> TokenProviderOptions {
    TokenProviderOptions {
        lease_ttl: Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        max_wait: Duration::from_secs(20),
        ..TokenProviderOptions::default()
    }
}

impl Fixture {
    /// A connected tenant whose stored access token expires in `expires_in` (real time).
    async fn new(expires_in: chrono::Duration) -> Fixture {
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
            enterprise_id: Some(tb.sim.enterprise_id()),
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

    fn provider(&self, vault: Arc<dyn TokenVault>) -> TokenProvider {
        TokenProvider::new(
            vault,
            self.aws.table(),
            self.tb.client.clone(),
            self.app.clone(),
            options(),
        )
    }

    async fn stored(&self) -> BoxTokenSet {
        TokenVault::read(&self.store, &self.tenant)
            .await
            .unwrap()
            .expect("a stored token set")
    }

    async fn secret_versions(&self) -> usize {
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

    fn token_calls(&self) -> u64 {
        self.tb.sim.counters().total(Endpoint::Token)
    }
}

fn record(enterprise_id: &str) -> ConnectionRecord {
    ConnectionRecord {
        status: ConnectionStatus::Connected,
        method: ConnectMethod::OAuth,
        enterprise_id: enterprise_id.into(),
        enterprise_name: Some("Acme".into()),
        connected_by_box_id: "1".into(),
        connected_by_login: None,
        connected_by_sub: "sub-1".into(),
        scopes: vec![],
        connected_at: Utc::now(),
        activity_source: ActivitySource::BoxEvents,
        status_reason: None,
        status_since: Utc::now(),
        last_sync_at: None,
        gsi1pk: String::new(),
        gsi1sk: String::new(),
    }
}

/// A vault that fails chosen writes and can serve stale reads, around the real Secrets Manager.
struct TestVault {
    inner: SecretStore,
    fail_writes: AtomicU32,
    stale: std::sync::Mutex<Option<(BoxTokenSet, u32)>>,
    writes: AtomicU32,
}

impl TestVault {
    fn new(inner: SecretStore) -> Self {
        Self {
            inner,
            fail_writes: AtomicU32::new(0),
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
        if self.fail_writes.load(Ordering::SeqCst) > 0 {
            self.fail_writes.fetch_sub(1, Ordering::SeqCst);
            return Err(SecretError::Throttled {
                doing: "writing a secret (injected)",
            });
        }
        TokenVault::write(&self.inner, tenant, tokens, request_token).await
    }
    async fn delete(&self, tenant: &TenantId) -> Result<(), SecretError> {
        TokenVault::delete(&self.inner, tenant).await
    }
}

#[tokio::test]
async fn twenty_instances_asking_at_once_make_exactly_one_refresh_call() {
    let f = Fixture::new(chrono::Duration::minutes(2)).await;
    let old_refresh = f.stored().await.refresh_token.unwrap();
    let providers: Vec<_> = (0..20).map(|_| f.provider(Arc::new(f.store.clone()))).collect();

    let tokens = join_all(providers.iter().map(|p| p.access_token(&f.tenant))).await;

    assert_eq!(f.token_calls(), 1, "one refresh at Box for 20 instances");
    let tokens: Vec<_> = tokens
        .into_iter()
        .map(|t| t.expect("every instance gets a token"))
        .collect();
    let stored = f.stored().await;
    for t in &tokens {
        assert_eq!(
            t.expose_secret(),
            stored.access_token.expose_secret(),
            "every instance got the new token"
        );
    }
    assert!(f.tb.client.me(&tokens[0]).await.is_ok(), "the token works at Box");
    let new_refresh = stored.refresh_token.expect("a refresh token");
    assert_ne!(
        new_refresh.expose_secret(),
        old_refresh.expose_secret(),
        "the old refresh token is gone from the secret"
    );
    assert!(stored.access_expires_at > Utc::now() + chrono::Duration::minutes(50));
    // The lease was released.
    let lease = f
        .aws
        .table()
        .try_acquire_lease(&tenant_pk(&f.tenant), REFRESH_LEASE, "probe", Duration::from_secs(1))
        .await;
    assert!(
        matches!(lease, Ok(seatsync::storage::LeaseOutcome::Acquired)),
        "{lease:?}"
    );
}

#[tokio::test]
async fn a_fresh_token_is_served_without_refreshing_and_then_from_memory() {
    let f = Fixture::new(chrono::Duration::minutes(30)).await;
    let vault = Arc::new(TestVault::new(f.store.clone()));
    let provider = f.provider(vault.clone());
    let first = provider.access_token(&f.tenant).await.unwrap();
    let second = provider.access_token(&f.tenant).await.unwrap();
    assert_eq!(first.expose_secret(), second.expose_secret());
    assert_eq!(f.token_calls(), 0, "no refresh while the token is fresh");
    assert_eq!(
        vault.writes.load(Ordering::SeqCst),
        0,
        "no secret write while the token is fresh"
    );
}

#[tokio::test]
async fn a_refresh_whose_secret_write_fails_once_is_stored_exactly_once() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let vault = Arc::new(TestVault::new(f.store.clone()));
    vault.fail_writes.store(1, Ordering::SeqCst);
    let versions_before = f.secret_versions().await;

    let token = f.provider(vault.clone()).access_token(&f.tenant).await.unwrap();

    assert_eq!(f.token_calls(), 1);
    assert_eq!(vault.writes.load(Ordering::SeqCst), 2, "the failed write was retried");
    assert_eq!(
        f.secret_versions().await,
        versions_before + 1,
        "the new pair is stored exactly once"
    );
    assert_eq!(f.stored().await.access_token.expose_secret(), token.expose_secret());
}

#[tokio::test]
async fn invalid_grant_after_another_instance_rotated_uses_the_new_token() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let stale = f.stored().await;
    // Another instance refreshes and stores the new pair…
    let rotated = f
        .provider(Arc::new(f.store.clone()))
        .access_token(&f.tenant)
        .await
        .unwrap();
    // …while this one still reads the old secret twice (before and under the lease).
    let vault = Arc::new(TestVault::new(f.store.clone()));
    *vault.stale.lock().unwrap() = Some((stale, 2));

    let token = f.provider(vault).access_token(&f.tenant).await.unwrap();

    assert_eq!(token.expose_secret(), rotated.expose_secret());
    assert_eq!(f.token_calls(), 2, "one real refresh, one refused with invalid_grant");
    let record = Connections::new(f.aws.table()).get(&f.tenant).await.unwrap().unwrap();
    assert_eq!(record.status, ConnectionStatus::Connected, "no one is locked out");
}

#[tokio::test]
async fn invalid_grant_without_rotation_marks_reauth_required_and_stops_calling_box() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let refresh = f.stored().await.refresh_token.unwrap();
    f.tb.client.revoke(&f.app, &refresh).await.unwrap();
    f.tb.sim.reset_counters();
    let provider = f.provider(Arc::new(f.store.clone()));

    let err = provider.access_token(&f.tenant).await.unwrap_err();
    assert!(matches!(err, TokenError::ReauthRequired { .. }), "{err:?}");
    let record = Connections::new(f.aws.table()).get(&f.tenant).await.unwrap().unwrap();
    assert_eq!(record.status, ConnectionStatus::ReauthRequired);
    assert!(
        record
            .status_reason
            .as_deref()
            .unwrap_or_default()
            .contains("invalid_grant"),
        "{:?}",
        record.status_reason
    );

    let again = f
        .provider(Arc::new(f.store.clone()))
        .access_token(&f.tenant)
        .await
        .unwrap_err();
    assert!(matches!(again, TokenError::ReauthRequired { .. }));
    assert_eq!(
        f.tb.sim.counters().total_all(),
        1,
        "after the refusal, Box is not called again"
    );
}

#[tokio::test]
async fn a_401_forces_one_refresh_and_one_retry() {
    let f = Fixture::new(chrono::Duration::minutes(30)).await;
    // Box expires the access token although our clock says it is fresh.
    f.tb.sim.advance(Duration::from_secs(3601));
    let provider = f.provider(Arc::new(f.store.clone()));
    let client = f.tb.client.clone();
    let me = provider
        .with_token(&f.tenant, |t| {
            let c = client.clone();
            async move { c.me(&t).await }
        })
        .await
        .unwrap();
    assert_eq!(me.id, f.tb.sim.primary_admin_id());
    assert_eq!(f.token_calls(), 1);
    assert_eq!(f.tb.sim.counters().total(Endpoint::UsersMe), 2);
}

#[tokio::test]
async fn a_second_401_is_not_retried_again() {
    let f = Fixture::new(chrono::Duration::minutes(30)).await;
    let provider = f.provider(Arc::new(f.store.clone()));
    let calls = AtomicU32::new(0);
    let result: Result<(), TokenError> = provider
        .with_token(&f.tenant, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(BoxError::Unauthorized(Default::default())) }
        })
        .await;
    assert!(
        matches!(result, Err(TokenError::Box(BoxError::Unauthorized(_)))),
        "{result:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one call, one retry");
    assert_eq!(f.token_calls(), 1, "one forced refresh");
}

#[tokio::test]
async fn a_crashed_lease_holder_blocks_refreshing_only_until_its_lease_expires() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let held = f
        .aws
        .table()
        .try_acquire_lease(
            &tenant_pk(&f.tenant),
            REFRESH_LEASE,
            "crashed",
            Duration::from_millis(1500),
        )
        .await;
    assert!(matches!(held, Ok(seatsync::storage::LeaseOutcome::Acquired)));
    let token = f
        .provider(Arc::new(f.store.clone()))
        .access_token(&f.tenant)
        .await
        .unwrap();
    assert!(f.tb.client.me(&token).await.is_ok());
    assert_eq!(f.token_calls(), 1);
}

#[tokio::test]
async fn client_credentials_tenants_mint_tokens_on_demand() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let mut tokens = f.stored().await;
    tokens.kind = TokenKind::ClientCredentials;
    tokens.refresh_token = None;
    tokens.client_id = Some(f.app.client_id.clone());
    tokens.client_secret = Some(f.app.client_secret.clone());
    TokenVault::write(&f.store, &f.tenant, &tokens, &"1".repeat(40))
        .await
        .unwrap();

    let token = f
        .provider(Arc::new(f.store.clone()))
        .access_token(&f.tenant)
        .await
        .unwrap();

    assert!(f.tb.client.me(&token).await.is_ok());
    assert_eq!(f.token_calls(), 1);
    assert_eq!(f.stored().await.access_token.expose_secret(), token.expose_secret());
}

#[tokio::test]
async fn tenants_without_a_live_connection_get_no_token_and_box_is_not_called() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let provider = f.provider(Arc::new(f.store.clone()));
    let stranger = TenantId::parse("someone-else").unwrap();
    assert!(matches!(
        provider.access_token(&stranger).await,
        Err(TokenError::NotConnected)
    ));
    Connections::new(f.aws.table())
        .set_status(&f.tenant, ConnectionStatus::Disconnected, None)
        .await
        .unwrap();
    assert!(matches!(
        provider.access_token(&f.tenant).await,
        Err(TokenError::NotConnected)
    ));
    assert_eq!(f.tb.sim.counters().total_all(), 0);
}

//! The token provider under real timing (checklist items 7, 10, 11, 30, 31): concurrent tasks of one
//! instance, Secrets Manager refusing writes after Box already rotated the refresh token, a holder
//! slowed past its lease, and a late writer meeting a reconnect. In every case Box sees each refresh
//! token at most once and the tenant is never marked `reauth_required` while a valid token exists.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use seatsync::connection::{ConnectionStatus, Connections};
use seatsync::storage::{BoxTokenSet, TokenKind};
use seatsync::tokens::{TokenError, TokenProviderOptions, TokenVault};
use secrecy::{ExposeSecret, SecretString};

use super::token_fixture::{Fixture, TestVault, options};

async fn connection_status(f: &Fixture) -> ConnectionStatus {
    Connections::new(f.aws.table())
        .get(&f.tenant)
        .await
        .unwrap()
        .expect("a connection record")
        .status
}

/// Polls (bounded: at most `rounds` × 100 ms) until `check` holds.
async fn eventually<F: AsyncFn() -> bool>(rounds: u32, check: F) -> bool {
    for _ in 0..rounds {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn twenty_concurrent_callers_in_one_instance_cause_one_refresh() {
    let f = Fixture::new(chrono::Duration::minutes(2)).await;
    let provider = f.provider(Arc::new(f.store.clone()));

    let tokens = join_all((0..20).map(|_| provider.access_token(&f.tenant))).await;

    assert_eq!(f.token_calls(), 1, "one refresh at Box for 20 tasks of one instance");
    let stored = f.stored().await;
    for token in tokens {
        let token = token.expect("every task gets a token");
        assert_eq!(token.expose_secret(), stored.access_token.expose_secret());
    }
    assert_eq!(connection_status(&f).await, ConnectionStatus::Connected);
}

#[tokio::test]
async fn a_refreshed_token_survives_secret_manager_refusing_writes() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let old_refresh = f.stored().await.refresh_token.unwrap();
    // Secrets Manager refuses every write from the moment of the refresh until the test says so
    // (standing in for two minutes of refusals: the provider cannot tell the difference).
    let vault = Arc::new(TestVault::new(f.store.clone()));
    vault.refuse_writes.store(true, Ordering::SeqCst);
    let holder = f.provider(vault.clone());

    let token = holder
        .access_token(&f.tenant)
        .await
        .expect("the refreshed token is handed out although it could not be stored yet");
    assert!(f.tb.client.me(&token).await.is_ok(), "the token works at Box");
    // The same instance keeps serving it from memory.
    for _ in 0..5 {
        let again = holder.access_token(&f.tenant).await.unwrap();
        assert_eq!(again.expose_secret(), token.expose_secret());
    }
    // Another instance reads the old secret, but must not spend the old refresh token: it waits.
    let other = f
        .provider(Arc::new(f.store.clone()))
        .with_options(TokenProviderOptions {
            max_wait: Duration::from_millis(600),
            ..options()
        });
    let waited = other.access_token(&f.tenant).await;
    assert!(matches!(waited, Err(TokenError::Busy)), "{waited:?}");
    assert_eq!(f.token_calls(), 1, "the old refresh token was sent to Box once");
    assert_eq!(connection_status(&f).await, ConnectionStatus::Connected);
    assert_eq!(
        f.stored().await.refresh_token.unwrap().expose_secret(),
        old_refresh.expose_secret()
    );

    // Secrets Manager recovers: the holder's retries store the new pair, with no new refresh.
    vault.refuse_writes.store(false, Ordering::SeqCst);
    let stored = eventually(100, async || {
        f.stored().await.access_token.expose_secret() == token.expose_secret()
    })
    .await;
    assert!(stored, "the holder kept retrying and stored the refreshed pair");
    let from_other = other.access_token(&f.tenant).await.unwrap();
    assert_eq!(from_other.expose_secret(), token.expose_secret());
    assert_eq!(f.token_calls(), 1);
    assert_eq!(connection_status(&f).await, ConnectionStatus::Connected);
}

#[tokio::test]
async fn a_holder_slowed_past_its_lease_does_not_let_another_instance_spend_the_old_refresh_token() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let short_lease = TokenProviderOptions {
        lease_ttl: Duration::from_millis(500),
        ..options()
    };
    // The holder's secret write takes 3 s, six times its lease.
    let slow = Arc::new(TestVault::new(f.store.clone()));
    slow.write_delay_ms.store(3_000, Ordering::SeqCst);
    let holder = f.provider(slow.clone()).with_options(short_lease.clone());
    let other = f.provider(Arc::new(f.store.clone())).with_options(short_lease);

    let (held, taken) = tokio::join!(holder.access_token(&f.tenant), async {
        // Start once the holder has refreshed at Box and its lease has run out.
        let refreshed = eventually(100, async || f.token_calls() == 1).await;
        assert!(refreshed, "the holder refreshed");
        tokio::time::sleep(Duration::from_millis(800)).await;
        other.access_token(&f.tenant).await
    });

    let held = held.expect("the slow holder gets its token");
    let taken = taken.expect("the other instance gets the holder's token once it is stored");
    assert_eq!(taken.expose_secret(), held.expose_secret());
    assert_eq!(f.token_calls(), 1, "the old refresh token was sent to Box once");
    assert_eq!(connection_status(&f).await, ConnectionStatus::Connected);
    assert!(f.tb.client.me(&held).await.is_ok());
}

#[tokio::test]
async fn a_late_writer_does_not_overwrite_a_reconnect() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let vault = Arc::new(TestVault::new(f.store.clone()));
    vault.refuse_writes.store(true, Ordering::SeqCst);
    let holder = f.provider(vault.clone());
    let refreshed = holder.access_token(&f.tenant).await.unwrap();

    // Meanwhile a person reconnects Box: a new grant is stored.
    let pair = f.tb.sim.issue_tokens(&f.tb.sim.primary_admin_id());
    let reconnected = BoxTokenSet {
        kind: TokenKind::OAuth,
        access_token: SecretString::from(pair.access_token),
        access_expires_at: Utc::now() + chrono::Duration::minutes(60),
        refresh_token: Some(SecretString::from(pair.refresh_token)),
        obtained_at: Utc::now(),
        client_id: None,
        client_secret: None,
        enterprise_id: Some(seatsync_tests::boxsim::enterprise_id(&f.tb.sim.enterprise_id())),
    };
    TokenVault::write(&f.store, &f.tenant, &reconnected, &"7".repeat(40))
        .await
        .unwrap();
    let writes_before = vault.writes.load(Ordering::SeqCst);
    vault.refuse_writes.store(false, Ordering::SeqCst);

    // The holder's retries see the secret has moved on and stop without writing.
    let stopped = eventually(50, async || !holder.has_pending_write(&f.tenant)).await;
    assert!(stopped, "the holder's write retries ended");
    assert!(vault.writes.load(Ordering::SeqCst) >= writes_before);
    let stored = f.stored().await;
    assert_eq!(
        stored.access_token.expose_secret(),
        reconnected.access_token.expose_secret(),
        "the reconnect's grant stays"
    );
    assert_ne!(stored.access_token.expose_secret(), refreshed.expose_secret());
}

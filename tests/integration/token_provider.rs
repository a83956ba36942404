//! The token provider: one refresh however many instances ask, the rotated refresh token never
//! lost, `invalid_grant` handled without locking anyone out needlessly, 401 retried once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use box_sim::Endpoint;
use chrono::Utc;
use futures::future::join_all;
use seatsync::boxapi::BoxError;
use seatsync::connection::{ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync::storage::TokenKind;
use seatsync::storage::schema::{refresh_claim_sk, tenant_pk};
use seatsync::tokens::{REFRESH_LEASE, TokenError, TokenVault};
use secrecy::ExposeSecret;

use super::token_fixture::{Fixture, TestVault};

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
async fn a_stored_write_whose_answer_was_lost_is_not_stored_twice() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let vault = Arc::new(TestVault::new(f.store.clone()));
    // The first write reaches Secrets Manager, but its answer is lost. The retry first reads the
    // secret (the fence), finds the pair stored, and writes nothing more.
    vault.lose_write_answers.store(1, Ordering::SeqCst);
    let versions_before = f.secret_versions().await;

    let token = f.provider(vault.clone()).access_token(&f.tenant).await.unwrap();

    assert_eq!(f.token_calls(), 1);
    assert_eq!(
        vault.writes.load(Ordering::SeqCst),
        1,
        "the landed write is not repeated"
    );
    assert_eq!(f.secret_versions().await, versions_before + 1, "one new version");
    assert_eq!(f.stored().await.access_token.expose_secret(), token.expose_secret());
}

#[tokio::test]
async fn a_stale_read_never_sends_a_spent_refresh_token_to_box_again() {
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
    assert_eq!(f.token_calls(), 1, "the spent refresh token's claim kept it from Box");
    let record = Connections::new(f.aws.table()).get(&f.tenant).await.unwrap().unwrap();
    assert_eq!(record.status, ConnectionStatus::Connected, "no one is locked out");
}

#[tokio::test]
async fn invalid_grant_after_another_instance_rotated_uses_the_new_token() {
    let f = Fixture::new(chrono::Duration::minutes(1)).await;
    let stale = f.stored().await;
    let rotated = f
        .provider(Arc::new(f.store.clone()))
        .access_token(&f.tenant)
        .await
        .unwrap();
    // The claim on the spent token has expired (as it does after `claim_ttl`)…
    let fingerprint = seatsync::tokens::claim::fingerprint(stale.refresh_token.as_ref().unwrap());
    f.aws
        .table()
        .delete(&tenant_pk(&f.tenant), &refresh_claim_sk(&fingerprint))
        .await
        .unwrap();
    // …and this instance still reads the old secret twice (before and under the lease).
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

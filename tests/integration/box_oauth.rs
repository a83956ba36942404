//! OAuth with Box: codes are single-use and short-lived, refresh tokens rotate, revocation works.

use std::time::Duration;

use box_sim::SimConfig;
use seatsync::boxapi::{AppCredentials, BoxError, OAuthErrorKind};
use seatsync_tests::boxsim::{TestBox, sim_config};
use secrecy::{ExposeSecret, SecretString};

const REDIRECT: &str = "https://app.seatsync.test/oauth/box/callback";

fn config() -> SimConfig {
    SimConfig {
        redirect_uri: Some(REDIRECT.into()),
        ..sim_config()
    }
}

fn app(sim: &SimConfig) -> AppCredentials {
    AppCredentials {
        client_id: sim.client_id.clone(),
        client_secret: SecretString::from(sim.client_secret.clone()),
    }
}

fn assert_invalid_grant(result: Result<seatsync::boxapi::TokenGrant, BoxError>) {
    match result {
        Err(BoxError::OAuth {
            kind: OAuthErrorKind::InvalidGrant,
            status,
            ..
        }) => assert_eq!(status, 400),
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

#[tokio::test]
async fn an_exchanged_code_gives_tokens_that_work() {
    let cfg = config();
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let code = SecretString::from(tb.sim.issue_code(&tb.sim.primary_admin_id()));

    let grant = tb.client.exchange_code(&app, &code, REDIRECT).await.unwrap();

    assert!(grant.refresh_token.is_some());
    assert!(grant.expires_at > chrono::Utc::now() + chrono::Duration::minutes(50));
    let me = tb.client.me(&grant.access_token).await.unwrap();
    assert_eq!(me.id, tb.sim.primary_admin_id());
    assert_eq!(me.enterprise.map(|e| e.id), Some(tb.sim.enterprise_id()));
}

#[tokio::test]
async fn a_code_is_single_use() {
    let cfg = config();
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let code = SecretString::from(tb.sim.issue_code(&tb.sim.primary_admin_id()));
    tb.client.exchange_code(&app, &code, REDIRECT).await.unwrap();
    assert_invalid_grant(tb.client.exchange_code(&app, &code, REDIRECT).await);
}

#[tokio::test]
async fn a_code_older_than_30_seconds_fails() {
    let cfg = config();
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let code = SecretString::from(tb.sim.issue_code(&tb.sim.primary_admin_id()));
    tb.sim.advance(Duration::from_secs(31));
    tb.sim.reset_counters();
    assert_invalid_grant(tb.client.exchange_code(&app, &code, REDIRECT).await);
    assert_eq!(
        tb.sim.counters().total(box_sim::Endpoint::Token),
        1,
        "a code exchange is never retried"
    );
}

#[tokio::test]
async fn a_refresh_token_used_again_fails_with_invalid_grant() {
    let cfg = config();
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let pair = tb.sim.issue_tokens(&tb.sim.primary_admin_id());
    let old_refresh = SecretString::from(pair.refresh_token);
    let old_access = SecretString::from(pair.access_token);

    let rotated = tb.client.refresh(&app, &old_refresh).await.unwrap();
    let new_refresh = rotated.refresh_token.as_ref().expect("a new refresh token");
    assert_ne!(new_refresh.expose_secret(), old_refresh.expose_secret());

    assert_invalid_grant(tb.client.refresh(&app, &old_refresh).await);
    // After a refresh, Box invalidates the old access token too.
    assert!(matches!(
        tb.client.me(&old_access).await,
        Err(BoxError::Unauthorized(_))
    ));
    assert!(tb.client.me(&rotated.access_token).await.is_ok());
    assert!(tb.client.refresh(&app, new_refresh).await.is_ok());
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() {
    let cfg = config();
    let mut app = app(&cfg);
    app.client_secret = SecretString::from("not-the-secret");
    let tb = TestBox::start(cfg).await;
    let pair = tb.sim.issue_tokens(&tb.sim.primary_admin_id());
    match tb.client.refresh(&app, &SecretString::from(pair.refresh_token)).await {
        Err(BoxError::OAuth {
            kind: OAuthErrorKind::InvalidClient,
            ..
        }) => {}
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

#[tokio::test]
async fn client_credentials_mint_an_enterprise_token_without_refresh_token() {
    let cfg = config();
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let grant = tb
        .client
        .client_credentials(&app, &seatsync_tests::boxsim::enterprise_id(&tb.sim.enterprise_id()))
        .await
        .unwrap();
    assert!(grant.refresh_token.is_none());
    assert!(tb.client.me(&grant.access_token).await.is_ok());
    assert_invalid_grant(
        tb.client
            .client_credentials(&app, &seatsync_tests::boxsim::enterprise_id("999999999"))
            .await,
    );
}

#[tokio::test]
async fn a_revoked_token_no_longer_works_and_revoking_twice_is_harmless() {
    let cfg = config();
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let pair = tb.sim.issue_tokens(&tb.sim.primary_admin_id());
    let access = SecretString::from(pair.access_token);
    let refresh = SecretString::from(pair.refresh_token);
    tb.client.revoke(&app, &refresh).await.unwrap();
    tb.client.revoke(&app, &refresh).await.unwrap();
    assert!(matches!(tb.client.me(&access).await, Err(BoxError::Unauthorized(_))));
    assert_invalid_grant(tb.client.refresh(&app, &refresh).await);
}

#[tokio::test]
async fn the_authorize_url_leads_to_a_code_for_the_redirect_uri() {
    let cfg = config();
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let state = SecretString::from("state-abc");
    let url = tb
        .client
        .authorize_url(&app.client_id, REDIRECT, &state, &seatsync::boxapi::scopes::BASE);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT));
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "state-abc");
    let code = SecretString::from(pairs["code"].clone());
    assert!(tb.client.exchange_code(&app, &code, REDIRECT).await.is_ok());
}

#[tokio::test]
async fn a_token_answer_with_a_huge_expires_in_is_clamped_not_refused() {
    // The grant is spent once Box answers: refusing the answer over its `expires_in` would lose the
    // rotated refresh token. A value past any clock (u64::MAX seconds) is kept, capped.
    let cfg = SimConfig {
        access_token_ttl: Duration::from_secs(u64::MAX),
        ..config()
    };
    let app = app(&cfg);
    let tb = TestBox::start(cfg).await;
    let pair = tb.sim.issue_tokens(&tb.sim.primary_admin_id());
    let grant = tb
        .client
        .refresh(&app, &SecretString::from(pair.refresh_token))
        .await
        .expect("a huge expires_in is not a reason to drop the new tokens");
    assert!(grant.refresh_token.is_some());
    let life = grant.expires_at - chrono::Utc::now();
    assert!(
        life > chrono::TimeDelta::zero() && life <= chrono::TimeDelta::days(366),
        "{life:?}"
    );
}

//! Connecting Box through OAuth, end to end through the real router: the start, Box's consent at
//! the simulator, and the callback — with every way a callback must be refused
//! (reliability-security items 1–6).

use std::time::Duration;

use box_sim::{Endpoint, Fault, Plan, Role, UserStatus};
use chrono::Utc;
use seatsync::boxapi::AppCredentials;
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus};
use seatsync::ids::TenantId;
use seatsync::storage::TokenKind;
use seatsync::storage::schema::{SK_OAUTH_STATE, oauth_state_pk};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::connect_fixture::{CLIENT_ID, CLIENT_SECRET, Connect, REDIRECT, assert_redirect, param};

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn plain_user(c: &Connect) -> String {
    c.tb.sim
        .users()
        .into_iter()
        .find(|u| u.role == Role::User && u.status == UserStatus::Active && !u.is_app_user && !u.is_external)
        .expect("the simulated enterprise has a plain user")
        .id
}

async fn assert_nothing_stored(c: &Connect, tenant: &str) {
    assert!(c.secret(tenant).await.is_none(), "no secret may be stored");
    assert!(c.record(tenant).await.is_none(), "no connection record may be stored");
}

#[tokio::test]
async fn the_full_flow_stores_the_tokens_and_a_connected_record() {
    let c = Connect::new().await;

    let answer = c.connect("acme").await;

    assert_redirect(&answer, "status=connected");
    assert_eq!(c.token_calls(), 1, "one code exchange");
    let secret = c.secret("acme").await.expect("the tokens are in Secrets Manager");
    assert_eq!(secret.kind, TokenKind::OAuth);
    assert_eq!(secret.enterprise_id.as_deref(), Some(c.tb.sim.enterprise_id().as_str()));
    let refresh = secret.refresh_token.expect("a refresh token is stored");
    let me =
        c.tb.client
            .me(&secret.access_token)
            .await
            .expect("the stored access token works");
    assert_eq!(me.id, c.tb.sim.primary_admin_id());
    let app = AppCredentials {
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
    };
    c.tb.client
        .refresh(&app, &refresh)
        .await
        .expect("the stored refresh token is the live one");

    let record = c.record("acme").await.expect("a connection record");
    assert_eq!(record.status, ConnectionStatus::Connected);
    assert_eq!(record.method, ConnectMethod::OAuth);
    assert_eq!(record.enterprise_id, c.tb.sim.enterprise_id());
    assert_eq!(record.enterprise_name.as_deref(), Some("Acme Inc."));
    assert_eq!(record.connected_by_box_id, c.tb.sim.primary_admin_id());
    assert_eq!(record.connected_by_login, me.login);
    assert_eq!(record.connected_by_sub, "person-of-acme");
    assert_eq!(record.activity_source, ActivitySource::BoxEvents);
    assert_eq!(
        record.scopes,
        ["manage_managed_users", "manage_groups", "manage_enterprise_properties"]
    );
    assert!(Utc::now() - record.connected_at < chrono::Duration::minutes(1));
}

#[tokio::test]
async fn a_business_plan_takes_activity_from_sso() {
    let c = Connect::new().await;
    c.tb.sim.set_plan(Plan::Business);

    assert_redirect(&c.connect("acme").await, "status=connected");

    let record = c.record("acme").await.unwrap();
    assert_eq!(record.activity_source, ActivitySource::Sso);
    assert_eq!(record.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn start_binds_the_browser_with_a_cookie_and_stores_only_the_state_hash() {
    let c = Connect::new().await;
    let started = c.start("acme").await;

    let set_cookie = started.response.header("set-cookie").unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/oauth/box/callback",
        "Max-Age=600",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
    }
    let body = started.response.json();
    let expires_at: chrono::DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        (expires_at - Utc::now() - chrono::Duration::minutes(10))
            .num_seconds()
            .abs()
            < 30
    );

    let query = started.authorize_url.query().unwrap();
    assert_eq!(param(query, "redirect_uri").as_deref(), Some(REDIRECT));
    assert_eq!(param(query, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        param(query, "scope").as_deref(),
        Some("manage_managed_users manage_groups manage_enterprise_properties")
    );
    let state = param(query, "state").unwrap();
    assert!(state.len() >= 43, "at least 256 bits of base64url: {state}");
    let other = c.start("acme").await;
    assert_ne!(param(other.authorize_url.query().unwrap(), "state").unwrap(), state);
    assert_ne!(other.cookie, started.cookie);

    let item = c
        .aws
        .dynamo
        .get_item()
        .table_name(&c.aws.table_name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(oauth_state_pk(&sha256_hex(&state))),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(SK_OAUTH_STATE.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the pending state is stored under its hash");
    let nonce = started
        .cookie
        .trim_start_matches("seatsync_oauth=")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let stored = format!("{item:?}");
    assert!(!stored.contains(&state), "the raw state is never stored");
    assert!(!stored.contains(&nonce), "the raw browser nonce is never stored");
    assert!(stored.contains("acme") && stored.contains("person-of-acme"));
    assert!(item.contains_key("expires_at"));
    assert_eq!(c.token_calls(), 0);
}

#[tokio::test]
async fn content_transfer_adds_the_root_readwrite_scope() {
    let c = Connect::new().await;
    let started = c
        .start_with("acme", Some(serde_json::json!({ "content_transfer": true })))
        .await;
    let scope = param(started.authorize_url.query().unwrap(), "scope").unwrap();
    assert_eq!(
        scope,
        "manage_managed_users manage_groups manage_enterprise_properties root_readwrite"
    );
    assert_redirect(
        &c.callback(&c.authorize(&started.authorize_url).await, Some(&started.cookie))
            .await,
        "status=connected",
    );
    assert!(
        c.record("acme")
            .await
            .unwrap()
            .scopes
            .contains(&"root_readwrite".to_owned())
    );
}

#[tokio::test]
async fn a_callback_without_state_is_refused_without_calling_box() {
    let c = Connect::new().await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    let code = param(&query, "code").unwrap();

    let answer = c.callback(&format!("code={code}"), Some(&started.cookie)).await;

    let problem = answer.problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("start the connection again"),
        "{problem}"
    );
    crate::connect_fixture::assert_cookie_cleared(&answer);
    assert_eq!(c.token_calls(), 0);
    assert_nothing_stored(&c, "acme").await;
}

#[tokio::test]
async fn a_forged_state_is_refused_without_calling_box() {
    let c = Connect::new().await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    let code = param(&query, "code").unwrap();

    let answer = c
        .callback(
            &format!("code={code}&state=forged-state-0123456789"),
            Some(&started.cookie),
        )
        .await;

    answer.problem(400);
    assert_eq!(c.token_calls(), 0);
    assert_nothing_stored(&c, "acme").await;
}

#[tokio::test]
async fn an_expired_state_is_refused_without_calling_box() {
    let c = Connect::with_state_ttl(Duration::ZERO).await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;

    let answer = c.callback(&query, Some(&started.cookie)).await;

    answer.problem(400);
    assert_eq!(c.token_calls(), 0);
    assert_nothing_stored(&c, "acme").await;
}

#[tokio::test]
async fn a_replayed_callback_does_not_call_box_again() {
    let c = Connect::new().await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    assert_redirect(&c.callback(&query, Some(&started.cookie)).await, "status=connected");
    assert_eq!(c.token_calls(), 1);

    let replay = c.callback(&query, Some(&started.cookie)).await;

    replay.problem(400);
    assert_eq!(c.token_calls(), 1, "the code is not exchanged again");
    assert_eq!(c.tb.sim.counters().total(Endpoint::UsersMe), 1);
}

#[tokio::test]
async fn a_cookie_from_another_browser_is_refused_and_spends_the_state() {
    let c = Connect::new().await;
    let victim = c.start("acme").await;
    let attacker = c.start("acme").await;
    let query = c.authorize(&victim.authorize_url).await;

    let answer = c.callback(&query, Some(&attacker.cookie)).await;

    answer.problem(400);
    assert_eq!(c.token_calls(), 0);
    // Single use also when the check fails: the right browser cannot use it afterwards either.
    c.callback(&query, Some(&victim.cookie)).await.problem(400);
    assert_eq!(c.token_calls(), 0);
    assert_nothing_stored(&c, "acme").await;
}

#[tokio::test]
async fn a_missing_or_forged_cookie_is_refused_without_spending_the_state() {
    let c = Connect::new().await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    let nonce = started
        .cookie
        .trim_start_matches("seatsync_oauth=")
        .split('.')
        .next()
        .unwrap()
        .to_owned();

    c.callback(&query, None).await.problem(400);
    let forged = format!("seatsync_oauth={nonce}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    c.callback(&query, Some(&forged)).await.problem(400);
    c.callback(&query, Some("seatsync_oauth=garbage")).await.problem(400);
    assert_eq!(c.token_calls(), 0);

    assert_redirect(&c.callback(&query, Some(&started.cookie)).await, "status=connected");
}

#[tokio::test]
async fn access_denied_at_box_redirects_with_the_reason_and_stores_nothing() {
    let c = Connect::new().await;
    c.tb.sim.set_deny_consent(true);
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    assert_eq!(param(&query, "error").as_deref(), Some("access_denied"));

    let answer = c.callback(&query, Some(&started.cookie)).await;

    assert_redirect(&answer, "status=error&reason=access_denied");
    assert_eq!(c.token_calls(), 0);
    assert_nothing_stored(&c, "acme").await;
}

#[tokio::test]
async fn a_co_admin_may_connect_and_is_recorded_as_the_connecting_account() {
    let c = Connect::new().await;
    let coadmin =
        c.tb.sim
            .users()
            .into_iter()
            .find(|u| u.role == Role::Coadmin && u.status == UserStatus::Active)
            .expect("the simulated enterprise has an active co-admin")
            .id;
    c.tb.sim.set_consenting_user(&coadmin);

    assert_redirect(&c.connect("acme").await, "status=connected");

    let record = c.record("acme").await.expect("a connection record");
    assert_eq!(record.connected_by_box_id, coadmin);
    assert!(c.secret("acme").await.is_some(), "the grant is stored");
}

#[tokio::test]
async fn a_non_admin_is_refused_their_token_revoked_and_nothing_stored() {
    let c = Connect::new().await;
    c.tb.sim.set_consenting_user(&plain_user(&c));

    let answer = c.connect("acme").await;

    assert_redirect(&answer, "status=error&reason=not_admin");
    assert_nothing_stored(&c, "acme").await;
    assert_eq!(
        c.tb.sim.counters().get(Endpoint::Revoke, 200),
        1,
        "the new grant is revoked"
    );
    assert_eq!(
        c.tb.sim.counters().total(Endpoint::Events),
        0,
        "nothing more is asked of Box"
    );
}

#[tokio::test]
async fn a_tenant_connected_to_another_enterprise_is_refused() {
    let c = Connect::new().await;
    let tenant = TenantId::parse("acme").unwrap();
    let now = Utc::now();
    let existing = ConnectionRecord {
        status: ConnectionStatus::Connected,
        method: ConnectMethod::OAuth,
        enterprise_id: seatsync_tests::boxsim::enterprise_id("999999"),
        enterprise_name: Some("Other Corp".into()),
        connected_by_box_id: seatsync_tests::boxsim::box_id("1"),
        connected_by_login: None,
        connected_by_sub: "someone".into(),
        scopes: vec![],
        connected_at: now,
        activity_source: ActivitySource::BoxEvents,
        status_reason: None,
        status_since: now,
        last_sync_at: None,
    };
    c.connections.save(&tenant, &existing).await.unwrap();

    let answer = c.connect("acme").await;

    assert_redirect(&answer, "status=error&reason=connected_to_another_enterprise");
    assert!(c.secret("acme").await.is_none());
    assert_eq!(c.record("acme").await.unwrap().enterprise_id, "999999");
    assert_eq!(c.tb.sim.counters().get(Endpoint::Revoke, 200), 1);
}

#[tokio::test]
async fn an_expired_code_asks_to_connect_again_without_a_retry() {
    let c = Connect::new().await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    c.tb.sim.advance(Duration::from_secs(31));

    let answer = c.callback(&query, Some(&started.cookie)).await;

    assert_redirect(&answer, "status=error&reason=code_expired");
    assert_eq!(c.token_calls(), 1);
    assert_nothing_stored(&c, "acme").await;
}

#[tokio::test]
async fn box_down_at_the_exchange_is_reported_and_not_retried() {
    let c = Connect::new().await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    c.tb.sim.inject(
        Endpoint::Token,
        1,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );

    let answer = c.callback(&query, Some(&started.cookie)).await;

    assert_redirect(&answer, "status=error&reason=box_unavailable");
    assert_eq!(c.token_calls(), 1, "a code exchange is never retried");
    assert_nothing_stored(&c, "acme").await;
}

#[tokio::test]
async fn the_redirect_never_comes_from_the_request() {
    let c = Connect::new().await;
    let started = c.start("acme").await;
    let query = c.authorize(&started.authorize_url).await;
    let hostile = format!("{query}&redirect_uri=https://evil.example/&return_url=https://evil.example/");

    let answer = c.callback(&hostile, Some(&started.cookie)).await;

    assert_redirect(&answer, "status=connected");
    assert!(!answer.header("location").unwrap().contains("evil"));
}

//! Reliability item 27: the logs of a whole connect and token lifecycle — every route, refresh,
//! a 401 retry, client credentials, refusals, disconnect — contain none of the tokens, codes,
//! states, cookies or secrets involved, even at TRACE level for every crate.

use std::sync::Arc;
use std::time::Duration;

use seatsync::boxapi::AppCredentials;
use seatsync::ids::TenantId;
use seatsync::tokens::{TokenProvider, TokenProviderOptions};
use seatsync_tests::apigw::ApiRequest;
use seatsync_tests::logs::capture_here;
use secrecy::SecretString;
use serde_json::json;

use crate::connect_fixture::{CLIENT_ID, CLIENT_SECRET, COOKIE_KEY, Connect, param};

#[tokio::test]
async fn a_whole_connect_and_token_lifecycle_logs_no_secret() {
    let (logs, _guard) = capture_here();
    let c = Connect::new().await;
    let mut secrets: Vec<String> = vec![CLIENT_SECRET.into(), COOKIE_KEY.into()];

    // Connect through OAuth, keeping the browser's state and cookie.
    let started = c.start("acme").await;
    let state = started
        .authorize_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    secrets.extend(state.clone());
    secrets.push(
        started
            .cookie
            .split_once('=')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default(),
    );
    let query = c.authorize(&started.authorize_url).await;
    secrets.extend(param(&query, "code"));
    let answer = c.callback(&query, Some(&started.cookie)).await;
    assert_eq!(answer.status, 302);
    // A replay and a forged state are refused.
    assert_eq!(c.callback(&query, Some(&started.cookie)).await.status, 400);
    assert_eq!(
        c.callback("code=forged&state=forged-state-value", Some(&started.cookie))
            .await
            .status,
        400
    );

    // Tokens: a refresh ahead of expiry, then a 401 that forces one more.
    let app = AppCredentials {
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
    };
    let options = TokenProviderOptions {
        refresh_margin: Duration::from_secs(2 * 3600),
        ..TokenProviderOptions::default()
    };
    let provider = TokenProvider::new(
        Arc::new(c.secrets.clone()),
        c.aws.table(),
        c.tb.client.clone(),
        app,
        options,
    );
    let tenant = TenantId::parse("acme").unwrap();
    provider.access_token(&tenant).await.expect("a refreshed token");
    c.tb.sim.advance(Duration::from_secs(3601));
    let client = c.tb.client.clone();
    provider
        .with_token(&tenant, |t| {
            let client = client.clone();
            async move { client.me(&t).await }
        })
        .await
        .expect("a 401 is repaired by one refresh");

    // Client credentials for a second tenant, a wrong secret refused, then both disconnected.
    let cc = |secret: &str| json!({ "client_id": CLIENT_ID, "client_secret": secret, "enterprise_id": c.tb.sim.enterprise_id() });
    let put = |secret: &str| {
        ApiRequest::authorized("PUT", "/connections/box/client-credentials", Connect::claims("globex"))
            .json(&cc(secret))
    };
    secrets.push("wrong-secret-1f2e3d4c".into());
    assert_eq!(c.send(put("wrong-secret-1f2e3d4c")).await.status, 422);
    assert_eq!(c.send(put(CLIENT_SECRET)).await.status, 200);
    for tenant in ["acme", "globex"] {
        let gone = c
            .send(ApiRequest::authorized(
                "DELETE",
                "/connections/box",
                Connect::claims(tenant),
            ))
            .await;
        assert_eq!(gone.status, 204);
    }

    secrets.extend(c.tb.sim.issued_secrets());
    let text = logs.text();
    assert!(
        text.contains("refreshed the Box token"),
        "the capture saw the refresh (it is not empty)"
    );
    assert!(
        text.lines().count() > 100,
        "only {} log lines captured",
        text.lines().count()
    );
    let leaked: Vec<_> = secrets
        .iter()
        .filter(|s| s.len() >= 8 && text.contains(s.as_str()))
        .collect();
    println!(
        "log scan: {} secrets searched in {} log lines at TRACE, {} found",
        secrets.len(),
        text.lines().count(),
        leaked.len()
    );
    assert!(leaked.is_empty(), "{} secret values appear in the logs", leaked.len());
}

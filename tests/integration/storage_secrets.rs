//! The Secrets Manager adapter against moto: the per-tenant Box token secret, idempotent writes
//! by `ClientRequestToken`, deletion, and redaction.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use seatsync::ids::TenantId;
use seatsync::storage::{BoxTokenSet, SecretError, TokenKind, request_token_from};
use seatsync_tests::aws::TestAws;
use secrecy::{ExposeSecret, SecretString};

const ACCESS: &str = "acc-7f3e9c1d2b4a5e6f";
const REFRESH: &str = "ref-1a2b3c4d5e6f7a8b";
const CLIENT_SECRET: &str = "csec-9e8d7c6b5a4f3e2d";

fn tokens(access: &str, refresh: &str) -> BoxTokenSet {
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    BoxTokenSet {
        kind: TokenKind::OAuth,
        access_token: SecretString::from(access),
        access_expires_at: now + chrono::Duration::minutes(60),
        refresh_token: Some(SecretString::from(refresh)),
        obtained_at: now,
        client_id: Some("client-123".into()),
        client_secret: Some(SecretString::from(CLIENT_SECRET)),
        enterprise_id: Some(seatsync_tests::boxsim::enterprise_id("987654")),
    }
}

fn same(a: &BoxTokenSet, b: &BoxTokenSet) -> bool {
    let exposed = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
    a.kind == b.kind
        && a.access_token.expose_secret() == b.access_token.expose_secret()
        && a.access_expires_at == b.access_expires_at
        && exposed(&a.refresh_token) == exposed(&b.refresh_token)
        && a.obtained_at == b.obtained_at
        && a.client_id == b.client_id
        && exposed(&a.client_secret) == exposed(&b.client_secret)
        && a.enterprise_id == b.enterprise_id
}

async fn version_count(aws: &TestAws, name: &str) -> usize {
    let versions = aws
        .secrets
        .list_secret_version_ids()
        .secret_id(name)
        .send()
        .await
        .unwrap();
    versions.versions().len()
}

#[tokio::test]
async fn token_secret_round_trips() {
    let aws = TestAws::new().await;
    let store = aws.secret_store();
    let name = store.box_secret_name(&TenantId::parse("acme").unwrap());
    assert_eq!(name, format!("{}tenants/acme/box", aws.secret_prefix));

    assert!(store.read_json::<BoxTokenSet>(&name).await.unwrap().is_none());
    let written = tokens(ACCESS, REFRESH);
    let token = request_token_from(&SecretString::from("initial-connect"));
    let version = store.write_json(&name, &written, &token).await.unwrap();
    let read = store.read_json::<BoxTokenSet>(&name).await.unwrap().unwrap();
    assert!(same(&read.value, &written), "{:?} != {:?}", read.value, written);
    assert_eq!(read.version_id, version);

    // Client-credentials sets have no refresh token or client fields.
    let other = store.box_secret_name(&TenantId::parse("ccg").unwrap());
    let ccg = BoxTokenSet {
        kind: TokenKind::ClientCredentials,
        refresh_token: None,
        client_secret: None,
        ..tokens(ACCESS, "")
    };
    store
        .write_json(&other, &ccg, &request_token_from(&SecretString::from("ccg")))
        .await
        .unwrap();
    let read = store.read_json::<BoxTokenSet>(&other).await.unwrap().unwrap();
    assert!(same(&read.value, &ccg));
}

#[tokio::test]
async fn same_request_token_writes_once() {
    let aws = TestAws::new().await;
    let store = aws.secret_store();
    let name = store.box_secret_name(&TenantId::parse("retry").unwrap());
    let first = tokens(ACCESS, REFRESH);

    // A refresh whose secret write is retried: same token, same value → one version.
    let token = request_token_from(&SecretString::from("refresh-token-being-replaced"));
    let v1 = store.write_json(&name, &first, &token).await.unwrap();
    let v1_again = store.write_json(&name, &first, &token).await.unwrap();
    assert_eq!(v1, v1_again);
    assert_eq!(version_count(&aws, &name).await, 1);

    // The next refresh, with the rotated token: a new AWSCURRENT version.
    let second = tokens("acc-second", "ref-second");
    let next_token = request_token_from(&SecretString::from(REFRESH));
    let v2 = store.write_json(&name, &second, &next_token).await.unwrap();
    assert_ne!(v2, v1);
    let v2_again = store.write_json(&name, &second, &next_token).await.unwrap();
    assert_eq!(v2, v2_again);
    let current = store.read_json::<BoxTokenSet>(&name).await.unwrap().unwrap();
    assert!(same(&current.value, &second));
    assert_eq!(current.version_id, v2);
    assert_eq!(version_count(&aws, &name).await, 2);

    // A request token outside 32..=64 characters is refused before calling AWS.
    assert!(matches!(
        store.write_json(&name, &second, "short").await,
        Err(SecretError::InvalidRequestToken)
    ));
}

#[tokio::test]
async fn delete_is_idempotent() {
    let aws = TestAws::new().await;
    let store = aws.secret_store();
    let name = store.box_secret_name(&TenantId::parse("leaving").unwrap());
    store
        .write_json(
            &name,
            &tokens(ACCESS, REFRESH),
            &request_token_from(&SecretString::from("x")),
        )
        .await
        .unwrap();

    store.delete(&name).await.unwrap();
    assert!(store.read_json::<BoxTokenSet>(&name).await.unwrap().is_none());
    store.delete(&name).await.unwrap();
    store
        .delete(&store.box_secret_name(&TenantId::parse("never-existed").unwrap()))
        .await
        .unwrap();

    // Reconnecting after a delete creates the secret again.
    let again = tokens("acc-again", "ref-again");
    store
        .write_json(&name, &again, &request_token_from(&SecretString::from("y")))
        .await
        .unwrap();
    assert!(same(
        &store.read_json::<BoxTokenSet>(&name).await.unwrap().unwrap().value,
        &again
    ));
}

/// Collects everything a `tracing` fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secret_debug_and_errors_redact_tokens() {
    let secrets = [ACCESS, REFRESH, CLIENT_SECRET];
    let set = tokens(ACCESS, REFRESH);
    let debug = format!("{set:?} {set:#?}");
    for secret in secrets {
        assert!(!debug.contains(secret), "Debug shows a secret: {debug}");
    }

    let aws = TestAws::new().await;
    let store = aws.secret_store();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A full write/read cycle logs no secret.
    let name = store.box_secret_name(&TenantId::parse("logs").unwrap());
    store
        .write_json(&name, &set, &request_token_from(&SecretString::from(REFRESH)))
        .await
        .unwrap();
    store.read_json::<BoxTokenSet>(&name).await.unwrap().unwrap();

    // A secret whose JSON does not match: the error names the position, not the content
    // (serde_json's own message would quote the unexpected token value).
    let broken = store.box_secret_name(&TenantId::parse("broken").unwrap());
    let raw = format!(r#"{{"kind":"{REFRESH}","access_token":{{"value":"{ACCESS}"}}}}"#);
    aws.secrets
        .create_secret()
        .name(&broken)
        .secret_string(raw)
        .send()
        .await
        .unwrap();
    let err = store.read_json::<BoxTokenSet>(&broken).await.unwrap_err();
    assert!(matches!(err, SecretError::Malformed { .. }), "{err:?}");
    tracing::error!(error = %err, details = ?err, "read failed");
    let messages = format!("{err} {err:?}");
    let messages = format!("{messages} {:#}", anyhow::Error::new(err));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("read_json"), "spans were captured: {logs}");
    for secret in secrets {
        assert!(!messages.contains(secret), "an error shows a secret: {messages}");
        assert!(!logs.contains(secret), "the logs show a secret: {logs}");
    }
}

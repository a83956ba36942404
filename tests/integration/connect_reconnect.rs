//! Reconnecting (checklist item 32): a different Box enterprise starts from a clean state — no
//! user, date or checkpoint of the previous enterprise is used for a report or an action — and
//! every reconnect revokes the grant it replaces.

use box_sim::Endpoint;
use seatsync::connection::ConnectionStatus;
use seatsync::ids::TenantId;
use seatsync::sync::LicenseStore;
use seatsync_tests::apigw::ApiRequest;
use secrecy::ExposeSecret;

use super::actions_fixture::{enterprise, sync_into};
use super::connect_fixture::{Connect, assert_redirect};

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn disconnect(c: &Connect, tenant: &str) {
    let answer = c
        .send(ApiRequest::authorized(
            "DELETE",
            "/connections/box",
            Connect::claims(tenant),
        ))
        .await;
    assert!(answer.status < 300, "{}", String::from_utf8_lossy(&answer.body));
}

/// The previous enterprise's users, as the license state holds them.
async fn stored_user_ids(c: &Connect) -> Vec<String> {
    let mut ids: Vec<_> = c
        .aws
        .table()
        .load_users(&acme())
        .await
        .unwrap()
        .into_keys()
        .map(String::from)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn reconnecting_a_different_enterprise_starts_from_a_clean_state() {
    let first = Connect::new().await;
    assert_redirect(&first.connect("acme").await, "status=connected");
    sync_into(&first.aws, &first.tb, &acme()).await;
    let old_users = stored_user_ids(&first).await;
    assert!(!old_users.is_empty());
    let table = first.aws.table();
    assert!(table.get_checkpoint(&acme()).await.unwrap().is_some());
    assert!(table.get_summary(&acme()).await.unwrap().is_some());

    disconnect(&first, "acme").await;
    let second = first.another_enterprise(enterprise(99, "55500555")).await;
    assert_redirect(&second.connect("acme").await, "status=connected");

    let record = second.record("acme").await.unwrap();
    assert_eq!(record.enterprise_id, "55500555");
    assert_eq!(record.status, ConnectionStatus::Connected);
    assert!(
        stored_user_ids(&second).await.is_empty(),
        "no user of the previous enterprise is kept"
    );
    assert!(
        table.get_checkpoint(&acme()).await.unwrap().is_none(),
        "no checkpoint: the new enterprise gets a full back-fill"
    );
    assert!(
        table.get_summary(&acme()).await.unwrap().is_none(),
        "no summary of the previous enterprise"
    );

    // The first sync of the new enterprise back-fills its history and holds only its users.
    sync_into(&second.aws, &second.tb, &acme()).await;
    let new_users = stored_user_ids(&second).await;
    let expected: std::collections::BTreeSet<_> = second.tb.sim.listed_users().into_iter().map(|u| u.id).collect();
    assert_eq!(
        new_users.iter().cloned().collect::<std::collections::BTreeSet<_>>(),
        expected
    );
    assert!(new_users.iter().all(|id| !old_users.contains(id)));
    let checkpoint = table.get_checkpoint(&acme()).await.unwrap().unwrap();
    assert!(checkpoint.history_since.is_some(), "the new enterprise was back-filled");
}

#[tokio::test]
async fn reconnecting_the_same_enterprise_revokes_the_previous_grant() {
    let c = Connect::new().await;
    assert_redirect(&c.connect("acme").await, "status=connected");
    let before = c.secret("acme").await.unwrap();
    let old_refresh = before.refresh_token.clone().unwrap();
    let revokes_before = c.tb.sim.counters().total(Endpoint::Revoke);

    assert_redirect(&c.connect("acme").await, "status=connected");

    let after = c.secret("acme").await.unwrap();
    assert_ne!(
        after.refresh_token.as_ref().unwrap().expose_secret(),
        old_refresh.expose_secret()
    );
    assert_eq!(
        c.tb.sim.counters().total(Endpoint::Revoke),
        revokes_before + 1,
        "the replaced grant was revoked"
    );
    let app = seatsync::boxapi::AppCredentials {
        client_id: super::connect_fixture::CLIENT_ID.into(),
        client_secret: secrecy::SecretString::from(super::connect_fixture::CLIENT_SECRET),
    };
    assert!(
        c.tb.client.refresh(&app, &old_refresh).await.is_err(),
        "the old refresh token no longer works"
    );
    assert!(c.tb.client.me(&after.access_token).await.is_ok(), "the new grant works");
}

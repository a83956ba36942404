//! Changing users at Box: deactivate, reactivate, delete (refused while content is owned),
//! transfer of content, ending sessions.

use box_sim::{Endpoint, EnterpriseSpec, SimConfig};
use seatsync::boxapi::{BoxError, DeleteOptions, TransferOptions, UserStatus, parse_user_id};
use seatsync_tests::boxsim::{TestBox, box_id, sim_config};

fn config() -> SimConfig {
    SimConfig {
        enterprise: EnterpriseSpec {
            users: 60,
            content_owners: 0.5,
            inactive_users: 0.0,
            ..EnterpriseSpec::default()
        },
        ..sim_config()
    }
}

fn plain_user(tb: &TestBox, owns_content: bool) -> box_sim::SimUser {
    tb.sim
        .users()
        .into_iter()
        .find(|u| {
            u.role == "user"
                && !u.is_app_user
                && !u.is_external
                && u.owns_content == owns_content
                && u.status == "active"
        })
        .expect("a matching simulated user")
}

#[tokio::test]
async fn deactivating_and_reactivating_changes_status_at_box() {
    let tb = TestBox::start(config()).await;
    let user = plain_user(&tb, false);
    let token = tb.admin_token();

    let after = tb
        .client
        .set_user_status(&token, &box_id(&user.id), UserStatus::Inactive)
        .await
        .unwrap();
    assert_eq!(after.status, UserStatus::Inactive);
    assert_eq!(tb.sim.user(&user.id).unwrap().status, "inactive");

    let back = tb
        .client
        .set_user_status(&token, &box_id(&user.id), UserStatus::Active)
        .await
        .unwrap();
    assert_eq!(back.status, UserStatus::Active);
    assert_eq!(tb.sim.user(&user.id).unwrap().status, "active");
}

#[tokio::test]
async fn deleting_a_content_owner_is_refused_and_changes_nothing() {
    let tb = TestBox::start(config()).await;
    let owner = plain_user(&tb, true);
    let before = tb.sim.users();
    tb.sim.reset_counters();

    let err = tb
        .client
        .delete_user(&tb.admin_token(), &box_id(&owner.id), DeleteOptions::default())
        .await
        .unwrap_err();

    assert!(matches!(err, BoxError::OwnsContent(_)), "{err:?}");
    assert_eq!(tb.sim.users(), before, "the simulator's state changed");
    assert_eq!(
        tb.sim.counters().total(Endpoint::UserDelete),
        1,
        "a refusal is not retried"
    );
}

#[tokio::test]
async fn transferring_content_then_deleting_succeeds() {
    let tb = TestBox::start(config()).await;
    let owner = plain_user(&tb, true);
    let admin = tb.sim.primary_admin_id();
    let token = tb.admin_token();

    let folder = tb
        .client
        .transfer_content(&token, &box_id(&owner.id), &box_id(&admin), TransferOptions::default())
        .await
        .unwrap();
    assert!(!folder.id.is_empty());
    assert!(!tb.sim.user(&owner.id).unwrap().owns_content);
    assert!(tb.sim.user(&admin).unwrap().owns_content);

    tb.client
        .delete_user(&token, &box_id(&owner.id), DeleteOptions::default())
        .await
        .unwrap();
    assert!(tb.sim.user(&owner.id).is_none());
    assert!(matches!(
        tb.client.user(&token, &box_id(&owner.id)).await,
        Err(BoxError::NotFound(_))
    ));
}

#[tokio::test]
async fn ending_sessions_is_accepted() {
    let tb = TestBox::start(config()).await;
    let user = plain_user(&tb, false);
    tb.client
        .terminate_sessions(&tb.admin_token(), &[&box_id(&user.id)])
        .await
        .unwrap();
    assert_eq!(tb.sim.terminated_sessions(), vec![user.id]);
}

#[tokio::test]
async fn a_non_admin_cannot_change_users() {
    let tb = TestBox::start(config()).await;
    let actor = plain_user(&tb, false);
    let target = plain_user(&tb, true);
    let err = tb
        .client
        .set_user_status(&tb.token_for(&actor.id), &box_id(&target.id), UserStatus::Inactive)
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::Forbidden(_)), "{err:?}");
    assert_eq!(tb.sim.user(&target.id).unwrap().status, "active");
}

#[tokio::test]
async fn ids_that_are_not_box_ids_never_reach_box() {
    let tb = TestBox::start(config()).await;
    tb.sim.reset_counters();
    for bad in ["../me", "1/../../x", "", "12a"] {
        // The client's methods take a `BoxUserId`: the one way from Box's text to one refuses these.
        let err = parse_user_id(bad).unwrap_err();
        assert!(matches!(err, BoxError::Rejected(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(tb.sim.counters().total_all(), 0);
}

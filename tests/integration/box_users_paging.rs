//! Listing users: marker paging returns every user exactly once, in the fewest requests.

use std::collections::HashSet;

use box_sim::{EnterpriseSpec, SimConfig};
use futures::TryStreamExt;
use seatsync::boxapi::{Role, UserStatus, UserType};
use seatsync_tests::boxsim::{TestBox, sim_config};

fn enterprise(users: usize) -> SimConfig {
    SimConfig {
        enterprise: EnterpriseSpec {
            users,
            app_users: 0.0,
            external_users: 0,
            history_days: 30,
            ..EnterpriseSpec::default()
        },
        ..sim_config()
    }
}

#[tokio::test]
async fn listing_25000_users_takes_25_marker_pages_each_user_once() {
    let tb = TestBox::start(enterprise(25_000)).await;
    tb.sim.reset_counters();

    let users: Vec<_> = tb
        .client
        .users(tb.admin_token(), UserType::Managed)
        .try_collect()
        .await
        .unwrap();

    let ids: HashSet<_> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(users.len(), 25_000);
    assert_eq!(ids.len(), 25_000, "a user was returned twice");
    let truth: HashSet<_> = tb
        .sim
        .users()
        .into_iter()
        .filter(|u| !u.is_external)
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, truth);
    let requests = tb.sim.counters().total(box_sim::Endpoint::Users);
    println!("listed {} users in {requests} requests", users.len());
    assert_eq!(requests, 25);
}

#[tokio::test]
async fn listed_users_carry_every_field_the_product_needs() {
    let tb = TestBox::start(enterprise(300)).await;
    let users: Vec<_> = tb
        .client
        .users(tb.admin_token(), UserType::Managed)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(users.len(), 300);
    for u in &users {
        assert!(u.login.is_some(), "login missing for {}", u.id);
        assert_ne!(u.status, UserStatus::Unknown, "status missing for {}", u.id);
        assert!(u.role.is_some(), "role missing for {}", u.id);
        assert!(u.created_at.is_some(), "created_at missing for {}", u.id);
    }
    assert!(users.iter().any(|u| u.role == Some(Role::Admin)));
}

#[tokio::test]
async fn the_managed_listing_leaves_external_users_out() {
    let config = SimConfig {
        enterprise: EnterpriseSpec {
            users: 40,
            external_users: 7,
            ..EnterpriseSpec::default()
        },
        ..sim_config()
    };
    let tb = TestBox::start(config).await;
    let managed: Vec<_> = tb
        .client
        .users(tb.admin_token(), UserType::Managed)
        .try_collect()
        .await
        .unwrap();
    let listed: HashSet<_> = managed.iter().map(|u| u.id.clone()).collect();
    let sim_users = tb.sim.users();
    let external: HashSet<_> = sim_users
        .iter()
        .filter(|u| u.is_external)
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(external.len(), 7);
    assert!(listed.is_disjoint(&external));
    assert_eq!(listed.len(), sim_users.len() - external.len());
}

#[tokio::test]
async fn app_users_are_flagged_platform_access_only() {
    let config = SimConfig {
        enterprise: EnterpriseSpec {
            users: 200,
            app_users: 0.05,
            ..EnterpriseSpec::default()
        },
        ..sim_config()
    };
    let tb = TestBox::start(config).await;
    let users: Vec<_> = tb
        .client
        .users(tb.admin_token(), UserType::Managed)
        .try_collect()
        .await
        .unwrap();
    let app_users = users.iter().filter(|u| u.is_platform_access_only).count();
    let truth = tb.sim.users().iter().filter(|u| u.is_app_user).count();
    assert!(truth > 0);
    assert_eq!(app_users, truth);
}

//! How the Box client meets failure: bounded retries for 429, 5xx and dropped connections, no
//! retry for refusals, a timeout on every request, and typed errors.

use std::time::{Duration, Instant};

use box_sim::{Endpoint, Fault, Faults};
use seatsync::boxapi::{BoxError, ClientOptions, DeleteOptions, RetryPolicy, TransferOptions};
use seatsync_tests::boxsim::{TestBox, box_id, client_for, sim_config};
use secrecy::SecretString;

#[tokio::test]
async fn a_429_waits_at_least_retry_after_then_succeeds() {
    let tb = TestBox::start(sim_config()).await;
    tb.sim.inject(
        Endpoint::UsersMe,
        1,
        Fault::Status {
            status: 429,
            retry_after: Some(2),
        },
    );
    let started = Instant::now();
    let me = tb.client.me(&tb.admin_token()).await.unwrap();
    assert_eq!(me.id, tb.sim.primary_admin_id());
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retried after {:?}, before retry-after",
        started.elapsed()
    );
    assert_eq!(tb.sim.counters().get(Endpoint::UsersMe, 429), 1);
    assert_eq!(tb.sim.counters().get(Endpoint::UsersMe, 200), 1);
}

#[tokio::test]
async fn constant_429s_give_up_after_bounded_attempts() {
    let mut config = sim_config();
    config.faults = Faults {
        share_429: 1.0,
        retry_after_secs: 0,
        ..Faults::default()
    };
    let tb = TestBox::start(config).await;
    let err = tb.client.me(&tb.admin_token()).await.unwrap_err();
    assert!(matches!(err, BoxError::RateLimited { attempts: 5, .. }), "{err:?}");
    assert_eq!(tb.sim.counters().total(Endpoint::UsersMe), 5);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let tb = TestBox::start(sim_config()).await;
    tb.sim.inject(
        Endpoint::UsersMe,
        1,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
    );
    tb.sim.inject(
        Endpoint::UsersMe,
        2,
        Fault::Status {
            status: 502,
            retry_after: None,
        },
    );
    tb.sim.inject(
        Endpoint::UsersMe,
        3,
        Fault::Status {
            status: 503,
            retry_after: Some(0),
        },
    );
    assert!(tb.client.me(&tb.admin_token()).await.is_ok());
    assert_eq!(tb.sim.counters().total(Endpoint::UsersMe), 4);
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let tb = TestBox::start(sim_config()).await;
    tb.sim.inject(Endpoint::UsersMe, 1, Fault::Drop);
    tb.sim.inject(Endpoint::UsersMe, 2, Fault::Drop);
    assert!(tb.client.me(&tb.admin_token()).await.is_ok());
}

#[tokio::test]
async fn box_unavailable_is_its_own_variant_after_bounded_attempts() {
    let mut config = sim_config();
    config.faults = Faults {
        share_5xx: 1.0,
        ..Faults::default()
    };
    let tb = TestBox::start(config).await;
    let err = tb.client.me(&tb.admin_token()).await.unwrap_err();
    assert!(matches!(err, BoxError::Unavailable { attempts: 5, .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn refusals_are_not_retried() {
    let tb = TestBox::start(sim_config()).await;
    let err = tb
        .client
        .user(&tb.admin_token(), &box_id("123456789"))
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::NotFound(_)), "{err:?}");
    assert_eq!(tb.sim.counters().total(Endpoint::UserGet), 1);
}

#[tokio::test]
async fn an_unknown_token_is_unauthorized() {
    let tb = TestBox::start(sim_config()).await;
    let err = tb.client.me(&SecretString::from("not-a-token")).await.unwrap_err();
    assert!(matches!(err, BoxError::Unauthorized(_)), "{err:?}");
    assert!(err.is_auth_failure());
    assert_eq!(tb.sim.counters().total(Endpoint::UsersMe), 1);
}

#[tokio::test]
async fn an_expired_access_token_is_unauthorized() {
    let tb = TestBox::start(sim_config()).await;
    let token = tb.admin_token();
    tb.sim.advance(Duration::from_secs(3601));
    assert!(matches!(tb.client.me(&token).await, Err(BoxError::Unauthorized(_))));
}

#[tokio::test]
async fn every_request_times_out() {
    let tb = TestBox::start(sim_config()).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        retry: RetryPolicy {
            max_attempts: 2,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
    };
    let client = client_for(&tb.sim, options);
    tb.sim
        .inject(Endpoint::UsersMe, 1, Fault::Delay(Duration::from_secs(3)));
    tb.sim
        .inject(Endpoint::UsersMe, 2, Fault::Delay(Duration::from_secs(3)));
    let err = client.me(&tb.admin_token()).await.unwrap_err();
    match err {
        BoxError::Unavailable { attempts: 2, detail } => assert!(detail.contains("timed out"), "{detail}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn errors_carry_box_request_ids_and_no_tokens() {
    let tb = TestBox::start(sim_config()).await;
    let token = tb.admin_token();
    let err = tb.client.user(&token, &box_id("42")).await.unwrap_err();
    let detail = err.detail().expect("a Box error detail");
    assert!(detail.request_id.is_some(), "{detail:?}");
    let text = format!("{err} {err:?}");
    for secret in tb.sim.issued_secrets() {
        assert!(!text.contains(&secret), "an issued secret appears in an error");
    }
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_gives_up_instead_of_retrying_early() {
    let tb = TestBox::start(sim_config()).await;
    tb.sim.inject(
        Endpoint::UsersMe,
        1,
        Fault::Status {
            status: 429,
            retry_after: Some(120),
        },
    );
    let err = tb.client.me(&tb.admin_token()).await.unwrap_err();
    match err {
        BoxError::RateLimited {
            attempts: 1,
            retry_after,
        } => assert_eq!(retry_after, Some(Duration::from_secs(120))),
        other => panic!("expected RateLimited after one attempt, got {other:?}"),
    }
    assert_eq!(tb.sim.counters().total(Endpoint::UsersMe), 1);
}

#[tokio::test]
async fn retries_stop_at_the_time_budget() {
    let mut config = sim_config();
    config.faults = Faults {
        share_5xx: 1.0,
        retry_after_secs: 0,
        ..Faults::default()
    };
    let tb = TestBox::start(config).await;
    let options = ClientOptions {
        retry: RetryPolicy {
            max_attempts: 50,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(100),
            max_elapsed: Duration::from_millis(450),
        },
        ..ClientOptions::default()
    };
    let client = client_for(&tb.sim, options);
    let err = client.me(&tb.admin_token()).await.unwrap_err();
    let attempts = tb.sim.counters().total(Endpoint::UsersMe);
    assert!(matches!(err, BoxError::Unavailable { .. }), "{err:?}");
    assert!(
        (2..=10).contains(&attempts),
        "{attempts} attempts within a 450 ms budget of 50-150 ms waits"
    );
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_is_still_a_success() {
    let tb = TestBox::start(sim_config()).await;
    let user = tb
        .sim
        .users()
        .into_iter()
        .find(|u| u.role == "user" && !u.owns_content && !u.is_external && !u.is_app_user)
        .expect("a deletable user");
    tb.sim.inject(Endpoint::UserDelete, 1, Fault::DropAfterHandler);
    tb.client
        .delete_user(&tb.admin_token(), &box_id(&user.id), DeleteOptions::default())
        .await
        .unwrap();
    assert!(tb.sim.user(&user.id).is_none());
    assert_eq!(
        tb.sim.counters().get(Endpoint::UserDelete, 404),
        1,
        "the retry found the user already gone"
    );
}

#[tokio::test]
async fn a_transfer_is_not_repeated_after_an_ambiguous_server_error() {
    let tb = TestBox::start(sim_config()).await;
    let owner = tb
        .sim
        .users()
        .into_iter()
        .find(|u| u.role == "user" && u.owns_content && !u.is_external && !u.is_app_user)
        .expect("a content owner");
    tb.sim
        .inject(Endpoint::TransferContent, 1, Fault::AfterHandler { status: 503 });
    let err = tb
        .client
        .transfer_content(
            &tb.admin_token(),
            &box_id(&owner.id),
            &box_id(&tb.sim.primary_admin_id()),
            TransferOptions::default(),
        )
        .await;
    assert!(matches!(err, Err(BoxError::Unavailable { attempts: 1, .. })), "{err:?}");
    assert_eq!(
        tb.sim.counters().total(Endpoint::TransferContent),
        1,
        "a transfer is never sent twice"
    );
    assert!(
        !tb.sim.user(&owner.id).unwrap().owns_content,
        "Box did the transfer before answering 503"
    );
}

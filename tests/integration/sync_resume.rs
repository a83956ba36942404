//! usage-sync runs that outlive one invocation, end to end on moto and the simulators: a deadline
//! in any phase continues through the queue, a killed invocation's redelivery resumes its run, a
//! run that is really alive makes the delivery wait, and a continuation is never dropped.

use std::time::Duration;

use async_trait::async_trait;
use box_sim::{Endpoint, Fault, Faults};
use chrono::Utc;
use seatsync::connection::{ActivitySource, ConnectionStatus};
use seatsync::sso::SsoConfig;
use seatsync::storage::schema::tenant_pk;
use seatsync::sync::invocation::handle;
use seatsync::sync::service::SYNC_LEASE_GRACE;
use seatsync::sync::{LicenseStore, SyncKind, SyncMessage, SyncOutcome, SyncQueue, TenantOutcome};
use seatsync_tests::sync::{enterprise, truth};
use secrecy::SecretString;
use serde_json::{Value, json};
use sso_sim::{OktaConfig, OktaSim, people_from};
use tokio::time::Instant;

use crate::sync_service::{Fixture, business, business_tenant, message};

fn sqs_event(id: &str, message: &SyncMessage) -> Value {
    json!({ "Records": [{ "messageId": id, "body": serde_json::to_string(message).unwrap(), "eventSource": "aws:sqs" }] })
}

fn failed_ids(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .expect("a partial-batch answer")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// Delivers the one queued continuation and returns the batch answer.
async fn deliver_the_continuation(f: &Fixture) -> (SyncMessage, Value) {
    let queued = f.queued().await;
    assert_eq!(queued.len(), 1, "exactly one continuation queued: {queued:?}");
    let (id, next) = queued.into_iter().next().unwrap();
    assert!(next.continuation);
    let answer = handle(&f.service, &f.queue, sqs_event(&id, &next), None).await.unwrap();
    (next, answer)
}

#[tokio::test]
async fn a_deadline_during_the_listing_of_5000_users_continues_and_loses_no_user() {
    let mut sim = enterprise(5_000);
    // Few activity events, so the deadline falls in the listing, not in the event read.
    sim.enterprise.history_days = 30;
    sim.enterprise.total_login_events = Some(5_000);
    sim.enterprise.total_content_events = Some(5_000);
    let mut f = Fixture::new(sim).await;
    f.service.syncer.options.deadline_margin = Duration::from_secs(1);
    let t = f
        .connect("acme", ConnectionStatus::Connected, ActivitySource::BoxEvents)
        .await;
    // The third page of users takes 15 s; the deadline, 8 s away, falls while users are listed.
    f.tb.sim.reset_counters();
    f.tb.sim
        .inject(Endpoint::Users, 3, Fault::Delay(Duration::from_secs(15)));
    let deadline = Instant::now() + f.service.syncer.options.deadline_margin + Duration::from_secs(8);
    let outcome = f.service.run(&f.queue, &message(&t, "slot-1"), Some(deadline)).await;
    let pages = f.tb.sim.counters().get(Endpoint::Users, 200);
    assert!(
        matches!(outcome, TenantOutcome::Continued(_)),
        "{outcome:?} after {pages} pages of users"
    );
    assert!(
        (1..5).contains(&pages),
        "the deadline fell during the listing: {pages} pages of users read"
    );
    assert!(
        f.aws.table().get_summary(&t).await.unwrap().is_none(),
        "no summary from a partial listing"
    );

    let (_, answer) = deliver_the_continuation(&f).await;
    assert_eq!(answer["batchItemFailures"], json!([]));

    let sim_users = f.tb.sim.listed_users();
    let stored = f.aws.table().load_users(&t).await.unwrap();
    assert_eq!(stored.len(), sim_users.len(), "every user stored");
    assert!(
        stored.values().all(|u| u.removed_at.is_none()),
        "nobody marked removed by the split listing"
    );
    let now = Utc::now();
    let report = f
        .aws
        .table()
        .get_summary(&t)
        .await
        .unwrap()
        .expect("the continued run completed")
        .report(&Default::default(), now);
    let expected = truth(&sim_users, now);
    assert_eq!(
        (
            report.seat_holders,
            report.app_users,
            report.external_users,
            report.deactivated,
            report.never_logged_in
        ),
        (
            expected.seat_holders,
            expected.app_users,
            expected.external_users,
            expected.deactivated,
            expected.never_logged_in
        ),
        "every user counted exactly once"
    );
    let last = f
        .aws
        .table()
        .get_checkpoint(&t)
        .await
        .unwrap()
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!((last.outcome, last.invocations), (SyncOutcome::Succeeded, 2));
    assert_eq!(last.users_listed as usize, sim_users.len(), "each user listed once");
}

#[tokio::test]
async fn a_redelivery_after_a_crash_resumes_instead_of_being_skipped() {
    let mut f = Fixture::new(enterprise(400)).await;
    f.service.syncer.options.deadline_margin = Duration::from_millis(500);
    let t = f
        .connect("acme", ConnectionStatus::Connected, ActivitySource::BoxEvents)
        .await;
    f.tb.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    // 1. The first invocation stops at its deadline and saves its progress.
    let margin = f.service.syncer.options.deadline_margin;
    let first = f
        .service
        .run(
            &f.queue,
            &message(&t, "slot-1"),
            Some(Instant::now() + margin + Duration::from_millis(300)),
        )
        .await;
    let TenantOutcome::Continued(first) = first else {
        panic!("the first invocation should stop at its deadline: {first:?}");
    };
    let queued = f.queued().await;
    assert_eq!(queued.len(), 1);
    let next = queued[0].1.clone();

    // 2. The continuation's invocation is killed mid-run (Lambda timeout, out of memory): no
    //    code runs after that, so its lease is not released and nothing is queued.
    let crashed_deadline = Instant::now() + margin + Duration::from_secs(2);
    let calls = f.tb.sim.counters().total(Endpoint::Events);
    tokio::select! {
        outcome = f.service.run(&f.queue, &next, Some(crashed_deadline)) => {
            panic!("the invocation should have been killed first: {outcome:?}")
        }
        () = async {
            while f.tb.sim.counters().total(Endpoint::Events) < calls + 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => {}
    }
    assert!(f.queued().await.is_empty(), "the killed invocation queued nothing");
    f.tb.sim.set_faults(Faults::default());

    // 3. SQS delivers the message again after its visibility timeout, which is longer than the
    //    function's timeout: the killed invocation's deadline has passed.
    tokio::time::sleep_until(crashed_deadline + SYNC_LEASE_GRACE + Duration::from_secs(1)).await;
    let answer = handle(&f.service, &f.queue, sqs_event("m-again", &next), None)
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    let last = f
        .aws
        .table()
        .get_checkpoint(&t)
        .await
        .unwrap()
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(last.outcome, SyncOutcome::Succeeded, "{last:?}");
    assert_eq!(
        last.run_id, first.run_id,
        "the same run, resumed from its saved progress"
    );
    assert_eq!(
        f.aws.table().load_users(&t).await.unwrap().len(),
        f.tb.sim.listed_users().len()
    );
}

#[tokio::test]
async fn a_delivery_while_a_live_run_holds_the_lease_is_retried_later() {
    let f = Fixture::new(enterprise(50)).await;
    let t = f
        .connect("acme", ConnectionStatus::Connected, ActivitySource::BoxEvents)
        .await;
    // A run of another invocation is alive and holds the tenant's sync lease.
    f.aws
        .table()
        .try_acquire_lease(&tenant_pk(&t), "sync", "a-live-invocation", Duration::from_secs(600))
        .await
        .unwrap();
    f.tb.sim.reset_counters();
    let answer = handle(&f.service, &f.queue, sqs_event("m-1", &message(&t, "slot-1")), None)
        .await
        .unwrap();
    assert_eq!(
        failed_ids(&answer),
        ["m-1"],
        "SQS delivers it again later (then to the DLQ), never silently deleted"
    );
    assert_eq!(
        f.tb.sim.counters().total_all(),
        0,
        "no Box call while the other run works"
    );

    // An incremental pass is not retried: the next one, 15 minutes on, reads on from the same
    // stream position, and retries would only fill the DLQ while a long full sync runs.
    let incremental = SyncMessage {
        kind: SyncKind::Incremental,
        ..message(&t, "slot-2")
    };
    let answer = handle(&f.service, &f.queue, sqs_event("m-2", &incremental), None)
        .await
        .unwrap();
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    assert_eq!(f.tb.sim.counters().total_all(), 0);
}

/// A queue that refuses every message, as SQS does when it is throttled or unreachable.
struct RefusingQueue;

#[async_trait]
impl SyncQueue for RefusingQueue {
    async fn enqueue(&self, _messages: &[SyncMessage]) -> anyhow::Result<()> {
        anyhow::bail!("sending to the sync queue failed: service unavailable")
    }
}

#[tokio::test]
async fn a_continuation_that_cannot_be_enqueued_fails_the_message() {
    let mut f = Fixture::new(enterprise(400)).await;
    f.service.syncer.options.deadline_margin = Duration::from_millis(500);
    let t = f
        .connect("acme", ConnectionStatus::Connected, ActivitySource::BoxEvents)
        .await;
    f.tb.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let deadline = Instant::now() + f.service.syncer.options.deadline_margin + Duration::from_millis(300);
    let original = message(&t, "slot-1");
    let answer = handle(&f.service, &RefusingQueue, sqs_event("m-1", &original), Some(deadline))
        .await
        .unwrap();
    assert_eq!(
        failed_ids(&answer),
        ["m-1"],
        "the message stays in the queue, so the run is not dropped"
    );
    f.tb.sim.set_faults(Faults::default());

    // SQS delivers the original message again: the run resumes and completes.
    let answer = handle(&f.service, &f.queue, sqs_event("m-1", &original), None)
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    let last = f
        .aws
        .table()
        .get_checkpoint(&t)
        .await
        .unwrap()
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!((last.outcome, last.invocations), (SyncOutcome::Succeeded, 2));
    assert!(f.aws.table().get_summary(&t).await.unwrap().is_some());
}

#[tokio::test]
async fn an_sso_sync_whose_provider_outlasts_the_deadline_continues_in_a_new_invocation() {
    let mut f = Fixture::new(business()).await;
    f.service.syncer.options.deadline_margin = Duration::from_millis(500);
    let users = f.tb.sim.users();
    let pairs: Vec<_> = users
        .iter()
        .filter(|u| !u.is_app_user && !u.is_external)
        .map(|u| (u.login.as_str(), u.last_login))
        .collect();
    let okta = OktaSim::start(OktaConfig {
        users: people_from(&pairs),
        other_app_events: 500,
        ..OktaConfig::default()
    })
    .await
    .unwrap();
    // Okta answers slowly: reading the sign-ins takes longer than this invocation has.
    okta.set_faults(sso_sim::Faults {
        latency: Duration::from_secs(4),
        ..sso_sim::Faults::default()
    });
    let config = SsoConfig::Okta {
        base_url: url::Url::parse(&okta.base_url()).unwrap(),
        box_app_instance_id: okta.app_instance_id().to_owned(),
        api_token: SecretString::from(OktaConfig::default().api_token),
    };
    let t = business_tenant(&f, &config).await;
    let deadline = Instant::now() + f.service.syncer.options.deadline_margin + Duration::from_secs(1);
    let outcome = f.service.run(&f.queue, &message(&t, "slot-1"), Some(deadline)).await;
    assert!(matches!(outcome, TenantOutcome::Continued(_)), "{outcome:?}");
    okta.set_faults(sso_sim::Faults::default());

    let (_, answer) = deliver_the_continuation(&f).await;
    assert_eq!(answer["batchItemFailures"], json!([]));
    let summary = f
        .aws
        .table()
        .get_summary(&t)
        .await
        .unwrap()
        .expect("the continued run completed");
    assert_eq!(summary.activity_provider, "okta");
    let last = f
        .aws
        .table()
        .get_checkpoint(&t)
        .await
        .unwrap()
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!((last.outcome, last.invocations), (SyncOutcome::Succeeded, 2));
    assert_eq!(
        f.aws.table().load_users(&t).await.unwrap().len(),
        f.tb.sim.listed_users().len()
    );
}

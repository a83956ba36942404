//! No lost updates between writers of the license state: a deactivation that lands while an
//! incremental pass is working is not reverted by the pass, and concurrent changes each adjust
//! the summary once.

use std::sync::Arc;
use std::time::Duration;

use box_sim::{Endpoint, Fault};
use chrono::Utc;
use seatsync::boxapi::UserStatus;
use seatsync::connection::ActivitySource;
use seatsync::settings::TenantSettings;
use seatsync::storage::schema::{tenant_pk, user_sk};
use seatsync::sync::{LicenseStore, SyncKind, SyncOutcome, SyncPlan};
use seatsync_tests::sync::{options, syncer};
use serde_json::json;

use crate::actions_fixture::{Actions, ok, summary_matches_users};

#[tokio::test]
async fn a_deactivation_during_an_incremental_pass_is_not_reverted() {
    let f = Actions::new().await;
    let mut idle = f.idle_users(false).await;
    idle.sort_by(|a, b| a.box_user_id.cmp(&b.box_user_id));
    let (target, newcomer) = (idle[0].box_user_id.clone(), idle.pop().unwrap().box_user_id);
    // The target logs in (the pass will update their activity); the newcomer is unknown to the
    // stored state, so the pass reads them from Box, and that read is slow: the deactivation lands
    // after the pass has read the target and before it writes.
    f.tb.sim
        .record_login(&target, Utc::now() - chrono::Duration::minutes(2));
    f.tb.sim
        .record_login(&newcomer, Utc::now() - chrono::Duration::minutes(1));
    f.aws
        .table()
        .delete(&tenant_pk(&f.tenant), &user_sk(&newcomer))
        .await
        .unwrap();
    // As a full sync before the newcomer existed would have counted.
    let mut summary = f.summary().await;
    let users = f.users().await;
    summary = seatsync::sync::engine::summarize(
        users.values(),
        summary.activity_source,
        summary.activity_provider.clone(),
        summary.history_since,
        summary.computed_at,
    );
    LicenseStore::put_summary(&f.aws.table(), &f.tenant, &summary)
        .await
        .unwrap();
    f.tb.sim
        .inject(Endpoint::UserGet, 1, Fault::Delay(Duration::from_secs(3)));
    let plan = SyncPlan {
        tenant: f.tenant.clone(),
        kind: SyncKind::Incremental,
        source: ActivitySource::BoxEvents,
        settings: TenantSettings::default(),
        sso: None,
        deadline: None,
    };
    let sync = syncer(&f.tb, Arc::new(f.aws.table()), options());
    let pass = tokio::spawn(async move { sync.sync(&plan).await });
    for _ in 0..400 {
        if f.tb.sim.requests_received(Endpoint::UserGet) >= 1 || pass.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !pass.is_finished(),
        "the pass is waiting for Box when the deactivation lands"
    );
    ok(&f
        .deactivate(
            &target,
            json!({"reason": "left", "override_recent_activity": true}),
            "during-pass",
        )
        .await);
    let run = pass.await.unwrap().unwrap();
    assert_eq!(run.outcome, SyncOutcome::Succeeded, "{run:?}");

    let stored = f.user(&target).await;
    assert_eq!(stored.status, UserStatus::Inactive, "the deactivation stands");
    assert!(
        stored
            .login_activity
            .at()
            .is_some_and(|at| at > Utc::now() - chrono::Duration::minutes(5)),
        "and the pass's activity is kept too: {:?}",
        stored.login_activity
    );
    summary_matches_users(&f).await;
}

#[tokio::test]
async fn concurrent_summary_adjustments_are_not_lost() {
    let f = Actions::new().await;
    let mut targets = f.idle_users(false).await;
    targets.extend(f.idle_users(true).await);
    targets.truncate(12);
    assert!(targets.len() >= 8, "enough users to race: {}", targets.len());
    let before = f.summary().await;

    let keys: Vec<String> = (0..targets.len()).map(|i| format!("race-{i}")).collect();
    let answers = futures::future::join_all(
        targets
            .iter()
            .zip(&keys)
            .map(|(u, key)| f.deactivate(&u.box_user_id, json!({"reason": "left"}), key)),
    )
    .await;

    for a in &answers {
        ok(a);
    }
    assert_eq!(
        f.summary().await.deactivated,
        before.deactivated + targets.len() as u32,
        "each change counted once"
    );
    summary_matches_users(&f).await;
}

/// A burst of writers on the one summary item (a bulk change of 500 users adjusts it once per
/// user): every adjustment lands, however many writers race and however slow the table is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_48_concurrent_summary_adjustments_loses_none() {
    let f = Actions::new().await;
    let table = Arc::new(f.aws.table());
    let before = f.summary().await;
    let writers = (0..48).map(|_| {
        let (table, tenant) = (table.clone(), f.tenant.clone());
        tokio::spawn(
            async move { seatsync::sync::update_summary(table.as_ref(), &tenant, |s| s.deactivated += 1).await },
        )
    });
    for written in futures::future::join_all(writers).await {
        assert!(written.unwrap().unwrap(), "the summary exists");
    }
    assert_eq!(f.summary().await.deactivated, before.deactivated + 48);
}

//! The full and incremental sync from Box's login events, against the Box simulator and moto:
//! exact against the ground truth, cheap when nothing changed, the same after faults or a resume.

use std::sync::Arc;
use std::time::Duration;

use box_sim::{Endpoint, Faults};
use chrono::Utc;
use seatsync::boxapi::DeleteOptions;
use seatsync::connection::ActivitySource;
use seatsync::license::{Activity, UserKind};
use seatsync::settings::TenantSettings;
use seatsync::sync::{LicenseStore, SyncKind, SyncOptions, SyncOutcome, SyncPlan};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::{TestBox, box_id};
use seatsync_tests::sync::{
    comparable, enterprise, last_content, last_login, options, report_states, syncer, tenant, truth,
};

fn plan(kind: SyncKind) -> SyncPlan {
    SyncPlan {
        tenant: tenant(),
        kind,
        source: ActivitySource::BoxEvents,
        settings: TenantSettings::default(),
        sso: None,
        deadline: None,
    }
}

#[tokio::test]
async fn a_5000_user_enterprise_matches_the_ground_truth_exactly() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(5_000)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    let run = syncer(&tb, store.clone(), options())
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();
    assert_eq!(run.outcome, SyncOutcome::Succeeded);

    let stored = store.load_users(&tenant()).await.unwrap();
    let sim_users = tb.sim.listed_users();
    assert_eq!(stored.len(), sim_users.len(), "every user stored once");
    let mut mismatches = 0;
    for truth_user in &sim_users {
        let user = &stored[truth_user.id.as_str()];
        if last_login(user) != truth_user.last_login || last_content(user) != truth_user.last_content {
            mismatches += 1;
        }
        let expected_kind = if truth_user.is_app_user {
            UserKind::AppUser
        } else {
            UserKind::Managed
        };
        assert_eq!(user.kind, expected_kind, "{}", truth_user.id);
        assert_eq!(user.owns_content, truth_user.owns_content, "{}", truth_user.id);
        assert_eq!(user.status.as_str(), truth_user.status.as_str(), "{}", truth_user.id);
    }
    assert_eq!(
        mismatches, 0,
        "users whose last login or last content activity differs from the simulator's ground truth"
    );

    let now = Utc::now();
    let summary = store.get_summary(&tenant()).await.unwrap().expect("a summary");
    let settings = TenantSettings {
        seats_purchased: Some(5_200),
        price_per_seat_year_minor: Some(18_000),
        ..TenantSettings::default()
    };
    let report = summary.report(&settings, now);
    let t = truth(&sim_users, now);
    assert_eq!(report.seat_holders, t.seat_holders);
    assert_eq!(report.deactivated, t.deactivated);
    assert_eq!(report.admins, t.admins);
    assert_eq!(report.app_users, t.app_users);
    assert_eq!(report.external_users, t.external_users);
    assert_eq!(report.never_logged_in, t.never_logged_in);
    assert_eq!(
        (
            report.inactive_30_days,
            report.inactive_60_days,
            report.inactive_90_days
        ),
        (t.inactive_30, t.inactive_60, t.inactive_90)
    );
    assert_eq!(report.active, t.active_60, "active within the 60-day default threshold");
    assert_eq!(
        report_states(&report),
        (t.working, t.login_only),
        "working and login-only at 30/60/90"
    );
    assert!(report.history_complete);
    assert_eq!(report.reclaimable_seats, t.inactive_60 + t.deactivated);
    assert_eq!(report.unassigned_seats, Some(5_200 - t.seat_holders));
    assert_eq!(
        report.unused_seats_annual_cost_minor,
        Some(18_000 * u64::from(t.inactive_60 + t.deactivated + 5_200 - t.seat_holders))
    );
    println!(
        "5,000 users: {} Box calls, {} items written, {} events; inactive 30/60/90 = {}/{}/{}, never {}",
        run.box_calls,
        run.items_written,
        run.events_read,
        t.inactive_30,
        t.inactive_60,
        t.inactive_90,
        t.never_logged_in
    );
}

#[tokio::test]
async fn an_unchanged_resync_writes_at_most_3_items() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(1_000)));
    let syncer = syncer(&tb, Arc::new(aws.table()), options());
    let first = syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    assert!(
        first.items_written > 1_000,
        "the first sync writes every user ({})",
        first.items_written
    );
    let second = syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    assert_eq!(second.outcome, SyncOutcome::Succeeded);
    println!(
        "unchanged re-sync: {} items written, {} Box calls",
        second.items_written, second.box_calls
    );
    assert!(second.items_written <= 3, "{} items written", second.items_written);
}

#[tokio::test]
async fn injected_429s_and_5xx_end_in_exactly_the_clean_state() {
    let (clean_aws, faulty_aws, tb) = tokio::join!(TestAws::new(), TestAws::new(), TestBox::start(enterprise(600)));
    let clean: Arc<dyn LicenseStore> = Arc::new(clean_aws.table());
    let faulty: Arc<dyn LicenseStore> = Arc::new(faulty_aws.table());
    syncer(&tb, clean.clone(), options())
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();

    tb.sim.set_faults(Faults {
        share_429: 0.10,
        retry_after_secs: 1,
        share_5xx: 0.05,
        ..Faults::default()
    });
    tb.sim.reset_counters();
    let run = syncer(&tb, faulty.clone(), options())
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();
    tb.sim.set_faults(Faults::default());

    let counters = tb.sim.counters();
    let faults: u64 = [429, 500, 502, 503]
        .iter()
        .map(|s| counters.get(Endpoint::Events, *s) + counters.get(Endpoint::Users, *s))
        .sum();
    println!(
        "faulted sync: {} Box calls, {faults} of them answered 429/5xx",
        run.box_calls
    );
    assert!(faults > 0, "faults were injected");
    assert_eq!(
        comparable(clean.load_users(&tenant()).await.unwrap()),
        comparable(faulty.load_users(&tenant()).await.unwrap())
    );
    let (a, b) = (
        clean.get_summary(&tenant()).await.unwrap().unwrap(),
        faulty.get_summary(&tenant()).await.unwrap().unwrap(),
    );
    assert_eq!(
        (a.histogram, a.seat_holders, a.deactivated),
        (b.histogram, b.seat_holders, b.deactivated)
    );
}

#[tokio::test]
async fn a_run_cut_off_at_its_deadline_resumes_to_the_same_state() {
    let (clean_aws, resumed_aws, tb) = tokio::join!(TestAws::new(), TestAws::new(), TestBox::start(enterprise(800)));
    let clean: Arc<dyn LicenseStore> = Arc::new(clean_aws.table());
    let resumed: Arc<dyn LicenseStore> = Arc::new(resumed_aws.table());
    syncer(&tb, clean.clone(), options())
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();

    // Slow pages and a deadline 400 ms away: the first invocation stops mid-way.
    tb.sim.set_faults(Faults {
        latency: Duration::from_millis(40),
        ..Faults::default()
    });
    let cut = SyncOptions {
        deadline_margin: Duration::ZERO,
        slices: 2,
        ..options()
    };
    let first_plan = SyncPlan {
        deadline: Some(tokio::time::Instant::now() + Duration::from_millis(400)),
        ..plan(SyncKind::Full)
    };
    let first = syncer(&tb, resumed.clone(), cut.clone())
        .sync(&first_plan)
        .await
        .unwrap();
    assert_eq!(first.outcome, SyncOutcome::Continued);
    assert!(
        resumed.get_summary(&tenant()).await.unwrap().is_none(),
        "no summary from a partial run"
    );
    assert!(
        resumed.load_users(&tenant()).await.unwrap().is_empty(),
        "no users written before the listing"
    );
    tb.sim.set_faults(Faults::default());

    let second = syncer(&tb, resumed.clone(), cut)
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();
    assert_eq!(second.outcome, SyncOutcome::Succeeded);
    assert_eq!(second.run_id, first.run_id, "the same run, continued");
    assert_eq!(second.invocations, 2);
    let users = resumed.load_users(&tenant()).await.unwrap();
    assert_eq!(users.len(), tb.sim.listed_users().len(), "no user lost, none twice");
    assert_eq!(
        comparable(clean.load_users(&tenant()).await.unwrap()),
        comparable(users)
    );
    let (a, b) = (
        clean.get_summary(&tenant()).await.unwrap().unwrap(),
        resumed.get_summary(&tenant()).await.unwrap().unwrap(),
    );
    assert_eq!(a.histogram, b.histogram);
}

#[tokio::test]
async fn a_sync_that_fails_halfway_keeps_the_previous_state() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(600)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    let syncer = syncer(&tb, store.clone(), options());
    syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    let before_summary = store.get_summary(&tenant()).await.unwrap().unwrap();

    // A user disappears, then the listing breaks on its last page.
    let gone = tb
        .sim
        .users()
        .into_iter()
        .find(|u| u.role == "user" && !u.owns_content && !u.is_external)
        .unwrap();
    tb.client
        .delete_user(&tb.admin_token(), &box_id(&gone.id), DeleteOptions::default())
        .await
        .unwrap();
    tb.sim.inject(
        Endpoint::Users,
        1,
        box_sim::Fault::Status {
            status: 400,
            retry_after: None,
        },
    );
    let err = syncer.sync(&plan(SyncKind::Full)).await.unwrap_err();
    println!("failed as expected: {err}");

    let users = store.load_users(&tenant()).await.unwrap();
    assert!(
        users[gone.id.as_str()].removed_at.is_none(),
        "not marked removed by an incomplete listing"
    );
    assert_eq!(
        store.get_summary(&tenant()).await.unwrap().unwrap(),
        before_summary,
        "summary untouched"
    );
    let checkpoint = store.get_checkpoint(&tenant()).await.unwrap().unwrap();
    let last = checkpoint.last_run.unwrap();
    assert_eq!(last.outcome, SyncOutcome::Failed);
    assert!(last.error.is_some_and(|e| !e.is_empty()), "the run says why");

    // The next complete sync marks the user removed.
    syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    assert!(
        store.load_users(&tenant()).await.unwrap()[gone.id.as_str()]
            .removed_at
            .is_some()
    );
}

#[tokio::test]
async fn the_incremental_pass_reads_only_new_logins_and_updates_the_counts() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(700)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    let syncer = syncer(&tb, store.clone(), options());
    syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    let now = Utc::now();
    let before = store
        .get_summary(&tenant())
        .await
        .unwrap()
        .unwrap()
        .report(&TenantSettings::default(), now);
    let dormant = tb
        .sim
        .users()
        .into_iter()
        .find(|u| {
            u.role == "user"
                && !u.is_app_user
                && !u.is_external
                && u.status == "active"
                && u.last_login.is_none()
                && u.last_content.is_none()
        })
        .expect("a never-logged-in user");

    tb.sim
        .record_login(&dormant.id, Utc::now() - chrono::Duration::minutes(2));
    tb.sim.reset_counters();
    let run = syncer.sync(&plan(SyncKind::Incremental)).await.unwrap();

    assert_eq!(run.outcome, SyncOutcome::Succeeded);
    assert_eq!(tb.sim.counters().total(Endpoint::Users), 0, "no user listing");
    assert!(
        tb.sim.counters().total(Endpoint::Events) <= 3,
        "a handful of event calls"
    );
    let user = store.get_user(&tenant(), &box_id(&dormant.id)).await.unwrap().unwrap();
    assert!(
        matches!(user.login_activity, Activity::Seen { .. }),
        "{:?}",
        user.login_activity
    );
    let after = store
        .get_summary(&tenant())
        .await
        .unwrap()
        .unwrap()
        .report(&TenantSettings::default(), now);
    assert_eq!(after.never_logged_in, before.never_logged_in - 1);
    assert_eq!(after.active, before.active + 1);
    assert!(run.items_written <= 4, "{} items", run.items_written);
}

#[tokio::test]
async fn login_events_delayed_past_the_overlap_are_still_read() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(300)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    let syncer = syncer(&tb, store.clone(), options());
    syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    let dormant = tb
        .sim
        .users()
        .into_iter()
        .find(|u| {
            u.role == "user"
                && !u.is_app_user
                && !u.is_external
                && u.status == "active"
                && u.last_login.is_none()
                && u.last_content.is_none()
        })
        .expect("a never-logged-in user");

    // A sign-in from three hours ago, three times the overlap, appears in the stream only now.
    let overlap = chrono::Duration::from_std(options().overlap).unwrap();
    let created_at = Utc::now() - overlap * 3;
    tb.sim.record_delayed_login(&dormant.id, created_at);
    let run = syncer.sync(&plan(SyncKind::Incremental)).await.unwrap();
    assert_eq!(run.outcome, SyncOutcome::Succeeded);

    let user = store.get_user(&tenant(), &box_id(&dormant.id)).await.unwrap().unwrap();
    assert_eq!(
        last_login(&user).map(|t| t.timestamp()),
        Some(created_at.timestamp()),
        "the delayed login is read: {:?}",
        user.login_activity
    );
    // And a second pass does not need it again: it reads on from where the stream stopped.
    tb.sim.reset_counters();
    syncer.sync(&plan(SyncKind::Incremental)).await.unwrap();
    assert!(
        tb.sim.counters().total(Endpoint::Events) <= 2,
        "{:?}",
        tb.sim.counters()
    );
}

#[tokio::test]
async fn an_incremental_pass_during_an_unfinished_full_sync_keeps_its_progress() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(400)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    syncer(&tb, store.clone(), options())
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();
    // A second full sync is cut at its deadline while reading the back-filled window again.
    store.put_checkpoint(&tenant(), &Default::default()).await.unwrap();
    tb.sim.set_faults(Faults {
        latency: Duration::from_millis(40),
        ..Faults::default()
    });
    let cut = SyncOptions {
        deadline_margin: Duration::ZERO,
        slices: 2,
        ..options()
    };
    let first = syncer(&tb, store.clone(), cut.clone())
        .sync(&SyncPlan {
            deadline: Some(tokio::time::Instant::now() + Duration::from_millis(400)),
            ..plan(SyncKind::Full)
        })
        .await
        .unwrap();
    assert_eq!(first.outcome, SyncOutcome::Continued);
    tb.sim.set_faults(Faults::default());

    let pass = syncer(&tb, store.clone(), cut.clone())
        .sync(&plan(SyncKind::Incremental))
        .await;
    assert!(
        pass.as_ref()
            .is_ok_and(|r| r.outcome == SyncOutcome::Skipped && r.run_id != first.run_id),
        "{pass:?}"
    );
    let resumed = syncer(&tb, store.clone(), cut)
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();
    assert_eq!(
        (resumed.outcome, resumed.run_id, resumed.invocations),
        (SyncOutcome::Succeeded, first.run_id, 2)
    );
}

/// A tenant synced before the user indexes existed: its user items lack the index attributes, so
/// no list could find them (DynamoDB indexes no item without its keys), and its summary names no
/// index version. One full sync rewrites every user; the next unchanged one writes at most 3 items.
#[tokio::test]
async fn users_stored_before_the_user_indexes_are_rewritten_once_by_the_next_full_sync() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use seatsync::storage::UserIndexRange;
    use seatsync::storage::schema::{USER_INDEX_ATTRIBUTES, UserSegment, tenant_pk, user_sk, users_upk};
    use seatsync::storage::user_index::{USER_INDEX_VERSION, UserIndex};

    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(300)));
    let table = aws.table();
    let syncer = syncer(&tb, Arc::new(aws.table()), options());
    syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    let seat = users_upk(&tenant(), UserSegment::Seat);
    let indexed = |table: seatsync::storage::Table| {
        let seat = seat.clone();
        async move {
            let mut n = 0;
            let mut start = None;
            for _ in 0..100 {
                let page = table
                    .query_user_index(UserIndex::Any, &seat, &UserIndexRange::All, true, start.as_ref(), 1000)
                    .await
                    .unwrap();
                n += page.users.len();
                if !page.more {
                    break;
                }
                start = page.last;
            }
            n
        }
    };
    let seat_users = indexed(table.clone()).await;
    assert!(seat_users > 200, "{seat_users} seat holders indexed");

    // The store as the code before the indexes left it.
    let client = aws_sdk_dynamodb::Client::new(&aws.sdk);
    let users = table.load_users(&tenant()).await.unwrap();
    let remove = format!(
        "REMOVE {}",
        (0..USER_INDEX_ATTRIBUTES.len())
            .map(|i| format!("#a{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for id in users.keys() {
        let mut update = client
            .update_item()
            .table_name(&aws.table_name)
            .key("pk", AttributeValue::S(tenant_pk(&tenant())))
            .key("sk", AttributeValue::S(user_sk(id)))
            .update_expression(&remove);
        for (i, name) in USER_INDEX_ATTRIBUTES.iter().enumerate() {
            update = update.expression_attribute_names(format!("#a{i}"), *name);
        }
        update.send().await.unwrap();
    }
    let mut summary = table.get_summary(&tenant()).await.unwrap().unwrap();
    summary.user_index_version = 0;
    table.put_summary(&tenant(), &summary).await.unwrap();
    assert_eq!(indexed(table.clone()).await, 0, "no list finds them");

    let upgrade = syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    assert_eq!(upgrade.outcome, SyncOutcome::Succeeded);
    assert!(
        upgrade.items_written >= users.len() as u64,
        "every user rewritten: {} items for {} users",
        upgrade.items_written,
        users.len()
    );
    assert_eq!(indexed(table.clone()).await, seat_users);
    let summary = table.get_summary(&tenant()).await.unwrap().unwrap();
    assert_eq!(summary.user_index_version, USER_INDEX_VERSION);

    let again = syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    assert!(again.items_written <= 3, "{} items written", again.items_written);
}

//! Activity that means use (issue 11): two dates per user from one filtered event stream, the
//! working / login-only / inactive / never states, and a first read newest first whose report is
//! published early and never changes a 30/60/90 count when older history arrives.

use std::sync::Arc;
use std::time::Duration;

use box_sim::{EventKind, Faults};
use chrono::Utc;
use seatsync::connection::ActivitySource;
use seatsync::license::{Activity, ActivityOrigin, ActivitySignal, UsageState};
use seatsync::settings::TenantSettings;
use seatsync::sync::{LicenseStore, SyncKind, SyncOptions, SyncOutcome, SyncPlan};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::{TestBox, box_id};
use seatsync_tests::sync::{comparable, enterprise, last_content, last_login, options, report_states, syncer, tenant};

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

fn plain(u: &box_sim::SimUser) -> bool {
    u.role == "user" && !u.is_app_user && !u.is_external && u.status == "active"
}

#[tokio::test]
async fn a_drive_only_user_is_working_and_a_login_only_user_is_reported_as_such() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(400)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    let run = syncer(&tb, store.clone(), options())
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();
    assert_eq!(run.outcome, SyncOutcome::Succeeded);
    let now = Utc::now();
    let users = tb.sim.listed_users();
    // Daily uploads through Box Drive, no login in the 180 days of history.
    let drive_only = users
        .iter()
        .find(|u| {
            plain(u) && u.last_login.is_none() && u.last_content.is_some_and(|t| now - t < chrono::Duration::days(3))
        })
        .expect("a drive-only user in the enterprise");
    let login_only = users
        .iter()
        .find(|u| {
            plain(u) && u.last_content.is_none() && u.last_login.is_some_and(|t| now - t < chrono::Duration::days(20))
        })
        .expect("a login-only user in the enterprise");

    let stored = store
        .get_user(&tenant(), &box_id(&drive_only.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.login_activity, Activity::Never);
    assert_eq!(last_content(&stored), drive_only.last_content);
    assert!(matches!(
        stored.content_activity,
        Activity::Seen {
            origin: ActivityOrigin::BoxContent,
            ..
        }
    ));
    for days in [30, 60, 90] {
        assert_eq!(stored.signals().state(days, now), UsageState::Working);
    }
    for signal in [ActivitySignal::Any, ActivitySignal::Content] {
        assert!(!stored.signals().inactive_by(signal, 30, now), "{signal:?}");
    }
    // Counted by logins alone they look inactive; the rails judge by the strongest signal.
    assert!(stored.signals().inactive_by(ActivitySignal::Login, 30, now));
    assert!(matches!(stored.signals().strongest(), Activity::Seen { at, .. } if Some(at) == drive_only.last_content));

    let stored = store
        .get_user(&tenant(), &box_id(&login_only.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last_login(&stored), login_only.last_login);
    assert_eq!(stored.content_activity, Activity::Never);
    assert_eq!(stored.signals().state(30, now), UsageState::LoginOnly);
    assert!(!stored.signals().inactive_by(ActivitySignal::Any, 30, now));
    assert!(
        stored.signals().inactive_by(ActivitySignal::Content, 30, now),
        "counted by content, a login-only user holds a seat they do not use"
    );

    // The report counts them the same way, per signal.
    let summary = store.get_summary(&tenant()).await.unwrap().unwrap();
    let any = summary.report(&TenantSettings::default(), now);
    let content = summary.report(
        &TenantSettings {
            activity_signal: ActivitySignal::Content,
            ..TenantSettings::default()
        },
        now,
    );
    let (working, login_only_counts) = report_states(&any);
    assert!(working[0] > 0 && login_only_counts[0] > 0);
    assert_eq!(content.activity_signal, ActivitySignal::Content);
    assert_eq!(
        content.inactive_30_days,
        any.inactive_30_days + login_only_counts[0],
        "counted by content, the login-only users are inactive too"
    );
}

#[tokio::test]
async fn failed_logins_and_the_anonymous_user_never_count() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(200)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    let syncer = syncer(&tb, store.clone(), options());
    syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    let never = tb
        .sim
        .listed_users()
        .into_iter()
        .find(|u| plain(u) && u.last_login.is_none() && u.last_content.is_none())
        .expect("a never-active user");
    let recently = Utc::now() - chrono::Duration::minutes(5);
    tb.sim.record_event(&never.id, EventKind::FailedLogin, recently);
    tb.sim.record_event(&never.id, EventKind::AdminLogin, recently);
    tb.sim.record_anonymous_event(EventKind::Upload, recently);
    tb.sim.record_anonymous_event(EventKind::Login, recently);
    for kind in [SyncKind::Incremental, SyncKind::Full] {
        let run = syncer.sync(&plan(kind)).await.unwrap();
        assert_eq!(run.outcome, SyncOutcome::Succeeded);
        let user = store.get_user(&tenant(), &box_id(&never.id)).await.unwrap().unwrap();
        assert_eq!(user.signals().state(30, Utc::now()), UsageState::Never, "{kind:?}");
        assert!(
            store.get_user(&tenant(), &box_id("2")).await.unwrap().is_none(),
            "the anonymous user is nobody's seat"
        );
    }
}

#[tokio::test]
async fn content_activity_read_by_the_incremental_pass_moves_only_the_content_date() {
    let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(enterprise(200)));
    let store: Arc<dyn LicenseStore> = Arc::new(aws.table());
    let syncer = syncer(&tb, store.clone(), options());
    syncer.sync(&plan(SyncKind::Full)).await.unwrap();
    let login_only = tb
        .sim
        .listed_users()
        .into_iter()
        .find(|u| plain(u) && u.last_content.is_none() && u.last_login.is_some())
        .expect("a login-only user");
    let before = store
        .get_user(&tenant(), &box_id(&login_only.id))
        .await
        .unwrap()
        .unwrap();
    let at = Utc::now() - chrono::Duration::minutes(3);
    tb.sim.record_event(&login_only.id, EventKind::Edit, at);
    let run = syncer.sync(&plan(SyncKind::Incremental)).await.unwrap();
    assert_eq!(run.outcome, SyncOutcome::Succeeded);
    let after = store
        .get_user(&tenant(), &box_id(&login_only.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.login_activity, before.login_activity, "the login date stays");
    assert_eq!(last_content(&after).map(|t| t.timestamp()), Some(at.timestamp()));
    assert_eq!(after.signals().state(30, Utc::now()), UsageState::Working);
}

/// Newest first, cut by a short deadline again and again: every phase boundary (the recent
/// slices, the listing, the publication, the older slices, the back-fill's writes) is crossed by
/// some invocation. The report is published before the older history is read, its 30/60/90
/// counts never change afterwards, and the end state equals an uninterrupted run's.
#[tokio::test]
async fn newest_first_a_run_cut_at_every_phase_resumes_to_the_same_state_and_keeps_its_early_counts() {
    let (clean_aws, cut_aws, tb) = tokio::join!(TestAws::new(), TestAws::new(), TestBox::start(enterprise(300)));
    let clean: Arc<dyn LicenseStore> = Arc::new(clean_aws.table());
    let cut: Arc<dyn LicenseStore> = Arc::new(cut_aws.table());
    let now = Utc::now();
    syncer(&tb, clean.clone(), options())
        .sync(&plan(SyncKind::Full))
        .await
        .unwrap();

    tb.sim.set_faults(Faults {
        latency: Duration::from_millis(50),
        ..Faults::default()
    });
    let short = SyncOptions {
        deadline_margin: Duration::ZERO,
        slices: 2,
        ..options()
    };
    let cut_syncer = syncer(&tb, cut.clone(), short);
    let mut published = None;
    let mut outcomes = Vec::new();
    // Bounded: a run gives up after 48 invocations, and each one makes progress.
    for _ in 0..48 {
        let invocation = SyncPlan {
            deadline: Some(tokio::time::Instant::now() + Duration::from_millis(1_500)),
            ..plan(SyncKind::Full)
        };
        let run = cut_syncer.sync(&invocation).await.unwrap();
        outcomes.push(run.outcome);
        if let Some(summary) = cut.get_summary(&tenant()).await.unwrap()
            && published.is_none()
        {
            published = Some(summary);
        }
        if run.outcome == SyncOutcome::Succeeded {
            break;
        }
    }
    tb.sim.set_faults(Faults::default());
    assert_eq!(outcomes.last(), Some(&SyncOutcome::Succeeded), "{outcomes:?}");
    assert!(outcomes.len() >= 3, "the run was cut several times: {outcomes:?}");
    let early = published.expect("a report was published");
    assert!(
        !early.history_complete,
        "published from the recent history, before the older part"
    );

    let end = cut.get_summary(&tenant()).await.unwrap().unwrap();
    assert!(end.history_complete);
    for signal in [ActivitySignal::Any, ActivitySignal::Login, ActivitySignal::Content] {
        let settings = TenantSettings {
            activity_signal: signal,
            ..TenantSettings::default()
        };
        let (a, b) = (early.report(&settings, now), end.report(&settings, now));
        assert_eq!(
            (a.inactive_30_days, a.inactive_60_days, a.inactive_90_days),
            (b.inactive_30_days, b.inactive_60_days, b.inactive_90_days),
            "{signal:?}: older history never changes a 30/60/90 count"
        );
        assert_eq!(report_states(&a), report_states(&b), "{signal:?}");
        assert_eq!(a.active, b.active);
    }
    assert!(
        early.histogram.never >= end.histogram.never,
        "only 'never' shrinks, as older dates arrive"
    );
    assert_eq!(
        comparable(clean.load_users(&tenant()).await.unwrap()),
        comparable(cut.load_users(&tenant()).await.unwrap()),
        "the same users and dates as an uninterrupted run"
    );
    let reference = clean.get_summary(&tenant()).await.unwrap().unwrap();
    assert_eq!(reference.histogram, end.histogram);
    // Each run reads back from its own start, so the cut run's window starts as much later as
    // the cut run itself started later.
    let (reference_since, end_since) = (reference.history_since.unwrap(), end.history_since.unwrap());
    assert!(
        end_since >= reference_since && end_since - reference_since <= Utc::now() - now,
        "{reference_since} .. {end_since}"
    );
}

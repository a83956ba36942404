//! Bulk deactivation: by ids or by inactivity criteria, one result per user (done, refused with
//! the reason, failed, or planned), at most 500 users per request.

use box_sim::Endpoint;
use chrono::{Duration, Utc};
use seatsync::audit::AuditOutcome;
use seatsync::boxapi::Role;
use seatsync::ids::BoxUserId;
use seatsync::license::{Activity, ActivityOrigin, ActivitySignal};
use seatsync::sync::LicenseStore as _;
use serde_json::{Value, json};

use crate::actions_fixture::{Actions, idle, ok, plain};

fn outcome_of<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["box_user_id"] == id)
        .unwrap_or_else(|| panic!("a result for {id}: {answer}"))
}

#[tokio::test]
async fn bulk_by_ids_reports_each_user_with_mixed_outcomes() {
    let f = Actions::new().await;
    f.set_settings(|s| s.daily_action_cap = 3).await;
    let idle_users = f.idle_users(false).await;
    let (a, b, c, d) = (
        idle_users[0].box_user_id.clone(),
        idle_users[1].box_user_id.clone(),
        idle_users[2].box_user_id.clone(),
        idle_users[3].box_user_id.clone(),
    );
    let coadmin = f.with_role(Role::Coadmin).await.box_user_id;
    let recent = f.recently_active().await.box_user_id;
    f.tb.sim.inject(
        Endpoint::UserUpdate,
        2,
        box_sim::Fault::Status {
            status: 403,
            retry_after: None,
        },
    );

    let answer = ok(&f
        .post(
            "/users/deactivate",
            json!({"user_ids": [a, coadmin, b, recent, "77777777777", c, d, a], "reason": "quarterly review"}),
            Some("bulk-1"),
        )
        .await);

    // Users are changed a few at a time, so which one meets Box's 403, and whether a slot given back
    // by that failure is there when the last one asks, depends on timing: check the invariants.
    let idle = [&a, &b, &c, &d];
    let outcomes: Vec<&str> = idle
        .iter()
        .map(|id| outcome_of(&answer, id)["outcome"].as_str().unwrap())
        .collect();
    let done: Vec<&&BoxUserId> = idle
        .iter()
        .filter(|id| outcome_of(&answer, id)["outcome"] == "done")
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "failed").count(),
        1,
        "Box refused exactly one change: {outcomes:?}"
    );
    for id in idle {
        let result = outcome_of(&answer, id);
        match result["outcome"].as_str().unwrap() {
            "done" => assert_eq!(f.tb.sim.user(id).unwrap().status, "inactive"),
            "failed" => assert_eq!(f.tb.sim.user(id).unwrap().status, "active"),
            "refused" => {
                assert!(result["detail"].as_str().unwrap().contains("daily cap"), "{result}");
                assert_eq!(f.tb.sim.user(id).unwrap().status, "active");
            }
            other => panic!("unexpected outcome {other}"),
        }
    }
    assert!((2..=3).contains(&done.len()), "{outcomes:?}");
    assert_eq!(outcome_of(&answer, &coadmin)["outcome"], "refused");
    assert!(
        outcome_of(&answer, &coadmin)["detail"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
    assert_eq!(outcome_of(&answer, &recent)["outcome"], "refused");
    assert_eq!(outcome_of(&answer, "77777777777")["outcome"], "refused");
    assert_eq!(answer["counts"]["done"], done.len());
    assert_eq!(answer["counts"]["failed"], 1);
    assert_eq!(
        answer["results"].as_array().unwrap().len(),
        7,
        "duplicates are acted on once"
    );
    assert_eq!(f.audit().await.len(), 7, "one audit record per user");

    // Fill what is left of the cap (3), one more than fits: the last is refused, Box untouched.
    let left = 3 - done.len();
    let more: Vec<String> = idle_users[4..5 + left]
        .iter()
        .map(|u| u.box_user_id.to_string())
        .collect();
    let answer = ok(&f
        .post(
            "/users/deactivate",
            json!({"user_ids": more, "reason": "r"}),
            Some("bulk-2"),
        )
        .await);
    let outcomes: Vec<&str> = more
        .iter()
        .map(|id| outcome_of(&answer, id)["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "done").count(), left, "{outcomes:?}");
    let refused: Vec<&String> = more
        .iter()
        .filter(|id| outcome_of(&answer, id)["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    assert!(
        outcome_of(&answer, refused[0])["detail"]
            .as_str()
            .unwrap()
            .contains("daily cap")
    );
    assert_eq!(
        f.tb.sim.user(refused[0]).unwrap().status,
        "active",
        "Box untouched past the cap"
    );
}

#[tokio::test]
async fn bulk_by_criteria_selects_idle_seat_holders_and_never_unknown_activity() {
    let f = Actions::new().await;
    let cutoff = Utc::now() - Duration::days(90);
    let mut expected: Vec<String> = f
        .users()
        .await
        .into_values()
        .filter(|u| {
            u.kind == seatsync::license::UserKind::Managed
                && u.status == seatsync::boxapi::UserStatus::Active
                && match u.signals().strongest() {
                    Activity::Seen { at, .. } => at < cutoff,
                    Activity::Never => true,
                    Activity::NoData => false,
                }
        })
        .map(|u| String::from(u.box_user_id))
        .collect();
    expected.sort();
    assert!(expected.len() >= 3, "the enterprise has idle users");

    let plan = ok(&f
        .post(
            "/users/deactivate",
            json!({"criteria": {"inactive_days": 90}, "reason": "idle 90 days", "dry_run": true}),
            None,
        )
        .await);
    assert_eq!(f.box_calls(), 0, "a dry run calls Box zero times");
    let mut planned: Vec<String> = plan["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "planned")
        .map(|r| r["box_user_id"].as_str().unwrap().to_owned())
        .collect();
    planned.sort();
    let mut plain_expected: Vec<String> = f
        .pick(|u| plain(u) && idle(u, 90))
        .await
        .into_iter()
        .map(|u| String::from(u.box_user_id))
        .collect();
    plain_expected.sort();
    assert_eq!(planned, plain_expected, "plain idle users are planned");
    let mut all: Vec<String> = plan["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["box_user_id"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    assert_eq!(
        all, expected,
        "exactly the idle, active-status seat holders are selected"
    );

    let done = ok(&f
        .post(
            "/users/deactivate",
            json!({"criteria": {"inactive_days": 90}, "reason": "idle 90 days"}),
            Some("crit-1"),
        )
        .await);
    assert_eq!(done["counts"]["done"], planned.len());
    for id in &planned {
        assert_eq!(f.tb.sim.user(id).unwrap().status, "inactive", "{id}");
    }
    let audit = f.audit().await;
    assert_eq!(
        audit.iter().filter(|r| r.outcome == AuditOutcome::Planned).count(),
        all.len()
    );
}

#[tokio::test]
async fn bulk_requests_must_name_users_one_way_and_at_most_500() {
    let f = Actions::new().await;
    let many: Vec<String> = (0..501).map(|n| format!("{}", 1_000 + n)).collect();
    for (body, field) in [
        (json!({"reason": "r"}), None),
        (
            json!({"user_ids": ["1"], "criteria": {"inactive_days": 90}, "reason": "r"}),
            None,
        ),
        (json!({"user_ids": many, "reason": "r"}), Some("user_ids")),
        (json!({"user_ids": [], "reason": "r"}), Some("user_ids")),
        (json!({"user_ids": ["1", "x/../2"], "reason": "r"}), Some("user_ids[1]")),
        (
            json!({"criteria": {"inactive_days": 0}, "reason": "r"}),
            Some("criteria.inactive_days"),
        ),
        (json!({"user_ids": ["1"]}), None),
        (json!({"user_ids": ["1"], "reason": ""}), Some("reason")),
    ] {
        let response = f.post("/users/deactivate", body.clone(), Some("k")).await;
        let problem = response.problem(if body.to_string().len() > 16 * 1024 { 413 } else { 400 });
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}");
        }
    }
    assert_eq!(f.box_calls(), 0);
    assert!(f.audit().await.is_empty());
}

/// Makes `n` plain idle users (last login 200 days ago) Drive-only: content activity 2 days ago.
async fn drive_only_users(f: &Actions, n: usize) -> Vec<String> {
    let mut users: Vec<_> = f.idle_users(false).await.into_iter().take(n).collect();
    assert_eq!(users.len(), n, "the enterprise has idle users");
    for u in &mut users {
        u.login_activity = Activity::Seen {
            at: Utc::now() - Duration::days(200),
            origin: ActivityOrigin::BoxLogin,
        };
        u.content_activity = Activity::Seen {
            at: Utc::now() - Duration::days(2),
            origin: ActivityOrigin::BoxContent,
        };
    }
    f.aws.table().put_users(&f.tenant, &users).await.unwrap();
    users.into_iter().map(|u| String::from(u.box_user_id)).collect()
}

fn results(answer: &Value) -> Vec<(String, String, String)> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["box_user_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
                r["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn bulk_criteria_with_signal_any_never_select_a_working_user() {
    let f = Actions::new().await;
    let drive = drive_only_users(&f, 2).await;
    let plan = ok(&f
        .post(
            "/users/deactivate",
            json!({"criteria": {"inactive_days": 90}, "reason": "idle 90 days", "dry_run": true}),
            None,
        )
        .await);
    let selected = results(&plan);
    assert!(!selected.is_empty(), "other idle users are selected: {plan}");
    for id in &drive {
        assert!(
            selected.iter().all(|(s, _, _)| s != id),
            "working user {id} is not selected with signal any: {plan}"
        );
    }
    // Every stored user with content activity within 90 days stays out, not only these.
    let working: Vec<String> = f
        .pick(|u| {
            u.signals()
                .by_signal(ActivitySignal::Content)
                .at()
                .is_some_and(|at| at > Utc::now() - Duration::days(89))
        })
        .await
        .into_iter()
        .map(|u| String::from(u.box_user_id))
        .collect();
    assert!(selected.iter().all(|(s, _, _)| !working.contains(s)), "{plan}");
}

#[tokio::test]
async fn a_bulk_criteria_dry_run_never_plans_a_drive_only_user_whatever_the_signal() {
    let f = Actions::new().await;
    let drive = drive_only_users(&f, 2).await;
    for signal in [ActivitySignal::Any, ActivitySignal::Login, ActivitySignal::Content] {
        f.set_settings(|s| s.activity_signal = signal).await;
        let plan = ok(&f
            .post(
                "/users/deactivate",
                json!({"criteria": {"inactive_days": 90}, "reason": "idle 90 days", "dry_run": true}),
                None,
            )
            .await);
        for id in &drive {
            match results(&plan).into_iter().find(|(s, _, _)| s == id) {
                None => assert_ne!(signal, ActivitySignal::Login, "by logins alone {id} is idle: selected"),
                Some((_, outcome, detail)) => {
                    assert_eq!(outcome, "refused", "{signal:?}: {id} {detail}");
                    assert!(detail.contains("content activity"), "the refusal says why: {detail}");
                }
            }
        }
    }
    assert_eq!(f.box_calls(), 0, "dry runs call Box zero times");
}

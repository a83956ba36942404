//! usage-sync end to end on moto (DynamoDB, Secrets Manager, SQS) and the simulators: fan-out,
//! one effective sync per delivery slot, skips with reasons, partial-batch failures, continuation,
//! and Business-plan tenants synced from Okta and Entra ID.

use std::sync::Arc;
use std::time::Duration;

use box_sim::{Endpoint, Faults, Plan, SimConfig};
use chrono::Utc;
use seatsync::boxapi::AppCredentials;
use seatsync::connection::{ActivitySource, ConnectMethod, ConnectionRecord, ConnectionStatus, Connections};
use seatsync::ids::TenantId;
use seatsync::license::{Activity, ActivityOrigin, UserKind};
use seatsync::settings::SettingsStore;
use seatsync::sso::{HttpOptions, SsoConfig};
use seatsync::storage::{BoxTokenSet, TokenKind};
use seatsync::sync::invocation::handle;
use seatsync::sync::{
    LicenseStore, SqsQueue, SyncKind, SyncMessage, SyncOptions, SyncOutcome, SyncQueue, SyncService, Syncer,
    TenantOutcome,
};
use seatsync::tokens::{TokenProvider, TokenProviderOptions, TokenVault};
use seatsync_tests::aws::TestAws;
use seatsync_tests::boxsim::TestBox;
use seatsync_tests::sync::enterprise;
use secrecy::SecretString;
use serde_json::json;
use sso_sim::{EntraConfig, EntraSim, OktaConfig, OktaSim, people_from};

pub(crate) struct Fixture {
    pub(crate) aws: TestAws,
    pub(crate) tb: TestBox,
    pub(crate) service: SyncService,
    pub(crate) queue: SqsQueue,
}

impl Fixture {
    pub(crate) async fn new(sim: SimConfig) -> Fixture {
        let app = AppCredentials {
            client_id: sim.client_id.clone(),
            client_secret: SecretString::from(sim.client_secret.clone()),
        };
        let (aws, tb) = tokio::join!(TestAws::new(), TestBox::start(sim));
        let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
        let url = sqs
            .create_queue()
            .queue_name(format!("sync-{}", uuid::Uuid::new_v4().simple()))
            .send()
            .await
            .expect("create a queue on moto")
            .queue_url
            .expect("a queue url");
        let tokens = TokenProvider::new(
            Arc::new(aws.secret_store()),
            aws.table(),
            tb.client.clone(),
            app,
            TokenProviderOptions::default(),
        );
        let service = SyncService {
            table: aws.table(),
            connections: Connections::new(aws.table()),
            settings: SettingsStore::new(aws.table()),
            secrets: aws.secret_store(),
            syncer: Syncer {
                store: Arc::new(aws.table()),
                tokens: Arc::new(tokens),
                box_api: tb.client.clone(),
                options: SyncOptions {
                    requests_per_minute: 60_000,
                    ..SyncOptions::default()
                },
            },
            sso_http: HttpOptions::for_loopback_simulators(),
        };
        Fixture {
            queue: SqsQueue { client: sqs, url },
            aws,
            tb,
            service,
        }
    }

    /// A tenant connected to the simulated enterprise, with live tokens in Secrets Manager.
    pub(crate) async fn connect(&self, tenant: &str, status: ConnectionStatus, source: ActivitySource) -> TenantId {
        let tenant = TenantId::parse(tenant).unwrap();
        let pair = self.tb.sim.issue_tokens(&self.tb.sim.primary_admin_id());
        let tokens = BoxTokenSet {
            kind: TokenKind::OAuth,
            access_token: SecretString::from(pair.access_token),
            access_expires_at: Utc::now() + chrono::Duration::minutes(50),
            refresh_token: Some(SecretString::from(pair.refresh_token)),
            obtained_at: Utc::now(),
            client_id: None,
            client_secret: None,
            enterprise_id: Some(seatsync_tests::boxsim::enterprise_id(&self.tb.sim.enterprise_id())),
        };
        TokenVault::write(&self.aws.secret_store(), &tenant, &tokens, &"0".repeat(40))
            .await
            .unwrap();
        let record = ConnectionRecord {
            status,
            method: ConnectMethod::OAuth,
            enterprise_id: seatsync_tests::boxsim::enterprise_id(&self.tb.sim.enterprise_id()),
            enterprise_name: Some("Acme Inc.".into()),
            connected_by_box_id: seatsync_tests::boxsim::box_id(&self.tb.sim.primary_admin_id()),
            connected_by_login: None,
            connected_by_sub: "sub-1".into(),
            scopes: vec![],
            connected_at: Utc::now(),
            activity_source: source,
            status_reason: (status == ConnectionStatus::ReauthRequired)
                .then(|| "Box refused the stored refresh token".into()),
            status_since: Utc::now(),
            last_sync_at: None,
        };
        Connections::new(self.aws.table()).save(&tenant, &record).await.unwrap();
        tenant
    }

    pub(crate) async fn queued(&self) -> Vec<(String, SyncMessage)> {
        let mut all = Vec::new();
        for _ in 0..10 {
            let out = self
                .queue
                .client
                .receive_message()
                .queue_url(&self.queue.url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = out.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                self.queue
                    .client
                    .delete_message()
                    .queue_url(&self.queue.url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                all.push((
                    m.message_id().unwrap().to_owned(),
                    serde_json::from_str(m.body().unwrap()).unwrap(),
                ));
            }
        }
        all
    }
}

pub(crate) fn message(tenant: &TenantId, slot: &str) -> SyncMessage {
    SyncMessage {
        tenant: tenant.clone(),
        kind: SyncKind::Full,
        slot: slot.into(),
        continuation: false,
    }
}

#[tokio::test]
async fn the_schedule_queues_one_message_per_connected_tenant() {
    let f = Fixture::new(enterprise(20)).await;
    for t in ["t1", "t2"] {
        f.connect(t, ConnectionStatus::Connected, ActivitySource::BoxEvents)
            .await;
    }
    f.connect("t3", ConnectionStatus::Connected, ActivitySource::Sso).await;
    f.connect("t4", ConnectionStatus::ReauthRequired, ActivitySource::BoxEvents)
        .await;
    f.connect("t5", ConnectionStatus::Disconnected, ActivitySource::BoxEvents)
        .await;

    let answer = handle(
        &f.service,
        &f.queue,
        json!({"action": "fan_out", "kind": "full", "slot": "2026-11-28T06:00:00Z"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer["queued"], 3);
    let mut tenants: Vec<_> = f
        .queued()
        .await
        .into_iter()
        .map(|(_, m)| m.tenant.to_string())
        .collect();
    tenants.sort();
    assert_eq!(tenants, ["t1", "t2", "t3"]);

    let answer = handle(
        &f.service,
        &f.queue,
        json!({"action": "fan_out", "kind": "incremental", "slot": "2026-11-28T06:15:00Z"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        answer["queued"], 2,
        "incremental passes only for tenants on Box's event stream"
    );
    assert_eq!(f.queued().await.len(), 2);
}

#[tokio::test]
async fn a_duplicate_delivery_is_one_effective_sync() {
    let f = Fixture::new(enterprise(200)).await;
    let t = f
        .connect("acme", ConnectionStatus::Connected, ActivitySource::BoxEvents)
        .await;
    let first = f.service.run(&f.queue, &message(&t, "slot-1"), None).await;
    assert!(matches!(first, TenantOutcome::Done(_)), "{first:?}");
    let calls = f.tb.sim.counters().total_all();
    let again = f.service.run(&f.queue, &message(&t, "slot-1"), None).await;
    assert!(
        matches!(again, TenantOutcome::Skipped(ref r) if r.contains("duplicate")),
        "{again:?}"
    );
    assert_eq!(f.tb.sim.counters().total_all(), calls, "no Box call for the duplicate");
    let record = Connections::new(f.aws.table()).get(&t).await.unwrap().unwrap();
    assert!(record.last_sync_at.is_some(), "the connection shows the last sync");
}

#[tokio::test]
async fn a_reauth_required_tenant_is_skipped_with_the_reason_recorded() {
    let f = Fixture::new(enterprise(50)).await;
    let t = f
        .connect("acme", ConnectionStatus::ReauthRequired, ActivitySource::BoxEvents)
        .await;
    f.tb.sim.reset_counters();
    let outcome = f.service.run(&f.queue, &message(&t, "slot-1"), None).await;
    assert!(
        matches!(outcome, TenantOutcome::Skipped(ref r) if r.contains("authorized again")),
        "{outcome:?}"
    );
    assert_eq!(f.tb.sim.counters().total_all(), 0);
    let last = f
        .aws
        .table()
        .get_checkpoint(&t)
        .await
        .unwrap()
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(last.outcome, SyncOutcome::Skipped);
    assert!(last.error.unwrap().contains("refused the stored refresh token"));
}

#[tokio::test]
async fn one_tenants_failure_never_stops_the_others() {
    let f = Fixture::new(enterprise(100)).await;
    let good = f
        .connect("good", ConnectionStatus::Connected, ActivitySource::BoxEvents)
        .await;
    let bad = TenantId::parse("bad").unwrap();
    // "bad" is connected but its token secret is missing: it fails, "good" still syncs.
    let mut record = Connections::new(f.aws.table()).get(&good).await.unwrap().unwrap();
    record.enterprise_id = seatsync_tests::boxsim::enterprise_id("1");
    Connections::new(f.aws.table()).save(&bad, &record).await.unwrap();
    f.tb.sim.set_faults(Faults::default());
    let event = json!({ "Records": [
        { "messageId": "m-bad", "body": serde_json::to_string(&message(&bad, "s1")).unwrap(), "eventSource": "aws:sqs" },
        { "messageId": "m-good", "body": serde_json::to_string(&message(&good, "s1")).unwrap(), "eventSource": "aws:sqs" },
        { "messageId": "m-garbled", "body": "{not json", "eventSource": "aws:sqs" },
    ]});
    let answer = handle(&f.service, &f.queue, event, None).await.unwrap();
    let failed: Vec<_> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    assert!(failed.contains(&"m-garbled".to_owned()));
    assert!(!failed.contains(&"m-good".to_owned()));
    assert!(
        f.aws.table().get_summary(&good).await.unwrap().is_some(),
        "the good tenant synced"
    );
    assert!(f.aws.table().get_summary(&bad).await.unwrap().is_none());
}

#[tokio::test]
async fn a_run_out_of_time_queues_its_continuation_which_finishes_it() {
    let f = Fixture::new(enterprise(400)).await;
    let t = f
        .connect("acme", ConnectionStatus::Connected, ActivitySource::BoxEvents)
        .await;
    // Slow pages (about 7 per slice) and 300 ms before the deadline margin: it stops mid-way.
    f.tb.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let deadline = tokio::time::Instant::now() + f.service.syncer.options.deadline_margin + Duration::from_millis(300);
    let outcome = f.service.run(&f.queue, &message(&t, "slot-1"), Some(deadline)).await;
    assert!(matches!(outcome, TenantOutcome::Continued(_)), "{outcome:?}");
    f.tb.sim.set_faults(Faults::default());

    let queued = f.queued().await;
    assert_eq!(queued.len(), 1);
    let (id, next) = &queued[0];
    assert!(next.continuation);
    let event = json!({ "Records": [{ "messageId": id, "body": serde_json::to_string(next).unwrap(), "eventSource": "aws:sqs" }] });
    let answer = handle(&f.service, &f.queue, event, None).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    let summary = f
        .aws
        .table()
        .get_summary(&t)
        .await
        .unwrap()
        .expect("the continued run completed");
    let seat_holders =
        f.tb.sim
            .users()
            .iter()
            .filter(|u| !u.is_app_user && !u.is_external)
            .count();
    assert_eq!(summary.seat_holders as usize, seat_holders);
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
}

pub(crate) async fn business_tenant(f: &Fixture, sso: &SsoConfig) -> TenantId {
    let t = f
        .connect("acme", ConnectionStatus::Connected, ActivitySource::Sso)
        .await;
    let name = f.aws.secret_store().sso_secret_name(&t);
    f.aws
        .secret_store()
        .write_json(&name, sso, &"1".repeat(40))
        .await
        .unwrap();
    t
}

pub(crate) fn business() -> SimConfig {
    let mut sim = enterprise(400);
    sim.enterprise.plan = Plan::Business;
    sim
}

#[tokio::test]
async fn a_business_plan_tenant_gets_its_activity_from_okta() {
    let f = Fixture::new(business()).await;
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
    let config = SsoConfig::Okta {
        base_url: url::Url::parse(&okta.base_url()).unwrap(),
        box_app_instance_id: okta.app_instance_id().to_owned(),
        api_token: SecretString::from(OktaConfig::default().api_token),
    };
    let t = business_tenant(&f, &config).await;

    let outcome = f.service.run(&f.queue, &message(&t, "slot-1"), None).await;
    assert!(matches!(outcome, TenantOutcome::Done(_)), "{outcome:?}");
    assert_eq!(
        f.tb.sim.counters().get(Endpoint::Events, 200),
        0,
        "Box's event stream is not read"
    );

    let truth = okta.ground_truth();
    let stored = f.aws.table().load_users(&t).await.unwrap();
    for user in stored.values().filter(|u| u.kind == UserKind::Managed) {
        let expected = truth.get(&user.login.clone().unwrap().to_lowercase());
        match (&user.login_activity, expected) {
            (Activity::Seen { at, origin }, Some(t)) => {
                assert_eq!((at, *origin), (t, ActivityOrigin::Okta), "{}", user.box_user_id);
            }
            (Activity::NoData, None) => {}
            (other, expected) => panic!("{}: stored {other:?}, Okta says {expected:?}", user.box_user_id),
        }
    }
    let summary = f.aws.table().get_summary(&t).await.unwrap().unwrap();
    assert_eq!(summary.activity_source, ActivitySource::Sso);
    assert_eq!(summary.activity_provider, "okta");
    println!(
        "okta: {} people with a sign-in, {} without (no activity data)",
        truth.len(),
        summary.histogram.no_data
    );
}

#[tokio::test]
async fn a_business_plan_tenant_gets_its_activity_from_entra_id() {
    let f = Fixture::new(business()).await;
    let users = f.tb.sim.users();
    let pairs: Vec<_> = users
        .iter()
        .filter(|u| !u.is_app_user && !u.is_external)
        .map(|u| (u.login.as_str(), u.last_login))
        .collect();
    let entra = EntraSim::start(EntraConfig {
        users: people_from(&pairs),
        other_app_sign_ins: 300,
        ..EntraConfig::default()
    })
    .await
    .unwrap();
    let c = entra.config();
    let config: SsoConfig = serde_json::from_value(json!({
        "provider": "entra", "login_base": entra.login_base(), "graph_base": entra.graph_base(),
        "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": c.client_secret, "box_app_id": c.box_app_id,
    }))
    .unwrap();
    let t = business_tenant(&f, &config).await;

    let outcome = f.service.run(&f.queue, &message(&t, "slot-1"), None).await;
    assert!(matches!(outcome, TenantOutcome::Done(_)), "{outcome:?}");

    let truth = entra.ground_truth();
    let stored = f.aws.table().load_users(&t).await.unwrap();
    let mut seen = 0;
    for user in stored.values().filter(|u| u.kind == UserKind::Managed) {
        match (
            &user.login_activity,
            truth.get(&user.login.clone().unwrap().to_lowercase()),
        ) {
            (Activity::Seen { at, origin }, Some(t)) => {
                assert_eq!((at, *origin), (t, ActivityOrigin::Entra));
                seen += 1;
            }
            (Activity::NoData, None) => {}
            (other, expected) => panic!("{}: stored {other:?}, Entra says {expected:?}", user.box_user_id),
        }
    }
    assert!(seen > 0);
    let summary = f.aws.table().get_summary(&t).await.unwrap().unwrap();
    assert_eq!(
        (summary.activity_source, summary.activity_provider.as_str()),
        (ActivitySource::Sso, "entra")
    );
}

#[tokio::test]
async fn the_sqs_queue_takes_fan_outs_larger_than_one_batch() {
    let f = Fixture::new(enterprise(10)).await;
    let messages: Vec<_> = (0..23)
        .map(|i| message(&TenantId::parse(&format!("t{i}")).unwrap(), "s"))
        .collect();
    f.queue.enqueue(&messages).await.unwrap();
    assert_eq!(f.queued().await.len(), 23);
}

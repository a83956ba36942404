//! Everything seatsync needs, on this machine: a Box (the simulator, or a real enterprise when its
//! credentials are in the environment), the local AWS endpoint's table, secrets and queue, the real
//! services of every function, and their HTTP APIs served together on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Request;
use box_sim::{BoxSim, EnterpriseSpec, SimConfig};
use rand::RngCore;
use seatsync::actions::{ActionsConfig, ActionsService};
use seatsync::boxapi::{AppCredentials, BoxClient, BoxEndpoints, ClientOptions, RetryPolicy};
use seatsync::connect::{ConnectConfig, ConnectService};
use seatsync::connection::{AppConfig, Connections};
use seatsync::reports::{ReportsConfig, ReportsService};
use seatsync::settings::SettingsStore;
use seatsync::sso::{HttpOptions, OutboundPolicy};
use seatsync::storage::{SecretStore, Table, load_aws_config};
use seatsync::sync::{SqsQueue, SyncOptions, SyncService, Syncer};
use seatsync::tokens::{TokenProvider, TokenProviderOptions};
use secrecy::SecretString;
use tower::ServiceExt as _;

use crate::dev_identity;

pub const REDIRECT_URI: &str = "https://seatsync.localhost/oauth/box/callback";
pub const RETURN_URL: &str = "https://seatsync.localhost/settings/box";

/// Which Box this run talks to.
pub enum BoxTarget {
    Simulator(BoxSim),
    /// A real enterprise through a client-credentials app (`BOX_CLIENT_ID`, `BOX_CLIENT_SECRET`,
    /// `BOX_ENTERPRISE_ID`).
    Real {
        client_id: String,
        client_secret: SecretString,
        enterprise_id: String,
    },
}

impl BoxTarget {
    /// The real enterprise when its credentials are set, else a simulated one of `users` users.
    pub async fn from_env(users: usize) -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let (Some(client_id), Some(secret), Some(enterprise_id)) =
            (var("BOX_CLIENT_ID"), var("BOX_CLIENT_SECRET"), var("BOX_ENTERPRISE_ID"))
        {
            return Ok(BoxTarget::Real {
                client_id,
                client_secret: SecretString::from(secret),
                enterprise_id,
            });
        }
        let config = SimConfig {
            seed: 2026,
            redirect_uri: Some(REDIRECT_URI.into()),
            enterprise: EnterpriseSpec {
                users,
                history_days: 180,
                ..EnterpriseSpec::default()
            },
            ..SimConfig::default()
        };
        Ok(BoxTarget::Simulator(BoxSim::start(config).await?))
    }

    pub fn describe(&self) -> String {
        match self {
            BoxTarget::Simulator(sim) => format!("the Box simulator at {} (a seeded enterprise)", sim.api_base()),
            BoxTarget::Real { enterprise_id, .. } => {
                format!("the real Box enterprise {enterprise_id} (client credentials)")
            }
        }
    }
}

/// The running services and their routers.
pub struct Stack {
    pub target: BoxTarget,
    pub sync: SyncService,
    pub queue: SqsQueue,
    pub router: Router,
}

impl Stack {
    pub async fn start(target: BoxTarget) -> anyhow::Result<Stack> {
        let aws_endpoint =
            std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL is not set: run through scripts/demo")?;
        let sdk = load_aws_config().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let table = Table::create(aws_sdk_dynamodb::Client::new(&sdk), &format!("seatsync-local-{suffix}")).await?;
        let secrets = SecretStore::with_prefix(
            aws_sdk_secretsmanager::Client::new(&sdk),
            format!("seatsync-local-{suffix}/"),
        );
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("seatsync-local-{suffix}"))
            .send()
            .await
            .context("create the sync queue")?
            .queue_url
            .context("no queue url")?;
        tracing::debug!(%aws_endpoint, "local AWS resources created");

        let (endpoints, app) = match &target {
            BoxTarget::Simulator(sim) => (
                BoxEndpoints::new(&sim.api_base(), &sim.account_base())?,
                AppCredentials {
                    client_id: "sim-client-id".into(),
                    client_secret: SecretString::from("sim-client-secret"),
                },
            ),
            BoxTarget::Real {
                client_id,
                client_secret,
                ..
            } => (
                BoxEndpoints::new("https://api.box.com", "https://account.box.com")?,
                AppCredentials {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                },
            ),
        };
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let cookie_key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let app_secret_id = format!("{}app", secrets.prefix());
        let app_json = serde_json::json!({
            "client_id": app.client_id,
            "client_secret": secrecy::ExposeSecret::expose_secret(&app.client_secret),
            "cookie_key": cookie_key,
        });
        secrets.write_json(&app_secret_id, &app_json, &"0".repeat(40)).await?;
        let app_config = AppConfig::load(&secrets, &app_secret_id).await?;

        let interactive = BoxClient::new(
            endpoints.clone(),
            ClientOptions {
                retry: RetryPolicy::interactive(),
                ..ClientOptions::default()
            },
        )?;
        let background = BoxClient::new(endpoints, ClientOptions::default())?;
        let tokens = Arc::new(TokenProvider::new(
            Arc::new(secrets.clone()),
            table.clone(),
            interactive.clone(),
            app_config.box_app.clone(),
            TokenProviderOptions::default(),
        ));
        let connect = ConnectService::new(
            ConnectConfig {
                redirect_uri: REDIRECT_URI.into(),
                return_url: url::Url::parse(RETURN_URL)?,
                tenant_claim: "tenant_id".into(),
                app_secret_id: app_secret_id.clone(),
                state_ttl: std::time::Duration::from_secs(600),
            },
            app_config,
            table.clone(),
            Arc::new(secrets.clone()),
            interactive.clone(),
        );
        let actions = ActionsService::new(
            ActionsConfig {
                tenant_claim: "tenant_id".into(),
                app_secret_id,
            },
            table.clone(),
            tokens.clone(),
            interactive,
        );
        let queue = SqsQueue {
            client: sqs.clone(),
            url: queue_url.clone(),
        };
        let reports = ReportsService::new(
            ReportsConfig {
                tenant_claim: "tenant_id".into(),
                sync_queue_url: queue_url.clone(),
            },
            table.clone(),
            secrets.clone(),
            Arc::new(SqsQueue {
                client: sqs,
                url: queue_url,
            }),
        )
        // Local only: SSO settings may point at an sso-sim on loopback. No function sets this.
        .with_sso_outbound(OutboundPolicy::with_loopback_simulators());
        let sync = SyncService {
            table: table.clone(),
            connections: Connections::new(table.clone()),
            settings: SettingsStore::new(table.clone()),
            secrets,
            syncer: Syncer {
                store: Arc::new(table.clone()),
                tokens,
                box_api: background,
                options: SyncOptions::default(),
            },
            sso_http: HttpOptions::for_loopback_simulators(),
        };
        let router = combined(
            seatsync::connect::router(Arc::new(connect)),
            seatsync::actions::router(Arc::new(actions)),
            seatsync::reports::router(Arc::new(reports)),
        );
        Ok(Stack {
            target,
            sync,
            queue,
            router,
        })
    }

    /// Serves the API on loopback. With `dev_identity`, `x-seatsync-dev-tenant` stands in for the
    /// JWT authorizer; without it every authenticated route answers 401.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        dev_identity: bool,
    ) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        if !addr.ip().is_loopback() {
            bail!("the local API binds loopback addresses only, not {addr}");
        }
        let router = if dev_identity {
            self.router
                .clone()
                .layer(axum::middleware::map_request(|r: Request| async move {
                    dev_identity::apply(r)
                }))
        } else {
            self.router
                .clone()
                .layer(axum::middleware::map_request(|mut r: Request| async move {
                    r.extensions_mut().remove::<lambda_http::request::RequestContext>();
                    r
                }))
        };
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok((bound, task))
    }

    /// Delivers every queued sync message, as the SQS trigger would (bounded).
    pub async fn drain_sync_queue(&self) -> anyhow::Result<usize> {
        let mut handled = 0;
        for _ in 0..50 {
            let out = self
                .queue
                .client
                .receive_message()
                .queue_url(&self.queue.url)
                .max_number_of_messages(10)
                .send()
                .await?;
            let messages = out.messages();
            if messages.is_empty() {
                return Ok(handled);
            }
            for m in messages {
                let event = serde_json::json!({ "Records": [{
                    "messageId": m.message_id().unwrap_or_default(),
                    "body": m.body().unwrap_or_default(),
                    "eventSource": "aws:sqs",
                }]});
                let answer = seatsync::sync::invocation::handle(&self.sync, &self.queue, event, None)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
                if answer["batchItemFailures"].as_array().is_some_and(|f| !f.is_empty()) {
                    bail!("a tenant sync failed: {answer}");
                }
                if let Some(handle) = m.receipt_handle() {
                    self.queue
                        .client
                        .delete_message()
                        .queue_url(&self.queue.url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
                handled += 1;
            }
        }
        bail!("the sync queue did not empty")
    }

    pub async fn shutdown(self) {
        if let BoxTarget::Simulator(sim) = self.target {
            sim.shutdown().await;
        }
    }
}

/// One router for the three HTTP functions, as API Gateway routes them by path.
fn combined(connect: Router, actions: Router, reports: Router) -> Router {
    let dispatch = tower::service_fn(move |request: Request| {
        let path = request.uri().path();
        let router = if path.starts_with("/connections") || path.starts_with("/oauth") {
            connect.clone()
        } else if path.starts_with("/users") {
            actions.clone()
        } else {
            reports.clone()
        };
        async move { router.oneshot(request).await }
    });
    Router::new().fallback_service(dispatch)
}

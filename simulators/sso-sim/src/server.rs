//! How the identity-provider simulators plug into `sim_core`: each provider routes its paths to an
//! [`Endpoint`] and shapes its own error answers; latency, seeded random faults, scripted
//! nth-request faults, counters and serving on loopback are shared.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sim_core::{DropConnection, FaultPlan, RandomFault, Shares};

pub(crate) use sim_core::{Reply, Req, lock};

use crate::{Counters, Endpoint, Fault, Faults};

/// What a provider simulator plugs into the shared server.
pub(crate) trait App: Send + Sync + 'static {
    fn route(&self, method: &http::Method, path: &str) -> Option<Endpoint>;
    /// The provider's own shape of an injected error answer.
    fn fault_reply(&self, ep: Endpoint, status: u16, retry_after_secs: u64) -> Reply;
    fn handle(&self, ep: Endpoint, req: &Req) -> Reply;
}

pub(crate) struct FaultState {
    pub faults: Faults,
    plan: FaultPlan<Endpoint, Fault>,
}

pub(crate) struct Core {
    pub faults: Mutex<FaultState>,
    pub counters: Mutex<Counters>,
}

impl Core {
    pub fn new(seed: u64, faults: Faults) -> Core {
        Core {
            faults: Mutex::new(FaultState {
                faults,
                plan: FaultPlan::new(ChaCha8Rng::seed_from_u64(seed ^ 0xFA_0175)),
            }),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The `nth` request (1-based, counted from now) to `ep` gets `fault`, once.
    pub fn inject(&self, ep: Endpoint, nth: u64, fault: Fault) {
        lock(&self.faults).plan.inject(ep, nth, fault);
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.faults).faults = faults;
    }

    pub fn counters(&self) -> Counters {
        lock(&self.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.counters) = Counters::default();
    }
}

/// A running provider server on a random loopback port, with its faults and counters: what every
/// provider's simulator offers besides its own data (each `*Sim` derefs to it). Stops when
/// dropped or on [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    core: Arc<Core>,
    server: sim_core::Running,
}

impl Running {
    pub(crate) async fn start<A: App>(app: Arc<A>, core: Arc<Core>) -> anyhow::Result<Running> {
        let serving = core.clone();
        let server = sim_core::Running::start("sso-sim", SocketAddr::from(([127, 0, 0, 1], 0)), move |req| {
            let (app, core) = (app.clone(), serving.clone());
            async move { handle(&*app, &core, req).await }
        })
        .await?;
        Ok(Running {
            addr: server.addr(),
            core,
            server,
        })
    }

    pub fn set_faults(&self, faults: Faults) {
        self.core.set_faults(faults);
    }

    /// The `nth` request (1-based, counted from now) to `ep` gets `fault`, once.
    pub fn inject(&self, ep: Endpoint, nth: u64, fault: Fault) {
        self.core.inject(ep, nth, fault);
    }

    pub fn counters(&self) -> Counters {
        self.core.counters()
    }

    pub fn reset_counters(&self) {
        self.core.reset_counters();
    }

    pub async fn shutdown(&self) {
        self.server.shutdown().await;
    }
}

async fn handle<A: App>(app: &A, core: &Core, req: Req) -> Result<Reply, DropConnection> {
    let Some(ep) = app.route(&req.method, &req.path) else {
        return Ok(Reply::json(
            404,
            serde_json::json!({"error": "not_found", "path": req.path}),
        ));
    };

    let (latency, retry_after_secs, faults) = {
        let mut f = lock(&core.faults);
        let injected = f.plan.arrive(ep);
        let cfg = f.faults.clone();
        let shares = Shares {
            drop: cfg.share_drop,
            status_5xx: cfg.share_5xx,
            status_429: cfg.share_429,
        };
        let random = f.plan.roll(shares).map(|fault| match fault {
            RandomFault::Drop => Fault::Drop,
            RandomFault::Status(status) => Fault::Status {
                status,
                retry_after: None,
            },
        });
        (cfg.latency, cfg.retry_after_secs, [injected, random])
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    for fault in faults.into_iter().flatten() {
        let reply = match fault {
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                continue;
            }
            Fault::Redirect(location) => Reply::json(302, serde_json::json!({})).header("location", location),
            Fault::Raw { status, body } => Reply::text(status, "application/json", body),
            Fault::Drop => {
                lock(&core.counters).record_drop(ep);
                return Err(DropConnection);
            }
            Fault::Status { status, retry_after } => {
                app.fault_reply(ep, status, retry_after.unwrap_or(retry_after_secs))
            }
        };
        lock(&core.counters).record(ep, reply.status);
        return Ok(reply);
    }
    let reply = app.handle(ep, &req);
    lock(&core.counters).record(ep, reply.status);
    Ok(reply)
}

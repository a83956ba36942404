//! Identity-provider simulators for seatsync: Okta's System Log, Microsoft Entra ID's Graph sign-in
//! logs and `signInActivity`, and Google Workspace's Reports API (SAML activities), each a real HTTP
//! server on a random loopback port that behaves as `sso-activity.md` describes, pitfalls included (a
//! polling Okta query's next link never ends, Entra answers 403 to tenants without P1/P2,
//! `lastSignInDateTime` counts failures, Google only lets a delegated admin read reports). Runs are
//! seeded, faults are injectable, requests are counted, and each simulator knows the ground truth:
//! every person's latest successful Box sign-in.

pub mod entra;
pub mod google;
pub mod okta;
mod people;
mod server;

use std::time::Duration;

pub use entra::{EntraConfig, EntraSim};
pub use google::{GoogleConfig, GoogleSim, TestKey};
pub use okta::{OktaConfig, OktaSim};
pub use people::{SsoPerson, generate_people, people_from};
pub use server::Running;

/// Random faults of a run, drawn from a seeded generator (same seed, same sequence of faults).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Added to every request before it is handled.
    pub latency: Duration,
    /// Share of requests answered 429 (Okta: `X-Rate-Limit-Reset`; Graph: `Retry-After`).
    pub share_429: f64,
    /// Seconds until the rate limit resets (Okta) or the `Retry-After` value (Graph).
    pub retry_after_secs: u64,
    /// Share of requests answered 500, 502 or 503.
    pub share_5xx: f64,
    /// Share of requests whose connection is closed without an answer.
    pub share_drop: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            share_429: 0.0,
            retry_after_secs: 1,
            share_5xx: 0.0,
            share_drop: 0.0,
        }
    }
}

/// One scripted fault for the nth request to an endpoint (see `inject` on each simulator).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status without handling the request. 429 carries the provider's rate-limit
    /// headers with `retry_after_secs` of the run's [`Faults`] unless given here.
    Status { status: u16, retry_after: Option<u64> },
    /// Close the connection without any answer.
    Drop,
    /// Wait, then handle the request normally.
    Delay(Duration),
    /// Answer `302 Found` with this `Location`: a client must not follow it.
    Redirect(String),
    /// Answer with this status and this body, verbatim (`application/json`): an oversized page, or
    /// an error text the client must not pass on.
    Raw { status: u16, body: String },
}

/// The simulated endpoints, for fault injection and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Okta `GET /api/v1/logs`.
    OktaLogs,
    /// Entra `POST /{tenant}/oauth2/v2.0/token`.
    EntraToken,
    /// Graph `GET /v1.0/auditLogs/signIns`.
    EntraSignIns,
    /// Graph `GET /v1.0/users`.
    EntraUsers,
    /// Google OAuth `POST /token` (service-account assertions).
    GoogleToken,
    /// Reports API `GET /admin/reports/v1/activity/users/{userKey}/applications/{app}`.
    GoogleActivities,
}

/// Requests answered, by endpoint and status; dropped connections are counted apart.
pub type Counters = sim_core::Counters<Endpoint>;

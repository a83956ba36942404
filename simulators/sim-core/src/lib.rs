//! The simulator core that box-sim and sso-sim share: a hyper server on loopback that can close a
//! connection without answering ([`Running`]), parsed requests and replies ([`Req`], [`Reply`]),
//! scripted nth-request faults and seeded random ones ([`FaultPlan`]), and answer counters
//! ([`Counters`]). Each simulator keeps its own endpoints, fault kinds and error shapes.

mod counters;
mod faults;
mod http;
mod serve;

pub use counters::Counters;
pub use faults::{FaultPlan, RandomFault, Shares};
pub use http::{Body, DropConnection, Reply, Req};
pub use serve::Running;

/// Locks `m`, going on with the data when a panicking holder poisoned it (a simulator serves on).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random GUID in the 8-4-4-4-12 form Okta and Entra ID use for ids, from the simulator's seeded
/// generator (so a seed gives the same ids every run).
pub fn guid(rng: &mut impl rand::Rng) -> String {
    let h = format!("{:032x}", rng.random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

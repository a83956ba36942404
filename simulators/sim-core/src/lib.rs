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

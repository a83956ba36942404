//! seatsync core: everything the Lambda functions share.
//!
//! - [`boxapi`]: a typed client for the parts of the Box API that license management needs
//!   (OAuth, users, admin events, user changes), with Box's real paging, errors and rate limits.
//! - [`storage`]: the single DynamoDB table and the per-tenant Box token secrets.
//! - [`config`], [`ids`], [`telemetry`]: parsing at the edge, so inner code only sees valid values.

pub mod actions;
pub mod api;
pub mod audit;
pub mod boxapi;
pub mod config;
pub mod connect;
pub mod connection;
pub mod ids;
pub mod license;
pub mod problem;
pub mod reports;
pub mod retry;
pub mod runtime;
pub mod settings;
pub mod sso;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod tokens;

//! The edge of seatsync's HTTP APIs (API Gateway HTTP API, payload 2.0, run as axum routers), one
//! toolkit for every function: who is calling ([`Identity`], only from the verified JWT claims),
//! what the request carries ([`ApiJson`], [`ApiQuery`], [`ApiPath`]), the route table and the
//! router built from it ([`RouteTable`], [`router_from`]: problem+json 404/405, `no-store`), every
//! error as `application/problem+json` ([`ApiError`]), the per-tenant request limit in front of
//! every router ([`TenantLimit`], 429 with `Retry-After`), and request text made safe to echo
//! ([`text`]).

mod error;
mod extract;
mod identity;
mod limit;
mod routes;
pub mod text;

pub use error::{ApiError, problem_response};
pub use extract::{ApiJson, ApiJsonOrDefault, ApiPath, ApiQuery, BODY_LIMIT, PathParam, parse_query};
pub use identity::{Identity, TenantClaim};
pub use limit::{
    Admission, COUNTER_TIMEOUT, Clock, DEFAULT_REQUESTS_PER_MINUTE, TenantLimit, WINDOW, Window, window_at,
};
pub use routes::{RouteTable, duplicate_routes, method_not_allowed, not_found, router, router_from};

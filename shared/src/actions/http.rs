//! The license-actions API as an axum router: thin handlers that take the identity, the path id,
//! the `Idempotency-Key` and the body at the edge, call [`ActionsService`] under the key, and
//! answer its typed outcome (rendered and mapped to a status in `render.rs`). Every rejection is
//! problem+json. The routes are listed once in [`ROUTES`].

mod render;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use serde::{Deserialize, Deserializer, Serialize};

use super::idempotency::{fingerprint, valid_idempotency_key};
use super::{Action, ActionsService, Call, MAX_BULK_USERS, MAX_REASON_CHARS, Options, Selection};
use crate::api::text::has_control;
use crate::api::{ApiError, ApiJson, ApiJsonOrDefault, ApiPath, ApiQuery, Identity, RouteTable, TenantClaim};
use crate::ids::BoxUserId;
pub(super) use render::Answer;

/// Every route of the actions API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Deactivate,
    Reactivate,
    Delete,
    BulkDeactivate,
}

/// The routes the router serves (`openapi/seatsync.yaml` describes exactly these; `openapi_routes` checks it).
pub const ROUTES: [Route; 4] = [
    Route::Deactivate,
    Route::Reactivate,
    Route::Delete,
    Route::BulkDeactivate,
];

impl RouteTable for Route {
    type State = Arc<ActionsService>;
    const ALL: &'static [Self] = &ROUTES;

    fn method_and_path(self) -> (&'static str, &'static str) {
        match self {
            Route::Deactivate => ("POST", "/users/{box_user_id}/deactivate"),
            Route::Reactivate => ("POST", "/users/{box_user_id}/reactivate"),
            Route::Delete => ("DELETE", "/users/{box_user_id}"),
            Route::BulkDeactivate => ("POST", "/users/deactivate"),
        }
    }

    fn handler(self) -> MethodRouter<Arc<ActionsService>> {
        match self {
            Route::Deactivate => post(deactivate),
            Route::Reactivate => post(reactivate),
            Route::Delete => delete(delete_user),
            Route::BulkDeactivate => post(bulk_deactivate),
        }
    }
}

impl FromRef<Arc<ActionsService>> for TenantClaim {
    fn from_ref(service: &Arc<ActionsService>) -> Self {
        TenantClaim(Arc::from(service.config().tenant_claim.as_str()))
    }
}

/// The actions API. Unknown paths answer 404 and wrong methods 405, both as problem+json.
pub fn router(service: Arc<ActionsService>) -> Router {
    crate::api::router::<Route>(service)
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DeactivateBody {
    reason: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    override_recent_activity: bool,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ReactivateBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Criteria {
    inactive_days: u32,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    #[serde(default)]
    user_ids: Option<Vec<String>>,
    #[serde(default)]
    criteria: Option<Criteria>,
    reason: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    override_recent_activity: bool,
}

fn answer(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = HeaderValue::from_str(&a.content_type).unwrap_or(HeaderValue::from_static("application/json"));
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], a.body).into_response();
    if let Some(seconds) = a.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn reason(raw: Option<&str>, required: bool) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else {
        return if required {
            Err(ApiError::invalid_field(
                "reason",
                "`reason` is required (1 to 500 characters)",
            ))
        } else {
            Ok(None)
        };
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::invalid_field(
            "reason",
            format!("`reason` must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    if has_control(trimmed, &['\n']) {
        return Err(ApiError::invalid_field(
            "reason",
            "`reason` must not contain control characters",
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

/// Who is calling, in which request, with which key.
fn call(identity: Identity, request: &http::Extensions, headers: &HeaderMap) -> Result<Call, ApiError> {
    let request_id = match request.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .filter(|id| !id.is_empty() && id.len() <= 128)
    .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4()));
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| valid_idempotency_key(k))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "Idempotency-Key",
                        "the `Idempotency-Key` header must be 1 to 128 characters of A-Z, a-z, 0-9, `-` and `_`",
                    )
                })?;
            Some(key.to_owned())
        }
    };
    Ok(Call {
        tenant: identity.tenant,
        actor: identity.sub,
        request_id,
        idempotency_key,
        deadline: invocation_deadline(request),
    })
}

/// The Lambda invocation's deadline (lambda_http puts its context in the request extensions);
/// `None` when unknown (no context, or a zero deadline).
fn invocation_deadline(request: &http::Extensions) -> Option<tokio::time::Instant> {
    use lambda_http::RequestExt as _;
    let context = request.lambda_context_ref().filter(|c| c.deadline > 0)?;
    let left = context
        .deadline()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(tokio::time::Instant::now() + left)
}

fn canonical<T: Serialize>(body: &T) -> String {
    serde_json::to_string(body).unwrap_or_default()
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn deactivate(
    State(service): State<Arc<ActionsService>>,
    identity: Identity,
    ApiPath(user): ApiPath<BoxUserId>,
    headers: HeaderMap,
    extensions: http::Extensions,
    ApiJson(body): ApiJson<DeactivateBody>,
) -> Result<Response, ApiError> {
    let call = call(identity, &extensions, &headers)?;
    let options = Options {
        reason: reason(Some(&body.reason), true)?,
        dry_run: body.dry_run,
        override_recent_activity: body.override_recent_activity,
    };
    let print = fingerprint("POST", &format!("/users/{user}/deactivate"), &canonical(&body));
    let work = async { render::single(service.single(&call, user, Action::Deactivate, options).await) };
    Ok(answer(service.idempotent(&call, body.dry_run, &print, work).await))
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn reactivate(
    State(service): State<Arc<ActionsService>>,
    identity: Identity,
    ApiPath(user): ApiPath<BoxUserId>,
    headers: HeaderMap,
    extensions: http::Extensions,
    ApiJsonOrDefault(body): ApiJsonOrDefault<ReactivateBody>,
) -> Result<Response, ApiError> {
    let call = call(identity, &extensions, &headers)?;
    let options = Options {
        reason: reason(body.reason.as_deref(), false)?,
        dry_run: body.dry_run,
        override_recent_activity: false,
    };
    let print = fingerprint("POST", &format!("/users/{user}/reactivate"), &canonical(&body));
    let work = async { render::single(service.single(&call, user, Action::Reactivate, options).await) };
    Ok(answer(service.idempotent(&call, body.dry_run, &print, work).await))
}

/// `DELETE /users/{id}?transfer_to=&dry_run=&reason=&override_recent_activity=`. Serialized
/// (as the idempotency fingerprint's canonical form) exactly as it always was.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default, deserialize_with = "transfer_target")]
    transfer_to: Option<BoxUserId>,
    #[serde(default, deserialize_with = "flag")]
    dry_run: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    override_recent_activity: bool,
}

/// A query flag: `true`, or `false` (also when given empty, as `?dry_run=`).
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match String::deserialize(d)?.as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(serde::de::Error::custom("must be `true` or `false`")),
    }
}

fn transfer_target<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BoxUserId>, D::Error> {
    let raw = String::deserialize(d)?;
    BoxUserId::parse(&raw)
        .map(Some)
        .map_err(|_| serde::de::Error::custom("must be a Box user id (1 to 20 digits)"))
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn delete_user(
    State(service): State<Arc<ActionsService>>,
    identity: Identity,
    ApiPath(user): ApiPath<BoxUserId>,
    headers: HeaderMap,
    extensions: http::Extensions,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let call = call(identity, &extensions, &headers)?;
    let transfer_to = q.transfer_to.clone();
    let options = Options {
        reason: reason(q.reason.as_deref(), false)?,
        dry_run: q.dry_run,
        override_recent_activity: q.override_recent_activity,
    };
    let print = fingerprint("DELETE", &format!("/users/{user}"), &canonical(&q));
    let work = async {
        render::single(
            service
                .single(&call, user, Action::Delete { transfer_to }, options)
                .await,
        )
    };
    Ok(answer(service.idempotent(&call, q.dry_run, &print, work).await))
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn bulk_deactivate(
    State(service): State<Arc<ActionsService>>,
    identity: Identity,
    headers: HeaderMap,
    extensions: http::Extensions,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Response, ApiError> {
    let call = call(identity, &extensions, &headers)?;
    let selection = match (&body.user_ids, &body.criteria) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_BULK_USERS {
                return Err(ApiError::invalid_field(
                    "user_ids",
                    format!("`user_ids` must name 1 to {MAX_BULK_USERS} users"),
                ));
            }
            let mut parsed: Vec<BoxUserId> = Vec::with_capacity(ids.len());
            for (n, id) in ids.iter().enumerate() {
                let id = BoxUserId::parse(id).map_err(|_| {
                    ApiError::invalid_field(
                        &format!("user_ids[{n}]"),
                        format!("`user_ids[{n}]` must be a Box user id (1 to 20 digits)"),
                    )
                })?;
                if !parsed.contains(&id) {
                    parsed.push(id);
                }
            }
            Selection::Ids(parsed)
        }
        (None, Some(criteria)) => {
            if criteria.inactive_days == 0 || criteria.inactive_days > 3650 {
                return Err(ApiError::invalid_field(
                    "criteria.inactive_days",
                    "`criteria.inactive_days` must be 1 to 3650",
                ));
            }
            Selection::InactiveDays(criteria.inactive_days)
        }
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of `user_ids` (a list of Box user ids) or `criteria` ({\"inactive_days\": N})",
            ));
        }
    };
    let options = Options {
        reason: reason(Some(&body.reason), true)?,
        dry_run: body.dry_run,
        override_recent_activity: body.override_recent_activity,
    };
    let print = fingerprint("POST", Route::BulkDeactivate.path(), &canonical(&body));
    let work = async { render::bulk(service.bulk(&call, selection, options).await) };
    Ok(answer(service.idempotent(&call, body.dry_run, &print, work).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_queries_are_strict() {
        let delete_query = |raw: &str| crate::api::parse_query::<DeleteQuery>(Some(raw));
        let q = delete_query("transfer_to=42&dry_run=true").unwrap();
        assert_eq!(q.transfer_to.as_ref().map(BoxUserId::as_str), Some("42"));
        assert!(q.dry_run);
        assert!(!delete_query("dry_run=").unwrap().dry_run, "an empty flag is false");
        let field = |raw: &str| delete_query(raw).unwrap_err().problem().field;
        assert_eq!(field("transfer_to=..%2F1").as_deref(), Some("transfer_to"));
        assert_eq!(field("dry_run=yes").as_deref(), Some("dry_run"));
        assert_eq!(field("force=true").as_deref(), Some("query"));
        assert_eq!(field("dry_run=true&dry_run=false").as_deref(), Some("dry_run"));
    }

    #[test]
    fn reasons_are_bounded() {
        assert!(reason(None, true).is_err());
        assert_eq!(reason(None, false).unwrap(), None);
        assert!(reason(Some("  "), false).is_err());
        assert!(reason(Some(&"x".repeat(501)), true).is_err());
        assert_eq!(reason(Some(" left "), true).unwrap().as_deref(), Some("left"));
    }
}

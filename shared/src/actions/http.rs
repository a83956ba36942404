//! The license-actions API as an axum router: thin handlers that take the identity, the path id,
//! the `Idempotency-Key` and the body at the edge, call [`ActionsService`] under the key, and
//! answer its typed outcome (rendered and mapped to a status in `render.rs`). Every rejection is
//! problem+json. The routes are listed once in [`ROUTES`].

mod render;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, post};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use lambda_http::request::RequestContext;
use serde::{Deserialize, Serialize};

use super::idempotency::{fingerprint, valid_idempotency_key};
use super::{Action, ActionsService, Call, MAX_BULK_USERS, MAX_REASON_CHARS, Options, Selection};
use crate::api::{ApiError, ApiJson, ApiJsonOrDefault, Identity, TenantClaim, router_from};
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

/// The routes the router serves (the OpenAPI fragment `openapi/paths-actions.yaml` describes exactly these).
pub const ROUTES: [Route; 4] = [
    Route::Deactivate,
    Route::Reactivate,
    Route::Delete,
    Route::BulkDeactivate,
];

impl Route {
    pub fn method_and_path(self) -> (&'static str, &'static str) {
        match self {
            Route::Deactivate => ("POST", "/users/{box_user_id}/deactivate"),
            Route::Reactivate => ("POST", "/users/{box_user_id}/reactivate"),
            Route::Delete => ("DELETE", "/users/{box_user_id}"),
            Route::BulkDeactivate => ("POST", "/users/deactivate"),
        }
    }

    pub fn method(self) -> &'static str {
        self.method_and_path().0
    }

    pub fn path(self) -> &'static str {
        self.method_and_path().1
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
    router_from(&ROUTES, |r| (r.path(), r.handler()), service)
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
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(seconds) = a.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The `{box_user_id}` segment, parsed (the router matched `/users/<segment>[/…]`).
fn target(uri: &Uri) -> Result<BoxUserId, ApiError> {
    let segment = uri.path().split('/').nth(2).unwrap_or_default();
    BoxUserId::parse(segment)
        .map_err(|_| ApiError::invalid_field("box_user_id", "the Box user id in the path must be 1 to 20 digits"))
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
    if trimmed.chars().any(|c| c.is_control() && c != '\n') {
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
    uri: Uri,
    headers: HeaderMap,
    extensions: http::Extensions,
    ApiJson(body): ApiJson<DeactivateBody>,
) -> Result<Response, ApiError> {
    let user = target(&uri)?;
    let call = call(identity, &extensions, &headers)?;
    let options = Options {
        reason: reason(Some(&body.reason), true)?,
        dry_run: body.dry_run,
        override_recent_activity: body.override_recent_activity,
    };
    let print = fingerprint("POST", uri.path(), &canonical(&body));
    let work = async { render::single(service.single(&call, user, Action::Deactivate, options).await) };
    Ok(answer(service.idempotent(&call, body.dry_run, &print, work).await))
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn reactivate(
    State(service): State<Arc<ActionsService>>,
    identity: Identity,
    uri: Uri,
    headers: HeaderMap,
    extensions: http::Extensions,
    ApiJsonOrDefault(body): ApiJsonOrDefault<ReactivateBody>,
) -> Result<Response, ApiError> {
    let user = target(&uri)?;
    let call = call(identity, &extensions, &headers)?;
    let options = Options {
        reason: reason(body.reason.as_deref(), false)?,
        dry_run: body.dry_run,
        override_recent_activity: false,
    };
    let print = fingerprint("POST", uri.path(), &canonical(&body));
    let work = async { render::single(service.single(&call, user, Action::Reactivate, options).await) };
    Ok(answer(service.idempotent(&call, body.dry_run, &print, work).await))
}

/// `DELETE /users/{id}?transfer_to=&dry_run=&reason=&override_recent_activity=`.
#[derive(Debug, Default, Serialize)]
struct DeleteQuery {
    transfer_to: Option<String>,
    dry_run: bool,
    reason: Option<String>,
    override_recent_activity: bool,
}

fn delete_query(raw: Option<&str>) -> Result<DeleteQuery, ApiError> {
    let mut q = DeleteQuery::default();
    let flag = |name: &str, value: &str| match value {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(ApiError::invalid_field(
            name,
            format!("`{name}` must be `true` or `false`"),
        )),
    };
    let raw = raw.unwrap_or_default();
    if raw.len() > 2048 {
        return Err(ApiError::bad_request("the query string is too long"));
    }
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "transfer_to" => {
                BoxUserId::parse(&value).map_err(|_| {
                    ApiError::invalid_field("transfer_to", "`transfer_to` must be a Box user id (1 to 20 digits)")
                })?;
                q.transfer_to = Some(value.into_owned());
            }
            "dry_run" => q.dry_run = flag("dry_run", &value)?,
            "override_recent_activity" => q.override_recent_activity = flag("override_recent_activity", &value)?,
            "reason" => q.reason = Some(value.into_owned()),
            other => {
                let other: String = other.chars().filter(|c| !c.is_control()).take(64).collect();
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}`; this route takes `transfer_to`, `dry_run`, `reason` and \
                     `override_recent_activity`"
                )));
            }
        }
    }
    Ok(q)
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn delete_user(
    State(service): State<Arc<ActionsService>>,
    identity: Identity,
    uri: Uri,
    headers: HeaderMap,
    extensions: http::Extensions,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let user = target(&uri)?;
    let q = delete_query(query.as_deref())?;
    let call = call(identity, &extensions, &headers)?;
    let transfer_to = q
        .transfer_to
        .as_deref()
        .map(BoxUserId::parse)
        .transpose()
        .map_err(|_| ApiError::invalid_field("transfer_to", "`transfer_to` must be a Box user id (1 to 20 digits)"))?;
    let options = Options {
        reason: reason(q.reason.as_deref(), false)?,
        dry_run: q.dry_run,
        override_recent_activity: q.override_recent_activity,
    };
    let print = fingerprint("DELETE", uri.path(), &canonical(&q));
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
    fn routes_are_unique() {
        let mut seen: Vec<_> = ROUTES.iter().map(|r| r.method_and_path()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), ROUTES.len());
    }

    #[test]
    fn delete_queries_are_strict() {
        let q = delete_query(Some("transfer_to=42&dry_run=true")).unwrap();
        assert_eq!(q.transfer_to.as_deref(), Some("42"));
        assert!(q.dry_run);
        assert!(delete_query(Some("transfer_to=..%2F1")).is_err());
        assert!(delete_query(Some("dry_run=yes")).is_err());
        assert!(delete_query(Some("force=true")).is_err());
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

//! The edge of seatsync's HTTP APIs (API Gateway HTTP API, payload 2.0, run as axum routers):
//! who is calling ([`Identity`], only from the verified JWT claims), JSON bodies with a size
//! limit and strict fields ([`ApiJson`]), and every error as `application/problem+json`
//! ([`ApiError`]), including unknown routes and wrong methods. Handlers built on these never
//! answer axum's `text/plain` rejections.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;

use crate::ids::TenantId;
use crate::problem::Problem;

/// The largest request body any route accepts.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Everything an HTTP API can answer besides success, mapped to problem+json in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("bad request: {detail}")]
    BadRequest { detail: String, field: Option<String> },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("unprocessable: {detail}")]
    Unprocessable { detail: String, field: Option<String> },
    /// An upstream (Box) failed; the request changed nothing.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// Our own failure; the cause is logged, the caller gets a generic detail.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            field: None,
        }
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            field: Some(field.to_owned()),
        }
    }

    pub fn problem(&self) -> Problem {
        let with_field = |p: Problem, field: &Option<String>| match field {
            Some(f) => p.with_field(f),
            None => p,
        };
        match self {
            Self::Unauthorized(detail) => Problem::new(401, "Unauthorized", detail.clone()).with_type("unauthorized"),
            Self::BadRequest { detail, field } => with_field(Problem::bad_request(detail.clone()), field),
            Self::NotFound(detail) => Problem::not_found(detail.clone()),
            Self::MethodNotAllowed => Problem::new(
                405,
                "Method Not Allowed",
                "this path does not accept that method; see the API description (openapi/seatsync.yaml)",
            ),
            Self::Conflict(detail) => Problem::new(409, "Conflict", detail.clone()).with_type("conflict"),
            Self::PayloadTooLarge => Problem::new(
                413,
                "Payload Too Large",
                format!("the request body must be at most {BODY_LIMIT} bytes"),
            ),
            Self::UnsupportedMediaType(detail) => Problem::new(415, "Unsupported Media Type", detail.clone()),
            Self::Unprocessable { detail, field } => {
                with_field(Problem::new(422, "Unprocessable Content", detail.clone()), field)
            }
            Self::BadGateway(detail) => Problem::new(502, "Bad Gateway", detail.clone()).with_type("box-unavailable"),
            Self::Unexpected(_) => Problem::new(
                500,
                "Internal Server Error",
                "seatsync could not complete the request; nothing was changed that needs undoing. Try again later",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Unexpected(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        } else {
            tracing::info!(status = self.problem().status, "request refused");
        }
        problem_response(&self.problem())
    }
}

/// A problem as an axum response.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(problem).unwrap_or_else(|_| String::from("{}"));
    (status, [(header::CONTENT_TYPE, crate::problem::CONTENT_TYPE)], body).into_response()
}

/// A function's HTTP API from its route table: each route's method router (two routes may share a
/// path with different methods), 404 for unknown paths and 405 for wrong methods (both
/// problem+json), and the service as state. Every function builds its router this way.
pub fn router_from<S, R: Copy>(
    routes: &[R],
    route: impl Fn(R) -> (&'static str, axum::routing::MethodRouter<S>),
    state: S,
) -> axum::Router
where
    S: Clone + Send + Sync + 'static,
{
    routes
        .iter()
        .fold(axum::Router::new(), |router, r| {
            let (path, handler) = route(*r);
            router.route(path, handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Fallback for paths no route matches.
pub async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::NotFound(format!("there is no resource at {}", sanitize(uri.path())))
}

/// Fallback for a known path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Echoes request text in a problem detail without control characters and at a bounded length.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The JWT claim that names the caller's tenant (`TENANT_CLAIM`, default `tenant_id`).
#[derive(Debug, Clone)]
pub struct TenantClaim(pub Arc<str>);

impl Default for TenantClaim {
    fn default() -> Self {
        Self(Arc::from("tenant_id"))
    }
}

/// The authenticated caller: the tenant from the verified JWT claim named by [`TenantClaim`], the
/// person from `sub`. Taken only from API Gateway's authorizer context, never from the path,
/// query or body. A local development identity, when it comes, is an explicit extra layer that
/// puts the same request context in place; this extractor stays as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: TenantId,
    pub sub: String,
}

impl Identity {
    /// Reads the identity from the request extensions lambda_http fills in.
    pub fn from_extensions(extensions: &http::Extensions, tenant_claim: &str) -> Result<Self, ApiError> {
        let unauthorized = |detail: &str| ApiError::Unauthorized(detail.to_owned());
        let Some(RequestContext::ApiGatewayV2(context)) = extensions.get::<RequestContext>() else {
            return Err(unauthorized("the request carries no verified identity; sign in again"));
        };
        let claims = context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims)
            .ok_or_else(|| unauthorized("the request carries no verified identity; sign in again"))?;
        let tenant = claims
            .get(tenant_claim)
            .and_then(|t| TenantId::parse(t).ok())
            .ok_or_else(|| ApiError::Unauthorized(format!("the token has no valid `{tenant_claim}` claim")))?;
        let sub = claims
            .get("sub")
            .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
            .ok_or_else(|| unauthorized("the token has no valid `sub` claim"))?;
        Ok(Self {
            tenant,
            sub: sub.clone(),
        })
    }
}

impl<S> FromRequestParts<S> for Identity
where
    S: Send + Sync,
    TenantClaim: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claim = TenantClaim::from_ref(state);
        Self::from_extensions(&parts.extensions, &claim.0)
    }
}

/// A JSON body: at most [`BODY_LIMIT`] bytes, `application/json`, UTF-8, parsed strictly
/// (the target types use `deny_unknown_fields`). Every rejection is a problem+json 4xx.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Like [`ApiJson`], but an empty body means `T::default()` (for optional bodies).
#[derive(Debug)]
pub struct ApiJsonOrDefault<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("a JSON body is required"));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

impl<S, T> FromRequest<S> for ApiJsonOrDefault<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        parse_json(&bytes).map(ApiJsonOrDefault)
    }
}

/// The body, bounded; checks the media type when there is a body.
async fn read_body(request: Request) -> Result<axum::body::Bytes, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let json_type = is_json(request.headers());
    let bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    if !bytes.is_empty() && !json_type {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as `Content-Type: application/json`".into(),
        ));
    }
    Ok(bytes)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            let media = media.trim().to_ascii_lowercase();
            media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
        })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))?;
    serde_json::from_str(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "does not match the expected fields and types",
            serde_json::error::Category::Eof => "ends too early",
            _ => "is not valid JSON",
        };
        ApiError::bad_request(format!("the JSON body {what}: {}", redact_quoted(&e.to_string())))
    })
}

/// serde_json's messages quote offending values (which could be a secret sent in the wrong
/// field); field names (in backticks) stay, quoted values go.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_redacted_but_field_names_stay() {
        let e = serde_json::from_str::<bool>("\"hunter2\"").unwrap_err();
        let text = redact_quoted(&e.to_string());
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            redact_quoted("unknown field `x`, expected `a`"),
            "unknown field `x`, expected `a`"
        );
    }

    #[test]
    fn json_media_types_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
    }
}

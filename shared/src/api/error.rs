//! Every answer besides success, as `application/problem+json` from one place: [`ApiError`] and
//! its one status→title table ([`ApiError::problem`]), and [`problem_response`].

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::BODY_LIMIT;
use crate::problem::Problem;

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
    /// The caller's tenant has used up its requests of the current window ([`super::TenantLimit`]);
    /// answered with `Retry-After: <retry_after_seconds>`.
    #[error("too many requests: {detail}")]
    TooManyRequests { detail: String, retry_after_seconds: u64 },
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
            Self::Unauthorized(detail) => Problem::of_status(401, detail.clone()).with_type("unauthorized"),
            Self::BadRequest { detail, field } => with_field(Problem::bad_request(detail.clone()), field),
            Self::NotFound(detail) => Problem::not_found(detail.clone()),
            Self::MethodNotAllowed => Problem::of_status(
                405,
                "this path does not accept that method; see the API description (openapi/seatsync.yaml)",
            ),
            Self::Conflict(detail) => Problem::of_status(409, detail.clone()).with_type("conflict"),
            Self::PayloadTooLarge => {
                Problem::of_status(413, format!("the request body must be at most {BODY_LIMIT} bytes"))
            }
            Self::UnsupportedMediaType(detail) => Problem::of_status(415, detail.clone()),
            Self::Unprocessable { detail, field } => with_field(Problem::of_status(422, detail.clone()), field),
            Self::TooManyRequests { detail, .. } => {
                Problem::of_status(429, detail.clone()).with_type("tenant-request-limit")
            }
            Self::BadGateway(detail) => Problem::of_status(502, detail.clone()).with_type("box-unavailable"),
            Self::Unexpected(_) => Problem::of_status(
                500,
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
        let mut response = problem_response(&self.problem());
        if let Self::TooManyRequests {
            retry_after_seconds, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

/// A problem as an axum response.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(problem).unwrap_or_else(|_| String::from("{}"));
    (status, [(header::CONTENT_TYPE, crate::problem::CONTENT_TYPE)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn problems_are_problem_json_with_detail() {
        let response = ApiError::invalid_field("reason", "`reason` is required").into_response();
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()[header::CONTENT_TYPE], crate::problem::CONTENT_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["detail"], "`reason` is required");
        assert_eq!(body["field"], "reason");
        assert_eq!(body["status"], 400);
    }

    #[tokio::test]
    async fn too_many_requests_is_429_problem_json_with_retry_after() {
        let response = ApiError::TooManyRequests {
            detail: "try again in 17 seconds".into(),
            retry_after_seconds: 17,
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::CONTENT_TYPE], crate::problem::CONTENT_TYPE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "17");
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["detail"], "try again in 17 seconds");
    }

    #[test]
    fn unexpected_errors_never_show_their_cause() {
        let problem = ApiError::Unexpected(anyhow::anyhow!("table t-secret missing")).problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("t-secret"), "{}", problem.detail);
    }
}

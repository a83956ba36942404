//! HTTP errors as RFC 9457 problem details (`application/problem+json`), built in one place so
//! every function answers bad input the same way: a status, a title and a `detail` that tells
//! the caller what to do. Never a token, never a stack trace.

use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// The title of every status seatsync answers with a problem: the one status→title table.
pub fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI naming the problem kind; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Which field of the request was wrong, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: u16, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: title.into(),
            status,
            detail: detail.into(),
            field: None,
        }
    }

    pub fn with_type(mut self, kind: &str) -> Self {
        self.kind = format!("https://seatsync.dev/problems/{kind}");
        self
    }

    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A problem titled from the one table ([`title`]).
    pub fn of_status(status: u16, detail: impl Into<String>) -> Self {
        Self::new(status, title(status), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::of_status(404, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::of_status(400, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_titled_from_the_one_table() {
        use crate::api::ApiError;
        let errors = [
            ApiError::Unauthorized("x".into()),
            ApiError::bad_request("x"),
            ApiError::NotFound("x".into()),
            ApiError::MethodNotAllowed,
            ApiError::Conflict("x".into()),
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType("x".into()),
            ApiError::Unprocessable {
                detail: "x".into(),
                field: None,
            },
            ApiError::BadGateway("x".into()),
            ApiError::Unexpected(anyhow::anyhow!("x")),
        ];
        for e in errors {
            let p = e.problem();
            assert_eq!(p.title, title(p.status), "{e:?}");
        }
    }
}

//! Box's errors as types. Callers branch on the variant, never on a message string: Box's
//! `code` values are an open set (see box-api.md), so the HTTP status decides the variant and
//! `code`/`message`/`request_id` are kept for people to read.

use std::time::Duration;

/// What Box said, as far as it said it. Never contains a token: Box does not echo them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoxErrorDetail {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

impl std::fmt::Display for BoxErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (Box request id {id})")?;
        }
        Ok(())
    }
}

/// The OAuth error codes seatsync acts on; anything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// The code or refresh token is expired, used or revoked: the connection needs a person.
    InvalidGrant,
    /// The app's client id or secret is wrong, or the app is not authorized.
    InvalidClient,
    Other(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    /// The access token is expired, revoked or malformed (HTTP 401).
    #[error("Box rejected the access token (expired or revoked): {0}")]
    Unauthorized(BoxErrorDetail),
    /// Box's token endpoint refused a grant (`OAuth2Error`).
    #[error("Box refused the OAuth grant ({kind:?}): {description}")]
    OAuth {
        kind: OAuthErrorKind,
        description: String,
        status: u16,
    },
    /// The token's user, scopes or the enterprise's plan do not allow this (HTTP 403).
    #[error("Box refused the request (permission, scope or plan): {0}")]
    Forbidden(BoxErrorDetail),
    #[error("Box says the item does not exist: {0}")]
    NotFound(BoxErrorDetail),
    /// The user still owns files or folders; transfer them before deleting the user.
    #[error("the Box user still owns content and cannot be deleted until it is transferred: {0}")]
    OwnsContent(BoxErrorDetail),
    /// Still rate limited after the bounded retries.
    #[error("Box kept answering 429 after {attempts} attempts (last retry-after {retry_after:?})")]
    RateLimited {
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// 5xx or no answer at all after the bounded retries.
    #[error("Box is unavailable after {attempts} attempts: {detail}")]
    Unavailable { attempts: u32, detail: String },
    /// Any other refusal (400, 409, ...): not retried.
    #[error("Box rejected the request: {0}")]
    Rejected(BoxErrorDetail),
    /// Box answered 2xx with a body that does not match its documented shape.
    #[error("unexpected response from Box for {operation}: {detail}")]
    Decode { operation: &'static str, detail: String },
    /// A loop guard tripped (e.g. Box returned the same paging marker twice).
    #[error("Box paging did not make progress for {operation}: {detail}")]
    Paging { operation: &'static str, detail: String },
}

impl BoxError {
    /// Whether a later attempt (minutes later, e.g. the next sync) may succeed without a person.
    pub fn is_transient(&self) -> bool {
        matches!(self, BoxError::RateLimited { .. } | BoxError::Unavailable { .. })
    }

    /// The token can no longer be used and refreshing (or reconnecting) is the way out.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            BoxError::Unauthorized(_)
                | BoxError::OAuth {
                    kind: OAuthErrorKind::InvalidGrant,
                    ..
                }
        )
    }

    pub fn detail(&self) -> Option<&BoxErrorDetail> {
        match self {
            BoxError::Unauthorized(d)
            | BoxError::Forbidden(d)
            | BoxError::NotFound(d)
            | BoxError::OwnsContent(d)
            | BoxError::Rejected(d) => Some(d),
            _ => None,
        }
    }
}

/// Box's `ClientError` body; every field optional because error bodies are not always complete.
#[derive(Debug, Default, serde::Deserialize)]
struct ClientErrorBody {
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
}

/// Box's `OAuth2Error` body.
#[derive(Debug, serde::Deserialize)]
struct OAuth2ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Maps a non-2xx, non-retried API answer to its variant. Status first, then the message
/// for the one case Box only distinguishes by text ("User has managed content").
pub(crate) fn from_api_response(status: u16, body: &[u8]) -> BoxError {
    let parsed: ClientErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let detail = BoxErrorDetail {
        status: parsed.status.unwrap_or(status),
        code: parsed.code,
        message: parsed.message,
        request_id: parsed.request_id,
    };
    match status {
        401 => BoxError::Unauthorized(detail),
        403 => BoxError::Forbidden(detail),
        404 => BoxError::NotFound(detail),
        400 | 409 if mentions_owned_content(&detail) => BoxError::OwnsContent(detail),
        _ => BoxError::Rejected(detail),
    }
}

fn mentions_owned_content(detail: &BoxErrorDetail) -> bool {
    let text = |s: &Option<String>| s.as_deref().unwrap_or_default().to_ascii_lowercase();
    let message = text(&detail.message);
    let code = text(&detail.code);
    message.contains("managed content") || message.contains("owns content") || code.contains("user_has_content")
}

/// Maps a token-endpoint refusal (`OAuth2Error`).
pub(crate) fn from_oauth_response(status: u16, body: &[u8]) -> BoxError {
    match serde_json::from_slice::<OAuth2ErrorBody>(body) {
        Ok(b) => BoxError::OAuth {
            kind: match b.error.as_str() {
                "invalid_grant" => OAuthErrorKind::InvalidGrant,
                "invalid_client" | "unauthorized_client" => OAuthErrorKind::InvalidClient,
                other => OAuthErrorKind::Other(other.to_owned()),
            },
            description: b.error_description.unwrap_or_default(),
            status,
        },
        // Some gateways answer the token endpoint with a ClientError body instead.
        Err(_) => from_api_response(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decides_the_variant() {
        let body = br#"{"type":"error","status":403,"code":"access_denied_insufficient_permissions","message":"no","request_id":"r1"}"#;
        match from_api_response(403, body) {
            BoxError::Forbidden(d) => {
                assert_eq!(d.code.as_deref(), Some("access_denied_insufficient_permissions"));
                assert_eq!(d.request_id.as_deref(), Some("r1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(from_api_response(401, b""), BoxError::Unauthorized(_)));
        assert!(matches!(from_api_response(404, b"not json"), BoxError::NotFound(_)));
        assert!(matches!(from_api_response(409, b"{}"), BoxError::Rejected(_)));
    }

    #[test]
    fn managed_content_refusal_is_its_own_variant() {
        let body = br#"{"type":"error","status":400,"code":"bad_request","message":"User has managed content"}"#;
        assert!(matches!(from_api_response(400, body), BoxError::OwnsContent(_)));
        let other = br#"{"type":"error","status":400,"code":"invalid_parameter","message":"bad status"}"#;
        assert!(matches!(from_api_response(400, other), BoxError::Rejected(_)));
    }

    #[test]
    fn oauth_errors_are_classified() {
        let e = from_oauth_response(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
        );
        assert!(e.is_auth_failure(), "{e:?}");
        let e = from_oauth_response(400, br#"{"error":"invalid_client"}"#);
        assert!(matches!(
            e,
            BoxError::OAuth {
                kind: OAuthErrorKind::InvalidClient,
                ..
            }
        ));
    }
}

//! The connect API as an axum router: thin handlers that take the identity and body at the
//! edge, call [`ConnectService`], and map its answers (and every error) to HTTP in one place.
//! The routes are listed once in [`ROUTES`]; the router is built from that list and the
//! OpenAPI file is checked against it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{CallbackInput, CallbackOutcome, ClientCredentialsInput, ConnectError, ConnectService, StartOptions};
use crate::api::{self, ApiError, ApiJson, ApiJsonOrDefault, Identity, RouteTable, TenantClaim};

/// The cookie that binds an OAuth flow to the browser that started it.
pub const COOKIE_NAME: &str = "seatsync_oauth";
/// The only path the cookie is sent to.
const CALLBACK_PATH: &str = "/oauth/box/callback";

/// Every route of the connect API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Start,
    Callback,
    Status,
    Disconnect,
    ClientCredentials,
}

/// The routes the router serves, in one list (the OpenAPI file must describe exactly these).
pub const ROUTES: [Route; 5] = [
    Route::Start,
    Route::Callback,
    Route::Status,
    Route::Disconnect,
    Route::ClientCredentials,
];

impl RouteTable for Route {
    type State = Arc<ConnectService>;
    const ALL: &'static [Self] = &ROUTES;

    fn method_and_path(self) -> (&'static str, &'static str) {
        match self {
            Route::Start => ("POST", "/connections/box/start"),
            Route::Callback => ("GET", CALLBACK_PATH),
            Route::Status => ("GET", "/connections/box"),
            Route::Disconnect => ("DELETE", "/connections/box"),
            Route::ClientCredentials => ("PUT", "/connections/box/client-credentials"),
        }
    }

    fn handler(self) -> MethodRouter<Self::State> {
        match self {
            Route::Start => post(start),
            Route::Callback => get(callback),
            Route::Status => get(status),
            Route::Disconnect => delete(disconnect),
            Route::ClientCredentials => put(client_credentials),
        }
    }
}

impl FromRef<Arc<ConnectService>> for TenantClaim {
    fn from_ref(service: &Arc<ConnectService>) -> Self {
        TenantClaim(Arc::from(service.config().tenant_claim.as_str()))
    }
}

/// The connect API. Unknown paths answer 404 and wrong methods 405, both as problem+json.
pub fn router(service: Arc<ConnectService>) -> Router {
    api::router::<Route>(service)
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::InvalidCallback(detail) => ApiError::bad_request(detail),
            ConnectError::InvalidInput { field, detail } => ApiError::invalid_field(field, detail),
            ConnectError::CredentialsRefused(detail) => ApiError::Unprocessable { detail, field: None },
            ConnectError::ConnectedToAnotherEnterprise(detail) | ConnectError::SyncRunning(detail) => {
                ApiError::Conflict(detail)
            }
            ConnectError::BoxUnavailable(detail) => ApiError::BadGateway(detail),
            ConnectError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    #[serde(default)]
    content_transfer: bool,
}

#[derive(Serialize)]
struct StartResponse {
    authorize_url: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn start(
    State(service): State<Arc<ConnectService>>,
    identity: Identity,
    ApiJsonOrDefault(body): ApiJsonOrDefault<StartRequest>,
) -> Result<Response, ApiError> {
    let started = service
        .start(
            &identity.tenant,
            &identity.sub,
            StartOptions {
                content_transfer: body.content_transfer,
            },
        )
        .await?;
    let cookie = format!(
        "{COOKIE_NAME}={}; HttpOnly; Secure; SameSite=Lax; Path={CALLBACK_PATH}; Max-Age={}",
        started.cookie_value.expose_secret(),
        started.max_age.as_secs()
    );
    let body = StartResponse {
        authorize_url: started.authorize_url.to_string(),
        expires_at: started.expires_at,
    };
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, header_value(&cookie)?);
    Ok(response)
}

#[tracing::instrument(skip_all)]
async fn callback(
    State(service): State<Arc<ConnectService>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut input = CallbackInput {
        cookie: cookie(&headers, COOKIE_NAME),
        ..CallbackInput::default()
    };
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "state" => input.state = Some(SecretString::from(value.into_owned())),
            "code" => input.code = Some(SecretString::from(value.into_owned())),
            "error" => input.error = Some(value.chars().filter(char::is_ascii_graphic).take(64).collect()),
            _ => {}
        }
    }
    let mut response = match service.callback(input).await {
        Ok(outcome) => {
            let mut location = service.config().return_url.clone();
            match outcome {
                CallbackOutcome::Connected { .. } => {
                    location.query_pairs_mut().append_pair("status", "connected");
                }
                CallbackOutcome::Refused(reason) => {
                    location
                        .query_pairs_mut()
                        .append_pair("status", "error")
                        .append_pair("reason", reason.as_str());
                }
            }
            match HeaderValue::from_str(location.as_str()) {
                Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
                Err(e) => ApiError::Unexpected(anyhow::Error::from(e)).into_response(),
            }
        }
        Err(e) => ApiError::from(e).into_response(),
    };
    let clear = format!("{COOKIE_NAME}=; HttpOnly; Secure; SameSite=Lax; Path={CALLBACK_PATH}; Max-Age=0");
    if let Ok(clear) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn status(State(service): State<Arc<ConnectService>>, identity: Identity) -> Result<Response, ApiError> {
    Ok(axum::Json(service.status(&identity.tenant).await?).into_response())
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn disconnect(State(service): State<Arc<ConnectService>>, identity: Identity) -> Result<StatusCode, ApiError> {
    service.disconnect(&identity.tenant, &identity.sub).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn client_credentials(
    State(service): State<Arc<ConnectService>>,
    identity: Identity,
    ApiJson(body): ApiJson<ClientCredentialsInput>,
) -> Result<Response, ApiError> {
    let view = service
        .connect_client_credentials(&identity.tenant, &identity.sub, body)
        .await?;
    Ok(axum::Json(view).into_response())
}

fn header_value(value: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value).map_err(|e| ApiError::Unexpected(anyhow::Error::from(e)))
}

/// The value of cookie `name` from every `Cookie` header (HTTP/2 may send several).
fn cookie(headers: &HeaderMap, name: &str) -> Option<SecretString> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| SecretString::from(value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others_and_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("seatsync_oauth=n.s; c=3"));
        assert_eq!(cookie(&headers, COOKIE_NAME).unwrap().expose_secret(), "n.s");
        assert!(cookie(&headers, "missing").is_none());
    }
}

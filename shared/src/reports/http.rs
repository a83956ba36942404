//! The licenses API as an axum router: thin handlers that take the identity, query and body at
//! the edge, call [`ReportsService`], and map its answers (and every error) to HTTP in one place.
//! The routes are listed once in [`ROUTES`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::users::{self, ListFormat, UserParams, UserQuery};
use super::{ReportsError, ReportsService, parse_settings_with};
use crate::api::{self, ApiError, ApiJson, ApiQuery, Identity, RouteTable, TenantClaim};

/// Every route of the licenses API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Licenses,
    Users,
    Audit,
    GetSettings,
    PutSettings,
    StartSync,
}

/// The routes the router serves, in one list (the OpenAPI fragment describes exactly these).
pub const ROUTES: [Route; 6] = [
    Route::Licenses,
    Route::Users,
    Route::Audit,
    Route::GetSettings,
    Route::PutSettings,
    Route::StartSync,
];

/// The query of a route that takes none: any parameter is refused, so a typo is not silently
/// ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

/// `GET /audit?limit=&cursor=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Audit records per page at most, and by default.
const MAX_AUDIT_LIMIT: u32 = 500;
const DEFAULT_AUDIT_LIMIT: u32 = 50;

impl RouteTable for Route {
    type State = Arc<ReportsService>;
    const ALL: &'static [Self] = &ROUTES;

    fn method_and_path(self) -> (&'static str, &'static str) {
        match self {
            Route::Licenses => ("GET", "/licenses"),
            Route::Users => ("GET", "/licenses/users"),
            Route::Audit => ("GET", "/audit"),
            Route::GetSettings => ("GET", "/settings"),
            Route::PutSettings => ("PUT", "/settings"),
            Route::StartSync => ("POST", "/syncs"),
        }
    }

    fn handler(self) -> MethodRouter<Self::State> {
        match self {
            Route::Licenses => get(licenses),
            Route::Users => get(list_users),
            Route::Audit => get(audit),
            Route::GetSettings => get(get_settings),
            Route::PutSettings => put(put_settings),
            Route::StartSync => post(start_sync),
        }
    }
}

impl FromRef<Arc<ReportsService>> for TenantClaim {
    fn from_ref(service: &Arc<ReportsService>) -> Self {
        TenantClaim(Arc::from(service.config().tenant_claim.as_str()))
    }
}

/// The licenses API. Unknown paths answer 404 and wrong methods 405, both as problem+json.
pub fn router(service: Arc<ReportsService>) -> Router {
    api::router::<Route>(service)
}

impl From<ReportsError> for ApiError {
    fn from(e: ReportsError) -> Self {
        match e {
            ReportsError::InvalidInput { field, detail } => ApiError::invalid_field(&field, detail),
            ReportsError::Conflict(detail) => ApiError::Conflict(detail),
            ReportsError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn licenses(
    State(service): State<Arc<ReportsService>>,
    identity: Identity,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &service.licenses(&identity.tenant).await?,
    ))
}

/// Whether the caller asked for CSV (`Accept: text/csv`, alone or among others).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        })
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn list_users(
    State(service): State<Arc<ReportsService>>,
    identity: Identity,
    ApiQuery(params): ApiQuery<UserParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = if wants_csv(&headers) {
        ListFormat::Csv
    } else {
        ListFormat::Json
    };
    let query = UserQuery::from_params(params, format).map_err(|e| ApiError::invalid_field(e.field, e.detail))?;
    let page = service.users(&identity.tenant, &query).await?;
    if format == ListFormat::Json {
        return Ok(json_response(StatusCode::OK, &page));
    }
    let (body, rows) = users::to_csv(&page.users);
    let next = if rows < page.users.len() {
        // Cut short by size: continue after the last row sent.
        rows.checked_sub(1)
            .map(|last| users::cursor_after(&identity.tenant, &query, page.activity_signal, &page.users[last]))
    } else {
        page.next_cursor.clone()
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"seatsync-users.csv\""),
    );
    if let Some(cursor) = next {
        let link = format!("</licenses/users?{}>; rel=\"next\"", query.next_query(&cursor));
        h.insert(
            header::LINK,
            HeaderValue::from_str(&link).map_err(|e| ApiError::Unexpected(e.into()))?,
        );
    }
    Ok(response)
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn audit(
    State(service): State<Arc<ReportsService>>,
    identity: Identity,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("`limit` must be a whole number from 1 to {MAX_AUDIT_LIMIT}"),
        ));
    }
    let cursor = query.cursor;
    if cursor.as_ref().is_some_and(String::is_empty) {
        return Err(ApiError::invalid_field("cursor", "`cursor` must not be empty"));
    }
    let page = service.audit(&identity.tenant, limit, cursor.as_deref()).await?;
    Ok(json_response(StatusCode::OK, &page))
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn get_settings(
    State(service): State<Arc<ReportsService>>,
    identity: Identity,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &service.settings(&identity.tenant).await?,
    ))
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn put_settings(
    State(service): State<Arc<ReportsService>>,
    identity: Identity,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let update = parse_settings_with(body, service.sso_outbound())?;
    Ok(json_response(
        StatusCode::OK,
        &service.put_settings(&identity.tenant, update).await?,
    ))
}

#[tracing::instrument(skip_all, fields(tenant = %identity.tenant))]
async fn start_sync(State(service): State<Arc<ReportsService>>, identity: Identity) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::ACCEPTED,
        &service.start_sync(&identity.tenant).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_chosen_from_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wants_csv(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/csv;q=0.9"),
        );
        assert!(wants_csv(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_csv(&headers));
    }
}

//! What a handler takes from a request, each refusal a problem+json 4xx: JSON bodies with a size
//! limit and strict fields ([`ApiJson`], [`ApiJsonOrDefault`]), typed query strings
//! ([`ApiQuery`]) and typed path parameters ([`ApiPath`]). Handlers built on these never answer
//! axum's `text/plain` rejections.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use http::request::Parts;
use http::{HeaderMap, header};
use serde::de::{DeserializeOwned, Visitor};

use super::ApiError;
use super::text::{printable, redact_quoted};
use crate::ids::BoxUserId;

/// The largest request body any route accepts.
pub const BODY_LIMIT: usize = 16 * 1024;

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

/// A query string as a struct `T` (axum `Query<T>` semantics: `serde_urlencoded`), strictly:
/// `T` uses `#[serde(deny_unknown_fields)]`, and an unknown or repeated parameter is refused
/// before parsing, so a typo can never silently widen an answer. A struct without fields takes no
/// query at all. Every refusal is a 400 whose `field` names the parameter
/// (`serde_path_to_error`), or `query` when the parameter is unknown.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query()).map(ApiQuery)
    }
}

/// Parses a raw query string (without `?`) as [`ApiQuery`] does.
pub fn parse_query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    let raw = raw.unwrap_or_default();
    let names = field_names::<T>();
    if names.is_empty() {
        return if raw.is_empty() {
            deserialize_query(raw)
        } else {
            Err(ApiError::invalid_field(
                "query",
                "this resource takes no query parameters",
            ))
        };
    }
    let mut seen: Vec<&'static str> = Vec::new();
    for (key, _) in url::form_urlencoded::parse(raw.as_bytes()) {
        let Some(name) = names.iter().copied().find(|n| *n == key) else {
            return Err(ApiError::invalid_field(
                "query",
                format!(
                    "unknown query parameter `{}`; use {}",
                    printable(&key, 40),
                    names.join(", ")
                ),
            ));
        };
        if seen.contains(&name) {
            return Err(ApiError::invalid_field(
                name,
                format!("`{name}` is given more than once"),
            ));
        }
        seen.push(name);
    }
    deserialize_query(raw)
}

fn deserialize_query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let parameters = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(parameters).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "query" } else { path.as_str() };
        let reason = printable(&redact_quoted(&e.inner().to_string()), 200);
        ApiError::invalid_field(field, format!("`{field}` is not valid: {reason}"))
    })
}

/// The field names of struct `T` as serde sees them (the list its derive hands to
/// `deserialize_struct`), so the parameters named in a refusal never drift from the struct.
/// Empty for anything that is not a struct with named fields.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the field list of the struct asked for, then stops.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// A value that can stand for one path parameter: its name in the route and what it must be.
pub trait PathParam: DeserializeOwned + Send {
    /// The parameter as the route names it (`/users/{box_user_id}`): the problem's `field`.
    const NAME: &'static str;
    /// The problem's `detail` when the segment is not a valid value.
    const EXPECTED: &'static str;
}

impl PathParam for BoxUserId {
    const NAME: &'static str = "box_user_id";
    const EXPECTED: &'static str = "the Box user id in the path must be 1 to 20 digits";
}

/// The route's one path parameter as `T` (axum `Path<T>`, validated by `T`'s `Deserialize`). A
/// segment that is not a valid `T` is a 400 naming [`PathParam::NAME`].
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: PathParam,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(_) => Err(ApiError::invalid_field(T::NAME, T::EXPECTED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use tower::ServiceExt as _;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Page {
        limit: Option<u32>,
        cursor: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}

    /// The (status, field, detail) of a refusal.
    fn refusal<T: DeserializeOwned + std::fmt::Debug>(raw: &str) -> (u16, String, String) {
        let problem = parse_query::<T>(Some(raw)).unwrap_err().problem();
        (problem.status, problem.field.unwrap_or_default(), problem.detail)
    }

    #[test]
    fn a_query_becomes_its_struct() {
        let page: Page = parse_query(Some("limit=5&cursor=a%20b")).unwrap();
        assert_eq!(
            page,
            Page {
                limit: Some(5),
                cursor: Some("a b".into())
            }
        );
        assert_eq!(
            parse_query::<Page>(None).unwrap(),
            Page {
                limit: None,
                cursor: None
            }
        );
    }

    #[test]
    fn field_names_are_read_from_the_struct() {
        assert_eq!(field_names::<Page>(), ["limit", "cursor"]);
        assert!(field_names::<Nothing>().is_empty());
    }

    #[test]
    fn an_unknown_parameter_is_refused_naming_the_query_and_the_known_ones() {
        let (status, field, detail) = refusal::<Page>("limit=1&tenant_id=other");
        assert_eq!((status, field.as_str()), (400, "query"));
        assert_eq!(detail, "unknown query parameter `tenant_id`; use limit, cursor");
        let (_, _, detail) = refusal::<Page>("x%0Ay=1");
        assert!(!detail.contains('\n'), "{detail}");
    }

    #[test]
    fn a_repeated_parameter_is_refused_naming_it() {
        let (status, field, detail) = refusal::<Page>("limit=1&limit=2");
        assert_eq!((status, field.as_str()), (400, "limit"));
        assert_eq!(detail, "`limit` is given more than once");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_field() {
        let (status, field, detail) = refusal::<Page>("cursor=c&limit=many");
        assert_eq!((status, field.as_str()), (400, "limit"));
        assert!(detail.starts_with("`limit` is not valid: "), "{detail}");
        assert_eq!(refusal::<Page>("limit=").1, "limit");
    }

    #[test]
    fn a_route_without_parameters_refuses_any_query() {
        assert!(parse_query::<Nothing>(None).is_ok());
        assert!(parse_query::<Nothing>(Some("")).is_ok());
        for raw in ["a=1", "&", "tenant_id"] {
            let (status, field, detail) = refusal::<Nothing>(raw);
            assert_eq!((status, field.as_str()), (400, "query"), "{raw}");
            assert_eq!(detail, "this resource takes no query parameters");
        }
    }

    async fn answer_for(path: &str) -> (u16, serde_json::Value) {
        let app = axum::Router::new().route(
            "/users/{box_user_id}",
            axum::routing::get(|ApiPath(id): ApiPath<BoxUserId>| async move { id.to_string() }),
        );
        let request = http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into());
        (status, body)
    }

    #[tokio::test]
    async fn a_box_user_id_in_the_path_is_validated() {
        assert_eq!(answer_for("/users/12345").await, (200, serde_json::json!(12345)));
        for bad in [
            "/users/abc",
            "/users/-1",
            "/users/123456789012345678901",
            "/users/1%2F2",
        ] {
            let (status, problem) = answer_for(bad).await;
            assert_eq!(status, 400, "{bad}");
            assert_eq!(problem["field"], "box_user_id", "{bad}");
            assert_eq!(problem["detail"], "the Box user id in the path must be 1 to 20 digits");
        }
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

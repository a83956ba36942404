//! A function's HTTP API from its route table: [`RouteTable`] lists each (method, path) and its
//! handler once; [`router`] (or [`router_from`]) builds the axum router with problem+json 404 and
//! 405 fallbacks and `Cache-Control: no-store` on every answer. One test here checks every table
//! for duplicates.

use axum::Router;
use axum::response::Response;
use axum::routing::MethodRouter;
use http::{HeaderValue, header};

use super::ApiError;
use super::text::printable;

/// The routes of one HTTP API, listed once: the router is built from [`RouteTable::ALL`] and the
/// OpenAPI file is checked against it.
pub trait RouteTable: Copy + std::fmt::Debug + 'static {
    /// The handlers' state (the service).
    type State: Clone + Send + Sync + 'static;
    /// Every route the router serves.
    const ALL: &'static [Self];

    /// The HTTP method and the path template (`/users/{box_user_id}`).
    fn method_and_path(self) -> (&'static str, &'static str);

    /// The route's handler, under its method.
    fn handler(self) -> MethodRouter<Self::State>;

    fn method(self) -> &'static str {
        self.method_and_path().0
    }

    fn path(self) -> &'static str {
        self.method_and_path().1
    }
}

/// The API of route table `R` over `state` (see [`router_from`]).
pub fn router<R: RouteTable>(state: R::State) -> Router {
    router_from(R::ALL, |r| (r.path(), r.handler()), state)
}

/// The (method, path) pairs listed more than once in `routes`; empty for a sound table.
pub fn duplicate_routes<R: RouteTable>(routes: &[R]) -> Vec<(&'static str, &'static str)> {
    let mut seen: Vec<_> = routes.iter().map(|r| r.method_and_path()).collect();
    seen.sort_unstable();
    let mut twice: Vec<_> = seen.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    twice.dedup();
    twice
}

/// A function's HTTP API from its route table: each route's method router (two routes may share a
/// path with different methods), 404 for unknown paths and 405 for wrong methods (both
/// problem+json), `Cache-Control: no-store` on every answer (errors too: answers carry tenant
/// data and must never sit in a shared cache), and the service as state. Every function builds
/// its router this way.
pub fn router_from<S, R: Copy>(routes: &[R], route: impl Fn(R) -> (&'static str, MethodRouter<S>), state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    routes
        .iter()
        .fold(Router::new(), |router, r| {
            let (path, handler) = route(*r);
            router.route(path, handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Marks an answer as never to be stored by a browser or a proxy.
pub(super) async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Fallback for paths no route matches.
pub async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::NotFound(format!("there is no resource at {}", printable(uri.path(), 200)))
}

/// Fallback for a known path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Twice {
        A,
        B,
        C,
    }

    impl RouteTable for Twice {
        type State = ();
        const ALL: &'static [Self] = &[Twice::A, Twice::B, Twice::C];

        fn method_and_path(self) -> (&'static str, &'static str) {
            match self {
                Twice::A | Twice::C => ("GET", "/a"),
                Twice::B => ("PUT", "/a"),
            }
        }

        fn handler(self) -> MethodRouter<()> {
            axum::routing::get(|| async {})
        }
    }

    #[test]
    fn a_route_listed_twice_is_found() {
        assert_eq!(duplicate_routes(Twice::ALL), vec![("GET", "/a")]);
        assert!(duplicate_routes(&Twice::ALL[..2]).is_empty());
    }

    async fn cache_control(method: &str, path: &str) -> (u16, Option<String>) {
        use tower::ServiceExt as _;
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let app = router_from(&[Twice::A], |r| (r.path(), r.handler()), ());
        let response = app.oneshot(request).await.unwrap();
        let value = response.headers().get(header::CACHE_CONTROL);
        (
            response.status().as_u16(),
            value.and_then(|v| v.to_str().ok()).map(str::to_owned),
        )
    }

    #[tokio::test]
    async fn every_answer_is_no_store_errors_included() {
        let no_store = Some("no-store".to_owned());
        assert_eq!(cache_control("GET", "/a").await, (200, no_store.clone()));
        assert_eq!(cache_control("GET", "/nowhere").await, (404, no_store.clone()));
        assert_eq!(cache_control("DELETE", "/a").await, (405, no_store));
    }

    #[test]
    fn every_route_table_lists_each_method_and_path_once() {
        assert_eq!(duplicate_routes(crate::connect::ROUTES.as_slice()), []);
        assert_eq!(duplicate_routes(crate::reports::ROUTES.as_slice()), []);
        assert_eq!(duplicate_routes(crate::actions::ROUTES.as_slice()), []);
    }
}

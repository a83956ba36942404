//! Which endpoint a method and path are, and the path's user id.

use crate::Endpoint;

/// A routed request.
pub(super) struct Route {
    pub ep: Endpoint,
    /// The path as Box's OpenAPI file names it, for the contract check.
    pub template: &'static str,
    pub user_id: Option<String>,
}

impl Route {
    /// The `{user_id}` of the path (empty for routes without one).
    pub fn user_id(&self) -> &str {
        self.user_id.as_deref().unwrap_or("")
    }
}

pub(super) fn route(method: &http::Method, path: &str) -> Option<Route> {
    use http::Method as M;
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let r = |ep, template| {
        Some(Route {
            ep,
            template,
            user_id: None,
        })
    };
    match (method, segs.as_slice()) {
        (&M::GET, ["api", "oauth2", "authorize"]) => r(Endpoint::Authorize, "/authorize"),
        (&M::POST, ["oauth2", "token"]) => r(Endpoint::Token, "/oauth2/token"),
        (&M::POST, ["oauth2", "revoke"]) => r(Endpoint::Revoke, "/oauth2/revoke"),
        (&M::GET, ["2.0", "users", "me"]) => r(Endpoint::UsersMe, "/users/me"),
        (&M::GET, ["2.0", "users"]) => r(Endpoint::Users, "/users"),
        (&M::GET, ["2.0", "events"]) => r(Endpoint::Events, "/events"),
        (&M::POST, ["2.0", "users", "terminate_sessions"]) => {
            r(Endpoint::TerminateSessions, "/users/terminate_sessions")
        }
        (m, ["2.0", "users", id]) if *m == M::GET || *m == M::PUT || *m == M::DELETE => Some(Route {
            ep: match *m {
                M::GET => Endpoint::UserGet,
                M::PUT => Endpoint::UserUpdate,
                _ => Endpoint::UserDelete,
            },
            template: "/users/{user_id}",
            user_id: Some(id.to_string()),
        }),
        (&M::PUT, ["2.0", "users", id, "folders", "0"]) => Some(Route {
            ep: Endpoint::TransferContent,
            template: "/users/{user_id}/folders/0",
            user_id: Some(id.to_string()),
        }),
        _ => None,
    }
}

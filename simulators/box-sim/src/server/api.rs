//! The Box 2.0 API behind a bearer token: who the caller is, the per-token rate limit, and the
//! dispatch to each endpoint's handler.

use sim_core::Reply;

use super::router::Route;
use super::{Ctx, Shared, client_error, events, unauthorized, user_admin, users};
use crate::Endpoint;
use crate::UserStatus;
use crate::state::{AccessTok, State, UserRec};

/// The holder of a live access token: its token, its user (the service account for client
/// credentials) and whether it is an admin.
pub(super) struct Caller {
    pub tok: AccessTok,
    pub me: UserRec,
    pub is_admin: bool,
}

impl Caller {
    /// `None`: no token, an unknown or expired one, or its user is gone or deactivated (401).
    fn of(st: &State, ctx: &Ctx) -> Option<Caller> {
        let tok = ctx
            .bearer
            .as_ref()
            .and_then(|b| st.access.get(b))
            .filter(|t| t.expires_at > ctx.now)
            .cloned()?;
        let me = st.subject_user(&tok.subject).cloned()?;
        if me.status == UserStatus::Inactive {
            return None;
        }
        let is_admin = st.is_admin(&tok.subject);
        Some(Caller { tok, me, is_admin })
    }

    pub fn forbidden(shared: &Shared) -> Reply {
        client_error(
            shared,
            403,
            "access_denied_insufficient_permissions",
            "Access denied - insufficient permission",
        )
    }

    /// Refuses (403) a caller that is not an admin.
    pub fn admin(&self, shared: &Shared) -> Result<(), Reply> {
        if self.is_admin {
            Ok(())
        } else {
            Err(Self::forbidden(shared))
        }
    }

    /// Refuses (403) a caller that is not an admin, then a token without `scope`.
    pub fn admin_with_scope(&self, shared: &Shared, scope: &str) -> Result<(), Reply> {
        self.admin(shared)?;
        if self.tok.scopes.iter().any(|x| x == scope) {
            return Ok(());
        }
        Err(client_error(
            shared,
            403,
            "insufficient_scope",
            &format!("The request requires higher privileges than provided by the access token ({scope})"),
        )
        .header(
            "www-authenticate",
            format!("Bearer realm=\"Service\", error=\"insufficient_scope\", error_description=\"{scope}\""),
        ))
    }
}

/// Box's limit is per user and minute; here per access token and simulated minute.
pub(super) fn rate_limit(shared: &Shared, ctx: &Ctx) -> Option<Reply> {
    let token = ctx.bearer.as_ref()?;
    let mut f = sim_core::lock(&shared.faults);
    let limit = f.faults.rate_limit_per_minute?;
    let minute = ctx.now.timestamp().div_euclid(60);
    let entry = f.rate.entry(token.clone()).or_insert((minute, 0));
    if entry.0 != minute {
        *entry = (minute, 0);
    }
    entry.1 += 1;
    if entry.1 <= limit {
        return None;
    }
    drop(f);
    let wait = 60 - ctx.now.timestamp().rem_euclid(60);
    Some(super::fault_reply(shared, 429, Some(wait as u64)))
}

/// Answers a 2.0 API request for a live token.
pub(super) fn api(shared: &Shared, ctx: &Ctx, route: &Route) -> Reply {
    let mut st = shared.st();
    let Some(caller) = Caller::of(&st, ctx) else {
        return unauthorized();
    };
    let fields = ctx.list("fields");
    let fields = fields.as_deref();
    let id = route.user_id();
    let answer = match route.ep {
        Endpoint::UsersMe => users::me(&st, &caller, fields),
        Endpoint::UserGet => users::get(shared, &st, &caller, id, fields),
        Endpoint::Users => users::list(shared, &st, &caller, ctx, fields),
        Endpoint::UserUpdate => users::update(shared, &mut st, &caller, ctx, id, fields),
        Endpoint::UserDelete => users::delete(shared, &mut st, &caller, ctx, id),
        Endpoint::TransferContent => user_admin::transfer_content(shared, &mut st, &caller, ctx, id),
        Endpoint::TerminateSessions => user_admin::terminate_sessions(shared, &mut st, &caller, ctx),
        Endpoint::Events => events::list(shared, &st, &caller, ctx),
        Endpoint::Authorize | Endpoint::Token | Endpoint::Revoke => {
            Err(client_error(shared, 404, "not_found", "Not Found"))
        }
    };
    answer.unwrap_or_else(|refusal| refusal)
}

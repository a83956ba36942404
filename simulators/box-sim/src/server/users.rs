//! The user endpoints: who is calling, one user, the listing (offset and marker paging, Box's
//! `user_type` and `filter_term` rules), and changing or deleting a user.

use base64::Engine;
use serde_json::{Value, json};
use sim_core::Reply;

use super::api::Caller;
use super::{Ctx, Shared, client_error};
use crate::UserStatus;
use crate::state::{EventKind, State, Subject, UserRec, fmt_time};

/// `GET /users/me`.
pub(super) fn me(st: &State, caller: &Caller, fields: Option<&[String]>) -> Result<Reply, Reply> {
    Ok(Reply::json(200, user_json(st, &caller.me, fields)))
}

/// `GET /users/{user_id}`: an admin reads anyone, a user only itself.
pub(super) fn get(
    shared: &Shared,
    st: &State,
    caller: &Caller,
    id: &str,
    fields: Option<&[String]>,
) -> Result<Reply, Reply> {
    match st.user_index(id) {
        Some(i) if caller.is_admin || st.users[i].id == caller.me.id => {
            Ok(Reply::json(200, user_json(st, &st.users[i], fields)))
        }
        Some(_) => Err(Caller::forbidden(shared)),
        None => Err(client_error(shared, 404, "not_found", "Not Found")),
    }
}

/// `GET /users`, for an admin with `manage_managed_users`.
pub(super) fn list(
    shared: &Shared,
    st: &State,
    caller: &Caller,
    ctx: &Ctx,
    fields: Option<&[String]>,
) -> Result<Reply, Reply> {
    caller.admin_with_scope(shared, "manage_managed_users")?;
    Ok(list_users(shared, st, ctx, fields))
}

/// `PUT /users/{user_id}`: `name` and `status`.
pub(super) fn update(
    shared: &Shared,
    st: &mut State,
    caller: &Caller,
    ctx: &Ctx,
    id: &str,
    fields: Option<&[String]>,
) -> Result<Reply, Reply> {
    let Some(i) = st.user_index(id) else {
        return Err(client_error(shared, 404, "not_found", "Not Found"));
    };
    caller.admin_with_scope(shared, "manage_managed_users")?;
    let Ok(body) = serde_json::from_slice::<Value>(&ctx.body) else {
        return Err(client_error(shared, 400, "bad_request", "Invalid JSON body"));
    };
    let new_status = match body.get("status") {
        None => None,
        Some(Value::String(s)) => match UserStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                return Err(client_error(
                    shared,
                    400,
                    "invalid_parameter",
                    &format!("Invalid value '{s}' for parameter 'status'"),
                ));
            }
        },
        Some(_) => {
            return Err(client_error(
                shared,
                400,
                "invalid_parameter",
                "Invalid value for parameter 'status'",
            ));
        }
    };
    if let Some(Value::String(n)) = body.get("name") {
        st.users[i].name = n.chars().take(50).collect();
    }
    if let Some(s) = new_status {
        st.users[i].status = s;
    }
    st.users[i].modified_at = ctx.now;
    let actor = actor_index(st, &caller.tok.subject);
    st.push_event(EventKind::EditUser, actor, ctx.now, ctx.now);
    Ok(Reply::json(200, user_json(st, &st.users[i], fields)))
}

/// `DELETE /users/{user_id}`: refused while the user owns content, unless `force=true`.
pub(super) fn delete(shared: &Shared, st: &mut State, caller: &Caller, ctx: &Ctx, id: &str) -> Result<Reply, Reply> {
    let Some(i) = st.user_index(id) else {
        return Err(client_error(shared, 404, "not_found", "Not Found"));
    };
    caller.admin_with_scope(shared, "manage_managed_users")?;
    let force = ctx.q("force") == Some("true");
    if st.users[i].owns_content && !force {
        return Err(client_error(shared, 400, "bad_request", "User has managed content"));
    }
    st.users[i].deleted = true;
    let actor = actor_index(st, &caller.tok.subject);
    st.push_event(EventKind::DeleteUser, actor, ctx.now, ctx.now);
    Ok(Reply::empty(204))
}

pub(super) fn actor_index(st: &State, s: &Subject) -> u32 {
    match s {
        Subject::User(id) => st.user_index(id).map_or(0, |i| i as u32),
        Subject::ServiceAccount => 0,
    }
}

const MINI: [&str; 4] = ["type", "id", "name", "login"];
const STANDARD: [&str; 17] = [
    "type",
    "id",
    "name",
    "login",
    "created_at",
    "modified_at",
    "language",
    "timezone",
    "space_amount",
    "space_used",
    "max_upload_size",
    "status",
    "job_title",
    "phone",
    "address",
    "avatar_url",
    "notification_email",
];

pub(super) fn user_json(st: &State, u: &UserRec, fields: Option<&[String]>) -> Value {
    let enterprise = if u.is_external {
        json!({"type": "enterprise", "id": "99000001", "name": "Partner Co."})
    } else {
        json!({"type": "enterprise", "id": st.enterprise_id, "name": st.enterprise_name})
    };
    let mut full = json!({
        "type": "user",
        "id": u.id,
        "name": u.name,
        "login": u.login,
        "created_at": fmt_time(u.created_at),
        "modified_at": fmt_time(u.modified_at),
        "language": "en",
        "timezone": "America/Los_Angeles",
        "space_amount": 999_999_999_999_999i64,
        "space_used": u.space_used,
        "max_upload_size": 53_687_091_200i64,
        "status": u.status.as_str(),
        "job_title": "",
        "phone": "",
        "address": "",
        "avatar_url": format!("https://app.box.com/api/avatar/large/{}", u.id),
        "notification_email": null,
        "role": u.role.as_str(),
        "tracking_codes": [],
        "can_see_managed_users": !u.is_external,
        "is_sync_enabled": true,
        "is_external_collab_restricted": false,
        "is_exempt_from_device_limits": false,
        "is_exempt_from_login_verification": false,
        "enterprise": enterprise,
        "my_tags": [],
        "hostname": "https://app.box.com/",
        "is_platform_access_only": u.is_app_user,
    });
    if u.is_app_user
        && let Some(o) = full.as_object_mut()
    {
        o.insert("external_app_user_id".into(), json!(format!("ext-{}", u.id)));
    }
    let Value::Object(map) = full else {
        return Value::Null;
    };
    let keep = |k: &str| match fields {
        _ if k == "role" && u.role == crate::Role::Withheld => false,
        Some(f) => MINI.contains(&k) || f.iter().any(|x| x == k),
        None => STANDARD.contains(&k),
    };
    Value::Object(map.into_iter().filter(|(k, _)| keep(k)).collect())
}

fn list_users(shared: &Shared, st: &State, ctx: &Ctx, fields: Option<&[String]>) -> Reply {
    let user_type = ctx.q("user_type").unwrap_or("all");
    let (managed, external) = match user_type {
        "all" => (true, true),
        "managed" => (true, false),
        "external" => (false, true),
        other => {
            return client_error(
                shared,
                400,
                "invalid_parameter",
                &format!("Invalid value '{other}' for parameter 'user_type'"),
            );
        }
    };
    let term = ctx.q("filter_term").map(str::to_lowercase).filter(|t| !t.is_empty());
    let limit = match ctx.q("limit").map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if n > 0 => n.min(1000) as usize,
        Some(_) => {
            return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'limit'");
        }
    };
    // Box finds an external user only by its exact login (never without a term), and an exact
    // external match is then the only answer, even for `user_type=all`.
    let exact_external = external
        && term.as_ref().is_some_and(|t| {
            st.users
                .iter()
                .any(|u| !u.deleted && u.is_external && u.login.to_lowercase() == *t)
        });
    let matches = |u: &&UserRec| {
        !u.deleted
            && match &term {
                _ if u.is_external => exact_external && term.as_ref() == Some(&u.login.to_lowercase()),
                _ if exact_external || !managed => false,
                None => true,
                Some(t) => u.login.to_lowercase().starts_with(t) || u.name.to_lowercase().starts_with(t),
            }
    };
    if ctx.q("usemarker") == Some("true") {
        let start = match ctx.q("marker").filter(|m| !m.is_empty()) {
            None => 0,
            Some(m) => match decode_marker(m) {
                Some(id) => st
                    .users
                    .partition_point(|u| u.id.len() < id.len() || (u.id.len() == id.len() && u.id < id)),
                None => {
                    return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'marker'");
                }
            },
        };
        let mut page: Vec<&UserRec> = Vec::with_capacity(limit);
        let mut next = None;
        for u in st.users[start..].iter().filter(matches) {
            if page.len() == limit {
                next = Some(encode_marker(&u.id));
                break;
            }
            page.push(u);
        }
        let entries: Vec<Value> = page.iter().map(|u| user_json(st, u, fields)).collect();
        return Reply::json(200, json!({"limit": limit, "next_marker": next, "entries": entries}));
    }
    let offset = match ctx.q("offset").map(str::parse::<i64>) {
        None => 0usize,
        Some(Ok(n)) if (0..=10_000).contains(&n) => n as usize,
        Some(Ok(n)) if n > 10_000 => {
            return client_error(
                shared,
                400,
                "invalid_parameter",
                "Invalid value for parameter 'offset': offset must not exceed 10000; use marker-based paging",
            );
        }
        Some(_) => {
            return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'offset'");
        }
    };
    let all: Vec<&UserRec> = st.users.iter().filter(matches).collect();
    let entries: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|u| user_json(st, u, fields))
        .collect();
    Reply::json(
        200,
        json!({
            "total_count": all.len(),
            "limit": limit,
            "offset": offset,
            "order": [{"by": "id", "direction": "ASC"}],
            "entries": entries,
        }),
    )
}

fn encode_marker(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sim-user:{id}"))
}

fn decode_marker(m: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(m).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let id = s.strip_prefix("sim-user:")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

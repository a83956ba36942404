//! An admin's actions on a user beyond its record: moving its content to another user
//! (`PUT /users/{user_id}/folders/0`) and ending sessions (`POST /users/terminate_sessions`).

use serde_json::{Value, json};
use sim_core::Reply;

use super::api::Caller;
use super::{Ctx, Shared, client_error};
use crate::state::{State, fmt_time};

/// `PUT /users/{user_id}/folders/0`, for an admin with `root_readwrite`: the user's files move into
/// a new folder of the destination user.
pub(super) fn transfer_content(
    shared: &Shared,
    st: &mut State,
    caller: &Caller,
    ctx: &Ctx,
    id: &str,
) -> Result<Reply, Reply> {
    caller.admin_with_scope(shared, "root_readwrite")?;
    let Some(src) = st.user_index(id) else {
        return Err(client_error(shared, 404, "not_found", "Not Found"));
    };
    let body: Value = serde_json::from_slice(&ctx.body).unwrap_or(Value::Null);
    let Some(dest_id) = body.pointer("/owned_by/id").and_then(Value::as_str) else {
        return Err(client_error(
            shared,
            400,
            "bad_request",
            "Missing parameter 'owned_by.id'",
        ));
    };
    let Some(dest) = st.user_index(dest_id) else {
        return Err(client_error(shared, 404, "not_found", "Destination user not found"));
    };
    if src == dest {
        return Err(client_error(
            shared,
            400,
            "bad_request",
            "Cannot transfer content to the same user",
        ));
    }
    let size = st.users[src].space_used;
    let folder_id = st.next_folder_id;
    st.next_folder_id += 1;
    let (sl, sn) = (st.users[src].login.clone(), st.users[src].name.clone());
    st.users[src].owns_content = false;
    st.users[src].space_used = 0;
    st.users[dest].owns_content = true;
    st.users[dest].space_used += size;
    let d = &st.users[dest];
    let owner = json!({"type": "user", "id": d.id, "name": d.name, "login": d.login});
    let at = fmt_time(ctx.now);
    Ok(Reply::json(
        200,
        json!({
            "type": "folder",
            "id": folder_id.to_string(),
            "etag": "0",
            "sequence_id": "0",
            "name": format!("{sl} - {sn}'s Files and Folders"),
            "created_at": at,
            "modified_at": at,
            "description": "",
            "size": size,
            "path_collection": {"total_count": 1, "entries": [{"type": "folder", "id": "0", "name": "All Files"}]},
            "created_by": owner,
            "modified_by": owner,
            "owned_by": owner,
            "item_status": "active",
            "has_collaborations": false,
        }),
    ))
}

/// `POST /users/terminate_sessions` by user ids or logins, for an admin.
pub(super) fn terminate_sessions(shared: &Shared, st: &mut State, caller: &Caller, ctx: &Ctx) -> Result<Reply, Reply> {
    caller.admin(shared)?;
    let body: Value = serde_json::from_slice(&ctx.body).unwrap_or(Value::Null);
    let strs = |k: &str| -> Vec<String> {
        body.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (ids, logins) = (strs("user_ids"), strs("user_logins"));
    if ids.is_empty() && logins.is_empty() {
        return Err(client_error(
            shared,
            400,
            "bad_request",
            "user_ids or user_logins is required",
        ));
    }
    let mut targets = Vec::new();
    for id in &ids {
        match st.user_index(id) {
            Some(i) => targets.push(st.users[i].id.clone()),
            None => {
                return Err(client_error(shared, 404, "not_found", &format!("User {id} not found")));
            }
        }
    }
    for login in &logins {
        match st
            .users
            .iter()
            .find(|u| !u.deleted && u.login.eq_ignore_ascii_case(login))
        {
            Some(u) => targets.push(u.id.clone()),
            None => {
                return Err(client_error(
                    shared,
                    404,
                    "not_found",
                    &format!("User {login} not found"),
                ));
            }
        }
    }
    st.terminated.extend(targets);
    Ok(Reply::json(
        202,
        json!({"message": "Request is successful, please check the admin events for the status of the job"}),
    ))
}

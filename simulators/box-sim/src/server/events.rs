//! `GET /events`: the enterprise's `admin_logs` stream, by stream position, time window and event
//! type, with short pages when the run's faults ask for them.

use chrono::DateTime;
use rand::Rng;
use serde_json::{Value, json};
use sim_core::Reply;

use super::api::Caller;
use super::{Ctx, Shared, client_error};
use crate::Plan;
use crate::content;
use crate::state::{ANON, EventKind, KindSet, State, fmt_time, ip_for, ts};

fn parse_time(shared: &Shared, ctx: &Ctx, k: &str) -> Result<Option<i64>, Reply> {
    match ctx.q(k) {
        None | Some("") => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.timestamp()))
            .map_err(|_| {
                client_error(
                    shared,
                    400,
                    "invalid_parameter",
                    &format!("Invalid value '{v}' for parameter '{k}'"),
                )
            }),
    }
}

/// `GET /events?stream_type=admin_logs`, for an admin with `manage_enterprise_properties`.
pub(super) fn list(shared: &Shared, st: &State, caller: &Caller, ctx: &Ctx) -> Result<Reply, Reply> {
    if st.plan == Plan::Business {
        return Err(client_error(
            shared,
            403,
            "forbidden",
            "The enterprise event stream is not available on this plan",
        ));
    }
    caller.admin_with_scope(shared, "manage_enterprise_properties")?;
    Ok(events(shared, st, ctx))
}

fn events(shared: &Shared, st: &State, ctx: &Ctx) -> Reply {
    match ctx.q("stream_type") {
        Some("admin_logs") => {}
        other => {
            return client_error(
                shared,
                400,
                "invalid_parameter",
                &format!(
                    "The simulator serves stream_type=admin_logs only, not {:?}",
                    other.unwrap_or("all")
                ),
            );
        }
    }
    // A type the simulator never generates matches nothing.
    let kinds: Option<KindSet> = ctx.list("event_type").map(|v| {
        v.iter()
            .filter_map(|s| EventKind::parse(s))
            .fold(KindSet::default(), KindSet::with)
    });
    let (after, before) = match (
        parse_time(shared, ctx, "created_after"),
        parse_time(shared, ctx, "created_before"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let limit = match ctx.q("limit").map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if n > 0 => n.min(500) as usize,
        Some(_) => {
            return client_error(shared, 400, "invalid_parameter", "Invalid value for parameter 'limit'");
        }
    };
    // The ordered prefix is searched by time; the late events after it are filtered one by one.
    let evs = &st.events;
    let sorted = &evs[..st.sorted_len];
    let lo = after.map_or(0, |a| sorted.partition_point(|e| e.at < a));
    let hi = before.map_or(sorted.len(), |b| sorted.partition_point(|e| e.at < b));
    let in_window = |e: &crate::state::Ev| after.is_none_or(|a| e.at >= a) && before.is_none_or(|b| e.at < b);
    let start = match ctx.q("stream_position") {
        None | Some("") | Some("0") => lo,
        Some("now") => evs.len(),
        Some(p) => match p.parse::<usize>() {
            Ok(p) => p.max(lo),
            Err(_) => {
                return client_error(
                    shared,
                    400,
                    "invalid_parameter",
                    "Invalid value for parameter 'stream_position'",
                );
            }
        },
    };
    let take = {
        let mut f = sim_core::lock(&shared.faults);
        let short = f.faults.short_pages;
        if limit > 1 && short > 0.0 && f.plan.rng().random_bool(short.clamp(0.0, 1.0)) {
            f.plan.rng().random_range(1..limit)
        } else {
            limit
        }
    };
    let mut entries = Vec::with_capacity(take);
    let mut pos = start;
    while pos < evs.len() && entries.len() < take {
        if pos >= hi && pos < sorted.len() {
            pos = sorted.len();
            continue;
        }
        let e = evs[pos];
        pos += 1;
        if pos > sorted.len() && !in_window(&e) {
            continue;
        }
        if let Some(k) = kinds
            && !k.contains(e.kind)
        {
            continue;
        }
        entries.push(event_json(st, &e));
    }
    // Exhausted: the position stays where it was so the client can poll again later.
    let next = if entries.is_empty() { start } else { pos };
    Reply::json(
        200,
        json!({"chunk_size": entries.len(), "next_stream_position": next.to_string(), "entries": entries}),
    )
}

fn event_json(st: &State, e: &crate::state::Ev) -> Value {
    let user = user_json(st, e.user, e.seq);
    let ip = std::net::Ipv4Addr::from(ip_for(st.seed, e.user, e.seq)).to_string();
    let details = match e.kind {
        EventKind::FailedLogin => json!({"failure_reason": "invalid_password"}),
        EventKind::Login | EventKind::AdminLogin => json!({"client_type": "web"}),
        _ => json!({}),
    };
    let source = if e.kind.is_content() {
        item_json(st, e)
    } else {
        user.clone()
    };
    json!({
        "type": "event",
        "event_id": st.event_id(e.seq),
        "created_at": fmt_time(ts(e.at)),
        "recorded_at": fmt_time(ts(e.at + e.lag as i64)),
        "created_by": user,
        "event_type": e.kind.as_str(),
        "ip_address": ip,
        "session_id": format!("{:x}", crate::state::splitmix(e.seq as u64 ^ st.seed) & 0xffff_ffff_ffff),
        "source": source,
        "additional_details": details,
    })
}

fn user_json(st: &State, user: u32, seq: u32) -> Value {
    match st.users.get(user as usize) {
        Some(u) if user != ANON => json!({"type": "user", "id": u.id, "name": u.name, "login": u.login}),
        _ => {
            json!({"type": "user", "id": "2", "name": "Unknown User", "login": format!("unknown.{}@{}", seq % 97, st.domain)})
        }
    }
}

/// The source of a content event is the file or folder, as Box's `EventSource`: owned by the actor
/// when they own content, else by the primary admin (whose folders are shared with everyone).
fn item_json(st: &State, e: &crate::state::Ev) -> Value {
    let item = content::item(st.seed, e.seq, e.kind);
    let owner = match st.users.get(e.user as usize) {
        Some(u) if u.owns_content => e.user,
        _ => 0,
    };
    json!({
        "item_type": if item.is_folder { "folder" } else { "file" },
        "item_id": item.id,
        "item_name": item.name,
        "parent": {"type": "folder", "id": item.parent_id, "name": item.parent_name},
        "owned_by": user_json(st, owner, e.seq),
    })
}

//! The enterprise event stream (`stream_type=admin_logs`): the only source of Box logins.
//!
//! Box may return a page shorter than `limit` while more remain, so the stream stops only on
//! an empty page. Events are deduplicated by `event_id` (overlapping windows and replayed stream
//! positions repeat events) with a bounded memory of recent ids: `admin_logs` is chronological, so
//! a repeat is always recent.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use secrecy::SecretString;

use super::types::{Event, EventsPageBody};
use super::{BoxClient, BoxError, Effect};

/// The event type of a user's login to Box.
pub const LOGIN_EVENT: &str = "LOGIN";
/// Event types that show a user working with content, with or without an interactive login
/// (Box Drive, the mobile apps and integrations act as the user). Each is in the `event_type`
/// filter enum of Box's OpenAPI file for `GET /events`. `CONTENT_ACCESS` is not: Box's file lists
/// it among the types an event can carry but not among those a request may filter by, so it is
/// not asked for (a filter Box refuses would stop every sync). `FAILED_LOGIN` and `ADMIN_LOGIN`
/// are not use, and admin operations on users (`EDIT_USER`…) are the admin's, not the user's.
pub const ACTIVITY_EVENTS: &[&str] = &[
    "UPLOAD",
    "DOWNLOAD",
    "PREVIEW",
    "EDIT",
    "COPY",
    "MOVE",
    "RENAME",
    "DELETE",
    "UNDELETE",
    "LOCK",
    "UNLOCK",
    "COMMENT_CREATE",
    "COMMENT_EDIT",
    "COLLABORATION_INVITE",
    "COLLABORATION_ACCEPT",
    "SHARE",
    "UNSHARE",
    "SHARED_LINK_SEND",
    "ITEM_OPEN",
    "ITEM_MODIFY",
    "ITEM_SYNC",
    "FILE_VERSION_RESTORE",
    "TASK_CREATE",
    "TASK_ASSIGNMENT_UPDATE",
];
/// Box's largest page of admin events.
pub const EVENTS_PAGE_LIMIT: u32 = 500;
/// Loop guard: 200,000 pages of 500 is 100 million events, past a year of any enterprise.
const MAX_EVENT_PAGES: u32 = 200_000;
/// Pages in a row that bring nothing new at the same position before the stream gives up.
const MAX_STALLED_PAGES: u32 = 3;
/// How many recent event ids are remembered for deduplication: five full pages. A repeat within
/// one stream comes from a replayed position, at most a page or two back; repeats across runs
/// (the checkpoint's overlap) are never in the same stream and are harmless to a latest-login
/// max. Each concurrent slice holds its own memory, so this is paid `slices` times per sync.
const DEDUPE_MEMORY: usize = 5 * EVENTS_PAGE_LIMIT as usize;

/// Which admin events to read.
#[derive(Debug, Clone)]
pub struct EventsQuery {
    /// `event_type` filter, e.g. `["LOGIN"]`.
    pub event_types: Vec<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Resume from a position saved from an earlier [`EventsPage`].
    pub stream_position: Option<String>,
    pub limit: u32,
}

impl EventsQuery {
    /// LOGIN events in a time window, in the largest pages Box allows.
    pub fn logins(created_after: DateTime<Utc>, created_before: DateTime<Utc>) -> Self {
        Self {
            event_types: vec![LOGIN_EVENT.to_owned()],
            created_after: Some(created_after),
            created_before: Some(created_before),
            stream_position: None,
            limit: EVENTS_PAGE_LIMIT,
        }
    }
}

impl EventsQuery {
    /// Logins and content events ([`ACTIVITY_EVENTS`]) in a time window, as one filtered stream.
    pub fn activity(created_after: DateTime<Utc>, created_before: DateTime<Utc>) -> Self {
        let mut event_types = vec![LOGIN_EVENT.to_owned()];
        event_types.extend(ACTIVITY_EVENTS.iter().map(|t| (*t).to_owned()));
        Self {
            event_types,
            ..Self::logins(created_after, created_before)
        }
    }
}

/// One page of new (not yet seen) events and the position to resume after it.
#[derive(Debug, Clone)]
pub struct EventsPage {
    pub events: Vec<Event>,
    pub next_stream_position: String,
    /// Entries Box sent on this page, duplicates included.
    pub received: usize,
}

/// Recent event ids, each held once (shared by the set and the eviction order).
struct RecentIds {
    set: HashSet<std::sync::Arc<str>>,
    order: VecDeque<std::sync::Arc<str>>,
}

impl RecentIds {
    fn new() -> Self {
        Self {
            set: HashSet::with_capacity(DEDUPE_MEMORY),
            order: VecDeque::with_capacity(DEDUPE_MEMORY),
        }
    }

    /// True when the id is new.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= DEDUPE_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        let id: std::sync::Arc<str> = id.into();
        self.set.insert(id.clone());
        self.order.push_back(id);
        true
    }
}

fn box_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn position_string(value: Option<serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl BoxClient {
    /// Pages of admin events, each event once. Needs an admin (or a co-admin with report
    /// rights) token with `manage_enterprise_properties`; a Business plan answers
    /// [`BoxError::Forbidden`] on the first page.
    pub fn admin_event_pages(
        &self,
        token: SecretString,
        query: EventsQuery,
    ) -> BoxStream<'static, Result<EventsPage, BoxError>> {
        let client = self.clone();
        Box::pin(async_stream::try_stream! {
            let url = client.endpoints.api("/2.0/events");
            let types = query.event_types.join(",");
            let limit = query.limit.clamp(1, EVENTS_PAGE_LIMIT).to_string();
            let after = query.created_after.map(box_time);
            // Never a live tail: without an end, the window ends now, so the stream ends.
            let before = Some(box_time(query.created_before.unwrap_or_else(Utc::now)));
            let mut position = query.stream_position.clone();
            let mut seen = RecentIds::new();
            let mut pages = 0u32;
            let mut stalled = 0u32;
            loop {
                pages += 1;
                if pages > MAX_EVENT_PAGES {
                    Err(BoxError::Paging { operation: "events.admin_logs", detail: format!("more than {MAX_EVENT_PAGES} pages") })?;
                }
                let mut params: Vec<(&str, &str)> = vec![("stream_type", "admin_logs"), ("limit", limit.as_str())];
                if !types.is_empty() {
                    params.push(("event_type", types.as_str()));
                }
                if let Some(a) = after.as_deref() {
                    params.push(("created_after", a));
                }
                if let Some(b) = before.as_deref() {
                    params.push(("created_before", b));
                }
                if let Some(p) = position.as_deref() {
                    params.push(("stream_position", p));
                }
                let body = client.api_call("events.admin_logs", &token, Effect::Idempotent, |http| http.get(url.clone()).query(&params)).await?;
                let page: EventsPageBody = Self::decode("events.admin_logs", &body)?;
                let received = page.entries.len();
                let next = position_string(page.next_stream_position);
                if received == 0 {
                    // The end. Yield where to resume next time, even if Box did not repeat it.
                    if let Some(resume) = next.or(position.clone()) {
                        yield EventsPage { events: Vec::new(), next_stream_position: resume, received };
                    }
                    break;
                }
                let Some(next) = next else {
                    Err(BoxError::Decode { operation: "events.admin_logs", detail: "a non-empty page without next_stream_position".into() })?;
                    break;
                };
                let events: Vec<Event> = page.entries.into_iter().filter(|e| seen.insert(&e.event_id)).collect();
                // A replayed position yields only duplicates; a few in a row is Box going nowhere.
                stalled = if events.is_empty() && position.as_deref() == Some(next.as_str()) { stalled + 1 } else { 0 };
                if stalled >= MAX_STALLED_PAGES {
                    Err(BoxError::Paging { operation: "events.admin_logs", detail: format!("the stream position did not advance for {MAX_STALLED_PAGES} pages") })?;
                }
                tracing::debug!(page = pages, received, new = events.len(), "admin events page");
                position = Some(next.clone());
                yield EventsPage { events, next_stream_position: next, received };
            }
        })
    }

    /// Admin events one by one (see [`BoxClient::admin_event_pages`]).
    pub fn admin_events(&self, token: SecretString, query: EventsQuery) -> BoxStream<'static, Result<Event, BoxError>> {
        self.admin_event_pages(token, query)
            .map_ok(|page| futures::stream::iter(page.events.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_only_the_oldest() {
        let mut ids = RecentIds::new();
        assert!(ids.insert("a"));
        assert!(!ids.insert("a"));
        for i in 0..DEDUPE_MEMORY {
            ids.insert(&i.to_string());
        }
        assert!(ids.insert("a"), "the oldest id is forgotten once memory is full");
        assert!(!ids.insert(&(DEDUPE_MEMORY - 1).to_string()));
    }

    #[test]
    fn positions_may_be_strings_or_numbers() {
        assert_eq!(position_string(Some(serde_json::json!("123"))), Some("123".into()));
        assert_eq!(position_string(Some(serde_json::json!(123))), Some("123".into()));
        assert_eq!(position_string(Some(serde_json::json!(""))), None);
        assert_eq!(position_string(None), None);
    }

    #[test]
    fn times_are_sent_with_an_offset() {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(box_time(t), "2026-01-02T03:04:05+00:00");
    }
}

//! Lists answered from the user indexes (see the user-index table in
//! [`schema`](crate::storage::schema)): a page costs the users it holds, not the tenant.
//!
//! [`plan`] (in `plan.rs`) says which index partitions and key ranges hold a query's users in the query's order
//! ([`ListPlan::Merge`]), or that the query is about the few admins ([`ListPlan::Role`]).
//! [`IndexList::page`] reads a merge plan a page at a time: each partition ("stream") in its
//! index's order, merged by key, a part of the page per read. Every user read is checked against
//! the same predicate as the in-memory list ([`super::matches`]), so the answer is the in-memory
//! list's even where an index entry lags or a range is wider than the state (e.g. `working` by
//! login alone); the ranges keep such rejections rare. The cursor is the same sort key the
//! in-memory list uses, so either path continues the other's pages.

use chrono::{DateTime, TimeZone, Utc};

pub use super::plan::{CountFrom, ListPlan, Stream, plan};
use super::{
    ActivityState, QueryError, SortField, SortKey, UserPage, UserQuery, activity_state, encode_cursor, matches,
    position_after, row, search_text, sort_key,
};
use crate::boxapi::Role;
use crate::ids::TenantId;
use crate::license::{ActivitySignal, UserLicense};
use crate::storage::dynamo::{MAX_PAGE_SIZE, UserIndexPosition, UserIndexRange};
use crate::storage::schema::{
    ACTIVITY_AT_FORMAT, ACTIVITY_NEVER, ACTIVITY_NO_DATA, ACTIVITY_SEEN, USER_INDEX_SEP, tenant_pk, text_key_prefix,
    user_sk, users_rpk, users_upk,
};
use crate::storage::user_index::{UserIndex, user_index};
use crate::storage::{StoreError, Table};
use crate::sync::LicenseSummary;

/// The index sort key of a list position (the two are the same order).
pub(super) fn index_key(query: &UserQuery, key: &SortKey) -> Option<String> {
    let SortKey(n, text, id) = key;
    if query.search.is_some() {
        return Some(format!("{}{USER_INDEX_SEP}{id}", text_key_prefix(text)));
    }
    Some(match query.sort {
        SortField::LastActivity if *n == i64::MIN => format!("{ACTIVITY_NEVER}{USER_INDEX_SEP}{id}"),
        SortField::LastActivity if *n == i64::MIN + 1 => format!("{ACTIVITY_NO_DATA}{USER_INDEX_SEP}{id}"),
        SortField::LastActivity => {
            let at = Utc.timestamp_micros(*n).single()?;
            format!("{ACTIVITY_SEEN}{}{USER_INDEX_SEP}{id}", at.format(ACTIVITY_AT_FORMAT))
        }
        SortField::Login | SortField::Name => format!("{}{USER_INDEX_SEP}{id}", text_key_prefix(text)),
    })
}

fn lower(range: &UserIndexRange) -> &str {
    match range {
        UserIndexRange::BeginsWith(p) => p,
        UserIndexRange::Between(lo, _) => lo,
        UserIndexRange::All => "",
    }
}

/// Whether `key` sorts after every key of `range`.
fn after(range: &UserIndexRange, key: &str) -> bool {
    match range {
        UserIndexRange::BeginsWith(p) => key > p.as_str() && !key.starts_with(p.as_str()),
        UserIndexRange::Between(_, hi) => key > hi.as_str(),
        UserIndexRange::All => false,
    }
}

/// Whether `key` sorts before every key of `range`.
fn before(range: &UserIndexRange, key: &str) -> bool {
    !key.starts_with(lower(range)) && key < lower(range)
}

/// Where reading resumes after `key`: the first range (in reading order) not wholly passed, and
/// whether to start after `key` inside it (`false`: from the range's beginning).
fn resume(ranges: &[UserIndexRange], descending: bool, key: &str) -> (usize, bool) {
    for (i, range) in ranges.iter().enumerate() {
        let (passed, ahead) = if descending {
            (before(range, key), after(range, key))
        } else {
            (after(range, key), before(range, key))
        };
        if !passed {
            return (i, !ahead);
        }
    }
    (ranges.len(), false)
}

/// Most index queries one page makes beyond one per stream: bounds a page whose reads keep
/// failing the check (the page then ends short, with a cursor after the last user read).
const MAX_QUERIES_PER_PAGE: usize = 16;

/// One stream being read: its partition, ranges in reading order, and what was read but not yet
/// merged.
struct Reading {
    index: UserIndex,
    upk: String,
    ranges: Vec<UserIndexRange>,
    range: usize,
    start: Option<UserIndexPosition>,
    buffer: std::collections::VecDeque<(String, UserLicense)>,
    /// Reads made and users taken from this stream in this page: its share of the list so far.
    reads: usize,
    taken: usize,
}

impl Reading {
    fn done(&self) -> bool {
        self.buffer.is_empty() && self.range >= self.ranges.len()
    }
}

/// The users of one page, in order, and where the next page starts.
#[derive(Debug)]
pub(super) struct IndexList {
    pub(super) users: Vec<UserLicense>,
    /// The list position after which the next page starts; `None`: this is the last page.
    pub(super) next: Option<SortKey>,
    /// Items DynamoDB read for the page.
    pub(super) items_read: u64,
}

impl IndexList {
    /// Up to `query.limit` users of `streams` after `after` (a list position), each passing `keep`.
    pub(super) async fn page(
        table: &Table,
        tenant: &TenantId,
        streams: &[Stream],
        query: &UserQuery,
        signal: ActivitySignal,
        after: Option<&SortKey>,
        keep: impl Fn(&UserLicense) -> bool,
    ) -> Result<IndexList, StoreError> {
        let after_key = after
            .map(|k| index_key(query, k).ok_or(StoreError::InvalidCursor))
            .transpose()?;
        let mut readings: Vec<Reading> = streams
            .iter()
            .map(|s| {
                let upk = users_upk(tenant, s.segment);
                let mut ranges = s.ranges.clone();
                if query.descending {
                    ranges.reverse();
                }
                let (range, start) = match &after_key {
                    None => (0, None),
                    Some(key) => {
                        let (i, inside) = resume(&ranges, query.descending, key);
                        (i, inside.then(|| position(tenant, &upk, key.clone())))
                    }
                };
                Reading {
                    index: s.index,
                    upk,
                    ranges,
                    range,
                    start,
                    buffer: Default::default(),
                    reads: 0,
                    taken: 0,
                }
            })
            .collect();
        // One more than the page: whether a next page exists is known without another request.
        let want = query.limit as usize + 1;
        // Each query reads at most MAX_PAGE_SIZE items: a large (CSV) page needs more of them.
        let max_queries = MAX_QUERIES_PER_PAGE + readings.len() + 2 * want.div_ceil(MAX_PAGE_SIZE as usize);
        let streams_n = readings.len();
        let (mut out, mut last, mut items_read, mut queries) = (Vec::with_capacity(want), None, 0u64, 0);
        'merge: while out.len() < want {
            let taken: usize = readings.iter().map(|r| r.taken).sum();
            for r in readings.iter_mut().filter(|r| r.buffer.is_empty()) {
                while r.buffer.is_empty() && r.range < r.ranges.len() {
                    if queries >= max_queries {
                        break 'merge;
                    }
                    queries += 1;
                    let need = read_size(want - out.len(), streams_n, r.reads, r.taken, taken);
                    r.reads += 1;
                    let page = table
                        .query_user_index(
                            r.index,
                            &r.upk,
                            &r.ranges[r.range],
                            !query.descending,
                            r.start.as_ref(),
                            u32::try_from(need).unwrap_or(u32::MAX),
                        )
                        .await?;
                    items_read += u64::from(page.items_read);
                    let keys = page.users.into_iter().map(|u| {
                        let key = r.index.sort_key(&user_index(tenant, &u)).to_owned();
                        (key, u)
                    });
                    r.buffer.extend(keys);
                    if page.more {
                        r.start = page.last;
                    } else {
                        r.range += 1;
                        r.start = None;
                    }
                }
            }
            // The next user in the list's order among the streams' heads.
            let next = readings
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.buffer.front().map(|(k, _)| (i, k)))
                .reduce(|a, b| {
                    let b_first = if query.descending { b.1 > a.1 } else { b.1 < a.1 };
                    if b_first { b } else { a }
                })
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            let Some((key, user)) = readings[i].buffer.pop_front() else {
                break;
            };
            readings[i].taken += 1;
            // Where reading stopped is this entry's key. (A search pops a user matching by both
            // texts twice, once per index: the user's list position, its first text, can be
            // behind the second entry.)
            last = Some(match &query.search {
                Some(_) => text_position(&key),
                None => sort_key(
                    query,
                    user.signals().by_signal(signal),
                    user.login.as_deref(),
                    user.name.as_deref(),
                    &user.box_user_id,
                ),
            });
            if owns(query, readings[i].index, &user) && keep(&user) {
                out.push(user);
            }
        }
        let next = if out.len() >= want {
            out.truncate(query.limit as usize);
            out.last().map(|u| {
                sort_key(
                    query,
                    u.signals().by_signal(signal),
                    u.login.as_deref(),
                    u.name.as_deref(),
                    &u.box_user_id,
                )
            })
        } else if readings.iter().all(Reading::done) {
            None
        } else {
            // Stopped at the query bound: continue after the last user read (or refuse to
            // hand out a cursor that would not move).
            match last {
                Some(key) => Some(key),
                None => return Err(anyhow::anyhow!("a user index page read nothing within its query bound").into()),
            }
        };
        Ok(IndexList {
            users: out,
            next,
            items_read,
        })
    }
}

/// The list position of a text index key (`text SEP id`).
fn text_position(key: &str) -> SortKey {
    let (text, id) = key.rsplit_once(USER_INDEX_SEP).unwrap_or((key, ""));
    SortKey(0, text.to_owned(), id.to_owned())
}

/// How many users to read from one stream, with `remaining` users still wanted for the page:
/// all of them from a lone stream; from one of several, a few at first, then the stream's share
/// so far of the remaining. Each user read but not used is read again by the next page, so the
/// reads follow where the list's users come from (a cursor walk of a tenant whose seat holders
/// are 94% of its users reads about 1.05 items per user; equal thirds, about 1.2).
fn read_size(remaining: usize, streams: usize, reads: usize, taken: usize, taken_all: usize) -> usize {
    if streams <= 1 {
        return remaining;
    }
    if reads == 0 {
        return remaining.min(4);
    }
    ((remaining * (taken + 1)).div_ceil(taken_all + streams)).clamp(1, remaining)
}

/// The position of index key `key` (`value SEP id`) in partition `upk`: where DynamoDB continues
/// after it, whether or not a user is there now.
fn position(tenant: &TenantId, upk: &str, key: String) -> UserIndexPosition {
    let id = key.rsplit(USER_INDEX_SEP).next().unwrap_or_default().to_owned();
    UserIndexPosition {
        pk: tenant_pk(tenant),
        sk: user_sk(&id),
        upk: upk.to_owned(),
        sort_key: key,
    }
}

/// Whether the stream of `index` is where `user` appears in `query`'s list: a search reads the
/// login index and the name-search index, and lists a user at their login where it matches, else
/// at their name, as [`search_text`] orders the in-memory list. (A user whose login and name both
/// match, the name not being a prefix of the login, is read in both and listed once.)
fn owns(query: &UserQuery, index: UserIndex, user: &UserLicense) -> bool {
    let Some(q) = &query.search else { return true };
    if search_text(q, user.login.as_deref(), user.name.as_deref()).is_none() {
        return false;
    }
    let by_login = text_key_prefix(user.login.as_deref().unwrap_or_default()).starts_with(q.as_str());
    match index {
        UserIndex::LoginName => by_login,
        UserIndex::NameSearch => !by_login,
        _ => true,
    }
}

/// Why a page could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ListError {
    /// A position outside the caller's list is the caller's bad cursor, not a storage failure.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => ListError::Query(super::invalid_cursor()),
            e => ListError::Store(e),
        }
    }
}

/// Most users of one role read for a role list (pages of 1,000): far above any enterprise's admins.
const MAX_ROLE_USERS: usize = 100_000;

/// Every user of `role` (admin or co-admin) of the tenant, from the role index.
async fn role_users(table: &Table, tenant: &TenantId, role: Role) -> Result<(Vec<UserLicense>, u64), StoreError> {
    let rpk = users_rpk(tenant, if role == Role::Admin { "admin" } else { "coadmin" });
    let (mut users, mut items_read, mut start) = (Vec::new(), 0u64, None);
    while users.len() < MAX_ROLE_USERS {
        let page = table
            .query_user_index(UserIndex::Role, &rpk, &UserIndexRange::All, true, start.as_ref(), 1_000)
            .await?;
        items_read += u64::from(page.items_read);
        users.extend(page.users);
        if !page.more {
            break;
        }
        start = page.last;
    }
    Ok((users, items_read))
}

/// One page of `query` (with the resolved `inactive_days` and the tenant's `signal`) read from the
/// user indexes (see the module documentation), with the items DynamoDB read for it. `summary`
/// gives the `total`.
pub async fn indexed_page(
    table: &Table,
    tenant: &TenantId,
    query: &UserQuery,
    inactive_days: u16,
    signal: ActivitySignal,
    summary: Option<&LicenseSummary>,
    now: DateTime<Utc>,
) -> Result<(UserPage, u64), ListError> {
    let binding = query.binding(tenant, signal);
    let after = position_after(&binding, query)?;
    let (streams, count) = match plan(query, signal, inactive_days, now) {
        ListPlan::Role(role) => {
            let (users, items_read) = role_users(table, tenant, role).await?;
            return Ok((
                super::page(tenant, query, inactive_days, signal, users, now)?,
                items_read,
            ));
        }
        ListPlan::Merge { streams, count } => (streams, count),
    };
    let keep = |u: &UserLicense| {
        let state = activity_state(u, inactive_days, now);
        matches(query, u, state, signal, inactive_days, now)
    };
    let list = IndexList::page(table, tenant, &streams, query, signal, after.as_ref(), keep).await?;
    // A first page that holds the whole list counts it exactly, summary or not.
    let total = match (&after, &list.next) {
        (None, None) => Some(list.users.len()),
        _ => count.total(summary, now),
    };
    let users = list
        .users
        .into_iter()
        .map(|u| {
            let state = activity_state(&u, inactive_days, now);
            row(u, state, signal)
        })
        .collect();
    Ok((
        UserPage {
            users,
            activity_signal: signal,
            total,
            next_cursor: list.next.map(|key| encode_cursor(&binding, key)),
        },
        list.items_read,
    ))
}

/// Up to `max` users of the tenant inactive for `days` days by `signal` (never-active first,
/// then the oldest activity), each passing `keep`, read from the activity index as the
/// `state=inactive` list is; and how many more pass `keep` beyond them.
pub async fn oldest_inactive(
    table: &Table,
    tenant: &TenantId,
    signal: ActivitySignal,
    days: u16,
    max: u32,
    now: DateTime<Utc>,
    keep: impl Fn(&UserLicense) -> bool,
) -> Result<(Vec<UserLicense>, usize), StoreError> {
    let mut query = UserQuery {
        state: Some(ActivityState::Inactive),
        inactive_days: Some(days),
        role: None,
        kind: None,
        sort: SortField::LastActivity,
        descending: false,
        limit: max,
        cursor: None,
        search: None,
    };
    let ListPlan::Merge { streams, .. } = plan(&query, signal, days, now) else {
        return Ok((Vec::new(), 0));
    };
    let first = IndexList::page(table, tenant, &streams, &query, signal, None, &keep).await?;
    let mut chosen = first.users;
    // Fill up a page the query bound cut short, then count the rest a page at a time (bounded:
    // the tenant's users, 1,000 at a time).
    query.limit = 1_000;
    let (mut more, mut next) = (0usize, first.next);
    for _ in 0..10_000 {
        let Some(after) = next.take() else { break };
        let page = IndexList::page(table, tenant, &streams, &query, signal, Some(&after), &keep).await?;
        let room = (max as usize).saturating_sub(chosen.len());
        let mut users = page.users;
        if room > 0 {
            let take = room.min(users.len());
            chosen.extend(users.drain(..take));
        }
        more += users.len();
        next = page.next;
    }
    Ok((chosen, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &str) -> UserQuery {
        super::super::query::read(raw, false).unwrap()
    }

    #[test]
    fn reading_resumes_in_the_range_that_holds_the_key() {
        let ranges = vec![
            UserIndexRange::BeginsWith("0".into()),
            UserIndexRange::Between("2".into(), "22026-01-01".into()),
        ];
        let never = format!("0{USER_INDEX_SEP}7");
        let seen = format!("22025-06-01T00:00:00.000000Z{USER_INDEX_SEP}7");
        assert_eq!(resume(&ranges, false, &never), (0, true));
        assert_eq!(resume(&ranges, false, &seen), (1, true));
        // A key between the ranges (a "no data" key): the next range from its start.
        assert_eq!(resume(&ranges, false, &format!("1{USER_INDEX_SEP}7")), (1, false));
        assert_eq!(resume(&ranges, false, "3"), (2, false));
        let mut reversed = ranges.clone();
        reversed.reverse();
        assert_eq!(resume(&reversed, true, &seen), (0, true));
        assert_eq!(resume(&reversed, true, &never), (1, true));
        assert_eq!(resume(&reversed, true, &format!("1{USER_INDEX_SEP}7")), (1, false));
    }

    #[test]
    fn a_list_position_names_the_same_index_key() {
        let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let key = SortKey(at.timestamp_micros(), String::new(), "42".into());
        assert_eq!(
            index_key(&q(""), &key).unwrap(),
            crate::storage::schema::activity_key(
                &crate::license::Activity::Seen {
                    at,
                    origin: crate::license::ActivityOrigin::BoxLogin
                },
                "42"
            )
        );
        let text = SortKey(0, "ann lee".into(), "9".into());
        assert_eq!(
            index_key(&q("sort=name"), &text).unwrap(),
            crate::storage::schema::text_key(Some("Ann Lee"), "9")
        );
        assert_eq!(
            index_key(&q("q=ann"), &text).unwrap(),
            crate::storage::schema::text_key(Some("Ann Lee"), "9")
        );
    }

    #[test]
    fn a_search_match_by_login_and_name_is_listed_once_at_the_login() {
        let user = |login: &str, name: &str| UserLicense {
            box_user_id: crate::ids::BoxUserId::parse("1").unwrap(),
            login: Some(login.into()),
            name: Some(name.into()),
            status: crate::boxapi::UserStatus::Active,
            role: None,
            kind: crate::license::UserKind::Managed,
            created_at: None,
            owns_content: false,
            login_activity: crate::license::Activity::Never,
            content_activity: crate::license::Activity::Never,
            first_seen_at: Utc::now(),
            last_seen_at: Utc::now(),
            removed_at: None,
        };
        let query = q("q=an");
        // Both match: listed at the login (the name-search entry is the duplicate).
        let both = user("ann@x.com", "Anders");
        assert!(owns(&query, UserIndex::LoginName, &both) && !owns(&query, UserIndex::NameSearch, &both));
        let name_only = user("zed@x.com", "Anna");
        assert!(owns(&query, UserIndex::NameSearch, &name_only) && !owns(&query, UserIndex::LoginName, &name_only));
        let neither = user("zed@x.com", "Zoë");
        assert!(!owns(&query, UserIndex::NameSearch, &neither) && !owns(&query, UserIndex::LoginName, &neither));
    }
}

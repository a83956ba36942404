//! Lists answered from the user indexes (see the user-index table in
//! [`schema`](crate::storage::schema)): a page costs the users it holds, not the tenant.
//!
//! [`plan`] says which index, partition and key ranges hold exactly a query's users in the
//! query's order; [`IndexList::page`] reads them a page at a time. Every user read is checked
//! against the same predicate as the in-memory list ([`super::matches`]), so the answer is the
//! in-memory list's even where an index entry lags; the ranges make such rejections rare. The
//! cursor is the same sort key the in-memory list uses, so either path continues the other's pages.
//! Queries without a plan (state working, login-only, active, no-data, removed or none; a role or
//! kind filter; `inactive` ordered by login or name) are answered in memory.

use chrono::{DateTime, TimeZone, Utc};

use super::{
    ActivityState, QueryError, SortField, SortKey, UserPage, UserQuery, UserRow, activity_state, cursor_after, matches,
    position_after, row,
};
use crate::ids::TenantId;
use crate::license::{ActivitySignal, UserLicense, active_since};
use crate::storage::dynamo::{UserIndexPage, UserIndexPosition, UserIndexRange};
use crate::storage::schema::{
    ACTIVITY_AT_FORMAT, ACTIVITY_NEVER, ACTIVITY_NO_DATA, ACTIVITY_SEEN, USER_INDEX_SEP, UserSegment, tenant_pk,
    text_key_prefix, user_sk, users_upk,
};
use crate::storage::user_index::UserIndex;

/// Where a query's users are: one partition of one index, and key ranges in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPlan {
    pub index: UserIndex,
    pub segment: UserSegment,
    /// Disjoint, in ascending key order.
    pub ranges: Vec<UserIndexRange>,
    /// How many users the query matches in all, from the license summary.
    pub count: CountFrom,
}

/// Which of the license summary's counts is the list's `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountFrom {
    Deactivated,
    Never,
    /// Inactive for the days by the signal.
    Inactive(ActivitySignal, u16),
}

/// The plan for `query` (with the tenant's `signal` and the resolved `inactive_days`), or `None`
/// when only the in-memory list answers it.
pub fn plan(query: &UserQuery, signal: ActivitySignal, inactive_days: u16, now: DateTime<Utc>) -> Option<ListPlan> {
    if query.role.is_some() || query.kind.is_some() {
        return None;
    }
    let by_sort = match query.sort {
        SortField::LastActivity => UserIndex::by_signal(signal),
        SortField::Login => UserIndex::LoginName,
        SortField::Name => UserIndex::Name,
    };
    let prefix = |p: &str| UserIndexRange::BeginsWith(p.to_owned());
    match query.state? {
        ActivityState::Deactivated => Some(ListPlan {
            index: by_sort,
            segment: UserSegment::Deactivated,
            ranges: vec![UserIndexRange::All],
            count: CountFrom::Deactivated,
        }),
        // Never active: keyed "never" by every signal, except by logins alone for a user whose
        // login is unknown and content never seen ("no data"; the check drops the other no-data
        // users that range holds).
        ActivityState::Never if query.sort == SortField::LastActivity => Some(ListPlan {
            index: by_sort,
            segment: UserSegment::Seat,
            ranges: if signal == ActivitySignal::Login {
                vec![prefix(ACTIVITY_NEVER), prefix(ACTIVITY_NO_DATA)]
            } else {
                vec![prefix(ACTIVITY_NEVER)]
            },
            count: CountFrom::Never,
        }),
        // Inactive by the signal: never active, then activity before the first active day.
        ActivityState::Inactive if query.sort == SortField::LastActivity => {
            let cutoff = active_since(i64::from(inactive_days), now);
            Some(ListPlan {
                index: by_sort,
                segment: UserSegment::Seat,
                ranges: vec![
                    prefix(ACTIVITY_NEVER),
                    UserIndexRange::Between(
                        ACTIVITY_SEEN.to_owned(),
                        format!("{ACTIVITY_SEEN}{}", cutoff.format("%Y-%m-%d")),
                    ),
                ],
                count: CountFrom::Inactive(signal, inactive_days),
            })
        }
        _ => None,
    }
}

/// The index sort key of an in-memory list position (the two are the same order).
pub(super) fn index_key(sort: SortField, key: &SortKey) -> Option<String> {
    let SortKey(n, text, id) = key;
    Some(match sort {
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

/// Reads a plan's users a page at a time.
#[async_trait::async_trait]
pub trait IndexReader: Send + Sync {
    async fn read(
        &self,
        index: UserIndex,
        upk: &str,
        range: &UserIndexRange,
        forward: bool,
        start_after: Option<&UserIndexPosition>,
        limit: u32,
    ) -> Result<UserIndexPage, crate::storage::StoreError>;
}

#[async_trait::async_trait]
impl IndexReader for crate::storage::Table {
    async fn read(
        &self,
        index: UserIndex,
        upk: &str,
        range: &UserIndexRange,
        forward: bool,
        start_after: Option<&UserIndexPosition>,
        limit: u32,
    ) -> Result<UserIndexPage, crate::storage::StoreError> {
        self.query_user_index(index, upk, range, forward, start_after, limit)
            .await
    }
}

/// Most index queries one page makes (each reads up to the page): bounds a page whose reads
/// keep failing the check.
const MAX_QUERIES_PER_PAGE: usize = 16;

/// The users of one page, in order, and whether more follow.
#[derive(Debug)]
pub struct IndexList {
    pub users: Vec<UserLicense>,
    pub more: bool,
    /// Items DynamoDB read for the page.
    pub items_read: u64,
}

impl IndexList {
    /// Up to `limit` users of `plan` after `after` (a list position), each passing `keep`.
    pub(super) async fn page(
        reader: &dyn IndexReader,
        tenant: &TenantId,
        plan: &ListPlan,
        query: &UserQuery,
        after: Option<&SortKey>,
        keep: impl Fn(&UserLicense) -> bool,
    ) -> Result<IndexList, crate::storage::StoreError> {
        let upk = users_upk(tenant, plan.segment);
        let mut ranges = plan.ranges.clone();
        if query.descending {
            ranges.reverse();
        }
        let position = |key: String| -> Option<UserIndexPosition> {
            let id = key.rsplit(USER_INDEX_SEP).next()?.to_owned();
            Some(UserIndexPosition {
                pk: tenant_pk(tenant),
                sk: user_sk(&id),
                upk: upk.clone(),
                sort_key: key,
            })
        };
        let (mut range, mut start) = (0, None);
        if let Some(key) = after {
            let key = index_key(query.sort, key).ok_or(crate::storage::StoreError::InvalidCursor)?;
            let (i, inside) = resume(&ranges, query.descending, &key);
            range = i;
            start = if inside { position(key) } else { None };
        }
        // One more than the page: whether a next page exists is known without another request.
        let want = query.limit as usize + 1;
        let mut out = Vec::with_capacity(want);
        let mut items_read = 0u64;
        let mut queries = 0;
        while range < ranges.len() && out.len() < want && queries < MAX_QUERIES_PER_PAGE {
            queries += 1;
            let need = u32::try_from(want - out.len()).unwrap_or(u32::MAX);
            let page = reader
                .read(
                    plan.index,
                    &upk,
                    &ranges[range],
                    !query.descending,
                    start.as_ref(),
                    need,
                )
                .await?;
            items_read += u64::from(page.items_read);
            out.extend(page.users.into_iter().filter(|u| keep(u)));
            if page.more {
                start = page.last;
            } else {
                range += 1;
                start = None;
            }
        }
        let more = out.len() >= want || (range < ranges.len() && queries >= MAX_QUERIES_PER_PAGE);
        out.truncate(query.limit as usize);
        Ok(IndexList {
            users: out,
            more,
            items_read,
        })
    }
}

/// Why an indexed page could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
}

/// One page of `query` read from the user indexes (see the module documentation), `None` when no index holds the
/// query's users in its order (the caller answers it in memory). `total` gives the summary's
/// count the plan names; `None` (no summary yet) also leaves the query to the in-memory list.
pub async fn indexed_page(
    reader: &dyn IndexReader,
    tenant: &TenantId,
    query: &UserQuery,
    inactive_days: u16,
    signal: ActivitySignal,
    total: impl FnOnce(CountFrom) -> Option<usize>,
    now: DateTime<Utc>,
) -> Result<Option<(UserPage, u64)>, ListError> {
    let Some(plan) = plan(query, signal, inactive_days, now) else {
        return Ok(None);
    };
    let Some(total) = total(plan.count) else {
        return Ok(None);
    };
    let after = position_after(&query.binding(tenant, signal), query)?;
    let keep = |u: &UserLicense| {
        let state = activity_state(u, inactive_days, now);
        matches(query, u, state, signal, inactive_days, now)
    };
    let list = IndexList::page(reader, tenant, &plan, query, after.as_ref(), keep).await?;
    let rows: Vec<UserRow> = list
        .users
        .into_iter()
        .map(|u| {
            let state = activity_state(&u, inactive_days, now);
            row(u, state, signal)
        })
        .collect();
    let next_cursor = list
        .more
        .then(|| rows.last().map(|r| cursor_after(tenant, query, signal, r)))
        .flatten();
    Ok(Some((
        UserPage {
            users: rows,
            activity_signal: signal,
            total,
            next_cursor,
        },
        list.items_read,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &str) -> UserQuery {
        super::super::query::read(raw, false).unwrap()
    }

    #[test]
    fn only_queries_whose_users_an_index_holds_in_order_get_a_plan() {
        let now = Utc::now();
        let signal = ActivitySignal::Any;
        for planned in [
            "state=inactive",
            "state=inactive&inactive_days=30&order=desc",
            "state=never",
            "state=deactivated",
            "state=deactivated&sort=name",
            "state=deactivated&sort=login&order=desc",
        ] {
            assert!(plan(&q(planned), signal, 90, now).is_some(), "{planned}");
        }
        for in_memory in [
            "",
            "state=working",
            "state=login_only",
            "state=active",
            "state=removed",
            "state=inactive&sort=name",
            "state=never&sort=login",
            "state=inactive&role=admin",
            "state=deactivated&kind=app_user",
        ] {
            assert!(plan(&q(in_memory), signal, 90, now).is_none(), "{in_memory}");
        }
        let p = plan(&q("state=inactive&inactive_days=30"), ActivitySignal::Content, 30, now).unwrap();
        assert_eq!(p.index, UserIndex::ContentAt);
        assert_eq!(p.count, CountFrom::Inactive(ActivitySignal::Content, 30));
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
    fn an_in_memory_position_names_the_same_index_key() {
        let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let key = SortKey(at.timestamp_micros(), String::new(), "42".into());
        assert_eq!(
            index_key(SortField::LastActivity, &key).unwrap(),
            crate::storage::schema::activity_key(
                &crate::license::Activity::Seen {
                    at,
                    origin: crate::license::ActivityOrigin::BoxLogin
                },
                "42"
            )
        );
        assert_eq!(
            index_key(SortField::Name, &SortKey(0, "ann lee".into(), "9".into())).unwrap(),
            crate::storage::schema::text_key(Some("Ann Lee"), "9")
        );
    }
}

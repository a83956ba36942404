//! Which index partitions and key ranges hold a `GET /licenses/users` query's users, in the
//! query's order (see the user-index table in [`schema`](crate::storage::schema)), and which
//! count of the license summary is its total.

use chrono::{DateTime, Utc};

use super::{ActivityState, SortField, UserQuery};
use crate::boxapi::Role;
use crate::license::{ActivitySignal, UserKind, active_since};
use crate::storage::dynamo::UserIndexRange;
use crate::storage::schema::{ACTIVITY_NEVER, ACTIVITY_NO_DATA, ACTIVITY_SEEN, UserSegment};
use crate::storage::user_index::UserIndex;
use crate::sync::LicenseSummary;

/// One index partition of a list, read in the index's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub index: UserIndex,
    pub segment: UserSegment,
    /// Disjoint, in ascending key order.
    pub ranges: Vec<UserIndexRange>,
}

/// Where a query's users are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListPlan {
    /// The streams' users merged by index key: every stream holds its users in the list's order,
    /// and together they hold all of the list's users.
    Merge { streams: Vec<Stream>, count: CountFrom },
    /// Every user with this role (admins or co-admins, a handful), from the sparse role index,
    /// filtered, sorted and paged in memory.
    Role(Role),
}

/// Which of the license summary's counts is the list's `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountFrom {
    /// Every user Box still lists (`kind`: of that kind only).
    Listed(Option<UserKind>),
    Deactivated,
    Never,
    NoData,
    /// Inactive for the days by the signal.
    Inactive(ActivitySignal, u16),
    Working(u16),
    LoginOnly(u16),
    /// Working or login-only.
    Active(u16),
    /// No user can match (e.g. a seat state with `kind=app_user`).
    Zero,
    /// Not counted: only reading every match would tell (a search, `role=user`, `removed`).
    Unknown,
}

impl CountFrom {
    /// The count in `summary` (`None` for [`CountFrom::Unknown`] or without a summary).
    pub fn total(self, summary: Option<&LicenseSummary>, now: DateTime<Utc>) -> Option<usize> {
        if self == CountFrom::Zero {
            return Some(0);
        }
        let s = summary?;
        let h = &s.histogram;
        let n = match self {
            CountFrom::Listed(None) => s.seat_holders + s.app_users + s.external_users,
            CountFrom::Listed(Some(UserKind::Managed)) => s.seat_holders,
            CountFrom::Listed(Some(UserKind::AppUser)) => s.app_users,
            CountFrom::Listed(Some(UserKind::External)) => s.external_users,
            CountFrom::Deactivated => s.deactivated,
            CountFrom::Never => h.never,
            CountFrom::NoData => h.no_data,
            CountFrom::Inactive(signal, days) => {
                h.inactive_by(signal.effective(s.content_activity), i64::from(days), now)
            }
            CountFrom::Working(days) => h.working_within(i64::from(days), now),
            CountFrom::LoginOnly(days) => h.login_only_within(i64::from(days), now),
            CountFrom::Active(days) => h.active_within(i64::from(days), now),
            CountFrom::Zero => 0,
            CountFrom::Unknown => return None,
        };
        Some(n as usize)
    }
}

impl ListPlan {
    /// Whether the list's `total` comes from the license summary.
    pub fn counted(&self) -> bool {
        matches!(self, ListPlan::Merge { count, .. } if *count != CountFrom::Unknown && *count != CountFrom::Zero)
    }
}

/// The plan for `query` (with the tenant's `signal` and the resolved `inactive_days`).
pub fn plan(query: &UserQuery, signal: ActivitySignal, inactive_days: u16, now: DateTime<Utc>) -> ListPlan {
    if let Some(role @ (Role::Admin | Role::Coadmin)) = query.role {
        return ListPlan::Role(role);
    }
    // Seat states are about managed users; app and external users are in `other` only.
    let managed = query.kind.is_none_or(|k| k == UserKind::Managed);
    let segments: Vec<UserSegment> = match query.state {
        None => match query.kind {
            None => vec![UserSegment::Seat, UserSegment::Deactivated, UserSegment::Other],
            Some(UserKind::Managed) => vec![UserSegment::Seat, UserSegment::Deactivated],
            Some(_) => vec![UserSegment::Other],
        },
        Some(ActivityState::Removed) => vec![UserSegment::Removed],
        Some(_) if !managed => Vec::new(),
        Some(ActivityState::Deactivated) => vec![UserSegment::Deactivated],
        Some(_) => vec![UserSegment::Seat],
    };
    let indexes = match query.search {
        Some(_) => vec![UserIndex::LoginName, UserIndex::NameSearch],
        None => vec![match query.sort {
            SortField::LastActivity => UserIndex::by_signal(signal),
            SortField::Login => UserIndex::LoginName,
            SortField::Name => UserIndex::Name,
        }],
    };
    let ranges = ranges(query, signal, inactive_days, now);
    let streams = segments
        .iter()
        .flat_map(|&segment| {
            indexes.iter().map(move |&index| Stream {
                index,
                segment,
                ranges: Vec::new(),
            })
        })
        .map(|s| Stream {
            ranges: ranges.clone(),
            ..s
        })
        .collect::<Vec<_>>();
    let count = if streams.is_empty() {
        CountFrom::Zero
    } else if query.search.is_some() || query.role.is_some() {
        CountFrom::Unknown
    } else {
        match query.state {
            None => CountFrom::Listed(query.kind),
            Some(ActivityState::Removed) => CountFrom::Unknown,
            Some(ActivityState::Deactivated) => CountFrom::Deactivated,
            Some(ActivityState::Never) => CountFrom::Never,
            Some(ActivityState::NoData) => CountFrom::NoData,
            Some(ActivityState::Inactive) => CountFrom::Inactive(signal, inactive_days),
            Some(ActivityState::Working) => CountFrom::Working(inactive_days),
            Some(ActivityState::LoginOnly) => CountFrom::LoginOnly(inactive_days),
            Some(ActivityState::Active) => CountFrom::Active(inactive_days),
        }
    };
    ListPlan::Merge { streams, count }
}

/// The key ranges of a list's streams: the whole partition unless the order is by activity and
/// the state bounds the activity keys.
fn ranges(query: &UserQuery, signal: ActivitySignal, inactive_days: u16, now: DateTime<Utc>) -> Vec<UserIndexRange> {
    let prefix = |p: &str| UserIndexRange::BeginsWith(p.to_owned());
    if let Some(q) = &query.search {
        return vec![prefix(q)];
    }
    if query.sort != SortField::LastActivity {
        return vec![UserIndexRange::All];
    }
    let cutoff = format!(
        "{ACTIVITY_SEEN}{}",
        active_since(i64::from(inactive_days), now).format("%Y-%m-%d")
    );
    // Activity within the days: keys from the cutoff day on ("3" is above every seen key).
    let within = || UserIndexRange::Between(cutoff.clone(), "3".to_owned());
    use ActivitySignal::{Any, Content, Login};
    match (query.state, signal) {
        // Never active: keyed "never" by every signal, except by logins alone for a user whose
        // login is unknown and content never seen ("no data"; the check drops the other no-data
        // users that range holds).
        (Some(ActivityState::Never), Login) => vec![prefix(ACTIVITY_NEVER), prefix(ACTIVITY_NO_DATA)],
        (Some(ActivityState::Never), _) => vec![prefix(ACTIVITY_NEVER)],
        // Inactive by the signal: never active, then activity before the first active day.
        (Some(ActivityState::Inactive), _) => vec![
            prefix(ACTIVITY_NEVER),
            UserIndexRange::Between(ACTIVITY_SEEN.to_owned(), cutoff.clone()),
        ],
        // No data: the login is unknown, and every signal then keys "no data".
        (Some(ActivityState::NoData), _) => vec![prefix(ACTIVITY_NO_DATA)],
        // Within the days by the key's own signal; by another signal the key can be anywhere.
        (Some(ActivityState::Working), Any | Content)
        | (Some(ActivityState::LoginOnly), Any | Login)
        | (Some(ActivityState::Active), Any) => vec![within()],
        _ => vec![UserIndexRange::All],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn q(raw: &str) -> UserQuery {
        super::super::query::read(raw, false).unwrap()
    }

    fn merge(raw: &str, signal: ActivitySignal) -> (Vec<Stream>, CountFrom) {
        match plan(&q(raw), signal, 90, Utc::now()) {
            ListPlan::Merge { streams, count } => (streams, count),
            ListPlan::Role(role) => panic!("{raw}: role plan {role:?}"),
        }
    }

    #[test]
    fn every_query_reads_only_the_partitions_that_can_hold_its_users() {
        let segments = |raw: &str| -> Vec<UserSegment> {
            let (streams, _) = merge(raw, ActivitySignal::Any);
            streams.iter().map(|s| s.segment).collect()
        };
        use UserSegment::{Deactivated, Other, Removed, Seat};
        assert_eq!(segments(""), [Seat, Deactivated, Other]);
        assert_eq!(segments("kind=managed"), [Seat, Deactivated]);
        assert_eq!(segments("kind=app_user"), [Other]);
        assert_eq!(segments("state=removed&kind=external"), [Removed]);
        assert_eq!(segments("state=deactivated&sort=name"), [Deactivated]);
        assert_eq!(segments("state=working&role=user"), [Seat]);
        assert!(segments("state=inactive&kind=app_user").is_empty());
        assert_eq!(
            merge("state=inactive&kind=app_user", ActivitySignal::Any).1,
            CountFrom::Zero
        );
        // A search reads the login and the name index of each partition.
        let (streams, count) = merge("q=ann&state=never", ActivitySignal::Any);
        assert_eq!(count, CountFrom::Unknown);
        let indexes: Vec<_> = streams.iter().map(|s| s.index).collect();
        assert_eq!(indexes, [UserIndex::LoginName, UserIndex::NameSearch]);
        assert!(
            streams
                .iter()
                .all(|s| s.ranges == [UserIndexRange::BeginsWith("ann".into())])
        );
        assert_eq!(
            plan(&q("role=coadmin&state=inactive"), ActivitySignal::Any, 90, Utc::now()),
            ListPlan::Role(Role::Coadmin)
        );
        assert_eq!(merge("role=user", ActivitySignal::Any).1, CountFrom::Unknown);
    }

    #[test]
    fn activity_orders_read_the_key_ranges_their_state_bounds() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
        let ranges = |raw: &str, signal| match plan(&q(raw), signal, 30, now) {
            ListPlan::Merge { streams, .. } => (streams[0].index, streams[0].ranges.clone()),
            ListPlan::Role(_) => unreachable!(),
        };
        let within = UserIndexRange::Between("22026-11-02".into(), "3".into());
        assert_eq!(
            ranges("state=working", ActivitySignal::Any),
            (UserIndex::Any, vec![within.clone()])
        );
        assert_eq!(
            ranges("state=working", ActivitySignal::Content),
            (UserIndex::ContentAt, vec![within.clone()])
        );
        assert_eq!(
            ranges("state=working", ActivitySignal::Login),
            (UserIndex::LoginAt, vec![UserIndexRange::All]),
            "a working user's last login can be any date"
        );
        assert_eq!(
            ranges("state=inactive", ActivitySignal::Any).1,
            [
                UserIndexRange::BeginsWith("0".into()),
                UserIndexRange::Between("2".into(), "22026-11-02".into())
            ]
        );
        assert_eq!(
            ranges("state=never", ActivitySignal::Login).1,
            [
                UserIndexRange::BeginsWith("0".into()),
                UserIndexRange::BeginsWith("1".into())
            ]
        );
        assert_eq!(
            ranges("state=no_data", ActivitySignal::Content).1,
            [UserIndexRange::BeginsWith("1".into())]
        );
        assert_eq!(
            ranges("state=inactive&sort=name", ActivitySignal::Any),
            (UserIndex::Name, vec![UserIndexRange::All])
        );
    }
}

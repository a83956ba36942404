//! Reading activity events for a sync: logins and content events in one filtered stream (Box's
//! `admin_logs`, `event_type=LOGIN,UPLOAD,…`), read in time slices concurrently under the tenant's
//! request budget, newest slices first, each resumable from its position; and where the
//! checkpoint moves after a complete read.
//!
//! Newest first: a first sync's window is cut at `max(thresholds)` days. The recent part is read
//! first; once it is, every 30/60/90 count is exact (older events cannot make anyone active
//! within 90 days), so the report is published, marked partial in history. The older part then
//! fills in earlier "last seen" dates.
//!
//! The bound on late events: Box's `admin_logs` favours completeness over latency, so an event can
//! appear in the stream long after it happened. Reading on from the saved position, such an event
//! is read however late it appears, provided it was created at most
//! [`super::SyncOptions::late_window`] (7 days) before the newest activity already read. The
//! checkpoint's time is that newest activity's `created_at`, never the function's clock. Only a
//! checkpoint saved before positions were kept falls back to the clock-free window of
//! [`super::SyncOptions::overlap`] before it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use secrecy::SecretString;
use tokio::time::Instant;

use super::engine::{SyncError, SyncPlan, Syncer, Tally};
use super::{RunProgress, SliceProgress, SyncCheckpoint};
use crate::boxapi::{ACTIVITY_EVENTS, BoxClient, BoxError, EventsQuery, LOGIN_EVENT};
use crate::ids::TenantId;
use crate::license::{Activity, ActivityOrigin, INACTIVE_DAYS, Signals, active_since};

/// The latest login and the latest content activity read for one user so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    pub login: Option<DateTime<Utc>>,
    pub content: Option<DateTime<Utc>>,
}

impl Observed {
    /// Keeps the later of each date.
    pub fn merge(&mut self, other: Observed) {
        self.login = self.login.max(other.login);
        self.content = self.content.max(other.content);
    }

    /// The newest of the two dates.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.login.max(self.content)
    }

    /// As a user's two dates from Box's event stream: what was not read is `Never` (in the
    /// history read).
    pub fn signals(&self) -> Signals {
        let seen = |at: Option<DateTime<Utc>>, origin| at.map_or(Activity::Never, |at| Activity::seen(at, origin));
        Signals {
            login: seen(self.login, ActivityOrigin::BoxLogin),
            content: seen(self.content, ActivityOrigin::BoxContent),
        }
    }
}

/// Box user id (as Box sent it) → what was read for that user.
pub type ObservedMap = HashMap<String, Observed>;

/// What one event says about its user's activity, if anything: a `LOGIN` is a login, a content
/// event is content activity; `FAILED_LOGIN`, `ADMIN_LOGIN` and admin operations are neither, and
/// the anonymous user (id 2: shared-link access) is nobody's seat.
pub(super) fn observation(event: &crate::boxapi::Event) -> Option<(&str, Observed)> {
    let (Some(by), Some(at), Some(kind)) = (&event.created_by, event.created_at, event.event_type.as_deref()) else {
        return None;
    };
    if by.id == crate::boxapi::ANONYMOUS_USER_ID {
        return None;
    }
    let observed = if kind == LOGIN_EVENT {
        Observed {
            login: Some(at),
            content: None,
        }
    } else if ACTIVITY_EVENTS.contains(&kind) {
        Observed {
            login: None,
            content: Some(at),
        }
    } else {
        return None;
    };
    Some((by.id.as_str(), observed))
}

/// The start of the part of history every report threshold needs: the UTC day that is
/// `max(30, 60, 90, the tenant's threshold)` days back (see [`active_since`]).
pub(super) fn recent_from(threshold_days: u16, now: DateTime<Utc>) -> DateTime<Utc> {
    let days = INACTIVE_DAYS
        .into_iter()
        .max()
        .unwrap_or(90)
        .max(i64::from(threshold_days));
    active_since(days, now).and_time(chrono::NaiveTime::MIN).and_utc()
}

impl Syncer {
    /// The events to read: on from the saved stream position (an event that shows up late is
    /// still read, see [`super::SyncOptions::late_window`]); without one, or on a full sync that
    /// has never read content events, a back-fill in time slices, newest first (see
    /// [`back_fill`]); or (an old checkpoint) the overlap before it. Returns the slices and how
    /// many leading ones cover the recent part of history.
    pub(super) fn event_window(
        &self,
        checkpoint: &SyncCheckpoint,
        full: bool,
        threshold_days: u16,
        now: DateTime<Utc>,
    ) -> (Vec<SliceProgress>, usize) {
        let duration = |d: Duration| chrono::Duration::from_std(d).unwrap_or_default();
        let needs_content = full && !checkpoint.content_events;
        match (checkpoint.events_until, &checkpoint.events_position) {
            (Some(until), Some(position)) if !needs_content => (
                vec![SliceProgress {
                    from: (until - duration(self.options.late_window)).min(now),
                    to: now,
                    position: Some(position.clone()),
                    done: false,
                }],
                1,
            ),
            (Some(until), None) if !needs_content => {
                let from = until - duration(self.options.overlap);
                let days = usize::try_from((now - from).num_days() + 1).unwrap_or(1);
                let slices = time_slices(from, now, self.options.slices.min(days));
                let n = slices.len();
                (slices, n)
            }
            _ => {
                let backfill = chrono::Duration::days(i64::from(self.options.backfill_days.clamp(1, 365)));
                back_fill(
                    now - backfill,
                    now,
                    recent_from(threshold_days, now),
                    self.options.slices,
                )
            }
        }
    }

    /// After a complete read: the next one starts at the stream position where the newest slice
    /// ended, and the checkpoint's time is the newest activity read (the events' own time, not
    /// ours).
    pub(super) fn advance_events(
        checkpoint: &mut SyncCheckpoint,
        progress: &RunProgress,
        newest: Option<DateTime<Utc>>,
    ) {
        if let Some(position) = progress
            .slices
            .iter()
            .max_by_key(|s| s.to)
            .and_then(|s| s.position.clone())
        {
            checkpoint.events_position = Some(position);
        }
        let floor = progress.slices.iter().map(|s| s.from).min();
        checkpoint.events_until = [checkpoint.events_until, newest].into_iter().flatten().max().or(floor);
    }

    /// Reads the run's unfinished slices among `which` into each user's latest dates. Returns
    /// whether every slice among them is complete (`false`: stopped at the deadline).
    pub(super) async fn read_activity(
        &self,
        plan: &SyncPlan,
        client: &BoxClient,
        progress: &mut RunProgress,
        which: Range<usize>,
        observed: &mut ObservedMap,
        tally: &mut Tally,
    ) -> Result<bool, SyncError> {
        let tenant = &plan.tenant;
        let shared = Arc::new(Mutex::new(std::mem::take(observed)));
        let todo = progress
            .slices
            .clone()
            .into_iter()
            .enumerate()
            .filter(|(i, s)| which.contains(i) && !s.done);
        let results: Vec<Result<(usize, SliceProgress, u64), SyncError>> = futures::stream::iter(todo)
            .map(|(i, slice)| {
                let shared = shared.clone();
                async move {
                    let (slice, events) = self.read_slice(tenant, client, slice, &shared, plan.deadline).await?;
                    Ok((i, slice, events))
                }
            })
            .buffer_unordered(self.options.slices.max(1))
            .collect()
            .await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok((i, slice, events)) => {
                    progress.slices[i] = slice;
                    tally.events_read += events;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        *observed = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(progress
            .slices
            .iter()
            .enumerate()
            .all(|(i, s)| s.done || !which.contains(&i)))
    }

    /// Reads one time slice from its saved position; stops early near the deadline. A 401
    /// refreshes the token once and resumes from the last position.
    async fn read_slice(
        &self,
        tenant: &TenantId,
        client: &BoxClient,
        mut slice: SliceProgress,
        observed: &Mutex<ObservedMap>,
        deadline: Option<Instant>,
    ) -> Result<(SliceProgress, u64), SyncError> {
        let mut events = 0u64;
        let mut rejected: Option<SecretString> = None;
        loop {
            let token = self.tokens.token(tenant, rejected.as_ref()).await?;
            let query = EventsQuery {
                stream_position: slice.position.clone(),
                ..EventsQuery::activity(slice.from, slice.to)
            };
            let mut pages = client.admin_event_pages(token.clone(), query);
            loop {
                if self.near_deadline(deadline) {
                    return Ok((slice, events));
                }
                match pages.next().await {
                    None => {
                        slice.done = true;
                        return Ok((slice, events));
                    }
                    Some(Ok(page)) => {
                        events += page.events.len() as u64;
                        let mut map = observed.lock().unwrap_or_else(|p| p.into_inner());
                        for (user, seen) in page.events.iter().filter_map(observation) {
                            match map.get_mut(user) {
                                Some(slot) => slot.merge(seen),
                                None => {
                                    map.insert(user.to_owned(), seen);
                                }
                            }
                        }
                        slice.position = Some(page.next_stream_position);
                    }
                    Some(Err(BoxError::Unauthorized(_))) if rejected.is_none() => {
                        rejected = Some(token);
                        break;
                    }
                    Some(Err(e)) => return Err(e.into()),
                }
            }
        }
    }
}

/// A first read of `from..to`, newest first: the recent part (`recent_from..to`) in up to
/// `slices` slices, newest first, then the older part (`from..recent_from`) likewise. Returns the
/// slices and how many leading ones are recent.
pub(super) fn back_fill(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    recent_from: DateTime<Utc>,
    slices: usize,
) -> (Vec<SliceProgress>, usize) {
    let split = recent_from.clamp(from, to);
    let part = |a: DateTime<Utc>, b: DateTime<Utc>| {
        // A slice per day at most: a short window (an hour's overlap) is one stream.
        let days = usize::try_from((b - a).num_days() + 1).unwrap_or(1);
        let mut part = time_slices(a, b, slices.min(days));
        part.reverse();
        part
    };
    let mut all = part(split, to);
    let recent = all.len();
    if from < split {
        all.extend(part(from, split));
    }
    (all, recent)
}

/// `from..to` in `slices` consecutive time slices, read concurrently.
pub(super) fn time_slices(from: DateTime<Utc>, to: DateTime<Utc>, slices: usize) -> Vec<SliceProgress> {
    let slices = slices.max(1) as i32;
    let span = (to - from) / slices;
    (0..slices)
        .map(|i| SliceProgress {
            from: from + span * i,
            to: if i == slices - 1 { to } else { from + span * (i + 1) },
            position: None,
            done: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::SyncKind;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn read(slices: Vec<SliceProgress>) -> RunProgress {
        RunProgress {
            run_id: "r".into(),
            kind: SyncKind::Incremental,
            started_at: at(0),
            window_to: at(0),
            slices,
            scratch_chunks: 0,
            box_calls: 0,
            items_written: 0,
            events_read: 0,
            invocations: 0,
            listing: None,
            recent_slices: None,
            published: false,
        }
    }

    fn newest(m: &HashMap<String, DateTime<Utc>>) -> Option<DateTime<Utc>> {
        m.values().max().copied()
    }

    fn event(kind: &str, by: &str, secs: i64) -> crate::boxapi::Event {
        crate::boxapi::Event {
            event_id: format!("{kind}-{by}-{secs}"),
            event_type: Some(kind.to_owned()),
            created_at: Some(at(secs)),
            created_by: Some(crate::boxapi::UserMini {
                id: by.to_owned(),
                login: None,
            }),
            ip_address: None,
        }
    }

    #[test]
    fn logins_and_content_events_are_observed_and_nothing_else_is() {
        let login = Observed {
            login: Some(at(1)),
            content: None,
        };
        let content = Observed {
            login: None,
            content: Some(at(1)),
        };
        assert_eq!(observation(&event("LOGIN", "7", 1)), Some(("7", login)));
        for kind in [
            "UPLOAD",
            "DOWNLOAD",
            "PREVIEW",
            "EDIT",
            "COPY",
            "DELETE",
            "ITEM_OPEN",
            "COMMENT_CREATE",
            "COLLABORATION_INVITE",
            "COLLABORATION_ACCEPT",
            "SHARE",
        ] {
            assert_eq!(observation(&event(kind, "7", 1)), Some(("7", content)), "{kind}");
        }
        for kind in [
            "FAILED_LOGIN",
            "ADMIN_LOGIN",
            "EDIT_USER",
            "NEW_USER",
            "CHANGE_ADMIN_ROLE",
        ] {
            assert_eq!(observation(&event(kind, "7", 1)), None, "{kind} is not use of a seat");
        }
        assert_eq!(
            observation(&event("UPLOAD", "2", 1)),
            None,
            "the anonymous user is nobody's seat"
        );
        assert_eq!(observation(&event("LOGIN", "2", 1)), None);
    }

    #[test]
    fn a_slice_order_newest_first_still_advances_to_the_newest_slices_position() {
        let mut checkpoint = SyncCheckpoint::default();
        let newest_first = read(vec![slice(500, 9_000, "42"), slice(0, 500, "17")]);
        Syncer::advance_events(&mut checkpoint, &newest_first, Some(at(8_000)));
        assert_eq!(checkpoint.events_position.as_deref(), Some("42"));
        assert_eq!(checkpoint.events_until, Some(at(8_000)));
    }

    #[test]
    fn a_back_fill_reads_the_recent_part_first_and_each_part_newest_first() {
        let day = 86_400;
        let (slices, recent) = back_fill(at(0), at(365 * day), at(275 * day), 4);
        assert_eq!(recent, 4);
        assert_eq!(slices.len(), 8);
        assert_eq!(slices[0].to, at(365 * day), "the newest slice comes first");
        assert_eq!(slices[3].from, at(275 * day), "the recent part ends at its start");
        assert!(slices[..4].iter().all(|s| s.from >= at(275 * day)));
        assert_eq!(slices[4].to, at(275 * day), "then the older part, newest first");
        assert_eq!(slices[7].from, at(0));
        for pair in slices.windows(2) {
            assert_eq!(
                pair[0].from, pair[1].to,
                "contiguous, newest first, no gap and no overlap"
            );
        }
        // A window shorter than the recent part is all recent.
        let (short, recent) = back_fill(at(300 * day), at(365 * day), at(275 * day), 4);
        assert_eq!(recent, short.len());
        assert_eq!(short.last().map(|s| s.from), Some(at(300 * day)));
    }

    #[test]
    fn the_recent_part_starts_at_midnight_of_the_largest_threshold_day() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(recent_from(60, now).to_rfc3339(), "2026-09-02T00:00:00+00:00");
        assert_eq!(recent_from(120, now).to_rfc3339(), "2026-08-03T00:00:00+00:00");
    }

    fn slice(from: i64, to: i64, position: &str) -> SliceProgress {
        SliceProgress {
            from: at(from),
            to: at(to),
            position: Some(position.into()),
            done: true,
        }
    }

    #[test]
    fn the_checkpoint_takes_the_events_position_and_newest_time_not_the_clock() {
        let mut checkpoint = SyncCheckpoint {
            events_until: Some(at(100)),
            ..SyncCheckpoint::default()
        };
        let logins = HashMap::from([("1".to_owned(), at(50)), ("2".to_owned(), at(400))]);
        Syncer::advance_events(
            &mut checkpoint,
            &read(vec![slice(0, 500, "17"), slice(500, 9_000, "42")]),
            newest(&logins),
        );
        assert_eq!(
            checkpoint.events_position.as_deref(),
            Some("42"),
            "the last slice's position"
        );
        assert_eq!(
            checkpoint.events_until,
            Some(at(400)),
            "the newest login, not the window's end"
        );

        // No login read: the time stays; an older login never moves it back.
        let older = HashMap::from([("1".to_owned(), at(10))]);
        Syncer::advance_events(&mut checkpoint, &read(vec![slice(300, 9_500, "43")]), newest(&older));
        assert_eq!(checkpoint.events_until, Some(at(400)));
        assert_eq!(checkpoint.events_position.as_deref(), Some("43"));
    }

    #[test]
    fn a_first_read_without_logins_starts_the_next_one_where_its_window_began() {
        let mut checkpoint = SyncCheckpoint::default();
        Syncer::advance_events(&mut checkpoint, &read(vec![slice(0, 500, "0")]), None);
        assert_eq!(checkpoint.events_until, Some(at(0)));
    }
}

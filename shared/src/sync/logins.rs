//! Reading LOGIN events for a sync: where a read starts (Box's own stream position, kept in the
//! checkpoint), time slices read concurrently under the tenant's request budget, each resumable
//! from its position, and where the checkpoint moves after a complete read.
//!
//! The bound on late events: Box's `admin_logs` favours completeness over latency, so a login can
//! appear in the stream long after it happened. Reading on from the saved position, such a login
//! is read however late it appears, provided it was created at most
//! [`super::SyncOptions::late_window`] (7 days) before the newest login already read. The checkpoint's
//! time is that newest login's `created_at`, never the function's clock. Only a checkpoint saved
//! before positions were kept falls back to the clock-free window of
//! [`super::SyncOptions::overlap`] before it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use secrecy::SecretString;
use tokio::time::Instant;

use super::engine::{SyncError, SyncPlan, Syncer, Tally};
use super::{RunProgress, SliceProgress, SyncCheckpoint};
use crate::boxapi::{BoxClient, BoxError, EventsQuery};
use crate::ids::TenantId;

impl Syncer {
    /// The login events to read: on from the saved stream position (a login that shows up late
    /// is still read, see [`super::SyncOptions::late_window`]); without one, a back-fill in time
    /// slices, or (an old checkpoint) the overlap before it.
    pub(super) fn event_window(&self, checkpoint: &SyncCheckpoint, now: DateTime<Utc>) -> Vec<SliceProgress> {
        let duration = |d: Duration| chrono::Duration::from_std(d).unwrap_or_default();
        match (checkpoint.events_until, &checkpoint.events_position) {
            (Some(until), Some(position)) => vec![SliceProgress {
                from: (until - duration(self.options.late_window)).min(now),
                to: now,
                position: Some(position.clone()),
                done: false,
            }],
            (until, _) => {
                let backfill = chrono::Duration::days(i64::from(self.options.backfill_days.clamp(1, 365)));
                let from = until.map_or(now - backfill, |t| t - duration(self.options.overlap));
                // A slice per day at most: a short window (an hour's overlap) is one stream.
                let days = usize::try_from((now - from).num_days() + 1).unwrap_or(1);
                time_slices(from, now, self.options.slices.min(days))
            }
        }
    }

    /// After a complete read: the next one starts at the stream position where this one ended,
    /// and the checkpoint's time is the newest login read (the events' own time, not ours).
    pub(super) fn advance_events(
        checkpoint: &mut SyncCheckpoint,
        progress: &RunProgress,
        logins: &HashMap<String, DateTime<Utc>>,
    ) {
        if let Some(position) = progress.slices.last().and_then(|s| s.position.clone()) {
            checkpoint.events_position = Some(position);
        }
        let newest = logins.values().max().copied();
        let floor = progress.slices.first().map(|s| s.from);
        checkpoint.events_until = [checkpoint.events_until, newest].into_iter().flatten().max().or(floor);
    }

    /// Reads the run's unfinished slices of LOGIN events into each user's latest login. Returns
    /// whether every slice is complete (`false`: stopped at the deadline).
    pub(super) async fn read_logins(
        &self,
        plan: &SyncPlan,
        client: &BoxClient,
        progress: &mut RunProgress,
        logins: &mut HashMap<String, DateTime<Utc>>,
        tally: &mut Tally,
    ) -> Result<bool, SyncError> {
        let tenant = &plan.tenant;
        let shared = Arc::new(Mutex::new(std::mem::take(logins)));
        let results: Vec<Result<(usize, SliceProgress, u64), SyncError>> =
            futures::stream::iter(progress.slices.clone().into_iter().enumerate().filter(|(_, s)| !s.done))
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
        *logins = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(progress.slices.iter().all(|s| s.done))
    }

    /// Reads one time slice from its saved position; stops early near the deadline. A 401
    /// refreshes the token once and resumes from the last position.
    async fn read_slice(
        &self,
        tenant: &TenantId,
        client: &BoxClient,
        mut slice: SliceProgress,
        logins: &Mutex<HashMap<String, DateTime<Utc>>>,
        deadline: Option<Instant>,
    ) -> Result<(SliceProgress, u64), SyncError> {
        let mut events = 0u64;
        let mut rejected: Option<SecretString> = None;
        loop {
            let token = self.tokens.token(tenant, rejected.as_ref()).await?;
            let query = EventsQuery {
                stream_position: slice.position.clone(),
                ..EventsQuery::logins(slice.from, slice.to)
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
                        let mut map = logins.lock().unwrap_or_else(|p| p.into_inner());
                        for e in &page.events {
                            if e.event_type.as_deref() != Some(crate::boxapi::LOGIN_EVENT) {
                                continue;
                            }
                            let (Some(by), Some(at)) = (&e.created_by, e.created_at) else {
                                continue;
                            };
                            if by.id == crate::boxapi::ANONYMOUS_USER_ID {
                                continue;
                            }
                            let slot = map.entry(by.id.clone()).or_insert(at);
                            *slot = (*slot).max(at);
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
        }
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
            &logins,
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
        Syncer::advance_events(&mut checkpoint, &read(vec![slice(300, 9_500, "43")]), &older);
        assert_eq!(checkpoint.events_until, Some(at(400)));
        assert_eq!(checkpoint.events_position.as_deref(), Some("43"));
    }

    #[test]
    fn a_first_read_without_logins_starts_the_next_one_where_its_window_began() {
        let mut checkpoint = SyncCheckpoint::default();
        Syncer::advance_events(&mut checkpoint, &read(vec![slice(0, 500, "0")]), &HashMap::new());
        assert_eq!(checkpoint.events_until, Some(at(0)));
    }
}

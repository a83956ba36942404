//! The usage sync: every managed Box user and when each last used Box, kept as an exact,
//! cheap-to-read license state.
//!
//! - [`engine`]: one tenant's full sync (all users, login events since the last checkpoint) or
//!   incremental pass (only new login events), resumable from a checkpoint.
//! - [`store`]: where the state lives ([`LicenseStore`]: DynamoDB, or memory for tests and benches).
//! - The types below: the summary a buyer reads, the checkpoint, the run history.

mod activity;
pub mod engine;
pub mod invocation;
mod memory;
pub mod service;
mod sso;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::connection::ActivitySource;
use crate::license::{ActivityHistogram, ActivitySignal, INACTIVE_DAYS};
use crate::settings::TenantSettings;

pub use activity::{Observed, ObservedMap};
pub use engine::{SyncError, SyncOptions, SyncPlan, Syncer};
pub use memory::MemoryStore;
pub use service::{SqsQueue, SyncMessage, SyncQueue, SyncService, TenantOutcome};
pub use store::{LicenseStore, update_summary};

/// The name of a tenant's sync lease (`LEASE#sync`): held by a running sync, and by a connect that
/// clears another enterprise's state.
pub const SYNC_LEASE_NAME: &str = "sync";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    /// Every user, and login events since the last checkpoint (back-filled on the first run).
    Full,
    /// Only login events since the last checkpoint, and the users they name.
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    Succeeded,
    /// Stopped near the invocation's deadline; a new invocation resumes from the checkpoint.
    Continued,
    /// Not run (e.g. the connection needs re-authorization); `error` says why.
    Skipped,
    Failed,
}

/// One run in the sync history (`SYNC#<started>#<run>`, expires after 90 days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub run_id: String,
    pub kind: SyncKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: SyncOutcome,
    /// HTTP requests to Box, retries included, across every invocation of the run.
    pub box_calls: u64,
    /// DynamoDB items written by the run.
    pub items_written: u64,
    pub users_listed: u64,
    pub events_read: u64,
    pub invocations: u32,
    pub error: Option<String>,
}

/// Progress of one time slice of the event window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceProgress {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub position: Option<String>,
    pub done: bool,
}

/// A run that stopped at its deadline, to be resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    pub run_id: String,
    pub kind: SyncKind,
    pub started_at: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub slices: Vec<SliceProgress>,
    /// Scratch items holding each user's latest activity read so far.
    pub scratch_chunks: u32,
    pub box_calls: u64,
    pub items_written: u64,
    pub events_read: u64,
    pub invocations: u32,
    /// Where the user listing stopped; `None` until it starts.
    #[serde(default)]
    pub listing: Option<ListingProgress>,
    /// How many leading `slices` cover the recent part of history (a first read, newest first:
    /// see `activity.rs`); `None` (progress saved before newest-first reads): all of them.
    #[serde(default)]
    pub recent_slices: Option<usize>,
    /// The report was published from the recent part; the older slices are the back-fill.
    #[serde(default)]
    pub published: bool,
}

/// How far a full sync's user listing got in earlier invocations of its run.
///
/// The listing reads managed users only. Box returns an external user only to a `filter_term`
/// equal to its login (`user_type=external` without one returns no one), and external users hold
/// no seat of the enterprise, so there is no external phase. Checkpoints stored before it was
/// dropped may still say phase 1 (external users): that listing is complete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListingProgress {
    /// [`ListingProgress::MANAGED`], or complete from 1 on (see [`ListingProgress::is_complete`]).
    pub phase: u8,
    /// Box's marker for the next page of the current phase (`None`: its first page).
    pub marker: Option<String>,
    /// Scratch items holding the ids listed so far (they are neither "gone" nor counted twice).
    pub listed_chunks: u32,
}

impl ListingProgress {
    /// Listing managed users (and app users), from `marker`.
    pub const MANAGED: u8 = 0;
    /// What a finished listing records (1, the external phase of older checkpoints, is finished too).
    pub const COMPLETE: u8 = 2;

    /// Whether every page has been read: any phase after [`ListingProgress::MANAGED`].
    pub fn is_complete(&self) -> bool {
        self.phase > Self::MANAGED
    }
}

/// Where the next sync starts (`CHECKPOINT#sync`).
///
/// Login events are read from Box's own stream position, not from the function's clock: the
/// next read starts at `events_position`, so a login that becomes visible late (Box's
/// `admin_logs` favours completeness over latency) is still read, however late, as long as it
/// was created at most [`SyncOptions::late_window`] before `events_until`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncCheckpoint {
    /// The newest login read so far, by the events' own `created_at` (or where the first window
    /// began, when it held none).
    pub events_until: Option<DateTime<Utc>>,
    /// Box's `next_stream_position` after the last complete read; the next read starts here.
    #[serde(default)]
    pub events_position: Option<String>,
    /// The start of the activity history (the first back-fill).
    pub history_since: Option<DateTime<Utc>>,
    /// Content events are read along with logins (set by the first complete full read that
    /// read them; a checkpoint from before says `false`, and the next full sync back-fills).
    #[serde(default)]
    pub content_events: bool,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    pub last_run: Option<SyncRun>,
    pub in_progress: Option<RunProgress>,
}

/// The tenant's license state in numbers (`SUMMARY`), replaced only after a complete listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseSummary {
    pub computed_at: DateTime<Utc>,
    pub activity_source: ActivitySource,
    /// `box`, `okta`, `entra` or `google`.
    pub activity_provider: String,
    /// The earliest activity the source covered; "never" means "not since then".
    pub history_since: Option<DateTime<Utc>>,
    /// `false` while a first sync reads older history (newest first): every 30/60/90 count is
    /// already exact, and only dates older than `history_since` are still to come.
    #[serde(default = "complete")]
    pub history_complete: bool,
    /// Whether content events (uploads, edits, previews…) were read, so that working and
    /// login-only users can be told apart. Box's event stream only; summaries stored before
    /// content events were read say `false`.
    #[serde(default)]
    pub content_activity: bool,
    /// Managed users: each holds a paid seat, deactivated or not.
    pub seat_holders: u32,
    pub deactivated: u32,
    pub admins: u32,
    pub app_users: u32,
    pub external_users: u32,
    pub content_owners: u32,
    /// Last activity of active-status seat holders, by day.
    pub histogram: ActivityHistogram,
    /// The [`USER_INDEX_VERSION`](crate::storage::user_index::USER_INDEX_VERSION) of every stored
    /// user's index attributes (0 in summaries from before the user indexes): a full sync
    /// rewrites every user while it is older.
    #[serde(default)]
    pub user_index_version: u32,
}

fn complete() -> bool {
    true
}

/// Seat holders (active status) by what they did within a threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdCounts {
    pub days: u16,
    /// Content activity within `days` (`None`: content activity is not available).
    pub working: Option<u32>,
    /// Logged in within `days` without content activity within them (`None`: not available).
    pub login_only: Option<u32>,
    /// Inactive for `days` by the tenant's activity signal, never-active users included.
    pub inactive: u32,
}

/// What a buyer reads: the summary evaluated now, with the tenant's seats and price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenseReport {
    pub as_of: DateTime<Utc>,
    pub activity_source: ActivitySource,
    pub activity_provider: String,
    pub history_since: Option<DateTime<Utc>>,
    /// `false` while older history is still being read; the counts below are exact either way.
    pub history_complete: bool,
    /// Which signal the inactivity counts use: the tenant's setting, or `login` where content
    /// activity is not available (see [`ActivitySignal::effective`]).
    pub activity_signal: ActivitySignal,
    /// Whether working and login-only users can be told apart (content events were read).
    pub content_activity_available: bool,
    /// `None`: the tenant has not said how many seats it bought (Box has no API for it).
    pub seats_purchased: Option<u32>,
    pub seat_holders: u32,
    pub active: u32,
    pub inactive_30_days: u32,
    pub inactive_60_days: u32,
    pub inactive_90_days: u32,
    pub inactivity_threshold_days: u16,
    pub inactive_at_threshold: u32,
    /// Working, login-only and inactive seat holders at 30, 60 and 90 days and at the threshold.
    pub activity_by_threshold: Vec<ThresholdCounts>,
    /// Neither a login nor content activity in the history read.
    pub never_logged_in: u32,
    pub no_activity_data: u32,
    pub deactivated: u32,
    pub admins: u32,
    pub app_users: u32,
    pub external_users: u32,
    /// Active seat holders over seats purchased (or over seat holders while seats are unknown).
    pub utilization: f64,
    /// Seats that could be given to someone else: inactive at the threshold, plus deactivated.
    pub reclaimable_seats: u32,
    /// Purchased but not assigned to anyone.
    pub unassigned_seats: Option<u32>,
    /// (reclaimable + unassigned) × price per seat per year, in minor units.
    pub unused_seats_annual_cost_minor: Option<u64>,
    pub currency: Option<String>,
}

impl LicenseSummary {
    pub fn report(&self, settings: &TenantSettings, now: DateTime<Utc>) -> LicenseReport {
        let threshold = i64::from(settings.inactivity_threshold_days);
        let h = &self.histogram;
        let [d30, d60, d90] = INACTIVE_DAYS;
        let content = self.content_activity;
        let signal = settings.activity_signal.effective(content);
        let inactive = |days: i64| h.inactive_by(signal, days, now);
        let inactive_at_threshold = inactive(threshold);
        // Active status seat holders with a known state, less the inactive ones.
        let known = h.by_day.values().sum::<u32>() + h.never;
        let active = known.saturating_sub(inactive_at_threshold);
        let mut thresholds: Vec<i64> = INACTIVE_DAYS.to_vec();
        if !thresholds.contains(&threshold) {
            thresholds.push(threshold);
            thresholds.sort_unstable();
        }
        let activity_by_threshold = thresholds
            .into_iter()
            .map(|days| ThresholdCounts {
                days: u16::try_from(days).unwrap_or(u16::MAX),
                working: content.then(|| h.working_within(days, now)),
                login_only: content.then(|| h.login_only_within(days, now)),
                inactive: inactive(days),
            })
            .collect();
        let reclaimable = inactive_at_threshold + self.deactivated;
        let unassigned = settings.seats_purchased.map(|p| p.saturating_sub(self.seat_holders));
        let denominator = settings.seats_purchased.unwrap_or(self.seat_holders);
        LicenseReport {
            as_of: now,
            activity_source: self.activity_source,
            activity_provider: self.activity_provider.clone(),
            history_since: self.history_since,
            history_complete: self.history_complete,
            activity_signal: signal,
            content_activity_available: content,
            seats_purchased: settings.seats_purchased,
            seat_holders: self.seat_holders,
            active,
            inactive_30_days: inactive(d30),
            inactive_60_days: inactive(d60),
            inactive_90_days: inactive(d90),
            inactivity_threshold_days: settings.inactivity_threshold_days,
            inactive_at_threshold,
            activity_by_threshold,
            never_logged_in: h.never,
            no_activity_data: h.no_data,
            deactivated: self.deactivated,
            admins: self.admins,
            app_users: self.app_users,
            external_users: self.external_users,
            utilization: if denominator == 0 {
                0.0
            } else {
                f64::from(active) / f64::from(denominator)
            },
            reclaimable_seats: reclaimable,
            unassigned_seats: unassigned,
            unused_seats_annual_cost_minor: settings
                .price_per_seat_year_minor
                .map(|price| price * u64::from(reclaimable + unassigned.unwrap_or(0))),
            currency: settings.currency.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ListingProgress;

    fn stored(json: &str) -> ListingProgress {
        serde_json::from_str(json).expect("a stored listing progress")
    }

    #[test]
    fn a_new_listing_starts_with_managed_users() {
        let listing = ListingProgress::default();
        assert_eq!(listing.phase, ListingProgress::MANAGED);
        assert!(!listing.is_complete());
    }

    #[test]
    fn a_listing_paused_among_managed_users_goes_on() {
        let listing = stored(r#"{"phase":0,"marker":"m-17","listed_chunks":2}"#);
        assert!(!listing.is_complete());
        assert_eq!(listing.marker.as_deref(), Some("m-17"));
    }

    #[test]
    fn a_checkpoint_paused_in_the_old_external_phase_counts_as_complete() {
        assert!(stored(r#"{"phase":1,"marker":null,"listed_chunks":3}"#).is_complete());
        assert!(stored(r#"{"phase":1,"marker":"ext-page-2","listed_chunks":3}"#).is_complete());
    }

    #[test]
    fn a_finished_listing_is_complete() {
        let listing = ListingProgress {
            phase: ListingProgress::COMPLETE,
            ..ListingProgress::default()
        };
        assert!(listing.is_complete());
    }
}

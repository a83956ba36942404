//! What a scenario measured, against the targets, as an aligned (Markdown) table.

use num_format::{Locale, ToFormattedString};
use serde::Serialize;

use crate::sim::{SimCounters, SimSummary};
use crate::truth::{Counts, DateCheck};

/// Box calls at most this × the minimum.
pub const CALLS_RATIO_TARGET: f64 = 1.05;
/// Peak RSS under this many MiB.
pub const PEAK_RSS_TARGET_MIB: f64 = 128.0;
/// With a rate limit, wall time within this × (calls ÷ allowed rate).
pub const PACE_RATIO_TARGET: f64 = 1.1;
/// The 30/60/90 report is published within this share of the full read's time.
pub const PUBLISH_RATIO_TARGET: f64 = 0.55;
/// 429 answers met, at most this many per 1,000 calls.
pub const RATE_LIMITED_PER_THOUSAND: u64 = 1;
/// An unchanged re-sync writes at most this many items.
pub const RESYNC_ITEMS_TARGET: u64 = 3;
/// Box's largest pages.
const USERS_PER_PAGE: u64 = 1000;
const EVENTS_PER_PAGE: u64 = 500;

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub wall_secs: f64,
    /// `SyncRun.box_calls`: HTTP requests to Box, retries included.
    pub box_calls: u64,
    /// 429 answers the client met.
    pub rate_limited: u64,
    pub users_listed: u64,
    pub events_read: u64,
    /// `SyncRun.items_written` (users, summary, run, checkpoint).
    pub items_written: u64,
    /// The same, as the store counted it.
    pub store_items_written: u64,
    /// VmHWM after the phase: the scenario's peak so far.
    pub peak_rss_kib: u64,
    pub rss_after_kib: u64,
}

/// The first sync's publication: when the first summary was stored, and its counts against the
/// truth and against the summary at the end of the sync, all evaluated at the same `now`.
#[derive(Debug, Clone, Serialize)]
pub struct Publication {
    pub secs: f64,
    /// `false`: published while older history was still to be read, as it should be.
    pub history_complete: bool,
    pub now: chrono::DateTime<chrono::Utc>,
    pub counts: Counts,
    pub truth: Counts,
    pub at_end: Counts,
    pub end_history_complete: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub title: String,
    pub users: u64,
    pub events: u64,
    pub days: u32,
    pub latency_ms: u64,
    pub slices: usize,
    pub requests_per_minute: u32,
    pub sim_rate_limit: Option<u32>,
    pub truth: SimSummary,
    pub sim_counters: SimCounters,
    pub stored_users: u64,
    pub stored_with_login: u64,
    pub stored_with_content: u64,
    /// Content events asked of the simulator (0: none).
    pub content_events: u64,
    /// Every user's two dates after the full read against the simulator's truth file.
    pub dates: DateCheck,
    pub publication: Option<Publication>,
    /// RSS growth from loading every stored user once: the size of one copy of the user map.
    pub user_map_kib: u64,
    pub phases: Vec<Phase>,
    pub rss_start_kib: u64,
    /// Whether the high-water mark could be restarted for this scenario.
    pub peak_reset: bool,
}

struct Row {
    measure: String,
    first: String,
    resync: String,
    target: String,
    verdict: Option<bool>,
}

fn row(measure: &str, first: String, resync: String, target: &str, verdict: Option<bool>) -> Row {
    Row {
        measure: measure.into(),
        first,
        resync,
        target: target.into(),
        verdict,
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    n.to_formatted_string(&Locale::en)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl ScenarioReport {
    fn managed_listed(&self) -> u64 {
        self.truth.managed_users + self.truth.app_users
    }

    /// The fewest calls that could read `events` events and list every managed user: full pages
    /// only (external users cannot be listed on Box, so the sync makes no call for them).
    pub fn minimum_calls(&self, events: u64) -> u64 {
        self.managed_listed().div_ceil(USERS_PER_PAGE) + events.div_ceil(EVENTS_PER_PAGE).max(1)
    }

    fn first(&self) -> &Phase {
        &self.phases[0]
    }

    fn resync(&self) -> &Phase {
        &self.phases[1]
    }

    fn calls_ratio(&self, phase: &Phase, events: u64) -> f64 {
        phase.box_calls as f64 / self.minimum_calls(events) as f64
    }

    /// Seconds the calls need at the allowed rate.
    fn paced_secs(&self, phase: &Phase) -> Option<f64> {
        self.sim_rate_limit
            .map(|limit| phase.box_calls as f64 * 60.0 / f64::from(limit))
    }

    /// Events a first sync must read: every LOGIN and content event in the history.
    fn activity_events(&self) -> u64 {
        self.truth.login_events + self.truth.content_events
    }

    fn rows(&self) -> Vec<Row> {
        let (a, b) = (self.first(), self.resync());
        let events = self.activity_events();
        let min_a = self.minimum_calls(events);
        let min_b = self.minimum_calls(b.events_read);
        let ratio_a = self.calls_ratio(a, events);
        let ratio_b = self.calls_ratio(b, b.events_read);
        let listed_truth = self.managed_listed();
        let peak = a.peak_rss_kib.max(b.peak_rss_kib);
        let mut rows = Vec::new();
        if let Some(p) = &self.publication {
            let ratio = p.secs / a.wall_secs;
            rows.push(row(
                "30/60/90 report published (first summary stored)",
                format!("{:.1} s = {ratio:.3} × full read", p.secs),
                String::new(),
                "≤ 0.55 × full read",
                Some(ratio <= PUBLISH_RATIO_TARGET),
            ));
            rows.push(row(
                "  published before older history was read",
                format!("history_complete = {}", p.history_complete),
                String::new(),
                "false",
                Some(!p.history_complete),
            ));
        }
        rows.extend([
            row(
                "full 365-day read (sync end, wall time)",
                format!("{:.1} s", a.wall_secs),
                format!("{:.1} s", b.wall_secs),
                "",
                None,
            ),
            row("Box calls", thousands(a.box_calls), thousands(b.box_calls), "", None),
            row(
                "lower bound: users/1000 + (logins + content)/500, up",
                format!(
                    "{} = {} + {}",
                    thousands(min_a),
                    self.managed_listed().div_ceil(USERS_PER_PAGE),
                    thousands(events.div_ceil(EVENTS_PER_PAGE))
                ),
                thousands(min_b),
                "",
                None,
            ),
            row(
                "Box calls ÷ minimum",
                format!("{ratio_a:.3}"),
                format!("{ratio_b:.3}"),
                "≤ 1.05 (first sync)",
                Some(ratio_a <= CALLS_RATIO_TARGET),
            ),
        ]);
        if let (Some(limit), Some(paced_a), Some(paced_b)) =
            (self.sim_rate_limit, self.paced_secs(a), self.paced_secs(b))
        {
            let pace_a = a.wall_secs / paced_a;
            rows.push(row(
                &format!("wall ÷ floor (calls ÷ {}/min)", thousands(u64::from(limit))),
                format!("{:.1} s ÷ {:.1} s = {pace_a:.3}", a.wall_secs, paced_a),
                format!("{:.1} s ÷ {:.1} s = {:.3}", b.wall_secs, paced_b, b.wall_secs / paced_b),
                "≤ 1.1 (first sync)",
                Some(pace_a <= PACE_RATIO_TARGET),
            ));
            let calls = a.box_calls + b.box_calls;
            let met = a.rate_limited + b.rate_limited;
            let sim_met = self.sim_counters.rate_limited;
            rows.push(row(
                "429 answers met (client; simulator's count, both syncs)",
                format!(
                    "{} ({} by the simulator)",
                    thousands(a.rate_limited),
                    thousands(sim_met)
                ),
                thousands(b.rate_limited),
                "≤ 1 per 1,000 calls",
                Some(met.max(sim_met) * 1000 <= RATE_LIMITED_PER_THOUSAND * calls),
            ));
        }
        rows.extend([
            row(
                "peak RSS (VmHWM)",
                format!("{:.1} MiB", mib(a.peak_rss_kib)),
                format!("{:.1} MiB", mib(b.peak_rss_kib)),
                "< 128 MiB",
                Some(mib(peak) < PEAK_RSS_TARGET_MIB),
            ),
            row(
                "  of which: one copy of the user map, ≈",
                format!("{:.1} MiB", mib(self.user_map_kib)),
                String::new(),
                "",
                None,
            ),
            row(
                "items written",
                thousands(a.items_written),
                thousands(b.items_written),
                "≤ 3 (re-sync)",
                Some(b.items_written <= RESYNC_ITEMS_TARGET),
            ),
            row(
                "users listed",
                thousands(a.users_listed),
                thousands(b.users_listed),
                "",
                None,
            ),
            row(
                "events read (LOGIN + content)",
                format!(
                    "{} of {} + {}",
                    thousands(a.events_read),
                    thousands(self.truth.login_events),
                    thousands(self.truth.content_events)
                ),
                thousands(b.events_read),
                "",
                None,
            ),
            row(
                "users stored = listed = simulator's",
                format!(
                    "{} = {} = {}",
                    thousands(self.stored_users),
                    thousands(a.users_listed),
                    thousands(listed_truth)
                ),
                String::new(),
                "equal",
                Some(self.stored_users == a.users_listed && a.users_listed == listed_truth),
            ),
            row(
                "users with a login = simulator's",
                format!(
                    "{} = {}",
                    thousands(self.stored_with_login),
                    thousands(self.truth.users_with_login)
                ),
                String::new(),
                "equal",
                Some(self.stored_with_login == self.truth.users_with_login),
            ),
            row(
                "users with content activity = simulator's",
                format!(
                    "{} = {}",
                    thousands(self.stored_with_content),
                    thousands(self.truth.users_with_content)
                ),
                String::new(),
                "equal",
                Some(self.stored_with_content == self.truth.users_with_content),
            ),
            row(
                "every user's two dates = truth file (after the full read)",
                format!(
                    "{} users: {} missing, {} login and {} content dates differ",
                    thousands(self.dates.checked),
                    thousands(self.dates.missing),
                    thousands(self.dates.login_mismatches),
                    thousands(self.dates.content_mismatches)
                ),
                String::new(),
                "all equal",
                Some(self.dates.exact()),
            ),
            row(
                "simulator: requests answered (429s)",
                format!(
                    "{} ({}) in both syncs",
                    thousands(self.sim_counters.total),
                    thousands(self.sim_counters.rate_limited)
                ),
                String::new(),
                "",
                None,
            ),
        ]);
        if let Some(p) = &self.publication {
            rows.push(row(
                "published counts = truth at publication",
                p.counts.brief(),
                p.truth.brief(),
                "equal (re-sync column: truth)",
                Some(p.counts == p.truth),
            ));
            rows.push(row(
                "  the same counts at the sync's end",
                p.at_end.brief(),
                format!("history_complete = {}", p.end_history_complete),
                "unchanged, complete",
                Some(p.at_end == p.counts && p.end_history_complete),
            ));
        }
        rows
    }

    pub fn passed(&self) -> bool {
        self.rows().iter().all(|r| r.verdict != Some(false))
    }

    pub fn table(&self) -> String {
        let header = [
            "measure".to_string(),
            "first sync".into(),
            "unchanged re-sync".into(),
            "target".into(),
            "result".into(),
        ];
        let cells: Vec<[String; 5]> = self
            .rows()
            .into_iter()
            .map(|r| {
                [
                    r.measure,
                    r.first,
                    r.resync,
                    r.target,
                    match r.verdict {
                        Some(true) => "PASS".into(),
                        Some(false) => "FAIL".into(),
                        None => String::new(),
                    },
                ]
            })
            .collect();
        let mut out = format!(
            "Scenario {} ({}): {} users listed ({} managed incl. {} app users; {} external, not listable), {} LOGIN and {} content events over {} days, {} ms latency, {} slices, budget {}/min{}\n\n",
            self.scenario,
            self.title,
            thousands(self.managed_listed()),
            thousands(self.managed_listed()),
            thousands(self.truth.app_users),
            thousands(self.truth.external_users),
            thousands(self.truth.login_events),
            thousands(self.truth.content_events),
            self.days,
            self.latency_ms,
            self.slices,
            thousands(u64::from(self.requests_per_minute)),
            if self.peak_reset {
                ""
            } else {
                " (peak RSS could not be reset: it includes earlier scenarios)"
            },
        );
        let mut table = tabled::builder::Builder::default();
        table.push_record(header);
        for line in cells {
            table.push_record(line);
        }
        out.push_str(&table.build().with(tabled::settings::Style::markdown()).to_string());
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}

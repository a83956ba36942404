//! A tenant's adaptive request pace. Box allows about 1,000 requests per minute per user: a sync
//! runs up to the operator's ceiling, and when Box answers 429 anyway (another client spends the
//! same user's allowance, a previous invocation spent this minute's, or Box counts differently) it
//! holds every caller until `retry-after`, slows down, and then recovers to the ceiling. Sending
//! faster than Box allows only earns 429s, and each one is a call that did nothing.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The hold after a 429 without `retry-after`: Box's SDKs wait about a second.
const DEFAULT_HOLD: Duration = Duration::from_secs(1);
/// The longest hold, whatever the answer asks: Box's windows are a minute, so a longer wait is a
/// misreading, and the retry engine gives up past its own 60 s cap anyway.
const MAX_HOLD: Duration = Duration::from_secs(60);
/// Each rate-limited episode keeps this share of the rate (multiplicative decrease).
const DECREASE: f64 = 0.9;
/// The rate never falls below this share of the ceiling, so a burst of 429s cannot stall a sync.
const FLOOR_SHARE: f64 = 0.1;
/// Clean time in which the rate climbs the whole way from the floor to the ceiling (additive
/// increase): after one 429 (x0.9) it is back at the ceiling in about 7 s.
const RECOVERY: Duration = Duration::from_secs(60);

/// Paces requests at up to `ceiling` a minute with the generic cell rate algorithm (each request
/// reserves the next slot, so concurrent callers queue in order), and adapts: every 429 reported
/// through [`RequestBudget::on_rate_limited`] holds all callers until its `retry-after` and lowers
/// the rate, which then climbs back to the ceiling with clean time.
#[derive(Debug)]
pub struct RequestBudget {
    ceiling: f64,
    floor: f64,
    burst: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Requests per minute now, between the floor and the ceiling.
    rate: f64,
    /// The theoretical arrival time of the next request.
    tat: Instant,
    /// No request leaves before this (the latest 429's `retry-after`).
    hold_until: Instant,
    /// Clean time is counted from here (the rate climbs with it).
    recovered_at: Instant,
    /// Bumped whenever reservations made before no longer hold (a 429 arrived): their callers
    /// reserve again.
    generation: u64,
    rate_limited: u64,
    /// Reservations made, so tests can tell waiting from spinning.
    #[cfg(test)]
    reservations: u64,
}

impl RequestBudget {
    /// Up to `ceiling` requests a minute (the operator's setting), bursts of up to `burst` after
    /// an idle spell.
    ///
    /// A burst is sent on top of the pace: a GCRA at `ceiling` with burst `b` can put
    /// `ceiling + b - 1` requests into one 60 s window. Box and the simulator count fixed
    /// (calendar) minutes, so at a ceiling of Box's own limit any burst above 1 overruns the first
    /// minute and every minute that follows a pause. The sync therefore uses a burst of 1: evenly
    /// spaced requests never put more than the ceiling into any 60 s window, and its concurrent
    /// slices keep the queue full, so a burst would add no throughput. What remains (a request
    /// delayed across a minute boundary, another client on the same user) is what
    /// [`RequestBudget::on_rate_limited`] absorbs: one 429, a hold to the window's end, and a
    /// new phase.
    pub fn per_minute(ceiling: u32, burst: u32) -> Self {
        let ceiling = f64::from(ceiling.max(1));
        let now = Instant::now();
        Self {
            ceiling,
            floor: (ceiling * FLOOR_SHARE).max(1.0).min(ceiling),
            burst: burst.max(1),
            state: Mutex::new(State {
                rate: ceiling,
                tat: now,
                hold_until: now,
                recovered_at: now,
                generation: 0,
                rate_limited: 0,
                #[cfg(test)]
                reservations: 0,
            }),
        }
    }

    /// Waits until a request may be sent. A caller already waiting when a 429 arrives waits for
    /// the hold too: it wakes at its old slot, finds the reservation outdated, and reserves again
    /// (one more sleep per 429, never a spin).
    pub async fn acquire(&self) {
        loop {
            let (generation, at) = self.reserve();
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            if self.lock().generation == generation {
                return;
            }
        }
    }

    /// Box answered 429: nobody sends before `retry_after` (1 s when Box did not say, at most
    /// 60 s), and the rate drops by a tenth, not below a tenth of the ceiling.
    ///
    /// The answers of requests already in flight when the first 429 came are part of the same
    /// episode: a 429 that arrives while a hold is in force may lengthen the hold but does not
    /// lower the rate again, or a handful of concurrent slices would cut it to half at once.
    pub fn on_rate_limited(&self, retry_after: Option<Duration>) {
        let hold = retry_after.unwrap_or(DEFAULT_HOLD).min(MAX_HOLD);
        let floor = self.floor;
        let mut s = self.lock();
        let now = Instant::now();
        s.rate_limited += 1;
        let new_episode = now >= s.hold_until;
        if new_episode {
            s.rate = (s.rate * DECREASE).max(floor);
        }
        let until = now + hold;
        if new_episode || until > s.hold_until {
            s.hold_until = s.hold_until.max(until);
            // Reservations restart behind the hold, and the hold is not clean time.
            s.tat = s.hold_until;
            s.recovered_at = s.hold_until;
            s.generation += 1;
        }
    }

    /// The pace now, in requests per minute (the ceiling unless Box pushed back lately).
    pub fn current_per_minute(&self) -> u32 {
        let mut s = self.lock();
        self.recover(&mut s, Instant::now());
        // The rate lies between the floor and the ceiling, both within u32.
        s.rate.round() as u32
    }

    /// How many 429s Box answered through this budget.
    pub fn rate_limited_count(&self) -> u64 {
        self.lock().rate_limited
    }

    /// Reserves the next slot: when this caller may send, and the generation it was reserved in.
    fn reserve(&self) -> (u64, Instant) {
        let mut s = self.lock();
        let now = Instant::now();
        self.recover(&mut s, now);
        #[cfg(test)]
        {
            s.reservations += 1;
        }
        let interval = interval(s.rate);
        let earliest = now.max(s.hold_until);
        let slot = s.tat.max(earliest);
        let allowed_at = slot
            .checked_sub(interval * (self.burst - 1))
            .unwrap_or(earliest)
            .max(earliest);
        s.tat = slot + interval;
        (s.generation, allowed_at)
    }

    /// Climbs toward the ceiling by the clean time since the last climb (none during a hold).
    fn recover(&self, s: &mut State, now: Instant) {
        if now <= s.recovered_at {
            return;
        }
        let clean = now.duration_since(s.recovered_at).as_secs_f64();
        let gain = (self.ceiling - self.floor) * clean / RECOVERY.as_secs_f64();
        s.rate = (s.rate + gain).min(self.ceiling);
        s.recovered_at = now;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it: every write is whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The spacing of requests at `per_minute`, rounded up so the pace never exceeds it.
fn interval(per_minute: f64) -> Duration {
    // per_minute >= 1, so at most 60 s in nanoseconds: well within u64.
    Duration::from_nanos((60e9 / per_minute).ceil() as u64)
}

#[cfg(test)]
mod tests;

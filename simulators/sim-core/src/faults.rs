//! Which request gets a fault: scripted ones for the nth request to an endpoint, and random ones
//! drawn from a seeded generator (same seed, same sequence of faults).

use std::collections::HashMap;
use std::hash::Hash;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Shares of requests that get a random fault; the rest are handled normally.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    pub drop: f64,
    pub status_5xx: f64,
    pub status_429: f64,
}

/// A random fault drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomFault {
    /// Close the connection without an answer.
    Drop,
    /// Answer 500, 502, 503 or 429.
    Status(u16),
}

/// Arrivals by endpoint, the scripted faults still to come, and the seeded generator.
#[derive(Debug)]
pub struct FaultPlan<E, F> {
    rng: ChaCha8Rng,
    seen: HashMap<E, u64>,
    injected: Vec<(E, u64, F)>,
}

impl<E: Copy + Eq + Hash, F> FaultPlan<E, F> {
    pub fn new(rng: ChaCha8Rng) -> Self {
        FaultPlan {
            rng,
            seen: HashMap::new(),
            injected: Vec::new(),
        }
    }

    /// The `nth` request (1-based, counted from now) to `ep` gets `fault`, once.
    pub fn inject(&mut self, ep: E, nth: u64, fault: F) {
        let target = self.received(ep) + nth.max(1);
        self.injected.push((ep, target, fault));
    }

    /// Requests to `ep` that have arrived so far.
    pub fn received(&self, ep: E) -> u64 {
        self.seen.get(&ep).copied().unwrap_or(0)
    }

    /// Counts a request to `ep` on arrival and takes the fault scripted for it, if any.
    pub fn arrive(&mut self, ep: E) -> Option<F> {
        let seen = {
            let s = self.seen.entry(ep).or_default();
            *s += 1;
            *s
        };
        self.injected
            .iter()
            .position(|(e, n, _)| *e == ep && *n == seen)
            .map(|i| self.injected.remove(i).2)
    }

    /// Draws this request's random fault: a drop, then a 5xx, then a 429, by their shares.
    pub fn roll(&mut self, shares: Shares) -> Option<RandomFault> {
        let roll: f64 = self.rng.random();
        if roll < shares.drop {
            Some(RandomFault::Drop)
        } else if roll < shares.drop + shares.status_5xx {
            Some(RandomFault::Status([500u16, 502, 503][self.rng.random_range(0..3)]))
        } else if roll < shares.drop + shares.status_5xx + shares.status_429 {
            Some(RandomFault::Status(429))
        } else {
            None
        }
    }

    /// The same seeded generator, for a simulator's other random choices (short pages).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::{FaultPlan, RandomFault, Shares};

    fn plan() -> FaultPlan<&'static str, &'static str> {
        FaultPlan::new(ChaCha8Rng::seed_from_u64(7))
    }

    #[test]
    fn a_scripted_fault_hits_the_nth_request_from_now_once() {
        let mut p = plan();
        assert_eq!(p.arrive("users"), None);
        p.inject("users", 2, "boom");
        assert_eq!(p.arrive("events"), None, "other endpoints do not count");
        assert_eq!(p.arrive("users"), None);
        assert_eq!(p.arrive("users"), Some("boom"));
        assert_eq!(p.arrive("users"), None);
        assert_eq!((p.received("users"), p.received("events")), (4, 1));
    }

    #[test]
    fn nth_zero_means_the_next_request() {
        let mut p = plan();
        p.inject("users", 0, "boom");
        assert_eq!(p.arrive("users"), Some("boom"));
    }

    #[test]
    fn random_faults_follow_their_shares_and_the_seed() {
        let none = Shares {
            drop: 0.0,
            status_5xx: 0.0,
            status_429: 0.0,
        };
        let mut p = plan();
        assert!((0..100).all(|_| p.roll(none).is_none()));
        let all_429 = Shares {
            status_429: 1.0,
            ..none
        };
        assert!((0..100).all(|_| p.roll(all_429) == Some(RandomFault::Status(429))));
        let all_drop = Shares { drop: 1.0, ..none };
        assert!((0..100).all(|_| p.roll(all_drop) == Some(RandomFault::Drop)));
        let all_5xx = Shares {
            status_5xx: 1.0,
            ..none
        };
        assert!((0..100).all(|_| matches!(p.roll(all_5xx), Some(RandomFault::Status(500 | 502 | 503)))));
        let half = Shares {
            status_429: 0.5,
            ..none
        };
        let (mut a, mut b) = (plan(), plan());
        let run = |p: &mut FaultPlan<_, _>| (0..200).map(|_| p.roll(half)).collect::<Vec<_>>();
        let first = run(&mut a);
        assert_eq!(first, run(&mut b), "same seed, same faults");
        let hits = first.iter().filter(|f| f.is_some()).count();
        assert!((60..140).contains(&hits), "{hits} of 200 at a share of 0.5");
    }
}

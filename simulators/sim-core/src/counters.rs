//! Requests answered, by endpoint and status; connections closed without an answer apart.

use std::collections::HashMap;
use std::hash::Hash;

/// Requests answered, by endpoint and status; dropped connections are counted apart.
#[derive(Debug, Clone)]
pub struct Counters<E> {
    by: HashMap<(E, u16), u64>,
    dropped: HashMap<E, u64>,
}

impl<E> Default for Counters<E> {
    fn default() -> Self {
        Counters {
            by: HashMap::new(),
            dropped: HashMap::new(),
        }
    }
}

impl<E: Copy + Eq + Hash> Counters<E> {
    /// Answers to `ep` with `status`.
    pub fn get(&self, ep: E, status: u16) -> u64 {
        self.by.get(&(ep, status)).copied().unwrap_or(0)
    }
    /// Answered requests to `ep`, any status, dropped ones not included.
    pub fn total(&self, ep: E) -> u64 {
        self.by.iter().filter(|((e, _), _)| *e == ep).map(|(_, n)| n).sum()
    }
    /// Answered requests, all endpoints.
    pub fn total_all(&self) -> u64 {
        self.by.values().sum()
    }
    /// Connections to `ep` closed without an answer.
    pub fn dropped(&self, ep: E) -> u64 {
        self.dropped.get(&ep).copied().unwrap_or(0)
    }
    /// Connections closed without an answer, all endpoints.
    pub fn dropped_all(&self) -> u64 {
        self.dropped.values().sum()
    }
    pub fn record(&mut self, ep: E, status: u16) {
        *self.by.entry((ep, status)).or_default() += 1;
    }
    pub fn record_drop(&mut self, ep: E) {
        *self.dropped.entry(ep).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::Counters;

    #[test]
    fn answers_are_counted_by_endpoint_and_status_and_drops_apart() {
        let mut c = Counters::default();
        c.record('a', 200);
        c.record('a', 200);
        c.record('a', 429);
        c.record('b', 200);
        c.record_drop('a');
        assert_eq!((c.get('a', 200), c.get('a', 429), c.get('b', 429)), (2, 1, 0));
        assert_eq!((c.total('a'), c.total('b'), c.total_all()), (3, 1, 4));
        assert_eq!((c.dropped('a'), c.dropped('b'), c.dropped_all()), (1, 0, 1));
    }
}

//! A request budget per tenant: Box allows about 1,000 requests per minute per user, so a sync
//! paces itself under that (sending faster only earns 429s and costs more calls).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// `per_minute` requests a minute on average, bursts up to `burst` (the generic cell rate
/// algorithm: each request reserves the next slot, so concurrent callers queue in order).
#[derive(Debug)]
pub struct RequestBudget {
    interval: Duration,
    burst: u32,
    /// The theoretical arrival time of the next request.
    tat: Mutex<Instant>,
}

impl RequestBudget {
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self {
            interval: Duration::from_secs(60) / per_minute.max(1),
            burst: burst.max(1),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) {
        let wait = {
            let mut tat = self.tat.lock().await;
            let now = Instant::now();
            let slot = (*tat).max(now);
            let allowed_at = slot.checked_sub(self.interval * (self.burst - 1)).unwrap_or(now);
            *tat = slot + self.interval;
            allowed_at.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_requests_after_the_burst() {
        let budget = RequestBudget::per_minute(600, 5); // one every 100 ms
        let start = Instant::now();
        for _ in 0..25 {
            budget.acquire().await;
        }
        let elapsed = start.elapsed();
        // 5 at once, then 20 more at 100 ms each.
        assert!(
            elapsed >= Duration::from_millis(1_950) && elapsed <= Duration::from_millis(2_100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_budget() {
        let budget = std::sync::Arc::new(RequestBudget::per_minute(600, 1));
        let start = Instant::now();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let b = budget.clone();
                tokio::spawn(async move { b.acquire().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(850), "{:?}", start.elapsed());
    }
}

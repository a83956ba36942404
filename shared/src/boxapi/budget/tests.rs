use std::sync::Arc;

use super::*;

/// Waits `n` times, one after the other; the instants each wait ended.
async fn acquire_times(budget: &RequestBudget, n: usize) -> Vec<Instant> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        budget.acquire().await;
        times.push(Instant::now());
    }
    times
}

/// Starts one waiting caller per entry; each answers with the instant its wait ended.
fn spawn_callers(budget: &Arc<RequestBudget>, n: usize) -> Vec<tokio::task::JoinHandle<Instant>> {
    (0..n)
        .map(|_| {
            let b = budget.clone();
            tokio::spawn(async move {
                b.acquire().await;
                Instant::now()
            })
        })
        .collect()
}

async fn joined(tasks: Vec<tokio::task::JoinHandle<Instant>>) -> Vec<Instant> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn reservations(budget: &RequestBudget) -> u64 {
    budget.lock().reservations
}

#[tokio::test(start_paused = true)]
async fn paces_requests_after_the_burst() {
    let budget = RequestBudget::per_minute(600, 5); // one every 100 ms
    let start = Instant::now();
    acquire_times(&budget, 25).await;
    let elapsed = start.elapsed();
    // 5 at once, then 20 more at 100 ms each.
    assert!(
        elapsed >= Duration::from_millis(1_950) && elapsed <= Duration::from_millis(2_100),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_the_budget() {
    let budget = Arc::new(RequestBudget::per_minute(600, 1));
    let start = Instant::now();
    joined(spawn_callers(&budget, 10)).await;
    assert!(start.elapsed() >= Duration::from_millis(850), "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn without_429s_the_pace_is_the_ceiling() {
    let budget = RequestBudget::per_minute(1000, 1);
    let start = Instant::now();
    acquire_times(&budget, 3001).await;
    // 3,000 spacings of 60 ms: three minutes to the millisecond, no faster and no slower.
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(180) && elapsed <= Duration::from_millis(180_010),
        "{elapsed:?}"
    );
    assert_eq!(budget.current_per_minute(), 1000);
    assert_eq!(budget.rate_limited_count(), 0);
}

/// Six slices, each sending as soon as its last answer (20-70 ms) came back, as a sync does.
async fn slices_for(budget: Arc<RequestBudget>, run: Duration) -> Vec<Instant> {
    let end = Instant::now() + run;
    let tasks: Vec<_> = (0..6u64)
        .map(|slice| {
            let b = budget.clone();
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut n = 0u64;
                while Instant::now() < end {
                    b.acquire().await;
                    sent.push(Instant::now());
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20 + (slice * 7 + n * 13) % 50)).await;
                }
                sent
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

/// The most requests any 60 s window (at any phase, so any calendar minute) holds.
fn busiest_minute(sorted: &[Instant]) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (last, t) in sorted.iter().enumerate() {
        while t.duration_since(sorted[first]) >= Duration::from_secs(60) {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn with_a_burst_of_one_no_minute_holds_more_than_the_ceiling() {
    let sent = slices_for(Arc::new(RequestBudget::per_minute(1000, 1)), Duration::from_secs(180)).await;
    assert_eq!(busiest_minute(&sent), 1000);
    // ... and the slices keep the queue full: the ceiling is what they get.
    assert!(sent.len() >= 2_995, "{} in three minutes", sent.len());
}

/// Why the sync does not use a burst at Box's limit: the first minute overruns a fixed window.
#[tokio::test(start_paused = true)]
async fn a_burst_of_twenty_overruns_a_fixed_minute_window() {
    let sent = slices_for(Arc::new(RequestBudget::per_minute(1000, 20)), Duration::from_secs(120)).await;
    assert!(busiest_minute(&sent) > 1000, "{}", busiest_minute(&sent));
}

#[tokio::test(start_paused = true)]
async fn a_429_holds_every_caller_until_retry_after_and_lowers_the_rate() {
    let budget = Arc::new(RequestBudget::per_minute(600, 1)); // one every 100 ms
    let start = Instant::now();
    let early = spawn_callers(&budget, 4); // slots at 0, 100, 200 and 300 ms
    tokio::time::sleep(Duration::from_millis(50)).await;
    budget.on_rate_limited(Some(Duration::from_secs(10)));
    assert_eq!(budget.current_per_minute(), 540);
    assert_eq!(budget.rate_limited_count(), 1);
    let late = spawn_callers(&budget, 2);

    let mut done: Vec<Duration> = joined(early).await.iter().map(|t| t.duration_since(start)).collect();
    done.extend(joined(late).await.iter().map(|t| t.duration_since(start)));
    done.sort();
    assert_eq!(done[0], Duration::ZERO, "the first went before the 429: {done:?}");
    let hold_end = Duration::from_millis(10_050);
    assert_eq!(done[1], hold_end, "{done:?}");
    // Behind the hold, the rest go at the lowered pace: 540 a minute is one every 111.2 ms.
    for (i, d) in done[1..].iter().enumerate() {
        let slot = hold_end + Duration::from_nanos(111_111_112) * i as u32;
        assert!(
            *d >= slot && *d <= slot + Duration::from_millis(2),
            "caller {i}: {d:?}, {done:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_holds_for_a_second() {
    let budget = RequestBudget::per_minute(600, 1);
    budget.acquire().await;
    let start = Instant::now();
    budget.on_rate_limited(None);
    budget.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn answers_of_one_episode_lower_the_rate_once() {
    let budget = RequestBudget::per_minute(1000, 1);
    // Six slices were in flight when Box's window closed: six 429s, one episode.
    for _ in 0..6 {
        budget.on_rate_limited(Some(Duration::from_secs(5)));
    }
    assert_eq!(budget.current_per_minute(), 900);
    assert_eq!(budget.rate_limited_count(), 6);
    // A 429 after the hold is a new episode.
    tokio::time::sleep(Duration::from_secs(5)).await;
    budget.on_rate_limited(Some(Duration::from_secs(5)));
    assert_eq!(budget.current_per_minute(), 810);
}

#[tokio::test(start_paused = true)]
async fn clean_traffic_regains_the_ceiling_within_a_minute() {
    let budget = RequestBudget::per_minute(1000, 1);
    budget.on_rate_limited(Some(Duration::from_secs(30)));
    assert_eq!(budget.current_per_minute(), 900);
    // The hold is not clean time.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(budget.current_per_minute(), 900);
    // 900 more a minute per minute: 1 s later 915, 7 s later the ceiling.
    acquire_times(&budget, 15).await; // 15 x 66.7 ms
    let after_a_second = budget.current_per_minute();
    assert!((912..=916).contains(&after_a_second), "{after_a_second}");
    acquire_times(&budget, 100).await;
    assert_eq!(budget.current_per_minute(), 1000);

    // From the floor, the whole climb takes one minute of clean traffic.
    for _ in 0..40 {
        budget.on_rate_limited(Some(Duration::ZERO));
    }
    assert_eq!(budget.current_per_minute(), 100);
    let start = Instant::now();
    let mut halfway = None;
    while budget.current_per_minute() < 1000 {
        budget.acquire().await;
        if halfway.is_none() && start.elapsed() >= Duration::from_secs(30) {
            halfway = Some(budget.current_per_minute());
        }
    }
    let climb = start.elapsed();
    assert!(
        climb >= Duration::from_secs(59) && climb <= Duration::from_secs(61),
        "{climb:?}"
    );
    let halfway = halfway.unwrap();
    assert!((540..=570).contains(&halfway), "{halfway}");
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_429s_stops_at_the_floor_and_never_waits_past_the_cap() {
    let budget = RequestBudget::per_minute(1000, 1);
    let mut lowest = u32::MAX;
    for round in 0..40 {
        // Every request is answered 429 the moment the hold lets it go: no clean time at all.
        let asked = if round % 2 == 0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(2)
        };
        budget.on_rate_limited(Some(asked));
        lowest = lowest.min(budget.current_per_minute());
        let start = Instant::now();
        budget.acquire().await;
        assert_eq!(start.elapsed(), asked.min(Duration::from_secs(60)), "round {round}");
    }
    assert_eq!(lowest, 100);
    assert_eq!(budget.current_per_minute(), 100);
    assert_eq!(budget.rate_limited_count(), 40);
}

#[tokio::test(start_paused = true)]
async fn waiting_callers_sleep_instead_of_spinning() {
    let budget = Arc::new(RequestBudget::per_minute(600, 1));
    let callers = spawn_callers(&budget, 20);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        budget.on_rate_limited(Some(Duration::from_secs(5)));
    }
    joined(callers).await;
    // One reservation each, and at most one more per 429 that came while it waited.
    let made = reservations(&budget);
    assert!((20..=80).contains(&made), "{made} reservations");
}

/// Through the client: a 429 with `retry-after` from a tiny local Box holds a call that was
/// about to go, and leaves the pace lowered.
mod through_the_client {
    use std::sync::Mutex;

    use axum::Router;
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use secrecy::SecretString;

    use super::*;
    use crate::boxapi::{BoxClient, BoxEndpoints, ClientOptions, RetryPolicy};

    /// When each request arrived; the first is answered 429 with `retry-after: 1`.
    type Arrivals = Arc<Mutex<Vec<std::time::Instant>>>;

    async fn users_me(State(arrivals): State<Arrivals>) -> Response {
        let first = {
            let mut a = arrivals.lock().unwrap();
            a.push(std::time::Instant::now());
            a.len() == 1
        };
        if first {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "").into_response()
        } else {
            axum::Json(serde_json::json!({ "type": "user", "id": "11" })).into_response()
        }
    }

    async fn tiny_box() -> (String, Arrivals) {
        let arrivals = Arrivals::default();
        let app = Router::new()
            .route("/2.0/users/me", get(users_me))
            .with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (base, arrivals)
    }

    #[tokio::test]
    async fn a_429_with_retry_after_slows_the_next_calls() {
        let (base, arrivals) = tiny_box().await;
        let options = ClientOptions {
            retry: RetryPolicy {
                base_backoff: Duration::from_millis(10),
                ..RetryPolicy::default()
            },
            ..ClientOptions::default()
        };
        let budget = Arc::new(RequestBudget::per_minute(1000, 1));
        let client = BoxClient::new(BoxEndpoints::new(&base, &base).unwrap(), options)
            .unwrap()
            .with_budget(budget.clone());
        let token = SecretString::from("token");

        let first = {
            let (client, token) = (client.clone(), token.clone());
            tokio::spawn(async move { client.me(&token).await })
        };
        let polled = std::time::Instant::now();
        while budget.rate_limited_count() == 0 {
            assert!(polled.elapsed() < Duration::from_secs(5), "no 429 reached the budget");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Another call, sent well inside the hold: it waits for it.
        let asked = std::time::Instant::now();
        let second = client.me(&token).await.unwrap();
        assert_eq!(second.id, "11");
        assert_eq!(first.await.unwrap().unwrap().id, "11");

        let arrivals = arrivals.lock().unwrap().clone();
        assert_eq!(arrivals.len(), 3, "the 429, its retry and the second call");
        let limited_at = arrivals[0];
        assert!(asked.duration_since(limited_at) < Duration::from_millis(500));
        for later in &arrivals[1..] {
            assert!(
                later.duration_since(limited_at) >= Duration::from_secs(1),
                "sent {:?} after the 429",
                later.duration_since(limited_at)
            );
        }
        assert_eq!(budget.rate_limited_count(), 1);
        assert!(budget.current_per_minute() < 1000, "{}", budget.current_per_minute());
    }
}

//! The retry engine's rules, run on paused tokio time.

use super::*;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        max_elapsed: Duration::from_secs(60),
    }
}

/// Runs the engine over a script of attempt results; returns the result and the instants
/// (since the start, on paused time) at which each attempt began.
async fn script(
    policy: &RetryPolicy,
    effect: Effect,
    mut results: Vec<Attempt<&'static str, String>>,
) -> (Result<Answered<&'static str>, String>, Vec<Duration>) {
    let start = Instant::now();
    let mut starts = Vec::new();
    results.reverse();
    let mut retrier = Retrier::new(policy, effect);
    loop {
        retrier.start();
        starts.push(start.elapsed());
        let attempt = results.pop().unwrap_or(Attempt::Fatal("script ran out".into()));
        if let ControlFlow::Break(out) = retrier.settle(attempt).await {
            return (out, starts);
        }
    }
}

fn server_error(n: u32) -> Attempt<&'static str, String> {
    Attempt::ServerError {
        retry_after: None,
        error: format!("5xx #{n}"),
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let (out, starts) = script(
        &policy(),
        Effect::Idempotent,
        vec![
            Attempt::RateLimited {
                asked: Some(Duration::from_secs(7)),
                error: "429".into(),
            },
            Attempt::Done("ok"),
        ],
    )
    .await;
    assert_eq!(out.unwrap().value, "ok");
    assert_eq!(starts[1] - starts[0], Duration::from_secs(7), "waited exactly as asked");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_gives_up_with_the_rate_limited_error() {
    let (out, starts) = script(
        &policy(),
        Effect::Idempotent,
        vec![
            Attempt::RateLimited {
                asked: Some(Duration::from_secs(11)),
                error: "429".into(),
            },
            Attempt::Done("never reached"),
        ],
    )
    .await;
    assert_eq!(out.unwrap_err(), "429");
    assert_eq!(starts.len(), 1, "not shortened, not retried");
}

#[tokio::test(start_paused = true)]
async fn ambiguous_writes_are_not_resent() {
    for ambiguous in [
        server_error(1),
        Attempt::NoAnswer {
            sent: true,
            error: "timed out".into(),
        },
    ] {
        let (out, starts) = script(
            &policy(),
            Effect::NotIdempotent,
            vec![ambiguous, Attempt::Done("twice")],
        )
        .await;
        assert!(out.is_err());
        assert_eq!(starts.len(), 1, "a write that may have run is not sent again");
    }
}

#[tokio::test(start_paused = true)]
async fn unambiguous_failures_of_writes_are_retried() {
    let (out, starts) = script(
        &policy(),
        Effect::NotIdempotent,
        vec![
            Attempt::NoAnswer {
                sent: false,
                error: "connection refused".into(),
            },
            Attempt::RateLimited {
                asked: None,
                error: "429".into(),
            },
            Attempt::Done("ok"),
        ],
    )
    .await;
    let answered = out.unwrap();
    assert_eq!((answered.value, answered.attempts), ("ok", 3));
    assert!(!answered.after_ambiguous);
    assert_eq!(starts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn reads_are_retried_after_ambiguous_answers_and_say_so() {
    let (out, _) = script(
        &policy(),
        Effect::Idempotent,
        vec![server_error(1), Attempt::Done("ok")],
    )
    .await;
    let answered = out.unwrap();
    assert!(
        answered.after_ambiguous,
        "an earlier attempt may have reached the server"
    );
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_and_the_last_error_is_returned() {
    let results = (1..=9).map(server_error).collect();
    let (out, starts) = script(&policy(), Effect::Idempotent, results).await;
    assert_eq!(out.unwrap_err(), "5xx #5");
    assert_eq!(starts.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn budget_stops_retries() {
    let p = RetryPolicy {
        max_elapsed: Duration::from_secs(5),
        ..policy()
    };
    let results = (1..=9)
        .map(|n| Attempt::RateLimited {
            asked: Some(Duration::from_secs(2)),
            error: format!("429 #{n}"),
        })
        .collect();
    let (out, starts) = script(&p, Effect::Idempotent, results).await;
    // Attempts at 0 s, 2 s and 4 s; a fourth at 6 s would pass the 5 s budget.
    assert_eq!(out.unwrap_err(), "429 #3");
    assert_eq!(starts, [Duration::ZERO, Duration::from_secs(2), Duration::from_secs(4)]);
}

#[tokio::test(start_paused = true)]
async fn a_server_errors_retry_after_is_capped() {
    let p = RetryPolicy {
        max_backoff: Duration::from_secs(3),
        ..policy()
    };
    let (out, starts) = script(
        &p,
        Effect::Idempotent,
        vec![
            Attempt::ServerError {
                retry_after: Some(Duration::from_secs(30)),
                error: "503".into(),
            },
            Attempt::Done("ok"),
        ],
    )
    .await;
    assert_eq!(out.unwrap().value, "ok");
    assert_eq!(starts[1], Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn fatal_answers_are_not_retried() {
    let (out, starts) = script(
        &policy(),
        Effect::Idempotent,
        vec![Attempt::Fatal("redirect".into()), Attempt::Done("no")],
    )
    .await;
    assert_eq!(out.unwrap_err(), "redirect");
    assert_eq!(starts.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_unprocessed_part_of_a_batch_is_resent_until_taken() {
    let mut pending = vec!["a", "b", "c"];
    let mut sent = Vec::new();
    let policy = policy();
    let mut retrier = Retrier::new(&policy, Effect::Idempotent);
    let out = loop {
        retrier.start();
        sent.push(pending.clone());
        // The server takes the first item of each batch only.
        pending.remove(0);
        let attempt = if pending.is_empty() {
            Attempt::Done(())
        } else {
            Attempt::Partial {
                error: format!("{} refused", pending.len()),
            }
        };
        if let ControlFlow::Break(out) = retrier.settle(attempt).await {
            break out;
        }
    };
    assert_eq!(out.unwrap().attempts, 3);
    assert_eq!(sent, [vec!["a", "b", "c"], vec!["b", "c"], vec!["c"]]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_still_refused_after_the_last_attempt_fails_with_what_is_left() {
    let p = RetryPolicy {
        max_attempts: 3,
        ..policy()
    };
    let results = (1..=5)
        .map(|n| Attempt::Partial {
            error: format!("{n} refused"),
        })
        .collect();
    let (out, starts) = script(&p, Effect::Idempotent, results).await;
    assert_eq!(out.unwrap_err(), "3 refused");
    assert_eq!(starts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn run_sends_until_an_answer_is_not_retried() {
    let calls = std::sync::atomic::AtomicU32::new(0);
    let out = run(&policy(), Effect::Idempotent, |attempt: Try| {
        let calls = &calls;
        async move {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if attempt.number < 3 {
                Attempt::NoAnswer {
                    sent: true,
                    error: "lost",
                }
            } else {
                Attempt::Done(attempt.number)
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((out.value, out.attempts, out.after_ambiguous), (3, 3, true));
    assert_eq!(calls.into_inner(), 3);
}

#[test]
fn backoff_grows_and_is_capped() {
    let p = RetryPolicy {
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let first = p.backoff(1);
    assert!(
        first >= Duration::from_millis(50) && first <= Duration::from_millis(150),
        "{first:?}"
    );
    let fourth = p.backoff(4);
    assert!(fourth >= Duration::from_millis(400), "{fourth:?}");
    assert!(p.backoff(30) <= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn waits_back_off_with_jitter_within_the_cap() {
    let p = RetryPolicy {
        max_backoff: Duration::from_millis(500),
        ..policy()
    };
    let results = (1..=5)
        .map(|n| Attempt::NoAnswer {
            sent: false,
            error: format!("#{n}"),
        })
        .collect();
    let (_, starts) = script(&p, Effect::Idempotent, results).await;
    let waits: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(150),
        "{waits:?}"
    );
    assert!(waits[2] >= Duration::from_millis(200), "{waits:?}");
    assert!(waits.iter().all(|w| *w <= Duration::from_millis(500)), "{waits:?}");
}

#[test]
fn retry_after_reads_delta_seconds_only() {
    let h = |v: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static(v));
        retry_after(&headers)
    };
    assert_eq!(h("2"), Some(Duration::from_secs(2)));
    assert_eq!(h("0.5"), Some(Duration::from_millis(500)));
    assert_eq!(h("99999"), Some(Duration::from_secs(3600)));
    assert_eq!(h("soon"), None);
    assert_eq!(h("-1"), None);
    assert_eq!(retry_after(&HeaderMap::new()), None);
}

#[test]
fn a_try_never_outlasts_the_budget() {
    let t = Try {
        number: 2,
        remaining: Duration::from_secs(3),
    };
    assert_eq!(t.timeout(Duration::from_secs(30)), Duration::from_secs(3));
    let spent = Try {
        number: 3,
        remaining: Duration::ZERO,
    };
    assert_eq!(spent.timeout(Duration::from_secs(30)), Duration::from_millis(1));
}

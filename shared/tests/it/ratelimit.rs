//! The global rate limiter against a real Redis: spacing, sliding-window bound, cool-down,
//! a changed limit, a caller that dies mid-wait, and several "processes" sharing one budget.

use std::time::{Duration, Instant};

use flinks_sim::busiest_window_ms;
use shared::config::RedisMode;
use shared::control::Control;
use shared::queue::{EnqueueOptions, LeasedJob, Queue, QueueConfig, WorkerId};
use shared::ratelimit::{eta_at_rate, Attempt, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::support::TestRedis;

#[tokio::test]
async fn permits_are_spaced_evenly_on_the_injected_clock() {
    let redis = TestRedis::new("rl-spacing").await;
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 60.0);
    let interval = limiter.interval().as_millis() as u64;
    assert_eq!(
        interval, 1010,
        "60/min is one per second plus the 1% margin"
    );

    assert_eq!(
        limiter.try_acquire_at(Some(1_000)).await.unwrap(),
        Attempt::Granted
    );
    assert_eq!(
        limiter.try_acquire_at(Some(1_400)).await.unwrap(),
        Attempt::Wait(Duration::from_millis(610))
    );
    assert_eq!(
        limiter.try_acquire_at(Some(2_010)).await.unwrap(),
        Attempt::Granted
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn peeking_answers_like_a_request_but_never_takes_a_permit() {
    let redis = TestRedis::new("rl-peek").await;
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 60.0);

    // A peek on a fresh limiter says "granted" and leaves the permit for the next caller.
    for _ in 0..3 {
        assert_eq!(
            limiter.peek_at(Some(1_000)).await.unwrap(),
            Attempt::Granted
        );
    }
    assert_eq!(
        limiter.try_acquire_at(Some(1_000)).await.unwrap(),
        Attempt::Granted
    );
    // After a grant, a peek reports the same wait a request would, and moves nothing.
    assert_eq!(
        limiter.peek_at(Some(1_400)).await.unwrap(),
        Attempt::Wait(Duration::from_millis(610))
    );
    assert_eq!(
        limiter.peek_at(Some(2_010)).await.unwrap(),
        Attempt::Granted
    );
    assert_eq!(
        limiter.try_acquire_at(Some(2_010)).await.unwrap(),
        Attempt::Granted
    );
    assert!(limiter.wait_until_likely(&CancellationToken::new()).await);
    redis.cleanup().await;
}

#[tokio::test]
async fn no_sliding_window_ever_holds_more_than_the_limit_under_contention() {
    let redis = TestRedis::new("rl-window").await;
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 20.0);
    // Eight callers ask every 250 ms of simulated time for 10 simulated minutes.
    let mut grants = Vec::new();
    let mut now = 0u64;
    while now < 600_000 {
        for _ in 0..8 {
            if limiter.try_acquire_at(Some(now)).await.unwrap() == Attempt::Granted {
                grants.push(now);
            }
        }
        now += 250;
    }
    let busiest_minute = busiest_window_ms(&grants, 60_000);
    assert!(
        busiest_minute <= 20,
        "{busiest_minute} grants in one 60 s window"
    );
    assert!(
        busiest_minute >= 18,
        "utilization: {busiest_minute} grants in the busiest minute"
    );
    assert_eq!(
        busiest_window_ms(&grants, 1_000),
        1,
        "the 1/60-scaled window holds one call"
    );
    assert!(
        grants.len() >= 180,
        "utilization stays honest: {} grants in 10 min",
        grants.len()
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn a_stored_limit_change_applies_to_the_very_next_permit_both_ways() {
    let redis = TestRedis::new("rl-change").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    // The process was started with 600/min; the stored limit is what every process obeys.
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 600.0);
    assert_eq!(control.seed_rate_limit(600.0).await.unwrap(), 600.0);
    assert_eq!(
        limiter.try_acquire_at(Some(0)).await.unwrap(),
        Attempt::Granted
    );

    // Lowered to 6/min: the next permit is one new interval (10.1 s) after the last one.
    control.set_rate_limit(6.0).await.unwrap();
    assert_eq!(
        limiter.try_acquire_at(Some(101)).await.unwrap(),
        Attempt::Wait(Duration::from_millis(10_100 - 101))
    );
    assert_eq!(
        limiter.try_acquire_at(Some(10_100)).await.unwrap(),
        Attempt::Granted
    );

    // Raised back to 600/min: due 101 ms after the last permit, not 10.1 s.
    control.set_rate_limit(600.0).await.unwrap();
    assert_eq!(
        limiter.peek_at(Some(10_150)).await.unwrap(),
        Attempt::Wait(Duration::from_millis(51))
    );
    assert_eq!(
        limiter.try_acquire_at(Some(10_201)).await.unwrap(),
        Attempt::Granted
    );

    // Stored 0 turns the limiter off for every process, whatever its own setting.
    control.set_rate_limit(0.0).await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            limiter.try_acquire_at(Some(10_202)).await.unwrap(),
            Attempt::Granted
        );
    }
    redis.cleanup().await;
}

#[tokio::test]
async fn the_stored_limit_wins_over_a_different_process_setting() {
    let redis = TestRedis::new("rl-seed").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    assert_eq!(control.seed_rate_limit(120.0).await.unwrap(), 120.0);
    // A pod started later with another value keeps the stored one.
    assert_eq!(control.seed_rate_limit(6000.0).await.unwrap(), 120.0);
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 6000.0);
    assert_eq!(
        limiter.try_acquire_at(Some(0)).await.unwrap(),
        Attempt::Granted
    );
    assert_eq!(
        limiter.try_acquire_at(Some(20)).await.unwrap(),
        Attempt::Wait(Duration::from_millis(505 - 20))
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn a_caller_that_dies_while_waiting_reserves_no_budget() {
    let redis = TestRedis::new("rl-dies").await;
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 60.0);
    assert_eq!(
        limiter.try_acquire_at(Some(0)).await.unwrap(),
        Attempt::Granted
    );
    // A caller is told to wait and then vanishes; nothing was reserved for it.
    assert!(matches!(
        limiter.try_acquire_at(Some(10)).await.unwrap(),
        Attempt::Wait(_)
    ));
    // So the next permit is available to anyone exactly one interval after the last grant.
    assert_eq!(
        limiter.try_acquire_at(Some(1_010)).await.unwrap(),
        Attempt::Granted
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn a_cool_down_pauses_every_limiter_of_the_namespace() {
    let redis = TestRedis::new("rl-cool").await;
    let a = RateLimiter::new(redis.conn.clone(), &redis.keys, 6000.0);
    let b = RateLimiter::new(redis.conn.clone(), &redis.keys, 6000.0);
    a.cool_down(Duration::from_millis(400)).await.unwrap();
    match b.try_acquire().await.unwrap() {
        Attempt::Wait(wait) => assert!(wait > Duration::from_millis(300), "{wait:?}"),
        other => panic!("expected a wait during the cool-down, got {other:?}"),
    }
    // A shorter cool-down never shortens a running one.
    b.cool_down(Duration::from_millis(10)).await.unwrap();
    assert!(b.cooldown_remaining().await.unwrap().unwrap() > Duration::from_millis(300));
    let started = Instant::now();
    let permit = b
        .acquire(&CancellationToken::new())
        .await
        .expect("granted after the pause");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(permit.waited >= Duration::from_millis(300));
    redis.cleanup().await;
}

#[tokio::test]
async fn shutdown_interrupts_a_wait_for_a_permit() {
    let redis = TestRedis::new("rl-cancel").await;
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 1.0);
    limiter.acquire(&CancellationToken::new()).await.unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    assert!(limiter.acquire(&cancel).await.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the wait was cut short by shutdown"
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn concurrent_processes_share_one_budget_on_redis_time() {
    let redis = TestRedis::new("rl-shared").await;
    // Four independent connections stand in for four worker pods at 1,200/min (20/s).
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..4 {
        let conn = shared::redis_conn::connect_in_env_mode(&crate::support::redis_url())
            .await
            .unwrap();
        let limiter = RateLimiter::new(conn, &redis.keys, 1200.0);
        tasks.push(tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let mut got = Vec::new();
            while started.elapsed() < Duration::from_millis(1_000) {
                limiter.acquire(&cancel).await.unwrap();
                got.push(started.elapsed().as_millis() as u64);
            }
            got
        }));
    }
    let mut grants = Vec::new();
    for task in tasks {
        grants.extend(task.await.unwrap());
    }
    let within_first_second = grants.iter().filter(|&&t| t < 1_000).count();
    assert!(
        within_first_second <= 21,
        "{within_first_second} grants in 1 s at 20/s"
    );
    assert!(
        within_first_second >= 15,
        "utilization: {within_first_second} grants in 1 s"
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn a_disabled_limiter_grants_at_once_and_has_no_eta() {
    let redis = TestRedis::new("rl-off").await;
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 0.0);
    for _ in 0..100 {
        assert_eq!(limiter.try_acquire().await.unwrap(), Attempt::Granted);
    }
    assert_eq!(eta_at_rate(0.0, 10), None);
    redis.cleanup().await;
}

/// While the limit is off, a limiter that heard so answers peeks itself for a moment; a
/// limit set meanwhile still holds every permit asked of Redis.
#[tokio::test]
async fn peeks_trust_an_answer_that_the_limit_is_off_but_permits_never_do() {
    let redis = TestRedis::new("rl-off-trust").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 60.0);
    let other = RateLimiter::new(redis.conn.clone(), &redis.keys, 60.0);
    assert!(!limiter.off_recently(), "nothing heard yet");
    control.set_rate_limit(0.0).await.unwrap();
    assert_eq!(limiter.peek_at(None).await.unwrap(), Attempt::Granted);
    assert!(limiter.off_recently());
    assert!(
        limiter.clone().off_recently(),
        "clones share what was heard"
    );
    assert!(!other.off_recently(), "another process has heard nothing");

    // A limit is set: this limiter's peeks still trust the last answer...
    control.set_rate_limit(60.0).await.unwrap();
    let cancel = CancellationToken::new();
    assert!(limiter.wait_until_likely(&cancel).await);
    // ...but permits obey it at once, and the first answer ends the trust.
    assert_eq!(limiter.try_acquire().await.unwrap(), Attempt::Granted);
    assert!(!limiter.off_recently());
    assert!(matches!(
        limiter.try_acquire().await.unwrap(),
        Attempt::Wait(_)
    ));
    // The trust is short-lived on its own too.
    control.set_rate_limit(0.0).await.unwrap();
    assert_eq!(limiter.peek_at(None).await.unwrap(), Attempt::Granted);
    assert!(limiter.off_recently());
    let heard = Instant::now();
    assert!(limiter.off_recently_at(heard));
    assert!(!limiter.off_recently_at(heard + shared::ratelimit::OFF_TRUSTED_FOR));
    // A cancelled caller is never told to claim.
    cancel.cancel();
    assert_eq!(limiter.peek_at(None).await.unwrap(), Attempt::Granted);
    assert!(!limiter.wait_until_likely(&cancel).await);
    redis.cleanup().await;
}

#[tokio::test]
async fn only_a_plain_stored_zero_or_an_unset_limit_with_a_zero_fallback_reads_as_off() {
    let redis = TestRedis::new("rl-off-by").await;
    let on = RateLimiter::new(redis.conn.clone(), &redis.keys, 60.0);
    let off = RateLimiter::new(redis.conn.clone(), &redis.keys, 0.0);

    for stored in ["0", "0.0", "-0"] {
        assert!(on.off_by(Some(stored)), "{stored:?}");
    }
    assert!(!on.off_by(None), "nothing stored: the fallback of 60 holds");
    assert!(off.off_by(None), "nothing stored: the fallback of 0 holds");
    // A limit, or text the script might read as a number another way, is never off.
    for stored in ["20", "0.5", " 0", "0x0", "", "abc", "nan"] {
        assert!(!on.off_by(Some(stored)), "{stored:?}");
        assert!(!off.off_by(Some(stored)), "{stored:?}");
    }
    redis.cleanup().await;
}

/// A job whose lease read the stored limit as off a moment ago gets its permit on that
/// read; a limit set after its lease holds the next job's, whose lease reads it.
#[tokio::test]
async fn a_lease_that_read_the_limit_off_grants_a_permit_and_a_limit_set_holds_the_next() {
    let redis = TestRedis::new("rl-lease-read").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let limiter = RateLimiter::new(redis.conn.clone(), &redis.keys, 60.0);
    let queue: Queue<serde_json::Value> = Queue::new(
        redis.conn.clone(),
        &redis.keys,
        QueueConfig::new("rl-lease-read"),
    )
    .with_lease_reads(vec![limiter.limit_read()]);
    for login in ["alice", "bob"] {
        let job = serde_json::json!([login, "2026-11-25"]);
        queue
            .enqueue(&job, EnqueueOptions::default())
            .await
            .unwrap();
    }
    let worker = WorkerId::generate();
    let stored = |job: &LeasedJob<serde_json::Value>| {
        job.reads.as_ref().map(|reads| reads.values[0].clone())
    };

    control.set_rate_limit(0.0).await.unwrap();
    let first = queue.fetch(&worker, 1).await.unwrap().remove(0);
    control.set_rate_limit(60.0).await.unwrap();
    let second = queue.fetch(&worker, 1).await.unwrap().remove(0);

    if redis.conn.mode() == RedisMode::Cluster {
        // No lease reads there: every permit is asked of Redis.
        assert_eq!((first.reads, second.reads), (None, None));
        redis.cleanup().await;
        return;
    }
    let now = Instant::now();
    let first_read = stored(&first).unwrap();
    assert!(!limiter.off_recently());
    let permit = limiter.granted_by_read(first_read.as_deref(), first.leased_at, now);
    assert_eq!(permit.map(|p| p.waited), Some(Duration::ZERO));
    assert!(limiter.off_recently(), "peeks trust the read as well");
    // The same read, once it is as old as peeks would trust, grants nothing.
    let late = first.leased_at + shared::ratelimit::OFF_TRUSTED_FOR;
    assert_eq!(
        limiter.granted_by_read(first_read.as_deref(), first.leased_at, late),
        None
    );
    // The second lease read the limit: its permit is asked of Redis, which spaces them.
    let second_read = stored(&second).unwrap();
    assert_eq!(
        second_read.as_deref().map(str::parse::<f64>),
        Some(Ok(60.0))
    );
    assert_eq!(
        limiter.granted_by_read(second_read.as_deref(), second.leased_at, now),
        None
    );
    assert_eq!(limiter.try_acquire().await.unwrap(), Attempt::Granted);
    assert!(matches!(
        limiter.try_acquire().await.unwrap(),
        Attempt::Wait(_)
    ));
    redis.cleanup().await;
}

#[test]
fn eta_counts_the_spacing_of_what_remains() {
    assert_eq!(eta_at_rate(20.0, 0), Some(Duration::ZERO));
    let eta = eta_at_rate(20.0, 100).unwrap();
    assert!((eta.as_secs_f64() - 303.0).abs() < 0.01, "{eta:?}");
    assert_eq!(eta_at_rate(0.0, 100), None);
}

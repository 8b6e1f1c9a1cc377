//! Operator control with real processes: two `worker` processes follow `producer
//! ratelimit set` and `producer queues pause|resume` without a restart, measured by the
//! simulator's Authorize arrival times.

use std::time::{Duration, Instant};

use flinks_sim::{busiest_window_ms, SimConfig};

use crate::helpers::Stack;

const DATE: &str = "2026-11-27";

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

/// A stack with `logins` enqueued for [`DATE`] and two workers at `per_minute`.
async fn running(test: &str, sim: &flinks_sim::SimHandle, per_minute: u32, logins: usize) -> Stack {
    let mut stack = Stack::new(test, &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", &per_minute.to_string());
    stack.set("WORKER_CONCURRENCY", "8");
    let dir = std::env::temp_dir().join(format!("nr-ctl-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("logins.csv");
    let mut text = String::from("LoginId\n");
    for _ in 0..logins {
        text.push_str(&format!("{}\n", uuid::Uuid::new_v4()));
    }
    std::fs::write(&csv, text).unwrap();
    assert!(stack
        .producer(&["logins", "import", csv.to_str().unwrap()])
        .status
        .success());
    assert!(stack
        .producer(&["routine", "run", "--date", DATE])
        .status
        .success());
    let _ = std::fs::remove_dir_all(dir);
    stack.spawn_worker(&[]);
    stack.spawn_worker(&[]);
    stack
}

/// Waits until the simulator has seen at least `n` Authorize calls.
async fn until_authorized(sim: &flinks_sim::SimHandle, n: usize, within: Duration) {
    let started = Instant::now();
    while sim.stats().await.authorize_timestamps_ms.len() < n {
        assert!(started.elapsed() < within, "fewer than {n} Authorize calls");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets the limit to `per_minute` while the workers run, lets them run `watch` longer,
/// then stops them; returns when the change was stored and when they stopped (epoch ms).
async fn set_limit_then_stop(stack: &mut Stack, per_minute: &str, watch: Duration) -> (u64, u64) {
    let out = stack.producer(&["ratelimit", "set", per_minute]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed = now_ms();
    tokio::time::sleep(watch).await;
    let end = now_ms();
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "worker exited with {status}: {log}");
    }
    (changed, end)
}

fn between(arrivals: &[u64], from: u64, to: u64) -> Vec<u64> {
    arrivals
        .iter()
        .copied()
        .filter(|t| (from..to).contains(t))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_follow_a_lowered_rate_limit_within_five_seconds() {
    // Arrange: two workers authorizing at 600/min.
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = running("ctl-rate", &sim, 600, 300).await;
    until_authorized(&sim, 30, Duration::from_secs(30)).await;

    // Act: lower the limit to 120/min while they run; measure 5 s to 17 s after.
    let changing = now_ms();
    let (changed, end) = set_limit_then_stop(&mut stack, "120", Duration::from_secs(17)).await;

    // Assert: before the change no second held more than 600/min allows; from 5 s after
    // it, no window holds more than 120/min allows, and the rate is 120/min, not a stall.
    let arrivals = sim.stats().await.authorize_timestamps_ms;
    let before = between(&arrivals, 0, changing);
    let after = between(&arrivals, changed + 5_000, end);
    assert!(before.len() >= 30);
    let fast = busiest_window_ms(&before, 1_000);
    assert!(
        fast <= 11,
        "{fast} Authorize calls in one second at 600/min"
    );
    let slow = busiest_window_ms(&after, 1_000);
    assert!(slow <= 3, "{slow} Authorize calls in one second at 120/min");
    let slow_5s = busiest_window_ms(&after, 5_000);
    assert!(slow_5s <= 11, "{slow_5s} Authorize calls in 5 s at 120/min");
    // 12 s at 120/min: 24 permits (the spacing margin takes one off at most).
    assert!(
        (20..=25).contains(&after.len()),
        "{} Authorize calls in the 12 s measured at 120/min",
        after.len()
    );
    assert!(busiest_window_ms(&arrivals, 60_000) <= 600);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_authorize_stops_every_authorize_within_five_seconds_and_resume_restarts() {
    // Arrange: two workers authorizing at 600/min, far from done.
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = running("ctl-pause", &sim, 600, 300).await;
    until_authorized(&sim, 10, Duration::from_secs(30)).await;

    // Act: pause, watch for 8 s, resume.
    let out = stack.producer(&["queues", "pause", "authorize", "--reason", "incident"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paused = now_ms();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let resuming = now_ms();
    let during = sim.stats().await.authorize_timestamps_ms;
    assert!(stack
        .producer(&["queues", "resume", "authorize"])
        .status
        .success());
    let resumed_at = Instant::now();
    until_authorized(&sim, during.len() + 5, Duration::from_secs(5)).await;
    let restarted_within = resumed_at.elapsed();
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "worker exited with {status}: {log}");
    }

    // Assert: jobs leased before the pause may finish, but from 5 s after it nothing
    // reaches Flinks until the resume; then calls start again (within 5 s, checked above).
    let late = between(&during, paused + 5_000, resuming + 1);
    assert!(
        late.is_empty(),
        "{} Authorize calls while paused",
        late.len()
    );
    assert!(
        during.len() < 300,
        "the routine must still have work to pause"
    );
    assert!(restarted_within <= Duration::from_secs(5));
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_with_the_limit_off_follow_a_limit_set_while_they_run() {
    // Arrange: two unthrottled workers against a Flinks that takes 200 ms a call, so the
    // routine lasts long enough to change the limit half-way. While the limit is off a
    // permit is granted on the lease's read of it, without asking the limiter.
    let sim = flinks_sim::spawn(SimConfig {
        faults: flinks_sim::Faults {
            latency_min_ms: 200,
            latency_max_ms: 200,
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = running("ctl-rate-off", &sim, 0, 2000).await;
    until_authorized(&sim, 40, Duration::from_secs(30)).await;

    // Act: set 120/min while they run; measure 5 s to 12 s after.
    let (changed, end) = set_limit_then_stop(&mut stack, "120", Duration::from_secs(12)).await;

    // Assert: every lease after the change read the limit, so from 5 s on the workers keep
    // to 120/min: 14 permits in 7 s at most, and the routine still moves.
    let arrivals = sim.stats().await.authorize_timestamps_ms;
    let after = between(&arrivals, changed + 5_000, end);
    let slow = busiest_window_ms(&after, 1_000);
    assert!(slow <= 3, "{slow} Authorize calls in one second at 120/min");
    assert!(
        (10..=15).contains(&after.len()),
        "{} Authorize calls in the 7 s measured at 120/min",
        after.len()
    );
    assert!(
        arrivals.len() < 2000,
        "the routine must still have work when the limit is set"
    );
    stack.cleanup().await;
}

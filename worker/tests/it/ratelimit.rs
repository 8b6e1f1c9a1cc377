//! The global rate limit with real processes: four `worker` processes share one budget
//! enforced in Redis, checked against the simulator's own throttle and arrival times.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use flinks_sim::{busiest_window_ms, Rules, SimConfig, Throttle};
use shared::ledger::Ledger;

use crate::helpers::Stack;

const DATE: &str = "2026-11-26";
const LIMIT_PER_MINUTE: u64 = 240;
const LOGINS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_one_budget_and_never_trip_the_flinks_throttle() {
    // Arrange: the simulator throttles at the same 240/min the workers are limited to.
    let sim = flinks_sim::spawn(SimConfig {
        rules: Rules::default(),
        throttle: Some(Throttle {
            max_calls: LIMIT_PER_MINUTE as u32,
            window: Duration::from_secs(60),
            status: 401,
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("ratelimit", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", &LIMIT_PER_MINUTE.to_string());
    stack.set("WORKER_CONCURRENCY", "16");
    let dir = std::env::temp_dir().join(format!("nr-rl-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("logins.csv");
    let mut text = String::from("LoginId\n");
    for _ in 0..LOGINS {
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

    // Act: four worker processes drain the routine.
    let started = Instant::now();
    for _ in 0..4 {
        stack.spawn_worker(&[]);
    }
    let date = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    loop {
        let done = ledger.counts(date).await.unwrap().done();
        if done as usize >= LOGINS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "{done} done after 150 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "worker exited with {status}: {log}");
    }

    // Assert: nothing throttled, no window over the limit, and the run took as long as the
    // limit demands (the spacing is honest, not padded: at most ~10% over the minimum).
    let stats = sim.stats().await;
    assert_eq!(stats.throttle_violations, 0);
    assert_eq!(
        stats.calls("authorize", 200),
        LOGINS as u64,
        "one authorize per login"
    );
    let arrivals = &stats.authorize_timestamps_ms;
    assert!(busiest_window_ms(arrivals, 60_000) <= LIMIT_PER_MINUTE);
    let per_second = busiest_window_ms(arrivals, 1_000);
    assert!(
        per_second <= LIMIT_PER_MINUTE / 60 + 1,
        "{per_second} authorizations in one second at {LIMIT_PER_MINUTE}/min"
    );
    let minimum = Duration::from_secs_f64((LOGINS - 1) as f64 * 60.0 / LIMIT_PER_MINUTE as f64);
    assert!(
        elapsed >= minimum,
        "took {elapsed:?}, the limit allows no less than {minimum:?}"
    );
    let first = arrivals.iter().min().unwrap();
    let last = arrivals.iter().max().unwrap();
    let span = Duration::from_millis(last - first);
    assert!(
        span <= minimum.mul_f64(1.10),
        "authorizations spanned {span:?}; the limit allows {minimum:?}: utilization is poor"
    );

    stack.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_flinks_throttles_anyway_every_worker_cools_down_and_no_login_fails() {
    // Arrange: Flinks allows 2 Authorize calls per second, but the workers were
    // (mis)configured for 20 per second, and only two attempts are allowed per job.
    let sim = flinks_sim::spawn(SimConfig {
        throttle: Some(Throttle {
            max_calls: 2,
            window: Duration::from_secs(1),
            status: 401,
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("cooldown", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "1200");
    stack.set("RATE_LIMIT_COOLDOWN", "1s");
    stack.set("MAX_ATTEMPTS", "2");
    let dir = std::env::temp_dir().join(format!("nr-cool-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("logins.csv");
    let mut text = String::from("LoginId\n");
    for _ in 0..24 {
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

    // Act
    stack.spawn_worker(&[]);
    stack.spawn_worker(&[]);
    let date = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    let started = Instant::now();
    while ledger.counts(date).await.unwrap().done() < 24 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not done after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "worker exited with {status}: {log}");
    }

    // Assert: Flinks did throttle, yet every login was refreshed: throttled calls cost no
    // attempt, and the cool-down kept the violations to a few.
    let stats = sim.stats().await;
    let counts = ledger.counts(date).await.unwrap();
    assert_eq!((counts.refreshed, counts.failed), (24, 0));
    assert!(
        stats.throttle_violations > 0,
        "the scenario must actually throttle"
    );
    assert!(
        stats.throttle_violations < 24,
        "{} violations: the cool-down did not hold the workers back",
        stats.throttle_violations
    );

    stack.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_authorize_token_never_puts_two_authorizes_into_one_permit() {
    // Arrange: every /Authorize needs a fresh token, and minting one takes 0 to 1.5 s at
    // random. The permit must be taken after the token, right before /Authorize, or a slow
    // token lets the next permit's call overtake it and crowd one window.
    const LOGINS: usize = 250;
    let sim = flinks_sim::spawn(SimConfig {
        throttle: Some(Throttle::per_minute(LIMIT_PER_MINUTE as u32)),
        secret_key: Some("sim-secret".into()),
        token_latency_ms: (0, 1_500),
        faults: flinks_sim::Faults {
            seed: 11,
            ..flinks_sim::Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("ratelimit-token", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", &LIMIT_PER_MINUTE.to_string());
    stack.set("FLINKS_SECRET_KEY", "sim-secret");
    stack.set("WORKER_CONCURRENCY", "8");
    let dir = std::env::temp_dir().join(format!("nr-rl-tok-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("logins.csv");
    let mut text = String::from("LoginId\n");
    for _ in 0..LOGINS {
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

    // Act: three worker processes drain the routine.
    for _ in 0..3 {
        stack.spawn_worker(&[]);
    }
    let date = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    let started = Instant::now();
    while (ledger.counts(date).await.unwrap().done() as usize) < LOGINS {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "not done after 150 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "worker exited with {status}: {log}");
    }

    // Assert: the run spans more than one window, and no 60 s window (nor any second)
    // holds more Authorizes than the limit allows.
    let stats = sim.stats().await;
    assert_eq!(stats.throttle_violations, 0);
    let arrivals = &stats.authorize_timestamps_ms;
    assert_eq!(arrivals.len(), LOGINS, "one authorize per login");
    let span = arrivals.iter().max().unwrap() - arrivals.iter().min().unwrap();
    assert!(span > 60_000, "the run must span a full window ({span} ms)");
    let busiest = busiest_window_ms(arrivals, 60_000);
    assert!(
        busiest <= LIMIT_PER_MINUTE,
        "{busiest} authorizations in one 60 s window at {LIMIT_PER_MINUTE}/min"
    );
    let per_second = busiest_window_ms(arrivals, 1_000);
    assert!(
        per_second <= LIMIT_PER_MINUTE / 60 + 1,
        "{per_second} authorizations in one second at {LIMIT_PER_MINUTE}/min"
    );

    stack.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

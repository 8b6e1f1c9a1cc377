//! The reliability guarantees, proved for the whole system: real `worker` processes killed with SIGKILL,
//! stopped with SIGTERM, cut off from a restarted Redis, fed bad input, against the Flinks
//! simulator. The queue-level versions of these live in `shared/tests/it/queue/`; these
//! check that the worker wiring (heartbeat, drain, ledger) keeps the guarantees.
//!
//! Every test has a namespace of its own on the shared Redis, except the Redis-restart
//! test, which runs its own `redis-server` (AOF, `appendfsync everysec`).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use flinks_sim::{endpoint, Faults, SimConfig, SimHandle};
use shared::jobs::{AuthorizeJob, DetailJob, AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::ledger::{LedgerOutcome, Overwrite};
use shared::queue::{EnqueueOptions, Queue, QueueConfig, WorkerId};
use shared::{LoginId, RequestId};

use crate::helpers::{free_port, http_status, new_logins, parse_date, RedisServer, Stack};

const DATE: &str = "2026-11-26";

/// A simulator where every call takes `latency` (all logins healthy).
async fn slow_sim(latency: Duration) -> SimHandle {
    let ms = latency.as_millis() as u64;
    flinks_sim::spawn(SimConfig {
        faults: Faults {
            latency_min_ms: ms,
            latency_max_ms: ms,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Settings that make a test fast: a generous rate limit, quick retries and polls.
fn fast(stack: &mut Stack, lease: &str) {
    for (key, value) in [
        ("RATE_LIMIT_PER_MINUTE", "6000"),
        ("POLL_INTERVAL", "200ms"),
        ("RETRY_BASE_DELAY", "100ms"),
        ("RETRY_MAX_DELAY", "400ms"),
        ("MAX_ATTEMPTS", "3"),
        ("WORKER_LEASE", lease),
    ] {
        stack.set(key, value);
    }
}

/// Waits until `queue` has at least `n` jobs in flight; panics after 20 s.
async fn wait_in_flight(stack: &Stack, queue: &str, n: u64) {
    let started = Instant::now();
    while stack.queue_stats(queue).await.in_flight < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{queue} never had {n} jobs in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that both queues end empty: nothing ready, delayed, leased or dead. A job's
/// outcome is recorded before its ack, so the last ack may land just after the last outcome:
/// give it a moment (a hang guard, not a speed assertion).
async fn assert_queues_empty(stack: &Stack) {
    for queue in [AUTHORIZE_QUEUE, DETAIL_QUEUE] {
        let started = Instant::now();
        let mut s = stack.queue_stats(queue).await;
        while (s.ready, s.delayed, s.in_flight) != (0, 0, 0)
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s = stack.queue_stats(queue).await;
        }
        assert_eq!(
            (s.ready, s.delayed, s.in_flight, s.dead),
            (0, 0, 0, 0),
            "{queue} is not empty: {s:?}"
        );
    }
}

/// Asserts one `refreshed` ledger entry per login and one results-stream entry each.
async fn assert_all_refreshed_once(stack: &Stack, logins: &[LoginId]) {
    let date = parse_date(DATE);
    let ledger = stack.ledger();
    for login in logins {
        let outcome = ledger.get(date, login).await.unwrap();
        assert!(
            matches!(outcome, Some(LedgerOutcome::Refreshed { .. })),
            "{login:?} ended as {outcome:?}"
        );
    }
    let counts = ledger.counts(date).await.unwrap();
    assert_eq!(counts.refreshed, logins.len() as u64);
    assert_eq!(
        stack.results_len().await,
        logins.len() as u64,
        "exactly one results-stream entry per login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_mid_job_has_its_jobs_finished_by_another_after_the_lease() {
    // Arrange: every call takes 1.5 s; one worker leases all 12 authorize jobs.
    let sim = slow_sim(Duration::from_millis(1500)).await;
    let mut stack = Stack::new("kill9", &sim.base_url).await;
    fast(&mut stack, "1s");
    let logins = new_logins(12);
    stack.import_and_run(&logins, DATE);
    let first = stack.spawn_worker(&["--concurrency", "12"]);
    wait_in_flight(&stack, AUTHORIZE_QUEUE, 12).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: SIGKILL while every Authorize call is in progress, then start a second worker.
    let before_kill = sim.stats().await;
    stack.signal_worker(first, "KILL");
    let (status, _) = stack.wait_worker(first, Duration::from_secs(5)).await;
    assert_eq!(status.code(), None, "killed by a signal");
    let orphaned = stack.queue_stats(AUTHORIZE_QUEUE).await.in_flight;
    let killed_at = Instant::now();
    stack.spawn_worker(&["--concurrency", "12"]);
    stack.wait_done(DATE, 12, Duration::from_secs(30)).await;

    // Assert: the dead worker's leases expired and the second worker ran every job once more.
    assert_eq!(before_kill.total_calls(endpoint::GET_ACCOUNTS_DETAIL), 0);
    assert_eq!(
        orphaned, 12,
        "the killed worker's jobs stay leased until the lease ends"
    );
    assert!(killed_at.elapsed() >= Duration::from_secs(1));
    let authorize = stack.queue_stats(AUTHORIZE_QUEUE).await;
    assert_eq!(authorize.rescued_total, 12, "{authorize:?}");
    assert_all_refreshed_once(&stack, &logins).await;
    let stats = sim.stats().await;
    for login in &logins {
        // The killed worker never reached GetAccountsDetail: one fetch, by the rescuer.
        assert_eq!(
            stats.calls_for_login(login.as_str(), endpoint::GET_ACCOUNTS_DETAIL),
            1
        );
    }
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_slower_than_the_lease_keeps_its_lease_by_heartbeat_and_runs_on_one_worker_only() {
    // Arrange: every call takes 3 s, the lease is 1 s, two workers compete for 8 logins.
    let sim = slow_sim(Duration::from_secs(3)).await;
    let mut stack = Stack::new("heartbeat", &sim.base_url).await;
    fast(&mut stack, "1s");
    let logins = new_logins(8);
    stack.import_and_run(&logins, DATE);

    // Act
    stack.spawn_worker(&["--concurrency", "4"]);
    stack.spawn_worker(&["--concurrency", "4"]);
    stack.wait_done(DATE, 8, Duration::from_secs(40)).await;

    // Assert: no lease ever expired, so each login was authorized and fetched exactly once.
    let stats = sim.stats().await;
    for login in &logins {
        assert_eq!(
            stats.calls_for_login(login.as_str(), endpoint::AUTHORIZE),
            1,
            "Authorize calls"
        );
        assert_eq!(
            stats.calls_for_login(login.as_str(), endpoint::GET_ACCOUNTS_DETAIL),
            1,
            "GetAccountsDetail calls"
        );
    }
    for queue in [AUTHORIZE_QUEUE, DETAIL_QUEUE] {
        assert_eq!(stack.queue_stats(queue).await.rescued_total, 0, "{queue}");
    }
    assert_all_refreshed_once(&stack, &logins).await;
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_jobs_finish_exits_0_and_a_second_worker_finishes_the_rest() {
    // Arrange: calls take 2 s; the worker runs 4 of 8 logins at a time; grace 10 s.
    let sim = slow_sim(Duration::from_secs(2)).await;
    let mut stack = Stack::new("sigterm", &sim.base_url).await;
    fast(&mut stack, "2s");
    stack.set("SHUTDOWN_GRACE", "10s");
    let logins = new_logins(8);
    stack.import_and_run(&logins, DATE);
    let first = stack.spawn_worker(&["--concurrency", "4"]);
    wait_in_flight(&stack, AUTHORIZE_QUEUE, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: SIGTERM mid-call.
    let signalled = Instant::now();
    stack.signal_worker(first, "TERM");
    let (status, log) = stack.wait_worker(first, Duration::from_secs(15)).await;
    let drained_in = signalled.elapsed();
    let after_drain = (
        stack.queue_stats(AUTHORIZE_QUEUE).await,
        stack.queue_stats(DETAIL_QUEUE).await,
    );
    stack.spawn_worker(&["--concurrency", "4"]);
    stack.wait_done(DATE, 8, Duration::from_secs(40)).await;

    // Assert: exit 0 within the grace; nothing left leased; the in-flight calls finished
    // (so nothing ran twice); the second worker did the rest.
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(drained_in < Duration::from_secs(10), "took {drained_in:?}");
    assert_eq!(after_drain.0.in_flight, 0, "{:?}", after_drain.0);
    assert_eq!(after_drain.1.in_flight, 0, "{:?}", after_drain.1);
    assert!(
        after_drain.0.succeeded_total >= 4,
        "the in-flight authorize jobs finished: {:?}",
        after_drain.0
    );
    let stats = sim.stats().await;
    for login in &logins {
        assert_eq!(
            stats.calls_for_login(login.as_str(), endpoint::AUTHORIZE),
            1
        );
        assert_eq!(
            stats.calls_for_login(login.as_str(), endpoint::GET_ACCOUNTS_DETAIL),
            1
        );
    }
    for queue in [AUTHORIZE_QUEUE, DETAIL_QUEUE] {
        assert_eq!(stack.queue_stats(queue).await.rescued_total, 0, "{queue}");
    }
    assert_all_refreshed_once(&stack, &logins).await;
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_returns_jobs_it_could_not_finish_within_the_grace_to_the_queue_at_once() {
    // Arrange: calls take 4 s, the grace is 500 ms, the lease a long 30 s.
    let sim = slow_sim(Duration::from_secs(4)).await;
    let mut stack = Stack::new("grace", &sim.base_url).await;
    fast(&mut stack, "30s");
    stack.set("SHUTDOWN_GRACE", "500ms");
    let logins = new_logins(3);
    stack.import_and_run(&logins, DATE);
    let first = stack.spawn_worker(&["--concurrency", "3"]);
    wait_in_flight(&stack, AUTHORIZE_QUEUE, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act
    stack.signal_worker(first, "TERM");
    let (status, log) = stack.wait_worker(first, Duration::from_secs(10)).await;
    let after = stack.queue_stats(AUTHORIZE_QUEUE).await;
    let restarted = Instant::now();
    stack.spawn_worker(&["--concurrency", "3"]);
    stack.wait_done(DATE, 3, Duration::from_secs(25)).await;

    // Assert: exit 0; the cut-off jobs went back to ready (not left leased for 30 s).
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(after.in_flight, 0, "{after:?}");
    assert_eq!(after.ready, 3, "{after:?}");
    assert!(restarted.elapsed() < Duration::from_secs(25));
    assert_eq!(stack.queue_stats(AUTHORIZE_QUEUE).await.rescued_total, 0);
    assert_all_refreshed_once(&stack, &logins).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_crash_past_the_store_calls_nothing_and_stores_nothing_twice() {
    // Arrange: a routine that completed for 5 logins.
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new("once", &sim.base_url).await;
    fast(&mut stack, "1s");
    let logins = new_logins(5);
    stack.import_and_run(&logins, DATE);
    stack.spawn_worker(&[]);
    stack.wait_done(DATE, 5, Duration::from_secs(30)).await;
    let before = sim.stats().await;
    assert_eq!(stack.results_len().await, 5);

    // Act: recreate the state a worker leaves when it dies after the atomic ledger+stream
    // write and before the ack: the same jobs leased to a dead worker. The running worker's
    // reaper rescues them after the lease and runs them again.
    let lease = Duration::from_secs(1);
    let authorize: Queue<AuthorizeJob> = Queue::new(
        stack.conn.clone(),
        &stack.keys,
        QueueConfig::new(AUTHORIZE_QUEUE).with_lease(lease),
    );
    let detail: Queue<DetailJob> = Queue::new(
        stack.conn.clone(),
        &stack.keys,
        QueueConfig::new(DETAIL_QUEUE).with_lease(lease),
    );
    let dead = WorkerId::generate();
    let date = parse_date(DATE);
    for login in &logins {
        let job = AuthorizeJob::new(login.clone(), date);
        authorize
            .enqueue(&job, EnqueueOptions::default())
            .await
            .unwrap();
        detail
            .enqueue(&chained_detail_job(login, date), EnqueueOptions::default())
            .await
            .unwrap();
    }
    // Lease them under a worker id that will never heartbeat (the dead process).
    let mut leased = 0;
    let started = Instant::now();
    while leased < 10 && started.elapsed() < Duration::from_secs(5) {
        leased += authorize.fetch(&dead, 5).await.unwrap().len();
        leased += detail.fetch(&dead, 5).await.unwrap().len();
    }
    let started = Instant::now();
    loop {
        let (a, d) = (
            stack.queue_stats(AUTHORIZE_QUEUE).await,
            stack.queue_stats(DETAIL_QUEUE).await,
        );
        if a.rescued_total + d.rescued_total >= leased as u64
            && a.in_flight + a.ready + d.in_flight + d.ready == 0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "redeliveries not settled: {a:?} {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert: the redeliveries were no-ops: no new Flinks call, no second stream entry.
    assert!(leased > 0, "the test leased nothing");
    let after = sim.stats().await;
    for name in [endpoint::AUTHORIZE, endpoint::GET_ACCOUNTS_DETAIL] {
        assert_eq!(after.total_calls(name), before.total_calls(name), "{name}");
    }
    assert_all_refreshed_once(&stack, &logins).await;
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detail_job_handed_back_after_its_store_is_checked_again_and_calls_nothing() {
    // Arrange: a routine that completed for 3 logins.
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new("handed-back", &sim.base_url).await;
    fast(&mut stack, "1s");
    let logins = new_logins(3);
    stack.import_and_run(&logins, DATE);
    stack.spawn_worker(&[]);
    stack.wait_done(DATE, 3, Duration::from_secs(30)).await;
    let before = sim.stats().await;
    let acked_before = stack.queue_stats(DETAIL_QUEUE).await.succeeded_total;

    // Act: what a graceful stop leaves when the grace cut a handler off after its store:
    // the detail job handed back on its first attempt, which it does not spend.
    let detail: Queue<DetailJob> = Queue::new(
        stack.conn.clone(),
        &stack.keys,
        QueueConfig::new(DETAIL_QUEUE),
    );
    let stopping = WorkerId::generate();
    let date = parse_date(DATE);
    for login in &logins {
        detail
            .enqueue(&chained_detail_job(login, date), EnqueueOptions::default())
            .await
            .unwrap();
    }
    let mut handed_back = 0;
    let started = Instant::now();
    while handed_back < logins.len() && started.elapsed() < Duration::from_secs(5) {
        for job in detail.fetch(&stopping, 3).await.unwrap() {
            handed_back += detail.release(&[(job.id, job.token)]).await.unwrap();
        }
    }
    let started = Instant::now();
    while stack.queue_stats(DETAIL_QUEUE).await.succeeded_total < acked_before + handed_back as u64
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "handed-back jobs not settled: {:?}",
            stack.queue_stats(DETAIL_QUEUE).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert: each came back and settled without calling Flinks (its ledger read found
    // the date done), and each login still has one refresh recorded.
    assert_eq!(handed_back, logins.len());
    let after = sim.stats().await;
    assert_eq!(
        after.total_calls(endpoint::GET_ACCOUNTS_DETAIL),
        before.total_calls(endpoint::GET_ACCOUNTS_DETAIL)
    );
    assert_all_refreshed_once(&stack, &logins).await;
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_a_redis_restart_reports_not_ready_meanwhile_and_loses_no_persisted_job()
{
    // Arrange: a Redis of the test's own (AOF everysec), 30 logins at 300 a minute.
    let mut redis = RedisServer::start().await;
    let sim = slow_sim(Duration::from_millis(100)).await;
    let mut stack = Stack::on_redis("redis-restart", &sim.base_url, &redis.url()).await;
    fast(&mut stack, "2s");
    stack.set("RATE_LIMIT_PER_MINUTE", "300");
    let ops = format!("127.0.0.1:{}", free_port());
    stack.set("METRICS_ADDR", &ops);
    let logins = new_logins(30);
    stack.import_and_run(&logins, DATE);
    let worker = stack.spawn_worker(&["--concurrency", "4"]);
    stack.wait_done(DATE, 5, Duration::from_secs(30)).await;
    assert_eq!(http_status(&ops, "/readyz").await, Some(200));
    // The routine's jobs were written long before: the AOF (fsync every second) has them.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Act: SIGKILL Redis, keep it down for a while, restart it on the same port and dir.
    redis.kill();
    let started = Instant::now();
    while http_status(&ops, "/readyz").await != Some(503) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/readyz never said 503"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        http_status(&ops, "/healthz").await,
        Some(200),
        "alive though not ready"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(stack.worker_running(worker), "{}", stack.worker_log(worker));
    redis.restart().await;
    let started = Instant::now();
    while http_status(&ops, "/readyz").await != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.wait_done(DATE, 30, Duration::from_secs(60)).await;

    // Assert: the same worker finished every login; each result stored once.
    assert!(stack.worker_running(worker), "{}", stack.worker_log(worker));
    assert_all_refreshed_once(&stack, &logins).await;
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_payload_that_does_not_deserialize_is_dead_lettered_with_the_reason_and_the_worker_carries_on(
) {
    // Arrange: a poison authorize job ahead of three good ones.
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new("poison", &sim.base_url).await;
    fast(&mut stack, "2s");
    let poison: Queue<serde_json::Value> = stack.queue(AUTHORIZE_QUEUE);
    poison
        .enqueue(
            &serde_json::json!({"login_id": 42, "routine_date": "yesterday"}),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let logins = new_logins(3);
    stack.import_and_run(&logins, DATE);

    // Act
    let worker = stack.spawn_worker(&[]);
    stack.wait_done(DATE, 3, Duration::from_secs(30)).await;

    // Assert: one dead letter saying why; the good jobs ran; the worker is still up.
    let dead = poison.list_dead(&Default::default(), 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(
        reason.starts_with("undecodable payload") && reason.contains("expected a string"),
        "the dead letter says why: {reason}"
    );
    assert!(stack.worker_running(worker));
    assert_all_refreshed_once(&stack, &logins).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_values_make_the_worker_exit_2_with_a_message_naming_the_variable() {
    for (key, value) in [
        ("WORKER_LEASE", "banana"),
        ("WORKER_CONCURRENCY", "-3"),
        ("WORKER_THREADS", "0"),
        ("SHUTDOWN_GRACE", "soon"),
        ("RATE_LIMIT_PER_MINUTE", "lots"),
        ("DETAIL_TIMEOUT", "2s"),
    ] {
        let mut stack = Stack::new("config", "http://127.0.0.1:9/v3/x/BankingServices").await;
        stack.set(key, value);
        let pid = stack.spawn_worker(&[]);
        let (status, log) = stack.wait_worker(pid, Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(2), "{key}={value}: {log}");
        assert!(
            log.contains(key),
            "{key}={value}: the message names it: {log}"
        );
    }
}

/// A bucket count other than the one the namespace's data is laid out in is the
/// operator's to fix (set it back, or start an empty namespace): exit 2, as any bad setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_count_other_than_the_datas_makes_worker_and_producer_exit_2() {
    let mut stack = Stack::new("buckets", "http://127.0.0.1:9/v3/x/BankingServices").await;
    let login = new_logins(1).remove(0);
    let add = stack.producer(&["logins", "add", login.as_str()]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let stored = stack.keys.buckets();
    let other = if stored == 8 { "16" } else { "8" };
    stack.set("KEY_BUCKETS", other);

    let producer = stack.producer(&["logins", "list"]);
    let pid = stack.spawn_worker(&[]);
    let (worker, log) = stack.wait_worker(pid, Duration::from_secs(20)).await;

    let producer_err = String::from_utf8_lossy(&producer.stderr).to_string();
    assert_eq!(producer.status.code(), Some(2), "{producer_err}");
    assert!(
        producer_err.contains(&format!("set KEY_BUCKETS={stored}")),
        "{producer_err}"
    );
    assert_eq!(worker.code(), Some(2), "{log}");
    assert!(log.contains(&format!("set KEY_BUCKETS={stored}")), "{log}");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_flinks_gets_jobs_retried_then_failed_and_the_worker_stays_alive() {
    // Arrange: nothing listens where Flinks should be.
    let base = format!("http://127.0.0.1:{}/v3/x/BankingServices", free_port());
    let mut stack = Stack::new("unreachable", &base).await;
    fast(&mut stack, "2s");
    let logins = new_logins(3);
    stack.import_and_run(&logins, DATE);

    // Act
    let worker = stack.spawn_worker(&[]);
    stack.wait_done(DATE, 3, Duration::from_secs(30)).await;

    // Assert: each login failed after its attempts, with a reason; nothing dead-lettered.
    let ledger = stack.ledger();
    for login in &logins {
        match ledger.get(parse_date(DATE), login).await.unwrap() {
            Some(LedgerOutcome::Failed {
                attempts, message, ..
            }) => {
                assert_eq!(attempts, 3, "MAX_ATTEMPTS deliveries");
                assert!(!message.is_empty());
            }
            other => panic!("expected failed, got {other:?}"),
        }
    }
    assert!(stack.worker_running(worker));
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

/// A fake Flinks answering every request that mentions a LoginId with that LoginId's
/// canned (status, content type, body); anything else gets a 404.
async fn canned_flinks(answers: Vec<(LoginId, u16, &'static str, &'static str)>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = std::sync::Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the headers, then Content-Length bytes of body.
                let (head_end, length) = loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while request.len() < head_end + length {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&request);
                let (status, kind, body) = answers
                    .iter()
                    .find(|(login, ..)| text.contains(login.as_str()))
                    .map(|(_, s, k, b)| (*s, *k, *b))
                    .unwrap_or((404, "text/plain", "not found"));
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}/v3/43387ca6-0391-4c82-857d-70d95f087ecb/BankingServices")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_html_pages_and_unknown_flinks_codes_end_in_a_classified_failure_without_crashing(
) {
    // Arrange: four logins whose Authorize answer is broken in four ways.
    let logins = new_logins(4);
    let base = canned_flinks(vec![
        (
            logins[0].clone(),
            200,
            "application/json",
            r#"{"HttpStatusCode":200,"Login":{"Id":"#,
        ),
        (
            logins[1].clone(),
            502,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        (
            logins[2].clone(),
            400,
            "application/json",
            r#"{"HttpStatusCode":400,"FlinksCode":"SOMETHING_BRAND_NEW","Message":"new"}"#,
        ),
        (
            logins[3].clone(),
            200,
            "text/html",
            "<html>maintenance</html>",
        ),
    ])
    .await;
    let mut stack = Stack::new("bad-answers", &base).await;
    fast(&mut stack, "2s");
    stack.import_and_run(&logins, DATE);

    // Act
    let worker = stack.spawn_worker(&[]);
    stack.wait_done(DATE, 4, Duration::from_secs(30)).await;

    // Assert: each ends failed with a reason (the unknown code kept as such); worker alive.
    let ledger = stack.ledger();
    for (i, login) in logins.iter().enumerate() {
        let outcome = ledger.get(parse_date(DATE), login).await.unwrap();
        let Some(outcome @ LedgerOutcome::Failed { .. }) = outcome else {
            panic!("login {i}: expected failed, got {outcome:?}");
        };
        assert!(
            outcome.message().is_some_and(|m| !m.is_empty()),
            "login {i}: {outcome:?}"
        );
        if i == 2 {
            assert_eq!(
                outcome.flinks_code(),
                Some(&shared::FlinksCode::parse("SOMETHING_BRAND_NEW")),
                "{outcome:?}"
            );
        }
    }
    assert!(stack.worker_running(worker));
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_5xx_html_and_truncated_answers_are_retried_and_every_login_still_ends_exactly_once()
{
    // Arrange: 30% 5xx (half HTML), 15% truncated JSON; 20 healthy logins, 5 attempts.
    let sim = flinks_sim::spawn(SimConfig {
        faults: Faults {
            seed: 8,
            error_rate: 0.3,
            malformed_rate: 0.15,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("faults", &sim.base_url).await;
    fast(&mut stack, "2s");
    stack.set("MAX_ATTEMPTS", "5");
    let logins = new_logins(20);
    stack.import_and_run(&logins, DATE);

    // Act
    let worker = stack.spawn_worker(&[]);
    stack.wait_done(DATE, 20, Duration::from_secs(60)).await;

    // Assert: one outcome each; one stored result per refreshed login; no dead letters.
    let stats = sim.stats().await;
    assert!(
        stats.faults.errors > 0 && stats.faults.malformed > 0,
        "{:?}",
        stats.faults
    );
    let counts = stack.ledger().counts(parse_date(DATE)).await.unwrap();
    assert_eq!(counts.done(), 20);
    assert_eq!(stack.results_len().await, counts.refreshed);
    assert!(stack.worker_running(worker));
    assert_queues_empty(&stack).await;
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_update_a_crash_left_in_the_outbox_is_applied_by_a_worker_at_startup() {
    // Arrange: an outcome whose ledger write happened and whose registry update did not
    // (the process died between the two).
    let mut stack = Stack::new("outbox", "http://127.0.0.1:9/unused").await;
    let login = new_logins(1).remove(0);
    stack.import_logins(std::slice::from_ref(&login));
    let outcome = LedgerOutcome::NeedsReauth {
        flinks_code: Some(shared::FlinksCode::parse("SESSION_EXPIRED")),
        message: Some("reconnect".into()),
        request_id: None,
        at: chrono::Utc::now(),
        unrecognised_code: false,
    };
    stack
        .ledger()
        .record(
            parse_date(DATE),
            &login,
            &outcome,
            Overwrite::AllButRefreshed,
        )
        .await
        .unwrap();
    let registry = shared::registry::Registry::new(stack.conn.clone(), &stack.keys);
    let stale = registry.get(&login).await.unwrap().unwrap();
    assert_eq!(stale.last_outcome, None);

    // Act: a worker starts.
    let worker = stack.spawn_worker(&[]);

    // Assert: its outbox drain brings the registry up to date.
    let started = Instant::now();
    loop {
        let status = registry.get(&login).await.unwrap().unwrap();
        if status.last_outcome.as_deref() == Some("needs_reauth") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "registry still stale: {status:?}\n{}",
            stack.worker_log(worker)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(registry.history(&login).await.unwrap(), vec![outcome]);
    let outcomes = shared::outcomes::Outcomes::new(stack.conn.clone(), &stack.keys);
    assert_eq!(outcomes.pending().await.unwrap(), 0);
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "{status}: {log}");
    }
    stack.cleanup().await;
}

/// A detail job as an authorize step chains it, before its first GetAccountsDetail call.
fn chained_detail_job(login: &LoginId, date: NaiveDate) -> DetailJob {
    DetailJob {
        login_id: login.clone(),
        routine_date: date,
        request_id: RequestId::new(uuid::Uuid::new_v4().to_string()),
        last_refresh: None,
        session_restarts: 0,
        polling_since: None,
        polls: 0,
    }
}

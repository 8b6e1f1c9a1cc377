//! apalis-core workers running on `RedisBackend`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::attempt::Attempt;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use shared::queue::{EnqueueOptions, JobFailure, JobFilter, Queue, RedisBackend};
use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimitLayer;

use super::{eventually, Ping, TestNs};

/// Runs per job number, shared with handlers.
#[derive(Clone, Default)]
pub(crate) struct Runs(Arc<Mutex<HashMap<u64, u32>>>);

impl Runs {
    pub(crate) fn record(&self, n: u64) {
        *self.0.lock().unwrap().entry(n).or_insert(0) += 1;
    }
    pub(crate) fn get(&self) -> HashMap<u64, u32> {
        self.0.lock().unwrap().clone()
    }
}

pub(crate) fn stop_signal(
    token: &CancellationToken,
) -> impl std::future::Future<Output = Result<(), std::io::Error>> {
    let token = token.clone();
    async move {
        token.cancelled().await;
        Ok(())
    }
}

async fn outcome_handler(job: Ping, attempt: Attempt, runs: Data<Runs>) -> Result<(), BoxDynError> {
    runs.record(job.n);
    match job.n % 4 {
        0 => Ok(()),
        1 if attempt.current() < 2 => {
            Err(JobFailure::retry_after("try again", Duration::from_millis(10)).into())
        }
        1 => Ok(()),
        2 => Err(JobFailure::permanent("bad login").into()),
        _ => Err("unclassified error".into()), // retried with the queue's backoff
    }
}

#[tokio::test]
async fn apalis_worker_acks_successes_and_the_handler_result_decides_retry_or_dead() {
    let t = TestNs::new("apalis").await;
    let mut c = t.config("q");
    c.max_attempts = 3;
    let q: Queue<Ping> = t.queue(c);
    q.enqueue_many((0..8).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("apalis-test")
        .backend(RedisBackend::new(q.clone()))
        .data(runs.clone())
        .build(outcome_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));

    let done = eventually(Duration::from_secs(10), || async {
        let s = q.stats().await.unwrap();
        s.succeeded_total == 4 && s.dead == 4
    })
    .await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(done, "{:?}", q.stats().await.unwrap());

    let runs = runs.get();
    // n%4: 0 ok once; 1 retried once then ok; 2 permanent at once; 3 retried to max_attempts.
    for n in 0..8u64 {
        let expected = [1, 2, 1, 3][(n % 4) as usize];
        assert_eq!(runs[&n], expected, "job {n}");
    }
    let dead = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    let mut errors: Vec<_> = dead
        .iter()
        .map(|d| (d.attempts, d.last_error.clone().unwrap()))
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        vec![
            (1, "bad login".to_string()),
            (1, "bad login".to_string()),
            (3, "unclassified error".to_string()),
            (3, "unclassified error".to_string()),
        ]
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.delayed, s.in_flight), (0, 0, 0));
}

pub(crate) async fn slow_handler(job: Ping, runs: Data<Runs>) -> Result<(), BoxDynError> {
    runs.record(job.n);
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(())
}

#[tokio::test]
async fn batch_fetch_with_busy_slots_never_double_runs_and_keeps_heartbeating() {
    // Two workers, each claiming 4 jobs per fetch but running one at a time: buffered jobs
    // wait ~1.2 s, longer than the 1 s lease. Only the heartbeat keeps them from being reaped.
    let t = TestNs::new("busy").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..12).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for name in ["busy-a", "busy-b"] {
        let worker = WorkerBuilder::new(name)
            .backend(RedisBackend::new(q.clone()).with_batch(4))
            .data(runs.clone())
            .layer(ConcurrencyLimitLayer::new(1))
            .build(slow_handler);
        handles.push(tokio::spawn(worker.run_until(stop_signal(&stop))));
    }
    let done = eventually(Duration::from_secs(15), || async {
        q.stats().await.unwrap().succeeded_total == 12
    })
    .await;
    stop.cancel();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert!(done, "{:?}", q.stats().await.unwrap());
    let runs = runs.get();
    assert_eq!(runs.len(), 12);
    assert!(runs.values().all(|&r| r == 1), "double run: {runs:?}");
    assert_eq!(q.stats().await.unwrap().rescued_total, 0);
}

#[tokio::test]
async fn undecodable_payload_does_not_kill_the_apalis_worker() {
    let t = TestNs::new("apalis-poison").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.retyped::<String>()
        .enqueue(&"garbage".to_string(), EnqueueOptions::default())
        .await
        .unwrap();
    q.enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("poison")
        .backend(RedisBackend::new(q.clone()))
        .data(runs.clone())
        .build(outcome_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    let done = eventually(Duration::from_secs(5), || async {
        q.stats().await.unwrap().succeeded_total == 1
    })
    .await;
    assert!(!handle.is_finished(), "the worker is still running");
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(done);
    let dead = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("undecodable payload"));
}

#[tokio::test]
async fn graceful_stop_releases_buffered_jobs_to_ready() {
    let t = TestNs::new("release").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..5).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("release")
        .backend(RedisBackend::new(q.clone()).with_batch(5))
        .data(runs.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .build(slow_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    assert!(eventually(Duration::from_secs(5), || async { !runs.get().is_empty() }).await);
    stop.cancel();
    handle.await.unwrap().unwrap();

    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.succeeded_total, s.in_flight, s.ready),
        (1, 0, 4),
        "{s:?}"
    );
    let ready = q
        .list(shared::queue::JobState::Ready, &JobFilter::default(), 10)
        .await
        .unwrap();
    assert!(
        ready.iter().all(|j| j.attempts == 0),
        "release undoes the attempt"
    );
}

/// A gate closed until `open` is notified (stands in for the global rate limiter).
struct Permit(Arc<tokio::sync::Semaphore>);

impl shared::queue::FetchGate for Permit {
    fn ready(&self) -> futures::future::BoxFuture<'static, ()> {
        let sem = Arc::clone(&self.0);
        Box::pin(async move {
            sem.acquire().await.expect("open").forget();
        })
    }
}

#[tokio::test]
async fn fetch_gate_is_awaited_before_a_job_is_claimed_and_does_not_block_shutdown() {
    let t = TestNs::new("gate").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..2).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let permits = Arc::new(tokio::sync::Semaphore::new(0));
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("gate")
        .backend(RedisBackend::new(q.clone()).with_fetch_gate(Arc::new(Permit(permits.clone()))))
        .data(runs.clone())
        .build(outcome_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight),
        (2, 0),
        "nothing claimed without a permit"
    );
    permits.add_permits(1);
    assert!(
        eventually(Duration::from_secs(5), || async {
            q.stats().await.unwrap().succeeded_total == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(q.stats().await.unwrap().ready, 1, "one permit, one job");

    // Stopping while the fetch waits at the gate returns promptly.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), handle)
        .await
        .expect("worker stops while waiting at the gate")
        .unwrap()
        .unwrap();
}

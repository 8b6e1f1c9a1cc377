//! Ack-and-fetch: an ack that leases the next job in the same script call, directly and
//! through `RedisBackend::with_ack_fetch`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use futures::future::BoxFuture;
use shared::queue::{EnqueueOptions, FetchGate, Queue, RedisBackend, WorkerId};
use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimitLayer;

use super::apalis_worker::{slow_handler, stop_signal, Runs};
use super::{eventually, Ping, TestNs};

#[tokio::test]
async fn ack_and_fetch_acks_the_job_and_leases_the_next_in_one_call() {
    let t = TestNs::new("ackfetch").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..3).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let w = WorkerId::generate();
    let first = q.fetch(&w, 1).await.unwrap().remove(0);

    let (acked, next) = q
        .ack_and_fetch(&first.token, &first.id, &w, 1)
        .await
        .unwrap();

    assert!(acked);
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].job.n, next[0].attempt), (1, 1));
    assert_ne!(next[0].token, first.token, "a new delivery token");
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.succeeded_total),
        (1, 1, 1),
        "{s:?}"
    );
    // The new lease is held by the new token only.
    assert!(!q.ack(&first.token, &next[0].id).await.unwrap());
    assert!(q.ack(&next[0].token, &next[0].id).await.unwrap());
}

#[tokio::test]
async fn ack_and_fetch_with_a_lost_lease_changes_nothing_of_that_job_but_still_leases() {
    let t = TestNs::new("ackfetch-lost").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..2).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let w = WorkerId::generate();
    let first = q.fetch(&w, 1).await.unwrap().remove(0);
    let stale = shared::queue::DeliveryToken::generate(&w);

    let (acked, next) = q.ack_and_fetch(&stale, &first.id, &w, 1).await.unwrap();

    assert!(!acked, "a stale delivery does not ack");
    assert_eq!(next.len(), 1);
    let s = q.stats().await.unwrap();
    assert_eq!((s.in_flight, s.succeeded_total), (2, 0), "{s:?}");
}

/// A gate that counts its waits and says whether acks may claim.
struct CountingGate {
    waits: AtomicUsize,
    open_now: bool,
}

impl FetchGate for CountingGate {
    fn ready(&self) -> BoxFuture<'static, ()> {
        self.waits.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn open_now(&self) -> bool {
        self.open_now
    }
}

/// Runs in 1-3 ms, so the acks of jobs run side by side come back at different moments.
async fn staggered_handler(job: Ping, runs: Data<Runs>) -> Result<(), BoxDynError> {
    runs.record(job.n);
    tokio::time::sleep(Duration::from_millis(1 + job.n % 3)).await;
    Ok(())
}

/// Runs `jobs` jobs through one worker with `slots` handler slots and ack-and-fetch behind
/// a gate open now or not; checks each ran once and returns how often the gate was awaited.
async fn drain_with_ack_fetch(name: &str, open_now: bool, jobs: u64, slots: usize) -> usize {
    let t = TestNs::new(name).await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..jobs).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let gate = Arc::new(CountingGate {
        waits: AtomicUsize::new(0),
        open_now,
    });
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new(name)
        .backend(
            RedisBackend::new(q.clone())
                .with_ack_fetch()
                .with_fetch_gate(gate.clone()),
        )
        .data(runs.clone())
        .layer(ConcurrencyLimitLayer::new(slots))
        .build(staggered_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    let done = eventually(Duration::from_secs(15), || async {
        q.stats().await.unwrap().succeeded_total == jobs
    })
    .await;
    let waits_at_drain = gate.waits.load(Ordering::SeqCst);
    stop.cancel();
    handle.await.unwrap().unwrap();
    let s = q.stats().await.unwrap();
    assert!(done, "{s:?}");
    assert_eq!((s.ready, s.in_flight, s.dead), (0, 0, 0), "{s:?}");
    let runs = runs.get();
    assert_eq!(runs.len(), jobs as usize);
    assert!(runs.values().all(|&r| r == 1), "double run: {runs:?}");
    waits_at_drain
}

#[tokio::test]
async fn a_worker_with_ack_fetch_runs_every_job_once_mostly_without_separate_fetches() {
    let waits = drain_with_ack_fetch("ackfetch-worker", true, 40, 1).await;

    assert!(
        waits < 20,
        "most jobs came with an ack, not a gated fetch: {waits} fetches for 40 jobs"
    );
}

#[tokio::test]
async fn ack_fetch_never_claims_behind_a_gate_that_is_not_open_now() {
    let waits = drain_with_ack_fetch("ackfetch-gated", false, 40, 1).await;

    assert!(
        waits >= 40,
        "every claim waited for the gate: {waits} waits for 40 jobs"
    );
}

#[tokio::test]
async fn graceful_stop_with_ack_fetch_leaves_nothing_leased_and_spends_no_attempt() {
    let t = TestNs::new("ackfetch-stop").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..10).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("ackfetch-stop")
        .backend(RedisBackend::new(q.clone()).with_ack_fetch().with_batch(2))
        .data(runs.clone())
        .layer(ConcurrencyLimitLayer::new(1))
        .build(slow_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    assert!(eventually(Duration::from_secs(5), || async { runs.get().len() >= 3 }).await);
    stop.cancel();
    handle.await.unwrap().unwrap();

    let s = q.stats().await.unwrap();
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert_eq!(s.ready + s.succeeded_total, 10, "{s:?}");
    // A job given back has no delivery counted against it.
    let w = WorkerId::generate();
    for job in q.fetch(&w, 10).await.unwrap() {
        assert_eq!(job.attempt, 1, "job {} spent an attempt", job.job.n);
    }
}

#[tokio::test]
async fn acks_that_finish_together_each_claim_the_next_job_for_the_slot_they_free() {
    // Eight slots, handlers of a few ms: acks come back in bursts, each sent while a job an
    // earlier ack leased may still wait in the handoff. Every ack frees a slot, so each
    // leases a job for it: the gated fetches are the first fill of the slots and the last
    // looks at an empty queue (about 15), not one for every few jobs (about 58 with acks
    // that claim only into an empty handoff).
    let waits = drain_with_ack_fetch("ackfetch-burst", true, 160, 8).await;

    assert!(
        waits <= 30,
        "acks kept the slots filled: {waits} gated fetches for 160 jobs"
    );
}

//! Fencing: a lease belongs to one delivery, and a delivery whose lease is gone stops.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use shared::queue::{
    EnqueueOptions, FailOutcome, JobFailure, JobFilter, JobState, Queue, RedisBackend, WorkerId,
};
use tokio_util::sync::CancellationToken;

use super::{eventually, leased_ping, Ping, TestNs};

#[tokio::test]
async fn a_stale_delivery_in_the_same_process_can_neither_settle_nor_renew_the_newer_lease() {
    // Arrange: one worker fetches a job, loses the lease (expired, reaped) and fetches the
    // same job again: two deliveries of one job under one worker id.
    let t = TestNs::new("fence-stale").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let stale = leased_ping(&q, &w).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(q.reap_expired().await.unwrap(), 1);
    let fresh = q.fetch(&w, 1).await.unwrap().remove(0);
    assert_eq!((fresh.id.clone(), fresh.attempt), (stale.id.clone(), 2));
    assert_ne!(fresh.token, stale.token, "each fetch is its own delivery");

    // Act + Assert: everything the stale delivery tries is refused and changes nothing.
    assert!(
        !q.ack(&stale.token, &stale.id).await.unwrap(),
        "stale ack refused"
    );
    let failure = JobFailure::Permanent {
        error: "stale".into(),
    };
    assert_eq!(
        q.fail(&stale.token, &stale.id, stale.attempt, failure)
            .await
            .unwrap(),
        FailOutcome::LeaseLost,
        "stale fail refused"
    );
    let lost = q
        .renew(&w, &[(stale.id.clone(), stale.token.clone())])
        .await
        .unwrap();
    assert_eq!(lost, vec![stale.id.clone()], "stale renewal refused");
    assert_eq!(
        q.release(&[(stale.id.clone(), stale.token.clone())])
            .await
            .unwrap(),
        0,
        "stale release refused"
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.dead), (0, 1, 0));

    // The newer delivery still owns the job and settles it.
    assert!(q.ack(&fresh.token, &fresh.id).await.unwrap());
}

/// Counts a handler's side effects and how many of its runs were dropped unfinished.
#[derive(Clone, Default)]
struct Effects {
    started: Arc<AtomicU32>,
    completed: Arc<AtomicU32>,
    dropped: Arc<AtomicU32>,
}

struct DropGuard(Arc<AtomicU32>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Works for 4 s (four leases), then performs its side effect.
async fn slow_side_effect(_job: Ping, effects: Data<Effects>) -> Result<(), BoxDynError> {
    effects.started.fetch_add(1, Ordering::SeqCst);
    let mut guard = DropGuard(effects.dropped.clone(), false);
    tokio::time::sleep(Duration::from_secs(4)).await;
    effects.completed.fetch_add(1, Ordering::SeqCst);
    guard.1 = true;
    Ok(())
}

#[tokio::test]
async fn a_handler_whose_lease_is_taken_over_is_cancelled_before_its_side_effect() {
    // Arrange: a worker runs a slow job; its heartbeat keeps the lease alive.
    let t = TestNs::new("fence-cancel").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    let effects = Effects::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("fence-cancel")
        .backend(RedisBackend::new(q.clone()))
        .data(effects.clone())
        .build(slow_side_effect);
    let signal = stop.clone();
    let handle = tokio::spawn(worker.run_until(async move {
        signal.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));
    assert!(
        eventually(Duration::from_secs(5), || async {
            effects.started.load(Ordering::SeqCst) == 1
        })
        .await
    );

    // Act: another delivery takes the lease over (what the reaper and a second fetch do
    // after this worker's lease lapsed during a pause).
    let job = q
        .list(JobState::InFlight, &JobFilter::default(), 1)
        .await
        .unwrap()
        .remove(0);
    let mut conn = t.conn.clone();
    let held = format!("{}|{}", job.id, job.owner.as_deref().unwrap());
    let () = redis::pipe()
        .zrem(t.keys.queue("q", "inflight"), &held)
        .ignore()
        .zadd(
            t.keys.queue("q", "inflight"),
            format!("{}|other-worker/delivery", job.id),
            u64::MAX >> 12,
        )
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    // Assert: the handler is dropped at its next await point, before its side effect, and
    // the job is left to its new holder (not acked, failed or released by the stale one).
    let cancelled = eventually(Duration::from_secs(3), || async {
        effects.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(cancelled, "the handler was not cancelled");
    assert_eq!(
        effects.completed.load(Ordering::SeqCst),
        0,
        "side effect ran"
    );
    let now = q.job(&job.id).await.unwrap().unwrap();
    assert_eq!(now.state, JobState::InFlight);
    assert_eq!(now.owner.as_deref(), Some("other-worker/delivery"));
    let s = q.stats().await.unwrap();
    assert_eq!((s.in_flight, s.succeeded_total, s.dead), (1, 0, 0));
}

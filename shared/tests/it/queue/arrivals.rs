//! A worker whose last fetch found its queue empty fetches again as soon as this process
//! queues a job ready now in that queue, instead of after its poll interval.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use futures::future::BoxFuture;
use shared::queue::{EnqueueOptions, FetchGate, Queue, RedisBackend};
use tokio_util::sync::CancellationToken;

use super::apalis_worker::{stop_signal, Runs};
use super::{eventually, Ping, TestNs};

/// Far longer than any test waits: a job found within it was not found by polling.
pub(crate) const LONG_POLL: Duration = Duration::from_secs(60);

/// Counts the fetches a backend starts.
#[derive(Default)]
pub(crate) struct Fetches(AtomicUsize);

impl FetchGate for Fetches {
    fn ready(&self) -> BoxFuture<'static, ()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

impl Fetches {
    /// Waits until a fetch was started and had time to find the queue empty, so the worker
    /// is in its pause between polls.
    pub(crate) async fn until_idle(&self) {
        assert!(
            eventually(Duration::from_secs(5), || async {
                self.0.load(Ordering::SeqCst) > 0
            })
            .await,
            "the worker never fetched"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub(crate) async fn recording_handler(job: Ping, runs: Data<Runs>) -> Result<(), BoxDynError> {
    runs.record(job.n);
    Ok(())
}

#[tokio::test]
async fn an_idle_worker_runs_a_job_this_process_queued_without_waiting_out_its_poll_interval() {
    let t = TestNs::new("arrivals-enqueue").await;
    let mut config = t.config("q");
    config.poll_interval = LONG_POLL;
    let q: Queue<Ping> = t.queue(config.clone());
    let fetches = Arc::new(Fetches::default());
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("arrivals-enqueue")
        .backend(RedisBackend::new(q.clone()).with_fetch_gate(fetches.clone()))
        .data(runs.clone())
        .build(recording_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    fetches.until_idle().await;

    // Through another handle of the queue, as a handler or the producer code holds one; a
    // delayed job is not ready, so it wakes nobody.
    let other: Queue<Ping> = t.queue(config);
    other
        .enqueue(
            &Ping { n: 2 },
            EnqueueOptions::default().delayed(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let woken_by_delayed = fetches.0.load(Ordering::SeqCst);
    other
        .enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    let ran = eventually(Duration::from_secs(5), || async {
        runs.get().contains_key(&1)
    })
    .await;
    stop.cancel();
    handle.await.unwrap().unwrap();

    assert!(ran, "the job waited for the next poll");
    assert_eq!(woken_by_delayed, 1, "a delayed job woke the worker");
}

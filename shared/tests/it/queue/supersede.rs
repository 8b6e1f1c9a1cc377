//! Superseding: a job enqueued with a supersede key and a higher rank replaces the waiting
//! (ready or delayed) job of the same key; an in-flight one is left to finish.

use std::time::Duration;

use shared::queue::{EnqueueOptions, Queue, WorkerId};

use super::{Ping, TestNs};

fn opts(key: &str, rank: i64) -> EnqueueOptions {
    EnqueueOptions::dedupe(format!("{key}:{rank}")).superseding(key, rank)
}

#[tokio::test]
async fn a_higher_rank_replaces_the_waiting_job_and_reports_it_once() {
    let t = TestNs::new("supersede").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    // Arrange: c's job is in flight, a's waits in ready, b's in delayed.
    q.enqueue(&Ping { n: 3 }, opts("c", 1)).await.unwrap();
    assert_eq!(q.fetch(&w, 1).await.unwrap().len(), 1);
    q.enqueue(&Ping { n: 1 }, opts("a", 1)).await.unwrap();
    q.enqueue(
        &Ping { n: 2 },
        opts("b", 1).delayed(Duration::from_secs(3600)),
    )
    .await
    .unwrap();

    // Act: rank 2 for a, b, c, d, and rank 1 again (a duplicate) for a.
    let out = q
        .enqueue_many([
            (Ping { n: 11 }, opts("a", 2)),
            (Ping { n: 12 }, opts("b", 2)),
            (Ping { n: 13 }, opts("c", 2)),
            (Ping { n: 14 }, opts("d", 2)),
            (Ping { n: 1 }, opts("a", 1)),
        ])
        .await
        .unwrap();

    // Assert: four new jobs; a's and b's rank-1 jobs are gone, c's still runs.
    assert!(out[..4].iter().all(|e| e.is_new()) && !out[4].is_new());
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.delayed, s.in_flight), (4, 0, 1), "{s:?}");
    assert_eq!(s.superseded_total, 2);
    let mut superseded = q.superseded(100).await.unwrap();
    superseded.sort_by_key(|s| s.job.n);
    assert_eq!(
        superseded.iter().map(|s| s.job.n).collect::<Vec<_>>(),
        [1, 2]
    );
    q.forget_superseded(&superseded).await.unwrap();
    assert!(q.superseded(100).await.unwrap().is_empty());

    // The tombstone of a's old job is skipped: fetch hands out exactly the live jobs.
    let mut got: Vec<u64> = q
        .fetch(&w, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job.n)
        .collect();
    got.sort_unstable();
    assert_eq!(got, [11, 12, 13, 14]);
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 5));
}

#[tokio::test]
async fn a_lower_or_equal_rank_never_replaces_the_waiting_job() {
    let t = TestNs::new("supersede-rank").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue(&Ping { n: 2 }, opts("a", 5)).await.unwrap();
    q.enqueue(&Ping { n: 1 }, opts("a", 4)).await.unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.superseded_total), (2, 0));
    assert!(q.superseded(10).await.unwrap().is_empty());
    // The rank-5 job stays the one a rank-6 job replaces.
    q.enqueue(&Ping { n: 3 }, opts("a", 6)).await.unwrap();
    let gone: Vec<u64> = q
        .superseded(10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.job.n)
        .collect();
    assert_eq!(gone, [2]);
}

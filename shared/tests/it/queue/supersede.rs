//! Superseding: a job enqueued with a supersede key and a higher rank replaces the waiting
//! (ready or delayed) job of the same key; an in-flight one is left to finish. The key's
//! pending entry is also its dedupe record: one job per key and rank, ever.

use std::time::Duration;

use shared::queue::{EnqueueOptions, JobFailure, JobId, Queue, Superseded, WorkerId};

use super::{leased_ns, Ping, TestNs};

fn opts(key: &str, rank: i64) -> EnqueueOptions {
    EnqueueOptions::default().superseding(key, rank)
}

/// (payload, own rank, rank that took over, on arrival) of each entry, sorted.
fn entries(superseded: &[Superseded<Ping>]) -> Vec<(u64, Option<i64>, Option<i64>, bool)> {
    let mut out: Vec<_> = superseded
        .iter()
        .map(|s| (s.job.n, s.rank, s.by_rank, s.on_arrival))
        .collect();
    out.sort_unstable();
    out
}

/// The ids of the jobs replaced while waiting (not those superseded on arrival), in order.
fn replaced(superseded: &[Superseded<Ping>]) -> Vec<&JobId> {
    superseded
        .iter()
        .filter(|s| !s.on_arrival)
        .map(|s| &s.id)
        .collect()
}

#[tokio::test]
async fn a_higher_rank_replaces_the_waiting_job_and_reports_it_once() {
    let t = TestNs::new("supersede").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    // Arrange: c's job is in flight, a's waits in ready, b's in delayed.
    q.enqueue(&Ping { n: 3 }, opts("c", 1)).await.unwrap();
    assert_eq!(q.fetch(&w, 1).await.unwrap().len(), 1);
    let a1 = q.enqueue(&Ping { n: 1 }, opts("a", 1)).await.unwrap();
    let b1 = q
        .enqueue(
            &Ping { n: 2 },
            opts("b", 1).delayed(Duration::from_secs(3600)),
        )
        .await
        .unwrap();

    // Act: rank 2 for a, b, c, d, and rank 1 again for a (superseded on arrival).
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
    assert_eq!(s.superseded_total, 3);
    let superseded = q.superseded(100).await.unwrap();
    // A replaced job is reported by its id and rank, with the payload of the job that
    // replaced it; one superseded on arrival with its own.
    assert_eq!(
        entries(&superseded),
        [
            (1, Some(1), Some(2), true),
            (11, Some(1), Some(2), false),
            (12, Some(1), Some(2), false)
        ]
    );
    assert_eq!(replaced(&superseded), [a1.id(), b1.id()]);
    q.forget_superseded(&superseded).await.unwrap();
    assert!(q.superseded(100).await.unwrap().is_empty());

    // The tombstone of a's old job is skipped: fetch hands out exactly the live jobs.
    assert_eq!(leased_ns(&q, &w, 10).await, [11, 12, 13, 14]);
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 5));
}

#[tokio::test]
async fn a_lower_rank_is_superseded_on_arrival_and_the_same_rank_is_a_duplicate() {
    let t = TestNs::new("supersede-rank").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let first = q.enqueue(&Ping { n: 2 }, opts("a", 5)).await.unwrap();

    let same = q.enqueue(&Ping { n: 9 }, opts("a", 5)).await.unwrap();
    let lower = q.enqueue(&Ping { n: 1 }, opts("a", 4)).await.unwrap();

    assert!(!same.is_new() && !lower.is_new());
    assert_eq!((same.id(), lower.id()), (first.id(), first.id()));
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.superseded_total), (1, 1));
    // The lower rank's job is reported, so its own rank records it.
    let reported = q.superseded(10).await.unwrap();
    assert_eq!(entries(&reported), [(1, Some(4), Some(5), true)]);
    q.forget_superseded(&reported).await.unwrap();
    // The rank-5 job stays the one a rank-6 job replaces.
    q.enqueue(&Ping { n: 3 }, opts("a", 6)).await.unwrap();
    let gone = q.superseded(10).await.unwrap();
    assert_eq!(entries(&gone), [(3, Some(5), Some(6), false)]);
    assert_eq!(&gone[0].id, first.id());
}

#[tokio::test]
async fn the_same_rank_stays_a_duplicate_after_its_job_ended() {
    let t = TestNs::new("supersede-ended").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let first = q.enqueue(&Ping { n: 1 }, opts("a", 5)).await.unwrap();
    let leased = q.fetch(&w, 1).await.unwrap();
    assert!(q.ack(&leased[0].token, &leased[0].id).await.unwrap());

    let again = q.enqueue(&Ping { n: 2 }, opts("a", 5)).await.unwrap();
    let next = q.enqueue(&Ping { n: 3 }, opts("a", 6)).await.unwrap();

    assert_eq!(
        again,
        shared::queue::Enqueued::Duplicate(first.id().clone())
    );
    assert!(
        next.is_new(),
        "a later rank is queued: the ended job is not replaced"
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.superseded_total), (1, 0));
}

#[tokio::test]
async fn a_batch_that_supersedes_its_own_job_queues_only_the_newest() {
    let t = TestNs::new("supersede-batch").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();

    // One call: a's rank 1, then b's, then a's rank 2 and rank 3, then a duplicate of a's
    // rank 3 (a later job of the batch sees what an earlier one wrote).
    let out = q
        .enqueue_many([
            (Ping { n: 1 }, opts("a", 1)),
            (Ping { n: 2 }, opts("b", 1)),
            (Ping { n: 3 }, opts("a", 2)),
            (Ping { n: 4 }, opts("a", 3)),
            (Ping { n: 5 }, opts("a", 3)),
        ])
        .await
        .unwrap();

    assert_eq!(
        out.iter().map(|e| e.is_new()).collect::<Vec<_>>(),
        [true, true, true, true, false]
    );
    assert_eq!(out[4].id(), out[3].id());
    let s = q.stats().await.unwrap();
    // The replaced jobs never reached the ready list: no tombstones to skip.
    assert_eq!((s.ready, s.superseded_total), (2, 2), "{s:?}");
    let superseded = q.superseded(10).await.unwrap();
    assert_eq!(
        entries(&superseded),
        [(3, Some(1), Some(2), false), (4, Some(2), Some(3), false)]
    );
    let ids: Vec<_> = superseded.iter().map(|s| &s.id).collect();
    assert_eq!(ids, [out[0].id(), out[2].id()]);
    let got: Vec<u64> = q
        .fetch(&w, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job.n)
        .collect();
    assert_eq!(got, [2, 4], "in enqueue order");
}

/// A batch whose jobs share one rank and one delay and have no dedupe key (a routine's)
/// goes to Redis in a compact layout of its own: it replaces, supersedes on arrival,
/// deduplicates and delays as a mixed batch does.
#[tokio::test]
async fn a_batch_of_one_rank_and_one_delay_supersedes_and_deduplicates_as_any_other() {
    let t = TestNs::new("supersede-uniform").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let hour = Duration::from_secs(3600);
    // a's rank-1 job waits in ready, b's in delayed; c already has a rank-3 job.
    let a1 = q.enqueue(&Ping { n: 1 }, opts("a", 1)).await.unwrap();
    let b1 = q
        .enqueue(&Ping { n: 2 }, opts("b", 1).delayed(hour))
        .await
        .unwrap();
    let c3 = q.enqueue(&Ping { n: 3 }, opts("c", 3)).await.unwrap();

    let out = q
        .enqueue_many([
            (Ping { n: 11 }, opts("a", 2).delayed(hour)),
            (Ping { n: 12 }, opts("b", 2).delayed(hour)),
            (Ping { n: 13 }, opts("c", 2).delayed(hour)),
            (Ping { n: 14 }, opts("d", 2).delayed(hour)),
            (Ping { n: 15 }, opts("d", 2).delayed(hour)),
        ])
        .await
        .unwrap();

    assert_eq!(
        out.iter().map(|e| e.is_new()).collect::<Vec<_>>(),
        [true, true, false, true, false]
    );
    assert_eq!((out[2].id(), out[4].id()), (c3.id(), out[3].id()));
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.delayed, s.superseded_total), (1, 3, 3), "{s:?}");
    let superseded = q.superseded(10).await.unwrap();
    assert_eq!(
        entries(&superseded),
        [
            (11, Some(1), Some(2), false),
            (12, Some(1), Some(2), false),
            (13, Some(2), Some(3), true)
        ]
    );
    assert_eq!(replaced(&superseded), [a1.id(), b1.id()]);
    // Only c's rank-3 job is ready: the new jobs wait out their hour.
    assert_eq!(leased_ns(&q, &w, 10).await, [3]);
}

#[tokio::test]
async fn forgetting_superseded_entries_removes_each_once_even_when_the_outbox_moved() {
    let t = TestNs::new("supersede-forget").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    for n in 1..=3 {
        q.enqueue(&Ping { n }, opts(&format!("k{n}"), 1))
            .await
            .unwrap();
    }
    q.enqueue_many((1..=3).map(|n| (Ping { n: 10 + n }, opts(&format!("k{n}"), 2))))
        .await
        .unwrap();
    let first = q.superseded(2).await.unwrap();
    // Another caller read the same page and forgot it first: the outbox's head moved.
    let again = q.superseded(2).await.unwrap();
    q.forget_superseded(&again).await.unwrap();
    q.forget_superseded(&first).await.unwrap();

    let left = q.superseded(10).await.unwrap();
    assert_eq!(entries(&left), [(13, Some(1), Some(2), false)]);
    q.forget_superseded(&left).await.unwrap();
    assert!(q.superseded(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_key_in_two_windows_of_one_call_is_replaced_once_and_in_order() {
    let t = TestNs::new("supersede-windows").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    // 70 keys at rank 1, then the first 30 again at rank 2: the scripts take 64 jobs at a
    // time, so the rank-2 jobs replace jobs of an earlier window of the same call.
    let jobs = (0..70u64)
        .map(|n| (Ping { n }, opts(&format!("k{n}"), 1)))
        .chain((0..30u64).map(|n| (Ping { n: 100 + n }, opts(&format!("k{n}"), 2))));

    let out = q.enqueue_many(jobs).await.unwrap();

    assert!(out.iter().all(|e| e.is_new()));
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.superseded_total), (70, 30), "{s:?}");
    let got: Vec<u64> = q
        .fetch(&w, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job.n)
        .collect();
    let expected: Vec<u64> = (30..70).chain(100..130).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_dead_job_is_left_alone_and_a_retrying_one_is_replaced() {
    let t = TestNs::new("supersede-dead").await;
    let mut c = t.config("q");
    c.backoff.base = Duration::from_secs(3600);
    let q: Queue<Ping> = t.queue(c);
    let w = WorkerId::generate();
    // Arrange: a's job failed for good (dead), b's failed once and waits for its retry.
    q.enqueue(&Ping { n: 1 }, opts("a", 1)).await.unwrap();
    q.enqueue(&Ping { n: 2 }, opts("b", 1)).await.unwrap();
    for job in q.fetch(&w, 2).await.unwrap() {
        let failure = if job.job.n == 1 {
            JobFailure::Permanent {
                error: "gone".into(),
            }
        } else {
            JobFailure::Retry {
                error: "later".into(),
                delay: None,
            }
        };
        q.fail(&job.token, &job.id, job.attempt, failure)
            .await
            .unwrap();
    }

    let out = q
        .enqueue_many([
            (Ping { n: 11 }, opts("a", 2)),
            (Ping { n: 12 }, opts("b", 2)),
        ])
        .await
        .unwrap();

    assert!(out.iter().all(|e| e.is_new()));
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.delayed, s.dead), (2, 0, 1), "{s:?}");
    let superseded = q.superseded(10).await.unwrap();
    assert_eq!(entries(&superseded), [(12, Some(1), Some(2), false)]);
}

#[tokio::test]
async fn a_job_whose_pending_rank_is_corrupt_is_replaced_and_reported_with_its_own_payload() {
    let t = TestNs::new("supersede-corrupt-rank").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let first = q.enqueue(&Ping { n: 1 }, opts("a", 1)).await.unwrap();
    let pending = t
        .all_keys()
        .await
        .into_iter()
        .find(|k| k.contains(":pending:"))
        .expect("the pending shard of key a");
    let mut conn = t.conn.clone();
    let _: () = redis::cmd("HSET")
        .arg(&pending)
        .arg("a")
        .arg(format!("x1|{}", first.id()))
        .query_async(&mut conn)
        .await
        .unwrap();

    q.enqueue(&Ping { n: 2 }, opts("a", 2)).await.unwrap();

    let superseded = q.superseded(10).await.unwrap();
    assert_eq!(entries(&superseded), [(1, None, Some(2), false)]);
    assert_eq!(&superseded[0].id, first.id());
    assert_eq!(q.stats().await.unwrap().ready, 1);
}

#[tokio::test]
async fn pending_entries_are_spread_over_small_hashes_that_keep_the_compact_encoding() {
    let t = TestNs::new("supersede-shards").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let jobs: Vec<_> = (0..2_000)
        .map(|n| (Ping { n }, opts(&format!("login-{n}"), 1)))
        .collect();
    q.enqueue_many(jobs).await.unwrap();

    let shards: Vec<String> = t
        .all_keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":pending:"))
        .collect();
    let mut conn = t.conn.clone();
    let mut entries = 0u64;
    for shard in &shards {
        let (len, encoding): (u64, String) = redis::pipe()
            .hlen(shard)
            .cmd("OBJECT")
            .arg("ENCODING")
            .arg(shard)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(encoding, "listpack", "{shard} holds {len}");
        entries += len;
    }
    assert_eq!(entries, 2_000);
    assert!(shards.len() > 1_000, "{} shards", shards.len());
}

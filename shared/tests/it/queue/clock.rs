//! A lease's deadline counts from the queue's estimate of Redis' clock, which renewals
//! set; without one, from Redis' `TIME`.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shared::queue::{redis_now_ms, EnqueueOptions, Queue, WorkerId};

use super::{Ping, TestNs};

const HOUR_MS: i64 = 3_600_000;

/// The lease deadline Redis holds for job `id` of queue `name` (its in-flight entry is
/// `<id>|<delivery>`).
async fn deadline(t: &TestNs, name: &str, id: &str) -> i64 {
    let mut conn = t.conn.clone();
    let entries: Vec<(String, f64)> = conn
        .zrange_withscores(t.keys.queue(name, "inflight"), 0, -1)
        .await
        .unwrap();
    let prefix = format!("{id}|");
    let (_, score) = entries
        .into_iter()
        .find(|(entry, _)| entry.starts_with(&prefix))
        .unwrap_or_else(|| panic!("job {id} is not in flight"));
    score as i64
}

async fn redis_now(t: &TestNs) -> i64 {
    redis_now_ms(&mut t.conn.clone()).await.unwrap() as i64
}

/// A queue holding `jobs` ready jobs whose clock estimate is an hour ahead of Redis' clock,
/// so a deadline counted from the estimate shows.
async fn queue_an_hour_ahead(t: &TestNs, jobs: u64) -> Queue<Ping> {
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..jobs).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let ahead = redis_now(t).await + HOUR_MS;
    let now = Instant::now();
    q.clock().sample(ahead, now, now);
    q
}

/// Asserts that job `id`'s lease deadline is one lease after `from` (give or take the
/// test's own pace).
async fn assert_deadline_counts_from(t: &TestNs, q: &Queue<Ping>, id: &str, from: i64) {
    let lease = q.config().lease.as_millis() as i64;
    let d = deadline(t, "q", id).await;
    assert!(
        (from + lease..from + lease + 5_000).contains(&d),
        "deadline {d}, counted from {from}, lease {lease}"
    );
}

#[tokio::test]
async fn a_lease_counts_its_deadline_from_the_clock_estimate_not_from_time() {
    let t = TestNs::new("clock-estimate").await;
    let q = queue_an_hour_ahead(&t, 2).await;
    let w = WorkerId::generate();
    let first = q.fetch(&w, 1).await.unwrap().remove(0);
    // Taken just before the call: the estimate has moved on since the sample.
    let from = q.clock().estimate_at(Instant::now()).unwrap();

    let (acked, next) = q
        .ack_and_fetch(&first.token, &first.id, &w, 1)
        .await
        .unwrap();

    assert!(acked);
    assert_deadline_counts_from(&t, &q, next[0].id.as_str(), from).await;
}

#[tokio::test]
async fn a_fetch_counts_from_the_estimate_too() {
    let t = TestNs::new("clock-fetch").await;
    let q = queue_an_hour_ahead(&t, 1).await;
    let from = q.clock().estimate_at(Instant::now()).unwrap();

    let job = q.fetch(&WorkerId::generate(), 1).await.unwrap().remove(0);

    assert_deadline_counts_from(&t, &q, job.id.as_str(), from).await;
}

#[tokio::test]
async fn without_a_reading_a_lease_counts_from_redis_time() {
    let t = TestNs::new("clock-none").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let lease = q.config().lease.as_millis() as i64;
    q.enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    let before = redis_now(&t).await;

    let job = q.fetch(&WorkerId::generate(), 1).await.unwrap().remove(0);

    let after = redis_now(&t).await;
    let d = deadline(&t, "q", job.id.as_str()).await;
    assert!(
        (before + lease..=after + lease).contains(&d),
        "deadline {d}, Redis' clock {before}..{after}, lease {lease}"
    );
}

#[tokio::test]
async fn a_renewal_sets_the_estimate_never_behind_redis_clock() {
    let t = TestNs::new("clock-renew").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    assert_eq!(q.clock().estimate_at(Instant::now()), None);

    q.renew(&WorkerId::generate(), &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Read Redis' clock, then the estimate: the estimate came later, so it must not be
    // behind (a little ahead: the renewal's own time in flight).
    let redis = redis_now(&t).await;
    let estimate = q.clock().estimate_at(Instant::now()).expect("an estimate");
    assert!(
        (redis..redis + 1_000).contains(&estimate),
        "estimate {estimate}, Redis' clock {redis}"
    );
}

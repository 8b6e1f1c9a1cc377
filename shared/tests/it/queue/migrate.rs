//! Jobs queued by the previous version (one queue-wide hash per field) survive the upgrade
//! to one hash per job.

use shared::queue::{JobFilter, JobState, Queue, WorkerId};

use super::{Ping, TestNs};

/// Writes a job the way the previous version stored it.
async fn plant_legacy_job(t: &TestNs, id: &str, n: u64, attempts: u32) {
    let k = |suffix: &str| t.keys.queue("q", suffix);
    let _: () = redis::pipe()
        .hset(k("payload"), id, format!(r#"{{"n":{n}}}"#))
        .hset(k("attempts"), id, attempts)
        .hset(k("enqueued"), id, 1_700_000_000_000u64)
        .hset(k("dedupe_of"), id, format!("ping:{n}"))
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
}

#[tokio::test]
async fn jobs_in_the_previous_layout_are_moved_to_one_hash_each_and_still_run() {
    let t = TestNs::new("migrate").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let mut conn = t.conn.clone();
    // Arrange: a ready job that ran once, and a dead letter with its error.
    plant_legacy_job(&t, "old-ready", 1, 1).await;
    plant_legacy_job(&t, "old-dead", 2, 3).await;
    let _: () = redis::pipe()
        .rpush(t.keys.queue("q", "ready"), "old-ready")
        .zadd(t.keys.queue("q", "dead"), "old-dead", 1_700_000_000_001u64)
        .hset(t.keys.queue("q", "error"), "old-dead", "HTTP 500")
        .hset(t.keys.queue("q", "owner"), "long-gone", "w/x")
        .query_async(&mut conn)
        .await
        .unwrap();

    // Act
    let moved = q.migrate_layout().await.unwrap();
    let again = q.migrate_layout().await.unwrap();

    // Assert: both moved once, the old hashes are gone, and the jobs read as before.
    assert_eq!((moved, again), (2, 0));
    let keys = t.all_keys().await;
    for old in [
        "payload",
        "attempts",
        "enqueued",
        "dedupe_of",
        "error",
        "owner",
    ] {
        assert!(
            !keys.contains(&t.keys.queue("q", old)),
            "{old} left behind: {keys:?}"
        );
    }
    let dead = q
        .list(JobState::Dead, &JobFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(dead[0].dedupe_key.as_deref(), Some("ping:2"));
    assert_eq!(dead[0].enqueued_at_ms, Some(1_700_000_000_000));
    let w = WorkerId::generate();
    let jobs = q.fetch(&w, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].job.n, jobs[0].attempt),
        (1, 2),
        "attempts carried over"
    );
    assert!(q.ack(&jobs[0].token, &jobs[0].id).await.unwrap());
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.dead), (0, 0, 1), "{s:?}");
}

#[tokio::test]
async fn migrating_a_queue_with_nothing_old_changes_nothing() {
    let t = TestNs::new("migrate-noop").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue(&Ping { n: 1 }, shared::queue::EnqueueOptions::default())
        .await
        .unwrap();
    let before = t.all_keys().await;

    assert_eq!(q.migrate_layout().await.unwrap(), 0);

    let mut after = t.all_keys().await;
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after);
    assert_eq!(q.fetch(&WorkerId::generate(), 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_previous_versions_dedupe_keys_are_honoured_for_one_ttl_after_the_upgrade_only() {
    let t = TestNs::new("migrate-dedupe").await;
    let used: Queue<Ping> = t.queue(t.config("used"));
    let fresh: Queue<Ping> = t.queue(t.config("fresh"));
    // The previous version counted enqueues on `used`; `fresh` was never used.
    let _: () = redis::cmd("HSET")
        .arg(t.keys.queue("used", "counters"))
        .arg("enqueued")
        .arg(5)
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();

    for q in [&used, &fresh] {
        q.open_legacy_dedupe_window().await.unwrap();
        q.open_legacy_dedupe_window().await.unwrap();
    }

    assert!(used.legacy_dedupe_open().await.unwrap());
    assert!(!fresh.legacy_dedupe_open().await.unwrap());
    // The fresh queue, now used by this version, never opens one later.
    fresh
        .enqueue(&Ping { n: 1 }, Default::default())
        .await
        .unwrap();
    fresh.open_legacy_dedupe_window().await.unwrap();
    assert!(!fresh.legacy_dedupe_open().await.unwrap());
    // A corrupt end reads as open: honouring old keys is slower, never wrong.
    let _: () = redis::cmd("HSET")
        .arg(t.keys.queue("fresh", "counters"))
        .arg("legacy_dedupe_until")
        .arg("not a time")
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
    assert!(fresh.legacy_dedupe_open().await.unwrap());
}

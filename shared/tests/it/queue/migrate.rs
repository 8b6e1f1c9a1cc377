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
    // Arrange: a ready job that ran once, one whose attempt was given back (or that never
    // ran: the old layout cannot tell), and a dead letter with its error.
    plant_legacy_job(&t, "old-ready", 1, 1).await;
    plant_legacy_job(&t, "old-released", 3, 0).await;
    plant_legacy_job(&t, "old-dead", 2, 3).await;
    let _: () = redis::pipe()
        .rpush(t.keys.queue("q", "ready"), "old-ready")
        .rpush(t.keys.queue("q", "ready"), "old-released")
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
    assert_eq!((moved, again), (3, 0));
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
    let seen: Vec<_> = jobs
        .iter()
        .map(|j| (j.job.n, j.attempt, j.first_delivery))
        .collect();
    assert_eq!(
        seen,
        [(1, 2, false), (3, 1, false)],
        "attempts carried over; no moved job is taken for a first delivery"
    );
    for job in &jobs {
        assert!(q.ack(&job.token, &job.id).await.unwrap());
    }
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

/// Writes `key`'s pending entry the way earlier versions did: in the queue's one hash.
async fn plant_legacy_pending(t: &TestNs, key: &str, rank: i64, id: &str) {
    let _: () = redis::cmd("HSET")
        .arg(t.keys.queue("q", "pending"))
        .arg(key)
        .arg(format!("{rank}|{id}"))
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
}

async fn legacy_pending_exists(t: &TestNs) -> bool {
    redis::cmd("EXISTS")
        .arg(t.keys.queue("q", "pending"))
        .query_async(&mut t.conn.clone())
        .await
        .unwrap()
}

fn superseding(key: &str, rank: i64) -> shared::queue::EnqueueOptions {
    shared::queue::EnqueueOptions::default().superseding(key, rank)
}

#[tokio::test]
async fn pending_entries_of_the_one_hash_layout_still_dedupe_before_they_are_moved() {
    let t = TestNs::new("migrate-pending-read").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    // Arrange: this version queued d at rank 1 and e at rank 5; an older version queued
    // a's job of rank 5, b's of rank 3, d's of rank 3 (later than this version's) and e's
    // of rank 2 (earlier), into the one hash.
    q.enqueue(&Ping { n: 4 }, superseding("d", 1))
        .await
        .unwrap();
    let e5 = q
        .enqueue(&Ping { n: 5 }, superseding("e", 5))
        .await
        .unwrap();
    plant_legacy_pending(&t, "a", 5, "old-a").await;
    plant_legacy_pending(&t, "b", 3, "old-b").await;
    plant_legacy_pending(&t, "d", 3, "old-d").await;
    plant_legacy_pending(&t, "e", 2, "old-e").await;

    // Act: rank 5 again for a (a duplicate), a lower rank for b (superseded on arrival),
    // c, which neither holds, and d and e at the rank each one's later record holds.
    let out = q
        .enqueue_many([
            (Ping { n: 1 }, superseding("a", 5)),
            (Ping { n: 2 }, superseding("b", 2)),
            (Ping { n: 3 }, superseding("c", 1)),
            (Ping { n: 4 }, superseding("d", 3)),
            (Ping { n: 5 }, superseding("e", 5)),
        ])
        .await
        .unwrap();

    // Assert: the old records decided a and b, as they did before the upgrade; of two
    // records, the later rank decided; and all moved into their shards: the old hash is gone.
    assert_eq!(out[0].id().as_str(), "old-a");
    assert_eq!(out[1].id().as_str(), "old-b");
    assert!(out[2].is_new());
    assert_eq!(out[3].id().as_str(), "old-d");
    assert_eq!(out[4].id(), e5.id());
    assert!(!legacy_pending_exists(&t).await);
    let again = q
        .enqueue(&Ping { n: 1 }, superseding("a", 5))
        .await
        .unwrap();
    assert_eq!(again.id().as_str(), "old-a");
    assert_eq!(q.stats().await.unwrap().ready, 3);
}

#[tokio::test]
async fn pending_entries_of_the_one_hash_layout_move_into_shards_and_the_later_rank_wins() {
    let t = TestNs::new("migrate-pending").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    // Arrange: this version already queued a at rank 4 and b at rank 1; an older process
    // wrote a at rank 2 (older) and b at rank 7 (newer) into the one hash, and 1,200 more.
    let a4 = q
        .enqueue(&Ping { n: 1 }, superseding("a", 4))
        .await
        .unwrap();
    q.enqueue(&Ping { n: 2 }, superseding("b", 1))
        .await
        .unwrap();
    plant_legacy_pending(&t, "a", 2, "old-a").await;
    plant_legacy_pending(&t, "b", 7, "old-b").await;
    for i in 0..1_200 {
        plant_legacy_pending(&t, &format!("k{i}"), 1, &format!("old-{i}")).await;
    }

    // Act
    let moved = q.migrate_pending().await.unwrap();
    let again = q.migrate_pending().await.unwrap();

    // Assert: every entry moved once, the old hash is gone, and each key keeps its later
    // job: a's rank 4 stayed (a duplicate of its job), b's rank 7 and k7's rank 1 came over.
    assert_eq!((moved, again), (1_202, 0));
    assert!(!legacy_pending_exists(&t).await);
    let out = q
        .enqueue_many([
            (Ping { n: 3 }, superseding("a", 4)),
            (Ping { n: 4 }, superseding("b", 7)),
            (Ping { n: 5 }, superseding("k7", 1)),
        ])
        .await
        .unwrap();
    assert_eq!(out[0].id(), a4.id());
    assert_eq!(out[1].id().as_str(), "old-b");
    assert_eq!(out[2].id().as_str(), "old-7");
}

//! One corrupt value in a queue's bookkeeping (a non-numeric attempts count or counter)
//! never makes a script stop half-way: every other job is still fetched, acked, retried,
//! released or reaped, and the corrupt job itself stays in exactly one state.

use std::time::Duration;

use shared::queue::{EnqueueOptions, JobFailure, Queue, WorkerId};

use super::{Ping, TestNs};

async fn plant(t: &TestNs, queue: &str, key: &str, field: &str, value: &str) {
    let _: () = redis::cmd("HSET")
        .arg(t.keys.queue(queue, key))
        .arg(field)
        .arg(value)
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
}

/// Overwrites a job's delivery count (field `a` of its hash).
async fn plant_attempts(t: &TestNs, id: &str, value: &str) {
    plant(t, "q", &format!("job:{id}"), "a", value).await;
}

#[tokio::test]
async fn a_non_numeric_attempts_count_does_not_lose_the_jobs_fetched_with_it() {
    let t = TestNs::new("corrupt-attempts").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            q.enqueue(&Ping { n }, EnqueueOptions::default())
                .await
                .unwrap()
                .id()
                .clone(),
        );
    }
    plant_attempts(&t, ids[1].as_str(), "not-a-number").await;
    let w = WorkerId::generate();

    let jobs = q.fetch(&w, 10).await.unwrap();

    assert_eq!(jobs.len(), 3, "every job is leased, the corrupt one too");
    for job in &jobs {
        assert!(q.ack(&job.token, &job.id).await.unwrap());
    }
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.dead), (0, 0, 0));
}

#[tokio::test]
async fn corrupt_counters_and_attempts_never_stop_fail_release_or_reap_half_way() {
    let t = TestNs::new("corrupt-counters").await;
    let mut config = t.config("q");
    config.lease = Duration::from_millis(50);
    config.max_attempts = 1;
    let q: Queue<Ping> = t.queue(config);
    for field in [
        "succeeded",
        "retried",
        "dead",
        "rescued",
        "dead_clock",
        "dead_reviewed",
    ] {
        plant(&t, "q", "counters", field, "garbage").await;
    }
    q.enqueue_many((0..4).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let w = WorkerId::generate();
    let jobs = q.fetch(&w, 10).await.unwrap();
    assert_eq!(jobs.len(), 4);
    for job in &jobs {
        plant_attempts(&t, job.id.as_str(), "1.5x").await;
    }

    assert!(q.ack(&jobs[0].token, &jobs[0].id).await.unwrap());
    let failed = q
        .fail(
            &jobs[1].token,
            &jobs[1].id,
            1,
            JobFailure::Retry {
                error: "boom".into(),
                delay: None,
            },
        )
        .await
        .unwrap();
    assert_ne!(failed, shared::queue::FailOutcome::LeaseLost);
    assert_eq!(
        q.release(&[(jobs[2].id.clone(), jobs[2].token.clone())])
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    q.reap_expired().await.unwrap();

    // Every job but the acked one is in exactly one state.
    let s = q.stats().await.unwrap();
    assert_eq!(s.ready + s.delayed + s.in_flight + s.dead, 3, "{s:?}");
    assert_eq!(s.in_flight, 0, "{s:?}");
}

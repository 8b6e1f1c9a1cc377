//! Stats, listing with filters, atomic requeue, purge and the dead-letter cap.

use std::time::Duration;

use shared::queue::{
    DeadSelector, EnqueueOptions, JobFailure, JobFilter, JobId, JobState, Queue, WorkerId,
};

use super::{Ping, TestNs};

/// Enqueues `n` jobs and dead-letters them with errors "error <n>".
async fn dead_jobs(q: &Queue<Ping>, n: u64) -> Vec<JobId> {
    let w = WorkerId::generate();
    q.enqueue_many((0..n).map(|i| (Ping { n: i }, EnqueueOptions::dedupe(format!("d:{i}")))))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for job in q.fetch(&w, n as usize).await.unwrap() {
        let f = JobFailure::Permanent {
            error: format!("error {}", job.job.n),
        };
        q.fail(&job.token, &job.id, job.attempt, f).await.unwrap();
        ids.push(job.id);
    }
    ids
}

#[tokio::test]
async fn stats_count_jobs_per_state_and_per_worker() {
    let t = TestNs::new("stats").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let (a, b) = (WorkerId::generate(), WorkerId::generate());
    q.enqueue_many((0..10).map(|i| (Ping { n: i }, EnqueueOptions::default())))
        .await
        .unwrap();
    q.enqueue(
        &Ping { n: 99 },
        EnqueueOptions::default().delayed(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    q.fetch(&a, 2).await.unwrap();
    let jobs = q.fetch(&b, 3).await.unwrap();
    q.fail(
        &jobs[0].token,
        &jobs[0].id,
        1,
        JobFailure::Permanent { error: "x".into() },
    )
    .await
    .unwrap();

    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.delayed, s.delayed_due, s.in_flight, s.dead),
        (5, 1, 0, 4, 1)
    );
    assert_eq!((s.enqueued_total, s.workers_alive), (11, 2));
    let by_worker = q.in_flight_by_worker().await.unwrap();
    assert_eq!(by_worker.get(a.as_str()), Some(&2));
    assert_eq!(by_worker.get(b.as_str()), Some(&2));
    let ready = q
        .list(JobState::Ready, &JobFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(
        ready.iter().map(|j| j.payload.clone()).collect::<Vec<_>>()[0],
        r#"{"n":5}"#
    );
}

#[tokio::test]
async fn list_filters_before_applying_the_limit() {
    let t = TestNs::new("listf").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    dead_jobs(&q, 1_200).await;
    let f = JobFilter {
        error_contains: Some("error 7".into()),
        ..Default::default()
    };
    // "error 7", "error 70".."error 79", "error 700".."error 799": 111 matches across pages.
    let got = q.list_dead(&f, 1_000).await.unwrap();
    assert_eq!(got.len(), 111);
    assert_eq!(q.list_dead(&f, 5).await.unwrap().len(), 5);
    let by_key = JobFilter {
        dedupe_prefix: Some("d:11".into()),
        ..Default::default()
    };
    assert_eq!(
        q.list_dead(&by_key, 1_000).await.unwrap().len(),
        1 + 10 + 100
    );
}

#[tokio::test]
async fn requeue_dead_by_id_filter_or_all_moves_each_job_back_once() {
    let t = TestNs::new("requeue").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let ids = dead_jobs(&q, 30).await;

    let by_id = q
        .requeue_dead(
            DeadSelector::Ids(vec![ids[0].clone(), JobId::from("nope")]),
            true,
        )
        .await
        .unwrap();
    assert_eq!(by_id, vec![ids[0].clone()]);
    let f = JobFilter {
        error_contains: Some("error 2".into()),
        ..Default::default()
    };
    let by_filter = q.requeue_dead(DeadSelector::Filter(f), true).await.unwrap();
    assert_eq!(by_filter.len(), 11); // 2, 20..29
    let rest = q.requeue_dead(DeadSelector::All, false).await.unwrap();
    assert_eq!(rest.len(), 18);
    let s = q.stats().await.unwrap();
    assert_eq!((s.dead, s.ready, s.requeued_total), (0, 30, 30));

    // Requeue works although the dedupe keys are still held, and a reset job runs again
    // from attempt 1.
    // It is not a first delivery: its earlier ones may have done their work.
    let job = q.fetch(&WorkerId::generate(), 1).await.unwrap().remove(0);
    assert_eq!(
        (job.id.clone(), job.attempt, job.first_delivery),
        (ids[0].clone(), 1, false)
    );
}

#[tokio::test]
async fn two_operators_requeueing_at_once_never_enqueue_a_job_twice() {
    let t = TestNs::new("requeue2").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    dead_jobs(&q, 500).await;
    let (q1, q2) = (q.clone(), q.clone());
    let (a, b) = tokio::join!(
        q1.requeue_dead(DeadSelector::All, true),
        q2.requeue_dead(DeadSelector::All, true)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 500);
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.dead), (500, 0));
}

#[tokio::test]
async fn purge_dead_deletes_old_dead_letters_with_their_payload() {
    let t = TestNs::new("purge").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    dead_jobs(&q, 5).await;
    assert_eq!(q.purge_dead(Duration::from_secs(60)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(q.purge_dead(Duration::from_millis(10)).await.unwrap(), 5);
    assert_eq!(q.stats().await.unwrap().dead, 0);
    let keys = t.all_keys().await;
    let job_prefix = t.keys.queue("q", "job:");
    assert!(
        !keys.iter().any(|k| k.starts_with(&job_prefix)),
        "no job hash left: {keys:?}"
    );
}

#[tokio::test]
async fn dead_letters_are_capped_oldest_first() {
    let t = TestNs::new("deadcap").await;
    let mut c = t.config("q");
    c.dead_cap = 10;
    let q: Queue<Ping> = t.queue(c);
    let w = WorkerId::generate();
    q.enqueue_many((0..25).map(|i| (Ping { n: i }, EnqueueOptions::default())))
        .await
        .unwrap();
    for job in q.fetch(&w, 25).await.unwrap() {
        q.fail(
            &job.token,
            &job.id,
            1,
            JobFailure::Permanent { error: "x".into() },
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let dead = q.list_dead(&JobFilter::default(), 100).await.unwrap();
    let mut kept: Vec<String> = dead.iter().map(|j| j.payload.clone()).collect();
    kept.sort();
    let mut newest: Vec<String> = (15..25).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    newest.sort();
    assert_eq!(kept, newest);
    let job_prefix = t.keys.queue("q", "job:");
    let job_hashes = t
        .all_keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&job_prefix))
        .count();
    assert_eq!(job_hashes, 10, "trimmed dead letters leave no job hash");
}

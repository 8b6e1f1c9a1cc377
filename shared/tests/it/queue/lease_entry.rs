//! A lease lives in its in-flight entry (`<id>|<delivery token>`), so leasing a job writes
//! nothing to its hash and the ack's removal of the entry is the holder check; leases an
//! earlier version wrote (the bare id, the holder and the spent delivery in the job's hash)
//! still read, reap and count right.

use redis::AsyncCommands;
use shared::queue::{
    EnqueueOptions, JobChange, JobFailure, JobFilter, JobState, LeasedJob, Queue, WorkerId,
};

use super::{leased_ping, Ping, TestNs};

/// Job `id`'s hash fields, sorted.
async fn job_fields(t: &TestNs, id: &str) -> Vec<(String, String)> {
    let mut conn = t.conn.clone();
    let mut fields: Vec<(String, String)> = conn
        .hgetall(t.keys.queue("q", &format!("job:{id}")))
        .await
        .unwrap();
    fields.sort();
    fields
}

async fn in_flight_entries(t: &TestNs) -> Vec<String> {
    let mut conn = t.conn.clone();
    conn.zrange(t.keys.queue("q", "inflight"), 0, -1)
        .await
        .unwrap()
}

/// Asserts that `job`, leased by worker `w`, reads back as in flight on its first
/// delivery, held by that delivery, and that an operator's delete is refused.
async fn assert_held(q: &Queue<Ping>, job: &LeasedJob<Ping>, w: &WorkerId) {
    let info = q.job(&job.id).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::InFlight);
    assert_eq!(info.attempts, 1);
    assert_eq!(info.owner.as_deref(), Some(job.token.as_str()));
    assert_eq!(
        q.in_flight_by_worker().await.unwrap().get(w.as_str()),
        Some(&1)
    );
    assert_eq!(
        q.delete_job(&job.id).await.unwrap(),
        JobChange::Refused(JobState::InFlight)
    );
}

/// The next job `w` leases from `q`, waiting up to two seconds for a delayed one to be due.
async fn next_job(q: &Queue<Ping>, w: &WorkerId) -> LeasedJob<Ping> {
    for _ in 0..200 {
        if let Some(job) = q.fetch(w, 1).await.unwrap().pop() {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no job came due");
}

/// Rewrites `job`'s lease as an earlier version wrote it: the bare id in flight (deadline
/// already passed), the holder and the delivery under way counted in the job's hash.
async fn as_an_earlier_versions_lease(t: &TestNs, job: &LeasedJob<Ping>) {
    let mut conn = t.conn.clone();
    let inflight = t.keys.queue("q", "inflight");
    let () = redis::pipe()
        .zrem(&inflight, format!("{}|{}", job.id, job.token))
        .ignore()
        .zadd(&inflight, job.id.as_str(), 1)
        .ignore()
        .hset_multiple(
            t.keys.queue("q", &format!("job:{}", job.id)),
            &[("o", job.token.as_str()), ("a", &job.attempt.to_string())],
        )
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lease_is_named_in_its_in_flight_entry_and_leaves_the_job_untouched() {
    let t = TestNs::new("lease-entry").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;

    assert_eq!(
        in_flight_entries(&t).await,
        [format!("{}|{}", job.id, job.token)]
    );
    let fields = job_fields(&t, job.id.as_str()).await;
    assert_eq!(
        fields.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["p", "t"],
        "a lease writes no holder and no count into the job: {fields:?}"
    );
    // Read back, the job is in flight on its first delivery, held by this delivery.
    assert_held(&q, &job, &w).await;
    assert!(q.job(&job.id).await.unwrap().unwrap().at_ms.is_some());
    let listed = q
        .list(JobState::InFlight, &JobFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].id.clone(),
            listed[0].attempts,
            listed[0].owner.clone()
        ),
        (job.id.clone(), 1, Some(job.token.as_str().to_string()))
    );
}

#[tokio::test]
async fn a_failed_delivery_is_counted_when_it_ends_and_a_deferred_one_is_not() {
    let t = TestNs::new("lease-count").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let retry = JobFailure::Retry {
        error: "later".into(),
        delay: Some(std::time::Duration::ZERO),
    };
    q.fail(&job.token, &job.id, job.attempt, retry)
        .await
        .unwrap();
    let info = q.job(&job.id).await.unwrap().unwrap();
    assert_eq!((info.state, info.attempts), (JobState::Delayed, 1));

    let again = next_job(&q, &w).await;
    assert_eq!(again.attempt, 2);
    let defer = JobFailure::Defer {
        error: "not yet".into(),
        delay: std::time::Duration::ZERO,
    };
    q.fail(&again.token, &again.id, again.attempt, defer)
        .await
        .unwrap();
    let info = q.job(&job.id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 1, "a deferred delivery is given back");
    let third = next_job(&q, &w).await;
    assert_eq!((third.attempt, third.first_delivery), (2, false));
}

#[tokio::test]
async fn an_earlier_versions_lease_is_listed_with_its_holder_and_reaped_counted_once() {
    let t = TestNs::new("lease-legacy").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    as_an_earlier_versions_lease(&t, &job).await;

    // Its hash already counts the delivery: read back, it is on its first all the same.
    assert_held(&q, &job, &w).await;

    assert_eq!(q.reap_expired().await.unwrap(), 1);
    let fields = job_fields(&t, job.id.as_str()).await;
    assert!(
        fields.iter().all(|(f, _)| f != "o"),
        "the reaped lease's holder is gone: {fields:?}"
    );
    let again = q.fetch(&w, 1).await.unwrap().remove(0);
    assert_eq!(again.id, job.id);
    assert_eq!(again.attempt, 2, "the earlier delivery is counted once");
    assert!(q.ack(&again.token, &again.id).await.unwrap());
    assert!(in_flight_entries(&t).await.is_empty());
}

#[tokio::test]
async fn an_earlier_versions_lease_on_its_last_attempt_is_buried_with_its_count() {
    let t = TestNs::new("lease-legacy-dead").await;
    let mut c = t.config("q");
    c.max_attempts = 1;
    let q: Queue<Ping> = t.queue(c);
    let job = leased_ping(&q, &WorkerId::generate()).await;
    as_an_earlier_versions_lease(&t, &job).await;

    assert_eq!(q.reap_expired().await.unwrap(), 0, "none rescued");
    let dead = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].owner.clone()), (1, None));
}

#[tokio::test]
async fn a_job_in_flight_is_not_replaced_by_a_later_rank() {
    let t = TestNs::new("lease-supersede").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let opts = |rank| EnqueueOptions::default().superseding("login", rank);
    q.enqueue(&Ping { n: 1 }, opts(1)).await.unwrap();
    let job = q.fetch(&w, 1).await.unwrap().remove(0);

    let later = q.enqueue(&Ping { n: 2 }, opts(2)).await.unwrap();

    assert!(later.is_new());
    assert_eq!(
        q.job(&job.id).await.unwrap().map(|j| j.state),
        Some(JobState::InFlight)
    );
    assert!(q.ack(&job.token, &job.id).await.unwrap());
    assert_eq!(q.stats().await.unwrap().ready, 1);
}

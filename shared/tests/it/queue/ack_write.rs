//! A write attached to an ack: another module's Lua run first in the ack's script call,
//! with its own keys and arguments, lease held or not; its error leaves the job unacked.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use redis::AsyncCommands;
use shared::config::RedisMode;
use shared::queue::{
    AckAttached, AckWith, AckWrite, AckWriteScript, ChainedJob, DeliveryToken, EnqueueOptions,
    JobFilter, LeaseRead, PayloadText, Queue, RedisBackend, WorkerId,
};
use tokio_util::sync::CancellationToken;

use super::apalis_worker::stop_signal;
use super::{eventually, leased_ping, Ping, TestNs};

/// Sets KEYS[1] to ARGV[1] and answers {7, ARGV[2], the argument count}, written as a
/// script called on its own would be.
static SET_AND_ANSWER: LazyLock<AckWriteScript> = LazyLock::new(|| {
    AckWriteScript::new("redis.call('SET', KEYS[1], ARGV[1])\nreturn {7, ARGV[2], #ARGV}")
});

/// Answers an error before writing anything.
static REFUSE: LazyLock<AckWriteScript> =
    LazyLock::new(|| AckWriteScript::new("return redis.error_reply('refused: bad input')"));

/// One queue of a test on one Redis; `None` on a Cluster, where a write's keys would be in
/// another slot than the queue's (its callers attach none there).
async fn one_redis(test: &str) -> Option<(TestNs, Queue<Ping>)> {
    let t = TestNs::new(test).await;
    if t.conn.mode() == RedisMode::Cluster {
        return None;
    }
    let q = t.queue(t.config("first"));
    Some((t, q))
}

/// A write of `value` to `key` through SET_AND_ANSWER, and where its answer lands.
fn set_write(key: &str, value: &[u8]) -> (AckWrite, Arc<Mutex<Vec<redis::Value>>>) {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&answers);
    let write = AckWrite::new(
        &SET_AND_ANSWER,
        vec![key.to_string()],
        vec![value.to_vec(), b"second argument".to_vec()],
        move |v| seen.lock().unwrap().push(v.clone()),
    );
    (write, answers)
}

/// `Ping { n: 9 }` to chain into `second` under the dedupe label `after-1`.
fn ping_9_chained_into(second: &Queue<Ping>) -> ChainedJob {
    second
        .chained(&Ping { n: 9 }, &EnqueueOptions::dedupe("after-1"))
        .unwrap()
        .expect("one Redis chains")
}

fn answer_of(answers: &Mutex<Vec<redis::Value>>) -> (i64, String, i64) {
    let answers = answers.lock().unwrap();
    assert_eq!(answers.len(), 1, "told once: {answers:?}");
    redis::from_redis_value_ref(&answers[0]).unwrap()
}

#[tokio::test]
async fn an_ack_runs_its_attached_write_in_the_same_call_and_tells_its_answer() {
    let Some((t, q)) = one_redis("ack-write").await else {
        return;
    };
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    q.enqueue(&Ping { n: 2 }, EnqueueOptions::default())
        .await
        .unwrap();
    let key = t.keys.queue("first", "written");
    // Bytes as they are, spaces and a non-UTF-8 byte included.
    let value = b"accounts [1, 2] \xff".to_vec();
    let (write, answers) = set_write(&key, &value);

    let (acked, leased) = q
        .ack_attached(
            &job.token,
            &job.id,
            &AckAttached::default().with_write(write),
            Some((&w, 1)),
        )
        .await
        .unwrap();

    assert!(acked);
    assert_eq!(leased.len(), 1, "the next job leased in the same call");
    assert_eq!(leased[0].job, Ping { n: 2 });
    let mut conn = t.conn.clone();
    let stored: Vec<u8> = conn.get(&key).await.unwrap();
    assert_eq!(stored, value);
    assert_eq!(answer_of(&answers), (7, "second argument".into(), 2));
    let s = q.stats().await.unwrap();
    assert_eq!((s.in_flight, s.succeeded_total), (1, 1), "{s:?}");
}

#[tokio::test]
async fn an_attached_write_is_written_even_when_the_lease_was_lost() {
    let Some((t, q)) = one_redis("ack-write-lost").await else {
        return;
    };
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let key = t.keys.queue("first", "written");
    let (write, answers) = set_write(&key, b"done");
    let stale = DeliveryToken::generate(&w);

    let (acked, _) = q
        .ack_attached(
            &stale,
            &job.id,
            &AckAttached::default().with_write(write),
            None,
        )
        .await
        .unwrap();

    assert!(!acked, "a stale delivery does not ack");
    let mut conn = t.conn.clone();
    let stored: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("done"),
        "the work was done: it is written"
    );
    assert_eq!(answer_of(&answers).0, 7);
    assert_eq!(
        q.stats().await.unwrap().in_flight,
        1,
        "the job is untouched"
    );
}

#[tokio::test]
async fn an_attached_write_that_answers_an_error_leaves_the_job_and_its_chained_job_alone() {
    let Some((t, q)) = one_redis("ack-write-error").await else {
        return;
    };
    let second = t.queue(t.config("second"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let chained = ping_9_chained_into(&second);
    let told = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&told);
    let write = AckWrite::new(&REFUSE, vec![], vec![], move |_| *seen.lock().unwrap() += 1);
    let attached = AckAttached::default()
        .with_chained(chained)
        .with_write(write);

    let err = q
        .ack_attached(&job.token, &job.id, &attached, None)
        .await
        .unwrap_err();

    let said = format!("{err:?}");
    assert!(said.contains("bad input"), "{said}");
    assert_eq!(*told.lock().unwrap(), 0, "no answer to tell");
    let s = q.stats().await.unwrap();
    assert_eq!((s.in_flight, s.succeeded_total), (1, 0), "not acked: {s:?}");
    assert_eq!(
        second.stats().await.unwrap().enqueued_total,
        0,
        "nothing chained"
    );
    // The delivery still holds its lease: a plain ack goes through.
    assert!(q.ack(&job.token, &job.id).await.unwrap());
}

#[tokio::test]
async fn an_ack_with_a_chained_job_and_a_write_does_both_in_one_call() {
    let Some((t, q)) = one_redis("ack-write-chain").await else {
        return;
    };
    let second = t.queue(t.config("second"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let chained = ping_9_chained_into(&second);
    let key = t.keys.queue("first", "written");
    let (write, answers) = set_write(&key, b"both");

    let (acked, _) = q
        .ack_attached(
            &job.token,
            &job.id,
            &AckAttached::default()
                .with_chained(chained)
                .with_write(write),
            None,
        )
        .await
        .unwrap();

    assert!(acked);
    assert_eq!(answer_of(&answers).0, 7);
    let mut conn = t.conn.clone();
    let stored: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(stored.as_deref(), Some("both"));
    let next = second.fetch(&w, 5).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job, Ping { n: 9 });
    assert!(matches!(
        second.dedupe_holder("after-1").await.unwrap(),
        Some(id) if id == next[0].id
    ));
}

/// Attaches a write the ack's script refuses, then succeeds.
async fn refused_write_handler(_job: Ping, ack_with: Data<AckWith>) -> Result<(), BoxDynError> {
    ack_with.write(AckWrite::new(&REFUSE, vec![], vec![], |_| ()));
    Ok(())
}

#[tokio::test]
async fn a_job_whose_ack_is_refused_fails_its_attempt_with_the_reason() {
    let Some((t, _)) = one_redis("ack-write-refused").await else {
        return;
    };
    let mut config = t.config("first");
    config.max_attempts = 1;
    let q: Queue<Ping> = t.queue(config);
    q.enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("ack-write-refused")
        .backend(RedisBackend::new(q.clone()).with_ack_fetch())
        .build(refused_write_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    // Refused at once, not retried for a lease as Redis trouble would be.
    let dead = eventually(Duration::from_secs(10), || async {
        q.stats().await.unwrap().dead == 1
    })
    .await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(dead, "{:?}", q.stats().await.unwrap());

    let letters = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    let error = letters[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("settling the job") && error.contains("bad input"),
        "{error}"
    );
    assert_eq!(q.stats().await.unwrap().succeeded_total, 0);
}

#[tokio::test]
async fn a_write_finds_its_arguments_after_the_queues_lease_reads() {
    let Some((t, _)) = one_redis("ack-write-reads").await else {
        return;
    };
    let flag = t.keys.queue("first", "flag");
    let q: Queue<Ping> = t
        .queue(t.config("first"))
        .with_lease_reads(vec![LeaseRead::get(PayloadText::fixed(flag.clone()))]);
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let key = t.keys.queue("first", "written");
    let (write, answers) = set_write(&key, b"after the reads");

    let (acked, _) = q
        .ack_attached(
            &job.token,
            &job.id,
            &AckAttached::default().with_write(write),
            None,
        )
        .await
        .unwrap();

    assert!(acked);
    assert_eq!(answer_of(&answers), (7, "second argument".into(), 2));
    let mut conn = t.conn.clone();
    let stored: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(stored.as_deref(), Some("after the reads"));
}

//! Lease reads: reads made for each job in the script call that leases it, keyed by the
//! job's payload, handed to the caller with the job.

use redis::AsyncCommands;
use serde_json::{json, Value};
use shared::config::RedisMode;
use shared::queue::{
    EnqueueOptions, LeaseRead, LeaseReadValues, PayloadElement, PayloadText, Queue, WorkerId,
};

use super::TestNs;

/// A queue of raw JSON payloads reading, for each job `["<who>","<day>", ...]`, the field
/// `<who>` of the hash `<prefix>h:<day>` and whether `<who>` is in the set `<prefix>s:<day>`.
fn reading_queue(t: &TestNs) -> (Queue<Value>, String) {
    let prefix = t.keys.global("reads:");
    let day = |kind: &str| PayloadText::new(format!("{prefix}{kind}:"), PayloadElement::Second);
    let who = || PayloadText::new("", PayloadElement::First);
    let queue = t.queue(t.config("reads")).with_lease_reads(vec![
        LeaseRead::hget(day("h"), who()),
        LeaseRead::sismember(day("s"), who()),
    ]);
    (queue, prefix)
}

/// Queues `payloads` on `q`, in order.
async fn enqueue_all(q: &Queue<Value>, payloads: &[Value]) {
    for payload in payloads {
        q.enqueue(payload, EnqueueOptions::default()).await.unwrap();
    }
}

/// What reads built from `elements` answered: `values`.
fn answered(elements: [&str; 2], values: &[Option<&str>]) -> Option<LeaseReadValues> {
    Some(LeaseReadValues {
        elements: elements.map(str::to_owned),
        values: values.iter().map(|v| v.map(str::to_owned)).collect(),
    })
}

#[tokio::test]
async fn each_leased_job_carries_what_its_reads_answered_by_fetch_and_by_ack() {
    let t = TestNs::new("lease-reads").await;
    let (q, prefix) = reading_queue(&t);
    let mut conn = t.conn.clone();
    let _: () = conn
        .hset(format!("{prefix}h:2026-11-25"), "alice", "entry")
        .await
        .unwrap();
    let _: () = conn
        .sadd(format!("{prefix}s:2026-11-25"), "bob")
        .await
        .unwrap();
    let payloads = [
        json!(["alice", "2026-11-25"]),
        json!(["bob", "2026-11-25", 2]),
        json!(["alice", "2026-11-26"]),
    ];
    enqueue_all(&q, &payloads).await;
    let w = WorkerId::generate();

    let first = q.fetch(&w, 1).await.unwrap().remove(0);
    let (acked, mut next) = q
        .ack_and_fetch(&first.token, &first.id, &w, 1)
        .await
        .unwrap();
    let second = next.remove(0);
    // An ack that also queues a job in another queue (on one Redis) leases with reads too.
    let other: Queue<Value> = t.queue(t.config("other"));
    let chained = other
        .chained(&json!(["carol", "x"]), &EnqueueOptions::dedupe("carol"))
        .unwrap();
    let third = match chained {
        Some(chained) => {
            let (acked, enqueued, mut next) = q
                .ack_chaining(&second.token, &second.id, &chained, Some((&w, 1)))
                .await
                .unwrap();
            assert!(acked && enqueued.is_new());
            next.remove(0)
        }
        None => q.fetch(&w, 1).await.unwrap().remove(0),
    };

    assert!(acked);
    let got = [&first, &second, &third].map(|j| (j.job.clone(), j.reads.clone()));
    if t.conn.mode() == RedisMode::Cluster {
        // A script there may touch only its queue's slot: the queue makes no reads.
        assert!(got.iter().all(|(_, reads)| reads.is_none()), "{got:?}");
        return;
    }
    assert_eq!(
        got,
        [
            (
                json!(["alice", "2026-11-25"]),
                answered(["alice", "2026-11-25"], &[Some("entry"), Some("0")])
            ),
            (
                json!(["bob", "2026-11-25", 2]),
                answered(["bob", "2026-11-25"], &[None, Some("1")])
            ),
            (
                json!(["alice", "2026-11-26"]),
                answered(["alice", "2026-11-26"], &[None, Some("0")])
            ),
        ]
    );
}

#[tokio::test]
async fn a_payload_not_of_the_reads_shape_or_a_key_of_another_type_gets_none_and_leases() {
    let t = TestNs::new("lease-reads-shape").await;
    let (q, prefix) = reading_queue(&t);
    let mut conn = t.conn.clone();
    let _: () = conn
        .hset(format!("{prefix}h:2026-11-25"), "a\"b", "entry")
        .await
        .unwrap();
    let _: () = conn
        .set(format!("{prefix}h:2026-11-27"), "not a hash")
        .await
        .unwrap();
    let payloads = [
        json!(["alice", "2026-11-27"]),
        json!({"l": "alice", "d": "2026-11-25"}),
        json!(["a\"b", "2026-11-25"]),
        json!(["alice"]),
        json!([1, "2026-11-25"]),
        json!("alice"),
    ];
    enqueue_all(&q, &payloads).await;

    let jobs = q.fetch(&WorkerId::generate(), 10).await.unwrap();

    let got: Vec<(Value, bool)> = jobs
        .into_iter()
        .map(|j| (j.job, j.reads.is_some()))
        .collect();
    let want: Vec<(Value, bool)> = payloads.into_iter().map(|p| (p, false)).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_queue_without_reads_leases_jobs_with_none() {
    let t = TestNs::new("lease-reads-none").await;
    let q: Queue<Value> = t.queue(t.config("plain"));
    enqueue_all(&q, &[json!(["alice", "2026-11-25"])]).await;

    let job = q.fetch(&WorkerId::generate(), 1).await.unwrap().remove(0);

    assert_eq!(job.reads, None);
}

#[tokio::test]
async fn a_read_of_fixed_text_takes_no_payload_string() {
    // A field of a hash named by the payload's first string: `HGET <prefix><who> flag`.
    let t = TestNs::new("lease-reads-fixed").await;
    let prefix = t.keys.global("reads:fixed:");
    let q = t
        .queue(t.config("fixed"))
        .with_lease_reads(vec![LeaseRead::hget(
            PayloadText::new(prefix.clone(), PayloadElement::First),
            PayloadText::fixed("flag"),
        )]);
    let mut conn = t.conn.clone();
    let _: () = conn
        .hset(format!("{prefix}alice"), "flag", "0")
        .await
        .unwrap();
    enqueue_all(&q, &[json!(["alice", "x"]), json!(["bob", "x"])]).await;

    let jobs = q.fetch(&WorkerId::generate(), 2).await.unwrap();

    let got: Vec<_> = jobs.into_iter().map(|j| j.reads).collect();
    if t.conn.mode() == RedisMode::Cluster {
        assert!(got.iter().all(Option::is_none), "{got:?}");
        return;
    }
    assert_eq!(
        got,
        [
            answered(["alice", "x"], &[Some("0")]),
            answered(["bob", "x"], &[None]),
        ]
    );
}

#[tokio::test]
async fn a_get_read_answers_a_fixed_keys_value_as_it_is_at_each_lease() {
    let t = TestNs::new("lease-reads-get").await;
    let key = t.keys.global("reads:limit");
    let q = t
        .queue(t.config("get"))
        .with_lease_reads(vec![LeaseRead::get(PayloadText::fixed(key.clone()))]);
    enqueue_all(
        &q,
        &[
            json!(["alice", "x"]),
            json!(["bob", "x"]),
            json!(["carol", "x"]),
        ],
    )
    .await;
    let w = WorkerId::generate();
    let mut conn = t.conn.clone();

    let unset = q.fetch(&w, 1).await.unwrap().remove(0).reads;
    let _: () = conn.set(&key, "0").await.unwrap();
    let set = q.fetch(&w, 1).await.unwrap().remove(0).reads;
    // A key of another type answers nothing: the handler reads for itself.
    let _: () = conn.del(&key).await.unwrap();
    let _: () = conn.hset(&key, "f", "v").await.unwrap();
    let wrong_type = q.fetch(&w, 1).await.unwrap().remove(0).reads;

    let _: () = conn.del(&key).await.unwrap();
    if t.conn.mode() == RedisMode::Cluster {
        assert!(unset.is_none() && set.is_none() && wrong_type.is_none());
        return;
    }
    assert_eq!(unset, answered(["alice", "x"], &[None]));
    assert_eq!(set, answered(["bob", "x"], &[Some("0")]));
    assert_eq!(wrong_type, None);
}

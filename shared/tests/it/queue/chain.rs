//! Chaining: an ack that queues the finished job's follow-up in another queue of the same
//! Redis in the same script call, directly and through a handler's `AckWith`.

use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use redis::AsyncCommands;
use shared::config::RedisMode;
use shared::queue::{
    AckWith, ChainedJob, DeliveryToken, EnqueueOptions, Enqueued, Queue, QueueConfig, RedisBackend,
    WorkerId,
};
use tokio_util::sync::CancellationToken;

use super::apalis_worker::stop_signal;
use super::{eventually, leased_ns, leased_ping, Ping, TestNs};

/// `Ping { n }` prepared for `second` on one Redis.
fn pair_chained(second: &Queue<Ping>, n: u64, options: &EnqueueOptions) -> ChainedJob {
    let chained = second.chained(&Ping { n }, options).unwrap();
    chained.expect("one Redis chains")
}

/// Two queues of one test: jobs of `first` chain jobs into `second`.
struct Pair {
    t: TestNs,
    first: Queue<Ping>,
    second: Queue<Ping>,
}

impl Pair {
    /// The pair on one Redis; `None` on a Cluster, where each queue's keys are in a slot of
    /// their own so no script can touch both: `chained` answers `None` there (checked
    /// here), and the caller enqueues instead.
    async fn new(test: &str, first_config: impl FnOnce(&mut QueueConfig)) -> Option<Self> {
        let t = TestNs::new(test).await;
        let mut config = t.config("first");
        first_config(&mut config);
        let pair = Self {
            first: t.queue(config),
            second: t.queue(t.config("second")),
            t,
        };
        if pair.t.conn.mode() == RedisMode::Cluster {
            let chained = pair.chained(0, &EnqueueOptions::dedupe("k"));
            assert!(chained.is_none(), "a Cluster never chains");
            return None;
        }
        Some(pair)
    }

    /// `Ping { n }` prepared for `second`.
    fn chained(&self, n: u64, options: &EnqueueOptions) -> Option<ChainedJob> {
        self.second.chained(&Ping { n }, options).unwrap()
    }
}

#[tokio::test]
async fn an_ack_chaining_a_job_acks_and_queues_it_in_the_other_queue_in_one_call() {
    let Some(Pair {
        t: _ns,
        first,
        second,
    }) = Pair::new("chain", |_| ()).await
    else {
        return;
    };
    let w = WorkerId::generate();
    let job = leased_ping(&first, &w).await;
    let chained = pair_chained(&second, 2, &EnqueueOptions::dedupe("after-1"));

    let (acked, enqueued, leased) = first
        .ack_chaining(&job.token, &job.id, &chained, None)
        .await
        .unwrap();

    assert!(acked);
    assert!(leased.is_empty(), "nothing asked to be leased");
    let Enqueued::New(id) = enqueued else {
        panic!("queued anew: {enqueued:?}")
    };
    let s = first.stats().await.unwrap();
    assert_eq!((s.in_flight, s.succeeded_total), (0, 1), "{s:?}");
    let next = second.fetch(&w, 5).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(
        (&next[0].id, &next[0].job, next[0].first_delivery),
        (&id, &Ping { n: 2 }, true)
    );
    assert_eq!(second.dedupe_holder("after-1").await.unwrap(), Some(id));
    assert_eq!(second.stats().await.unwrap().enqueued_total, 1);
}

#[tokio::test]
async fn a_chained_jobs_dedupe_key_lives_as_long_as_its_options_say() {
    let Some(Pair { t, first, second }) = Pair::new("chain-ttl", |_| ()).await else {
        return;
    };
    let w = WorkerId::generate();
    let job = leased_ping(&first, &w).await;
    let options = EnqueueOptions::dedupe("after-1").dedupe_for(Duration::from_secs(900));
    let chained = pair_chained(&second, 2, &options);

    let (acked, enqueued, _) = first
        .ack_chaining(&job.token, &job.id, &chained, None)
        .await
        .unwrap();

    assert!(acked && enqueued.is_new());
    let ttl = t.pttl(&t.keys.queue("second", "dedupe:after-1")).await;
    assert!(ttl > 840_000 && ttl <= 900_000, "{ttl} ms");
}

#[tokio::test]
async fn an_ack_chaining_a_job_can_also_lease_the_next_job() {
    let Some(Pair {
        t: _ns,
        first,
        second,
    }) = Pair::new("chain-lease", |_| ()).await
    else {
        return;
    };
    let w = WorkerId::generate();
    let job = leased_ping(&first, &w).await;
    first
        .enqueue(&Ping { n: 7 }, EnqueueOptions::default())
        .await
        .unwrap();
    let chained = pair_chained(&second, 2, &EnqueueOptions::dedupe("after-1"));

    let (acked, enqueued, leased) = first
        .ack_chaining(&job.token, &job.id, &chained, Some((&w, 1)))
        .await
        .unwrap();

    assert!(acked && enqueued.is_new());
    assert_eq!(leased.len(), 1);
    assert_eq!((&leased[0].job, leased[0].attempt), (&Ping { n: 7 }, 1));
    assert!(first.ack(&leased[0].token, &leased[0].id).await.unwrap());
    assert_eq!(second.stats().await.unwrap().ready, 1);
}

#[tokio::test]
async fn a_chained_job_is_queued_even_when_the_lease_was_lost_and_once_per_dedupe_key() {
    let Some(Pair {
        t: _ns,
        first,
        second,
    }) = Pair::new("chain-lost", |_| ()).await
    else {
        return;
    };
    let w = WorkerId::generate();
    let job = leased_ping(&first, &w).await;
    let stale = DeliveryToken::generate(&w);
    let options = EnqueueOptions::dedupe("after-1");
    let chained = pair_chained(&second, 2, &options);

    // A delivery that lost its lease: its work was done, so what it chained is queued.
    let (acked, enqueued, _) = first
        .ack_chaining(&stale, &job.id, &chained, None)
        .await
        .unwrap();
    assert!(!acked, "a stale delivery does not ack");
    assert!(enqueued.is_new());
    assert_eq!(
        first.stats().await.unwrap().in_flight,
        1,
        "the job itself is untouched"
    );

    // The same call again (its reply lost, say) finds its own job: still one.
    let (_, again, _) = first
        .ack_chaining(&job.token, &job.id, &chained, None)
        .await
        .unwrap();
    assert_eq!(again, enqueued);
    // A redelivery's new job under the same dedupe key is a duplicate of the first.
    let other = pair_chained(&second, 3, &options);
    let job = leased_ping(&first, &w).await;
    let (acked, duplicate, _) = first
        .ack_chaining(&job.token, &job.id, &other, None)
        .await
        .unwrap();
    assert!(acked);
    let Enqueued::New(queued) = enqueued else {
        unreachable!()
    };
    assert_eq!(duplicate, Enqueued::Duplicate(queued));
    let s = second.stats().await.unwrap();
    assert_eq!((s.ready, s.enqueued_total), (1, 1), "{s:?}");
}

#[tokio::test]
async fn a_chained_job_with_a_delay_waits_in_the_delayed_set() {
    let Some(Pair {
        t: _ns,
        first,
        second,
    }) = Pair::new("chain-delay", |_| ()).await
    else {
        return;
    };
    let w = WorkerId::generate();
    let job = leased_ping(&first, &w).await;
    let options = EnqueueOptions::dedupe("poll-1").delayed(Duration::from_millis(300));
    let chained = pair_chained(&second, 2, &options);

    first
        .ack_chaining(&job.token, &job.id, &chained, None)
        .await
        .unwrap();

    let s = second.stats().await.unwrap();
    assert_eq!((s.ready, s.delayed), (0, 1), "{s:?}");
    assert!(second.fetch(&w, 1).await.unwrap().is_empty(), "not due yet");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(second.fetch(&w, 1).await.unwrap()[0].job, Ping { n: 2 });
}

#[tokio::test]
async fn only_a_job_with_a_dedupe_key_and_no_supersede_key_is_chained() {
    let Some(pair) = Pair::new("chain-which", |_| ()).await else {
        return;
    };

    assert!(pair.chained(1, &EnqueueOptions::default()).is_none());
    let superseding = EnqueueOptions::dedupe("k").superseding("login", 1);
    assert!(pair.chained(1, &superseding).is_none());
    assert!(pair.chained(1, &EnqueueOptions::dedupe("k")).is_some());
}

/// What the handlers below chain for `job`: `Ping { n + 100 }` into `second`.
fn follow_up(job: &Ping, ack_with: &AckWith, second: &Queue<Ping>) {
    let options = EnqueueOptions::dedupe(format!("after-{}", job.n));
    ack_with.chain(pair_chained(second, job.n + 100, &options));
}

/// Chains the follow-up; fails jobs with an odd `n` (so nothing is queued for them).
async fn chaining_handler(
    job: Ping,
    ack_with: Data<AckWith>,
    second: Data<Queue<Ping>>,
) -> Result<(), BoxDynError> {
    follow_up(&job, &ack_with, &second);
    if job.n % 2 == 1 {
        return Err("odd".into());
    }
    Ok(())
}

#[tokio::test]
async fn a_worker_queues_what_a_successful_handler_chained_and_nothing_of_a_failed_one() {
    let Some(Pair {
        t: _ns,
        first,
        second,
    }) = Pair::new("chain-worker", |c| c.max_attempts = 1).await
    else {
        return;
    };
    first
        .enqueue_many((0..6).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("chain-worker")
        .backend(RedisBackend::new(first.clone()).with_ack_fetch())
        .data(second.clone())
        .build(chaining_handler);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    let settled = eventually(Duration::from_secs(15), || async {
        let s = first.stats().await.unwrap();
        s.succeeded_total + s.dead == 6
    })
    .await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(settled, "{:?}", first.stats().await.unwrap());

    assert_eq!(
        leased_ns(&second, &WorkerId::generate(), 10).await,
        [100, 102, 104],
        "the even jobs' follow-ups, once each"
    );
}

/// Chains the follow-up, then never returns (until its lease is lost).
async fn chaining_then_stuck(
    job: Ping,
    ack_with: Data<AckWith>,
    second: Data<Queue<Ping>>,
) -> Result<(), BoxDynError> {
    follow_up(&job, &ack_with, &second);
    futures::future::pending::<()>().await;
    Ok(())
}

#[tokio::test]
async fn what_a_handler_chained_is_queued_even_when_its_lease_is_lost_afterwards() {
    let Some(Pair { t, first, second }) = Pair::new("chain-orphan", |_| ()).await else {
        return;
    };
    first
        .enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("chain-orphan")
        .backend(RedisBackend::new(first.clone()).with_ack_fetch())
        .data(second.clone())
        .build(chaining_then_stuck);
    let handle = tokio::spawn(worker.run_until(stop_signal(&stop)));
    let mut conn = t.conn.clone();
    let inflight = t.keys.queue("first", "inflight");
    let mut entries: Vec<String> = Vec::new();
    for _ in 0..250 {
        entries = conn.zrange(&inflight, 0, -1).await.unwrap();
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(entries.len(), 1, "the job was never leased");

    // Another delivery took the job over and finished it: the heartbeat finds the lease
    // gone, and the job never comes back to this worker. An in-flight entry is
    // `<id>|<delivery>`.
    let (id, _) = entries[0].split_once('|').unwrap();
    let job_key = t.keys.queue("first", &format!("job:{id}"));
    let () = redis::pipe()
        .del(&job_key)
        .ignore()
        .zrem(&inflight, &entries[0])
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    let queued = eventually(Duration::from_secs(5), || async {
        second.stats().await.unwrap().ready == 1
    })
    .await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(queued, "{:?}", second.stats().await.unwrap());
    let s = first.stats().await.unwrap();
    assert_eq!(
        (s.in_flight, s.succeeded_total),
        (0, 0),
        "not acked here: {s:?}"
    );
    let w = WorkerId::generate();
    assert_eq!(second.fetch(&w, 1).await.unwrap()[0].job, Ping { n: 101 });
}

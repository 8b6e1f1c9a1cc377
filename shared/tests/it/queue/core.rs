//! Enqueue, lease, ack, retry, dead letters, reaper, promotion, dedupe, poison payloads.

use std::collections::HashSet;
use std::time::Duration;

use shared::queue::{
    DeliveryToken, EnqueueOptions, Enqueued, FailOutcome, Heartbeat, HeldJobs, JobFailure,
    JobFilter, JobState, Queue, QueueConfig, WorkerId,
};

use super::{leased_ping, Ping, TestNs};

#[tokio::test]
async fn fetch_leases_a_job_and_ack_deletes_its_hash_keeping_no_record_by_default() {
    let t = TestNs::new("ack").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let id = q
        .enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();

    let jobs = q.fetch(&w, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(&jobs[0].id, id.id());
    assert_eq!(jobs[0].job, Ping { n: 1 });
    assert_eq!(jobs[0].attempt, 1);
    assert!(jobs[0].first_delivery);
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 1));
    let inflight = q
        .list(JobState::InFlight, &JobFilter::default(), 10)
        .await
        .unwrap();
    let owner = inflight[0].owner.as_deref().unwrap();
    assert_eq!(owner, jobs[0].token.as_str());
    assert_eq!(DeliveryToken::worker_of(owner), w.as_str());
    assert!(
        q.fetch(&w, 10).await.unwrap().is_empty(),
        "a leased job is not fetched again"
    );

    assert!(q.ack(&jobs[0].token, &jobs[0].id).await.unwrap());
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.dead, s.succeeded_total),
        (0, 0, 0, 1)
    );
    let keys = t.all_keys().await;
    let queue_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&t.keys.queue("q", "")))
        .collect();
    let job_key = t.keys.queue("q", &format!("job:{}", jobs[0].id));
    assert!(
        !keys.contains(&job_key),
        "no job hash left behind: {keys:?}"
    );
    assert!(
        !queue_keys.iter().any(|k| k.contains(":done:")),
        "no finished record unless asked for: {queue_keys:?}"
    );
}

#[tokio::test]
async fn ack_keeps_a_short_finished_record_when_a_retention_is_set() {
    let t = TestNs::new("ack-done").await;
    let mut config = t.config("q");
    config.finished_retention = Duration::from_secs(600);
    let q: Queue<Ping> = t.queue(config);
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;

    assert!(q.ack(&job.token, &job.id).await.unwrap());

    let done = t.keys.queue("q", &format!("done:{}", job.id));
    let ttl = t.pttl(&done).await;
    assert!(ttl > 0 && ttl <= 600_000, "finished record expires: {ttl}");
    let mut conn = t.conn.clone();
    let (attempts, worker): (String, String) = redis::cmd("HMGET")
        .arg(&done)
        .arg("attempts")
        .arg("worker")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(attempts, "1");
    assert_eq!(worker, job.token.as_str());
}

#[tokio::test]
async fn a_dedupe_key_lives_as_long_as_its_options_say_or_the_queues_lifetime() {
    let t = TestNs::new("dedupe-ttl").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let short = Duration::from_secs(600);
    // Three calls (a | b c | d a), the last one finding `a` taken by the first.
    let jobs = [
        ("a", None),
        ("b", Some(short)),
        ("c", Some(short)),
        ("d", None),
        ("a", None),
    ]
    .map(|(label, ttl)| {
        let options = EnqueueOptions::dedupe(label);
        let options = match ttl {
            Some(ttl) => options.dedupe_for(ttl),
            None => options,
        };
        (Ping { n: 1 }, options)
    });

    let queued = q.enqueue_many(jobs).await.unwrap();

    assert!(queued[..4].iter().all(Enqueued::is_new), "{queued:?}");
    assert_eq!(queued[4], Enqueued::Duplicate(queued[0].id().clone()));
    let queue_lifetime = q.config().dedupe_ttl.as_millis() as i64;
    for (label, most) in [
        ("a", queue_lifetime),
        ("b", 600_000),
        ("c", 600_000),
        ("d", queue_lifetime),
    ] {
        let ttl = t.pttl(&t.keys.queue("q", &format!("dedupe:{label}"))).await;
        assert!(ttl > most - 60_000 && ttl <= most, "{label}: {ttl} ms");
    }
    assert_eq!(q.stats().await.unwrap().ready, 4);
}

#[tokio::test]
async fn expired_lease_returns_job_to_ready_and_counts_it_rescued() {
    let t = TestNs::new("reap").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let (a, b) = (WorkerId::generate(), WorkerId::generate());
    let job = leased_ping(&q, &a).await;

    assert_eq!(
        q.reap_expired().await.unwrap(),
        0,
        "a live lease is not reaped"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(q.reap_expired().await.unwrap(), 1);
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.rescued_total), (1, 0, 1));

    // Recovery is per job, not per worker name: any worker picks it up.
    let again = q.fetch(&b, 1).await.unwrap().remove(0);
    assert_eq!(again.id, job.id);
    assert_eq!(again.attempt, 2);
    assert!(job.first_delivery && !again.first_delivery);
    assert!(
        !q.ack(&job.token, &job.id).await.unwrap(),
        "the first holder's late ack is refused"
    );
    assert!(q.ack(&again.token, &again.id).await.unwrap());
}

#[tokio::test]
async fn a_released_job_comes_back_on_the_same_attempt_but_not_as_a_first_delivery() {
    let t = TestNs::new("release-first").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    assert_eq!((job.attempt, job.first_delivery), (1, true));

    // A graceful stop hands it back: the handler may have done its work already.
    assert_eq!(
        q.release(&[(job.id.clone(), job.token.clone())])
            .await
            .unwrap(),
        1
    );
    let again = q.fetch(&w, 1).await.unwrap().remove(0);
    assert_eq!(again.id, job.id);
    assert_eq!((again.attempt, again.first_delivery), (1, false));
}

fn lease_from_now<T>(q: &Queue<T>) -> tokio::time::Instant {
    tokio::time::Instant::now() + q.config().lease
}

#[tokio::test]
async fn heartbeat_keeps_leases_alive_while_the_job_runs_long() {
    let t = TestNs::new("renew").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let held = HeldJobs::default();
    held.insert(job.id.clone(), job.token.clone(), lease_from_now(&q));
    let hb = Heartbeat::spawn(q.clone(), w.clone(), held.clone());

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(q.reap_expired().await.unwrap(), 0);
    assert_eq!(q.stats().await.unwrap().workers_alive, 1);
    hb.stop();
    assert!(q.ack(&job.token, &job.id).await.unwrap());
}

#[tokio::test]
async fn failed_attempt_is_retried_after_its_backoff() {
    let t = TestNs::new("backoff").await;
    let mut c = t.config("q");
    c.backoff.base = Duration::from_millis(400);
    c.backoff.max = Duration::from_secs(5);
    let q: Queue<Ping> = t.queue(c);
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let failure = JobFailure::Retry {
        error: "boom".into(),
        delay: None,
    };
    assert_eq!(
        q.fail(&job.token, &job.id, job.attempt, failure)
            .await
            .unwrap(),
        FailOutcome::Retried
    );

    let delayed = q
        .list(JobState::Delayed, &JobFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(delayed[0].last_error.as_deref(), Some("boom"));
    assert!(
        q.fetch(&w, 1).await.unwrap().is_empty(),
        "not before its backoff"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let job = q.fetch(&w, 1).await.unwrap().remove(0);
    assert_eq!(job.attempt, 2);

    // A handler-chosen delay overrides the backoff.
    let failure = JobFailure::Retry {
        error: "pending".into(),
        delay: Some(Duration::from_millis(50)),
    };
    q.fail(&job.token, &job.id, job.attempt, failure)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(q.fetch(&w, 1).await.unwrap()[0].attempt, 3);
}

#[tokio::test]
async fn a_process_offers_its_leasing_calls_the_promotion_once_per_interval() {
    let t = TestNs::new("promote-every").await;
    let mut c = t.config("q");
    c.promote_every = Duration::from_secs(3_600);
    let q: Queue<Ping> = t.queue(c.clone());
    let w = WorkerId::generate();
    assert!(
        q.fetch(&w, 1).await.unwrap().is_empty(),
        "offered, nothing due"
    );
    q.enqueue(
        &Ping { n: 1 },
        EnqueueOptions::default().delayed(Duration::from_millis(1)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    assert!(
        q.clone().fetch(&w, 1).await.unwrap().is_empty(),
        "due, but this process's interval has not run out"
    );
    // Another process's first call may promote.
    let other: Queue<Ping> = t.queue(c);
    assert_eq!(other.fetch(&w, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_deferred_job_runs_again_later_without_spending_an_attempt() {
    let t = TestNs::new("defer").await;
    let mut c = t.config("q");
    c.max_attempts = 1;
    let q: Queue<Ping> = t.queue(c);
    let w = WorkerId::generate();
    q.enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();

    // Deferred three times (say, Flinks throttled every caller): never dead, even with
    // a single attempt allowed, and each delivery is still attempt 1.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let job = loop {
            if let Some(job) = q.fetch(&w, 1).await.unwrap().pop() {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        attempts.push((job.attempt, job.first_delivery));
        let f = JobFailure::Defer {
            error: "throttled".into(),
            delay: Duration::from_millis(20),
        };
        assert_eq!(
            q.fail(&job.token, &job.id, job.attempt, f).await.unwrap(),
            FailOutcome::Deferred
        );
        assert_eq!(q.stats().await.unwrap().delayed, 1);
    }
    // The attempt given back, only the first delivery is one no handler held before.
    assert_eq!(attempts, [(1, true), (1, false), (1, false)]);

    // A real failure on that single attempt then dead-letters it.
    let job = loop {
        if let Some(job) = q.fetch(&w, 1).await.unwrap().pop() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let f = JobFailure::Retry {
        error: "boom".into(),
        delay: None,
    };
    assert_eq!(
        q.fail(&job.token, &job.id, job.attempt, f).await.unwrap(),
        FailOutcome::Dead
    );
}

#[tokio::test]
async fn max_attempts_is_honoured_exactly_then_the_job_is_dead_with_payload_attempts_and_error() {
    let t = TestNs::new("attempts").await;
    let mut c = t.config("q");
    c.max_attempts = 3;
    c.backoff.base = Duration::from_millis(1);
    let q: Queue<Ping> = t.queue(c);
    let w = WorkerId::generate();
    let id = q
        .enqueue(&Ping { n: 7 }, EnqueueOptions::default())
        .await
        .unwrap();

    let mut deliveries = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        for job in q.fetch(&w, 1).await.unwrap() {
            deliveries += 1;
            let f = JobFailure::Retry {
                error: format!("fail #{}", job.attempt),
                delay: None,
            };
            q.fail(&job.token, &job.id, job.attempt, f).await.unwrap();
        }
        if q.stats().await.unwrap().dead == 1 {
            break;
        }
    }
    assert_eq!(deliveries, 3);
    let dead = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].id, id.id());
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("fail #3"));
    assert_eq!(dead[0].payload, r#"{"n":7}"#);
    assert!(dead[0].at_ms.is_some());
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.retried_total, s.dead_total, s.ready, s.delayed),
        (2, 1, 0, 0)
    );
}

#[tokio::test]
async fn permanent_failure_skips_retries() {
    let t = TestNs::new("permanent").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let job = leased_ping(&q, &w).await;
    let f = JobFailure::Permanent {
        error: "401 invalid login".into(),
    };
    assert_eq!(
        q.fail(&job.token, &job.id, job.attempt, f).await.unwrap(),
        FailOutcome::Dead
    );
    let dead = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    assert_eq!(
        (dead[0].attempts, dead[0].last_error.as_deref()),
        (1, Some("401 invalid login"))
    );
}

#[tokio::test]
async fn lease_that_expires_on_the_last_attempt_dead_letters_the_job() {
    let t = TestNs::new("lastlease").await;
    let mut c = t.config("q");
    c.max_attempts = 1;
    let q: Queue<Ping> = t.queue(c);
    q.enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    q.fetch(&WorkerId::generate(), 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(q.reap_expired().await.unwrap(), 0);
    let dead = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("lease expired"));
}

#[tokio::test]
async fn dedupe_key_outlives_the_job_with_the_default_config() {
    let t = TestNs::new("dedupe").await;
    // The default config: no TTL needs to be set for dedupe to work.
    let q: Queue<Ping> = t.queue(QueueConfig::new("q"));
    let w = WorkerId::generate();
    let key = "authorize:login-1:2026-11-25";
    let first = q
        .enqueue(&Ping { n: 1 }, EnqueueOptions::dedupe(key))
        .await
        .unwrap();
    assert!(first.is_new());
    let second = q
        .enqueue(&Ping { n: 2 }, EnqueueOptions::dedupe(key))
        .await
        .unwrap();
    assert_eq!(second, Enqueued::Duplicate(first.id().clone()));

    // Same key twice in one batch: one job.
    let batch = q
        .enqueue_many([
            (Ping { n: 3 }, EnqueueOptions::dedupe("k2")),
            (Ping { n: 4 }, EnqueueOptions::dedupe("k2")),
        ])
        .await
        .unwrap();
    assert!(batch[0].is_new() && !batch[1].is_new());

    // After the job finished, the key still blocks the routine from re-enqueuing it.
    let job = q.fetch(&w, 1).await.unwrap().remove(0);
    q.ack(&job.token, &job.id).await.unwrap();
    assert!(!q
        .enqueue(&Ping { n: 5 }, EnqueueOptions::dedupe(key))
        .await
        .unwrap()
        .is_new());
    let ttl = t.pttl(&t.keys.queue("q", &format!("dedupe:{key}"))).await;
    assert!(
        ttl > 2 * 86_400_000,
        "dedupe key lives for days, not seconds: {ttl} ms"
    );

    // A forced re-run clears it.
    assert!(q.clear_dedupe(key).await.unwrap());
    assert!(q
        .enqueue(&Ping { n: 6 }, EnqueueOptions::dedupe(key))
        .await
        .unwrap()
        .is_new());
    assert_eq!(q.stats().await.unwrap().enqueued_total, 3);
}

#[tokio::test]
async fn undecodable_payload_is_dead_lettered_with_the_decode_error_and_fetch_carries_on() {
    #[derive(serde::Serialize)]
    struct Other {
        text: &'static str,
    }
    let t = TestNs::new("poison").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let producer: Queue<Other> = q.retyped();
    producer
        .enqueue(&Other { text: "not a ping" }, EnqueueOptions::default())
        .await
        .unwrap();
    q.enqueue(&Ping { n: 2 }, EnqueueOptions::default())
        .await
        .unwrap();

    let jobs = q.fetch(&WorkerId::generate(), 10).await.unwrap();
    assert_eq!(jobs.iter().map(|j| j.job.n).collect::<Vec<_>>(), vec![2]);
    let dead = q.list_dead(&JobFilter::default(), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("undecodable payload"));
    assert!(dead[0].payload.contains("not a ping"));
}

#[tokio::test]
async fn twenty_thousand_due_jobs_are_promoted_in_chunks_and_each_is_fetched_once() {
    due_jobs_are_promoted_in_chunks_and_each_is_fetched_once("due20k", 20_000).await;
}

#[tokio::test]
#[ignore = "slow: 1,000,000 jobs (~1 min); run with --ignored"]
async fn a_million_due_jobs_are_promoted_in_chunks_and_each_is_fetched_once() {
    due_jobs_are_promoted_in_chunks_and_each_is_fetched_once("due1m", 1_000_000).await;
}

async fn due_jobs_are_promoted_in_chunks_and_each_is_fetched_once(name: &str, n: u64) {
    let t = TestNs::new(name).await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    let w = WorkerId::generate();
    let opts = EnqueueOptions::default().delayed(Duration::from_millis(1));
    q.enqueue_many((0..n).map(|i| (Ping { n: i }, opts.clone())))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let s = q.stats().await.unwrap();
    assert_eq!((s.delayed, s.delayed_due), (n, n), "all due at once");

    // The maintenance promoter moves them in bounded chunks...
    let moved = q.promote_all_due(5).await.unwrap();
    assert_eq!(moved as u64, 5 * 1_000);
    // ...and fetch promotes more whenever ready runs short.
    let mut seen = HashSet::new();
    loop {
        let jobs = q.fetch(&w, 1_000).await.unwrap();
        if jobs.is_empty() {
            break;
        }
        for j in jobs {
            assert!(seen.insert(j.job.n), "job {} fetched twice", j.job.n);
        }
    }
    assert_eq!(seen.len() as u64, n);
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.delayed, s.in_flight), (0, 0, n));
}

#[tokio::test]
async fn every_key_lives_under_the_namespace_with_one_hash_tag_per_queue() {
    let t = TestNs::new("keys").await;
    let q: Queue<Ping> = t.queue(t.config("authorize"));
    let w = WorkerId::generate();
    q.enqueue_many((0..4).map(|i| (Ping { n: i }, EnqueueOptions::dedupe(format!("k{i}")))))
        .await
        .unwrap();
    let jobs = q.fetch(&w, 4).await.unwrap();
    q.ack(&jobs[0].token, &jobs[0].id).await.unwrap();
    let retry = JobFailure::Retry {
        error: "x".into(),
        delay: None,
    };
    q.fail(&jobs[1].token, &jobs[1].id, 1, retry).await.unwrap();
    q.fail(
        &jobs[2].token,
        &jobs[2].id,
        1,
        JobFailure::Permanent { error: "x".into() },
    )
    .await
    .unwrap();
    q.renew(&w, &[(jobs[3].id.clone(), jobs[3].token.clone())])
        .await
        .unwrap();

    let tag = format!("{{{}:authorize}}:", t.keys.namespace());
    let keys = t.all_keys().await;
    assert!(keys.len() > 10);
    for k in keys {
        assert!(k.starts_with(&tag), "{k} outside {tag}");
    }
}

#[tokio::test]
async fn unreachable_redis_error_names_the_url_without_its_password() {
    let err = shared::queue::connect("redis://ops:hunter2@127.0.0.1:1/0")
        .await
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(
        msg.contains("Redis unreachable at redis://ops:***@127.0.0.1:1/0"),
        "{msg}"
    );
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_queue_whose_scripts_redis_forgot_loads_them_again_and_loses_no_job() {
    // Its own server: flushing the scripts of the shared one would fail other tests.
    let (_server, conn) = crate::own_redis::OwnRedis::plain("queue-scripts").await;
    let keys = shared::KeySpace::new("queue-scripts");
    let q: Queue<Ping> = Queue::new(conn.clone(), &keys, QueueConfig::new("q"));
    let admin = conn.clone();
    let forget = || {
        let mut admin = admin.clone();
        async move {
            let () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut admin)
                .await
                .unwrap();
        }
    };
    let w = WorkerId::generate();

    // A restart or a failover between any two calls: each loads its script and runs once.
    forget().await;
    let queued = q
        .enqueue_many((1..=3).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();
    assert_eq!(queued.iter().filter(|e| e.is_new()).count(), 3);
    forget().await;
    let jobs = q.fetch(&w, 2).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.job.n).collect::<Vec<_>>(),
        vec![1, 2],
        "keys and arguments reach the script in order"
    );
    forget().await;
    assert!(q.ack(&jobs[0].token, &jobs[0].id).await.unwrap());
    forget().await;
    let (acked, next) = q
        .ack_and_fetch(&jobs[1].token, &jobs[1].id, &w, 1)
        .await
        .unwrap();
    assert!(acked);
    assert_eq!(next.iter().map(|j| j.job.n).collect::<Vec<_>>(), vec![3]);

    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.succeeded_total), (0, 1, 2));
}

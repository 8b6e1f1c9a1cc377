//! Starting a routine on a real Redis: idempotent enqueue (twice, concurrently, after a
//! crash) and the daily schedule firing once between replicas, with catch-up.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use shared::jobs::{AuthorizeJob, AUTHORIZE_QUEUE};
use shared::ledger::Ledger;
use shared::queue::{JobFilter, JobState, Queue, QueueConfig};
use shared::registry::{LoginRecordInput, Registry};
use shared::routine::{enqueue_routine, DayClaim, Schedule};
use shared::LoginId;

use crate::support::TestRedis;

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

/// `hour:minute` of `day` in Toronto, the schedules' zone, as an instant.
fn toronto(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, minute, 0)
        .unwrap()
        .and_local_timezone(chrono_tz::America::Toronto)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn seeded(
    redis: &TestRedis,
    active: usize,
    inactive: usize,
) -> (Registry, Ledger, Queue<AuthorizeJob>) {
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let records: Vec<LoginRecordInput> = (0..active + inactive)
        .map(|i| LoginRecordInput {
            login_id: LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
            active: i < active,
            tag: None,
            priority: None,
        })
        .collect();
    registry.upsert_many(&records).await.unwrap();
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let queue = Queue::new(
        redis.conn.clone(),
        &redis.keys,
        QueueConfig::new(AUTHORIZE_QUEUE),
    );
    (registry, ledger, queue)
}

#[tokio::test]
async fn a_routine_enqueues_one_job_per_active_login_and_a_rerun_enqueues_nothing() {
    let redis = TestRedis::new("routine-idem").await;
    let (registry, ledger, queue) = seeded(&redis, 2_500, 7).await;

    let first = enqueue_routine(&registry, &ledger, &queue, date(), 20.0)
        .await
        .unwrap();
    let again = enqueue_routine(&registry, &ledger, &queue, date(), 20.0)
        .await
        .unwrap();

    assert_eq!(
        (first.active, first.enqueued, first.already_queued),
        (2_500, 2_500, 0)
    );
    assert_eq!((again.enqueued, again.already_queued), (0, 2_500));
    assert_eq!(queue.stats().await.unwrap().ready, 2_500);
    assert_eq!(ledger.expected(date()).await.unwrap(), 2_500);
    // 2,500 logins at 20/min with the 1% spacing margin.
    assert_eq!(first.eta_seconds, Some(7_575));
    redis.cleanup().await;
}

#[tokio::test]
async fn a_waiting_routine_job_keeps_the_compact_encoding_of_a_small_hash() {
    let redis = TestRedis::new("routine-compact").await;
    let (registry, ledger, queue) = seeded(&redis, 3, 0).await;
    enqueue_routine(&registry, &ledger, &queue, date(), 20.0)
        .await
        .unwrap();

    let jobs = queue
        .list(JobState::Ready, &JobFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 3);
    let mut conn = redis.conn.clone();
    for job in jobs {
        let key = redis
            .keys
            .queue(AUTHORIZE_QUEUE, &format!("job:{}", job.id.as_str()));
        let encoding: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Redis 7 says listpack, Redis 6 ziplist: either way not a hash table, which
        // costs nearly twice the memory per queued job.
        assert!(
            encoding == "listpack" || encoding == "ziplist",
            "{} bytes of payload: {encoding}",
            job.payload.len()
        );
    }
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_producers_at_once_never_enqueue_a_login_twice() {
    let redis = TestRedis::new("routine-race").await;
    let (registry, ledger, queue) = seeded(&redis, 3_000, 0).await;
    let (r2, l2, q2) = (registry.clone(), ledger.clone(), queue.clone());

    let (a, b) = tokio::join!(
        enqueue_routine(&registry, &ledger, &queue, date(), 20.0),
        tokio::spawn(async move { enqueue_routine(&r2, &l2, &q2, date(), 20.0).await }),
    );
    let (a, b) = (a.unwrap(), b.unwrap().unwrap());

    assert_eq!(a.enqueued + b.enqueued, 3_000);
    assert_eq!(queue.stats().await.unwrap().ready, 3_000);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_run_that_crashed_half_way_is_resumed_by_the_next_run() {
    let redis = TestRedis::new("routine-resume").await;
    let (registry, ledger, queue) = seeded(&redis, 1_200, 0).await;
    // The crashed run got 500 jobs in before it died.
    let mut some = Vec::new();
    let mut pages = registry.scan_active(500);
    use futures::TryStreamExt;
    while let Some(ids) = pages.try_next().await.unwrap() {
        some.extend(ids);
    }
    let partial: Vec<_> = some[..500]
        .iter()
        .map(|l| {
            let job = AuthorizeJob::new(l.clone(), date());
            let s = job.supersede();
            let options = shared::queue::EnqueueOptions::default().superseding(s.key, s.rank);
            (job, options)
        })
        .collect();
    queue.enqueue_many(partial).await.unwrap();

    let resumed = enqueue_routine(&registry, &ledger, &queue, date(), 20.0)
        .await
        .unwrap();

    assert_eq!((resumed.enqueued, resumed.already_queued), (700, 500));
    assert_eq!(queue.stats().await.unwrap().ready, 1_200);
    redis.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_fire_the_due_routine_exactly_once_between_them() {
    let redis = TestRedis::new("schedule-once").await;
    let (registry, ledger, queue) = seeded(&redis, 50, 0).await;
    let at = NaiveTime::from_hms_opt(10, 30, 0).unwrap();
    let replicas: Vec<Schedule> = (0..4)
        .map(|i| Schedule {
            claim: DayClaim::new(redis.conn.clone(), &redis.keys, format!("replica-{i}")),
            at,
            tz: chrono_tz::America::Toronto,
            rate_per_minute: 20.0,
            deadline: None,
            precheck: None,
        })
        .collect();
    // 10:31 in Toronto tomorrow: that day's run is due. The date follows the real clock
    // because Redis expires a stored deadline a week after it on its own clock.
    let day = Utc::now().date_naive() + chrono::Days::new(1);
    let now = toronto(day, 10, 31);

    let fired = futures::future::join_all(
        replicas
            .iter()
            .map(|s| s.fire_if_due(&registry, &ledger, &queue, now)),
    )
    .await;

    let runs: Vec<_> = fired.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(runs.len(), 1, "exactly one replica fired");
    assert_eq!(runs[0].date, day);
    assert_eq!(runs[0].enqueued, 50);
    // The date's deadline is the next day's firing, stored for the workers.
    let next_firing = toronto(day + chrono::Days::new(1), 10, 30);
    assert_eq!(runs[0].deadline, Some(next_firing));
    let control = shared::control::Control::new(redis.conn.clone(), &redis.keys);
    assert_eq!(
        control.routine_deadline(day).await.unwrap(),
        Some(next_firing)
    );
    // Later ticks of any replica, or a restart (catch-up), fire nothing more that day.
    let later = replicas[2]
        .fire_if_due(&registry, &ledger, &queue, toronto(day, 15, 0))
        .await
        .unwrap();
    assert!(later.is_none());
    redis.cleanup().await;
}

#[tokio::test]
async fn on_start_a_due_and_missing_run_is_caught_up_and_a_dead_replicas_claim_taken_over() {
    let redis = TestRedis::new("schedule-catchup").await;
    let (registry, ledger, queue) = seeded(&redis, 10, 0).await;
    let at = NaiveTime::from_hms_opt(10, 30, 0).unwrap();
    let schedule = |name: &str| Schedule {
        claim: DayClaim::new(redis.conn.clone(), &redis.keys, name),
        at,
        tz: chrono_tz::America::Toronto,
        rate_per_minute: 20.0,
        deadline: None,
        precheck: None,
    };
    // A replica claimed yesterday's run at 10:30 and died before completing it.
    let dead = schedule("dead");
    let yesterday = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    assert!(dead
        .claim
        .try_claim(yesterday, utc("2026-11-24T15:30:00Z"))
        .await
        .unwrap());

    // A replica starting at 08:00 the next morning (before today's 10:30) catches up
    // yesterday's run: the claim is stale, so it takes it over.
    let run = schedule("fresh")
        .fire_if_due(&registry, &ledger, &queue, utc("2026-11-25T13:00:00Z"))
        .await
        .unwrap()
        .expect("the missing run is caught up on start");
    assert_eq!(run.date, yesterday);
    assert_eq!(run.enqueued, 10);

    // A fresh claim (minutes old) is respected: the other replica is still working on it.
    let busy = schedule("busy");
    assert!(busy
        .claim
        .try_claim(date(), utc("2026-11-25T15:30:00Z"))
        .await
        .unwrap());
    let other = schedule("other")
        .fire_if_due(&registry, &ledger, &queue, utc("2026-11-25T15:35:00Z"))
        .await
        .unwrap();
    assert!(other.is_none());
    redis.cleanup().await;
}

#[tokio::test]
async fn a_replica_whose_run_failed_half_way_retries_its_own_claim() {
    let redis = TestRedis::new("schedule-reentrant").await;
    let claim = DayClaim::new(redis.conn.clone(), &redis.keys, "replica-a");
    let other = DayClaim::new(redis.conn.clone(), &redis.keys, "replica-b");
    let now = utc("2026-11-25T15:31:00Z");

    assert!(claim.try_claim(date(), now).await.unwrap());
    // The run failed before `complete`: a minute later the same replica retries it,
    // while another replica still keeps its hands off.
    let later = utc("2026-11-25T15:32:00Z");
    assert!(claim.try_claim(date(), later).await.unwrap());
    assert!(!other.try_claim(date(), later).await.unwrap());
    redis.cleanup().await;
}

#[tokio::test]
async fn a_backfill_of_an_earlier_date_queues_nothing_and_records_it_superseded_by_the_later() {
    let redis = TestRedis::new("routine-backfill").await;
    let (registry, ledger, queue) = seeded(&redis, 30, 0).await;
    let mut logins = Vec::new();
    let mut pages = registry.scan_active(100);
    use futures::TryStreamExt;
    while let Some(ids) = pages.try_next().await.unwrap() {
        logins.extend(ids);
    }
    // The earlier date ran for one login already: its outcome must survive the backfill.
    let failed = shared::ledger::LedgerOutcome::Failed {
        flinks_code: None,
        http_status: Some(500),
        message: "bank down".into(),
        attempts: 3,
        at: Utc::now(),
        reason: None,
    };
    ledger
        .record(
            date(),
            &logins[0],
            &failed,
            shared::ledger::Overwrite::AllButRefreshed,
        )
        .await
        .unwrap();
    let later = date().succ_opt().unwrap();
    enqueue_routine(&registry, &ledger, &queue, later, 20.0)
        .await
        .unwrap();

    let backfill = enqueue_routine(&registry, &ledger, &queue, date(), 20.0)
        .await
        .unwrap();

    assert_eq!(
        (
            backfill.enqueued,
            backfill.already_queued,
            backfill.superseded,
            backfill.superseded_on_arrival
        ),
        (0, 30, 0, 30)
    );
    assert_eq!(
        queue.stats().await.unwrap().ready,
        30,
        "only the later date's"
    );
    let counts = ledger.counts(date()).await.unwrap();
    assert_eq!(
        (counts.failed, counts.superseded, counts.done()),
        (1, 29, 30)
    );
    assert_eq!(ledger.get(date(), &logins[0]).await.unwrap(), Some(failed));
    match ledger.get(date(), &logins[1]).await.unwrap() {
        Some(shared::ledger::LedgerOutcome::Superseded { by_date, .. }) => {
            assert_eq!(by_date, later)
        }
        other => panic!("expected superseded by {later}, got {other:?}"),
    }
    redis.cleanup().await;
}

#[tokio::test]
async fn a_rerun_after_the_jobs_ended_queues_nothing_again() {
    let redis = TestRedis::new("routine-rerun-ended").await;
    let (registry, ledger, queue) = seeded(&redis, 12, 0).await;
    enqueue_routine(&registry, &ledger, &queue, date(), 20.0)
        .await
        .unwrap();
    // Every job runs and ends (acked) without a refreshed outcome in the ledger.
    let worker = shared::queue::WorkerId::generate();
    for job in queue.fetch(&worker, 100).await.unwrap() {
        assert!(queue.ack(&job.token, &job.id).await.unwrap());
    }

    let again = enqueue_routine(&registry, &ledger, &queue, date(), 20.0)
        .await
        .unwrap();

    assert_eq!((again.enqueued, again.already_queued), (0, 12));
    assert_eq!(queue.stats().await.unwrap().ready, 0);
    redis.cleanup().await;
}

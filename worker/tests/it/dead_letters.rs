//! Buried jobs still end in an outcome: a job whose worker died on its last allowed
//! attempt is buried by the reaper, and the reconciler records it as failed.

use std::time::Duration;

use chrono::NaiveDate;
use shared::config::Settings;
use shared::jobs::{AuthorizeJob, DetailJob, AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::ledger::{IndexFilter, IndexKind, Ledger, LedgerOutcome, Overwrite};
use shared::ops::requeue::{RequeueOptions, Requeuer, Selection};
use shared::queue::{EnqueueOptions, Queue, QueueConfig, WorkerId};
use shared::{FlinksCode, LoginId, RequestId};
use worker::dead_letters::DeadLetterReconciler;

use crate::helpers::Stack;

#[tokio::test]
async fn a_job_buried_when_its_last_lease_expired_is_recorded_as_failed_for_its_login() {
    let stack = Stack::new("dead-letters", "http://127.0.0.1:9/unused").await;
    let config = QueueConfig {
        max_attempts: 1,
        ..QueueConfig::new(AUTHORIZE_QUEUE).with_lease(Duration::from_millis(100))
    };
    let queue: Queue<AuthorizeJob> = Queue::new(stack.conn.clone(), &stack.keys, config);
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let login = LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    queue
        .enqueue(
            &AuthorizeJob::new(login.clone(), date),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    // A poison letter names no login and must be skipped, not fail the pass.
    let raw: Queue<serde_json::Value> = queue.retyped();
    raw.enqueue(
        &serde_json::json!({"not": "a job"}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    // A worker takes both on their only attempt and dies: the leases expire, the reaper
    // buries them.
    let dead_worker = WorkerId::generate();
    assert_eq!(raw.fetch(&dead_worker, 2).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    queue.reap_expired().await.unwrap();
    assert_eq!(queue.stats().await.unwrap().dead, 2);

    let reconciler = DeadLetterReconciler::new(stack.conn.clone(), &stack.keys);
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 1);
    // A second pass (or another worker's) records nothing more.
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 0);

    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    let outcome = ledger.get(date, &login).await.unwrap().expect("an outcome");
    assert_eq!(outcome.kind(), "failed");
    assert!(
        outcome
            .message()
            .unwrap()
            .contains("lease expired during the last allowed attempt"),
        "{outcome:?}"
    );
    assert_eq!(ledger.counts(date).await.unwrap().failed, 1);
    stack.cleanup().await;
}

fn new_login() -> LoginId {
    LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap()
}

fn one_attempt(name: &str) -> QueueConfig {
    QueueConfig {
        max_attempts: 1,
        ..QueueConfig::new(name).with_lease(Duration::from_millis(50))
    }
}

/// Enqueues one authorize job per login, leases them all to a worker that dies, and lets
/// the reaper bury them (their only attempt was spent): the state a SIGKILL on the last
/// attempt leaves behind.
async fn bury_authorize_jobs(stack: &Stack, date: NaiveDate, logins: &[LoginId]) {
    let queue: Queue<AuthorizeJob> = Queue::new(
        stack.conn.clone(),
        &stack.keys,
        one_attempt(AUTHORIZE_QUEUE),
    );
    let jobs: Vec<(AuthorizeJob, EnqueueOptions)> = logins
        .iter()
        .map(|l| {
            (
                AuthorizeJob::new(l.clone(), date),
                EnqueueOptions::default(),
            )
        })
        .collect();
    let before = queue.stats().await.unwrap().dead;
    queue.enqueue_many(jobs).await.unwrap();
    let dead_worker = WorkerId::generate();
    let mut leased = 0;
    while leased < logins.len() {
        leased += queue.fetch(&dead_worker, 1_000).await.unwrap().len();
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    queue.reap_expired().await.unwrap();
    assert_eq!(
        queue.stats().await.unwrap().dead,
        before + logins.len() as u64
    );
}

#[tokio::test]
async fn an_outcome_recorded_before_the_job_died_is_kept_with_its_flinks_code() {
    let stack = Stack::new("dead-letters-keep", "http://127.0.0.1:9/unused").await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let (reauth_login, failed_login) = (new_login(), new_login());
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    // Each job recorded its outcome on its last attempt, then died before its ack.
    let reauth = LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("SECURITY_QUESTION")),
        message: Some("answer the question".into()),
        request_id: None,
        at: chrono::Utc::now() - chrono::Duration::hours(2),
        unrecognised_code: false,
    };
    let failed = LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse("INVALID_LOGIN")),
        http_status: Some(401),
        message: "bad credentials".into(),
        attempts: 1,
        at: chrono::Utc::now() - chrono::Duration::hours(2),
        reason: None,
    };
    ledger
        .record(date, &reauth_login, &reauth, Overwrite::AllButRefreshed)
        .await
        .unwrap();
    ledger
        .record(date, &failed_login, &failed, Overwrite::AllButRefreshed)
        .await
        .unwrap();
    bury_authorize_jobs(&stack, date, &[reauth_login.clone(), failed_login.clone()]).await;

    let reconciler = DeadLetterReconciler::new(stack.conn.clone(), &stack.keys);
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 0);

    assert_eq!(ledger.get(date, &reauth_login).await.unwrap(), Some(reauth));
    assert_eq!(ledger.get(date, &failed_login).await.unwrap(), Some(failed));
    stack.cleanup().await;
}

#[tokio::test]
async fn a_requeued_login_whose_new_job_dies_gets_a_fresh_failed_outcome() {
    let stack = Stack::new("dead-letters-requeued", "http://127.0.0.1:9/unused").await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let login = new_login();
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    let first = LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse("RETRY_LATER")),
        http_status: Some(503),
        message: "bank down".into(),
        attempts: 5,
        at: chrono::Utc::now(),
        reason: None,
    };
    ledger
        .record(date, &login, &first, Overwrite::AllButRefreshed)
        .await
        .unwrap();
    let mut settings = Settings::load_from(
        None,
        [("REDIS_URL".to_string(), crate::helpers::redis_url())],
    )
    .unwrap();
    settings.max_attempts = 1;
    settings.worker_lease = Duration::from_millis(50);
    let requeuer = Requeuer::new(stack.conn.clone(), &stack.keys, &settings);
    let report = requeuer
        .requeue_index(
            IndexKind::Failed,
            &Selection::default(),
            RequeueOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.moved.len(), 1);
    // The requeued job dies on its only attempt.
    let queue: Queue<AuthorizeJob> = Queue::new(
        stack.conn.clone(),
        &stack.keys,
        one_attempt(AUTHORIZE_QUEUE),
    );
    assert_eq!(
        queue.fetch(&WorkerId::generate(), 10).await.unwrap().len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    queue.reap_expired().await.unwrap();

    let reconciler = DeadLetterReconciler::new(stack.conn.clone(), &stack.keys);
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 1);

    let outcome = ledger.get(date, &login).await.unwrap().unwrap();
    assert!(
        outcome.message().unwrap().contains("dead-lettered"),
        "{outcome:?}"
    );
    assert_eq!(ledger.counts(date).await.unwrap().failed, 1);
    assert_eq!(
        ledger
            .list_failed(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        1,
        "the login can be found and requeued again"
    );
    stack.cleanup().await;
}

#[tokio::test]
async fn more_letters_with_one_score_than_a_page_are_all_reconciled() {
    let stack = Stack::new("dead-letters-ties", "http://127.0.0.1:9/unused").await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let logins: Vec<LoginId> = (0..250).map(|_| new_login()).collect();
    bury_authorize_jobs(&stack, date, &logins).await;
    // As if every burial happened in the same millisecond.
    let dead_key = stack.keys.queue(AUTHORIZE_QUEUE, "dead");
    let mut conn = stack.conn.clone();
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(&dead_key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut zadd = redis::cmd("ZADD");
    zadd.arg(&dead_key).arg("XX");
    for id in &ids {
        zadd.arg(1_700_000_000_000u64).arg(id);
    }
    let _: i64 = zadd.query_async(&mut conn).await.unwrap();

    let reconciler = DeadLetterReconciler::new(stack.conn.clone(), &stack.keys).with_page(100);
    let mut recorded = 0;
    for _ in 0..5 {
        recorded += reconciler.reconcile_once().await.unwrap();
    }

    assert_eq!(recorded, 250);
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    assert_eq!(ledger.counts(date).await.unwrap().failed, 250);
    stack.cleanup().await;
}

#[tokio::test]
async fn a_letter_buried_after_redis_time_went_backwards_is_still_reconciled() {
    let stack = Stack::new("dead-letters-clock", "http://127.0.0.1:9/unused").await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let (early, late) = (new_login(), new_login());
    bury_authorize_jobs(&stack, date, std::slice::from_ref(&early)).await;
    // That burial happened on a primary whose clock ran an hour ahead.
    let dead_key = stack.keys.queue(AUTHORIZE_QUEUE, "dead");
    let mut conn = stack.conn.clone();
    let ahead = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(&dead_key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(&dead_key)
        .arg("XX")
        .arg(ahead)
        .arg(&ids[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let reconciler = DeadLetterReconciler::new(stack.conn.clone(), &stack.keys);
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 1);

    // After a failover the new primary's clock is right: its burials are "earlier".
    bury_authorize_jobs(&stack, date, std::slice::from_ref(&late)).await;
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 1);

    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    assert!(ledger.has_outcome(date, &late).await.unwrap());
    stack.cleanup().await;
}

#[tokio::test]
async fn an_authorize_letter_waits_while_its_chained_detail_job_is_alive() {
    let stack = Stack::new("dead-letters-chained", "http://127.0.0.1:9/unused").await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let (chained, plain) = (new_login(), new_login());
    let authorize: Queue<AuthorizeJob> = Queue::new(
        stack.conn.clone(),
        &stack.keys,
        one_attempt(AUTHORIZE_QUEUE),
    );
    let detail: Queue<DetailJob> =
        Queue::new(stack.conn.clone(), &stack.keys, one_attempt(DETAIL_QUEUE));
    authorize
        .enqueue(
            &AuthorizeJob::new(chained.clone(), date),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    // The job chains its detail fetch and dies before its ack, on its only attempt.
    let leased = authorize
        .fetch(&WorkerId::generate(), 1)
        .await
        .unwrap()
        .remove(0);
    detail
        .enqueue(
            &DetailJob {
                login_id: chained.clone(),
                routine_date: date,
                request_id: RequestId::new("r-1"),
                last_refresh: None,
                session_restarts: 0,
                polling_since: None,
                polls: 0,
            },
            EnqueueOptions::dedupe(DetailJob::chained_dedupe_key(leased.id.as_str())),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    authorize.reap_expired().await.unwrap();
    // A later letter is reconciled meanwhile.
    bury_authorize_jobs(&stack, date, std::slice::from_ref(&plain)).await;
    let reconciler = DeadLetterReconciler::new(stack.conn.clone(), &stack.keys);
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);

    assert_eq!(reconciler.reconcile_once().await.unwrap(), 1);
    assert!(!ledger.has_outcome(date, &chained).await.unwrap());
    assert!(ledger.has_outcome(date, &plain).await.unwrap());

    // The detail job dies too: its own letter gives the login its outcome, once.
    assert_eq!(
        detail.fetch(&WorkerId::generate(), 1).await.unwrap().len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    detail.reap_expired().await.unwrap();
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 1);
    let outcome = ledger.get(date, &chained).await.unwrap().unwrap();
    assert!(
        outcome.message().unwrap().contains("detail queue"),
        "{outcome:?}"
    );
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 0);
    stack.cleanup().await;
}

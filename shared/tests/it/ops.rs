//! The operator functions (`shared::ops`) on the real Redis: crash-safe and concurrent
//! requeue, dry runs, purge, dead letters, deactivate / reconnected / refresh-status
//! against the simulator (or a stub answering 500), and the audit trail.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use shared::config::Settings;
use shared::domain::{FlinksCode, LoginId, RequestId};
use shared::flinks::{FlinksClient, FlinksConfig};
use shared::jobs::{
    queue_config, AuthorizeJob, DetailJob, AUTHORIZE_QUEUE, DEACTIVATION_QUEUE, DETAIL_QUEUE,
};
use shared::ledger::{IndexFilter, IndexKind, Ledger, LedgerOutcome};
use shared::ops::audit::{AuditEntry, AuditLog};
use shared::ops::logins::LoginOps;
use shared::ops::requeue::{CrashPoint, RequeueOptions, Requeuer, Selection};
use shared::ops::OpsError;
use shared::queue::{EnqueueOptions, JobFilter, JobState, Queue, WorkerId};
use shared::redis_conn::RedisConn;
use shared::registry::{LoginRecordInput, Registry};
use shared::scheduled_refresh::ScheduledRefreshState;
use tokio_util::sync::CancellationToken;

use crate::support::{redis_url, RecordExt, TestRedis};

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 2).unwrap()
}

fn settings(flinks: Option<&str>) -> Settings {
    let mut env = crate::support::redis_env();
    if let Some(url) = flinks {
        env.push(("FLINKS_BASE_URL".into(), url.into()));
    }
    Settings::load_from(None, env).unwrap()
}

async fn second_conn() -> RedisConn {
    shared::redis_conn::connect_in_env_mode(&redis_url())
        .await
        .unwrap()
}

fn failed(code: &str) -> LedgerOutcome {
    LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse(code)),
        http_status: Some(503),
        message: "bank down".into(),
        attempts: 5,
        at: Utc::now(),
        reason: None,
    }
}

fn reauth() -> LedgerOutcome {
    LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("SESSION_EXPIRED")),
        message: Some("reconnect".into()),
        request_id: None,
        at: Utc::now(),
        unrecognised_code: false,
    }
}

fn refreshed() -> LedgerOutcome {
    LedgerOutcome::Refreshed {
        request_id: RequestId::new("r"),
        last_refresh: None,
        stale: false,
        fetched_at: Utc::now(),
        results_stream_id: None,
    }
}

async fn register(t: &TestRedis, logins: impl IntoIterator<Item = LoginId>) {
    let registry = Registry::new(t.conn.clone(), &t.keys);
    for l in logins {
        registry
            .add(&LoginRecordInput {
                login_id: l,
                active: true,
                tag: None,
                priority: None,
            })
            .await
            .unwrap();
    }
}

/// `n` failed records (RETRY_LATER) for `date()`, logins 0..n.
async fn seed_failed(t: &TestRedis, n: u32) -> Ledger {
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    for i in 0..n {
        ledger.put(date(), &login(i), &failed("RETRY_LATER")).await;
    }
    ledger
}

fn authorize_queue(t: &TestRedis, s: &Settings) -> Queue<AuthorizeJob> {
    Queue::new(t.conn.clone(), &t.keys, queue_config(s, AUTHORIZE_QUEUE))
}

/// The LoginIds of every ready authorize job, sorted.
async fn ready_logins(q: &Queue<AuthorizeJob>) -> Vec<String> {
    let mut out: Vec<String> = q
        .list(JobState::Ready, &JobFilter::default(), usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|j| {
            serde_json::from_str::<AuthorizeJob>(&j.payload)
                .unwrap()
                .login_id
                .as_str()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

fn everything() -> Selection {
    Selection::default()
}

fn dry_run() -> RequeueOptions {
    RequeueOptions {
        dry_run: true,
        ..RequeueOptions::default()
    }
}

#[tokio::test]
async fn requeue_of_failed_records_moves_each_to_the_authorize_queue_and_empties_the_index() {
    let t = TestRedis::new("ops-requeue").await;
    let s = settings(None);
    let ledger = seed_failed(&t, 3).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let report = requeuer
        .requeue_index(IndexKind::Failed, &everything(), RequeueOptions::default())
        .await
        .unwrap();

    assert_eq!(report.moved.len(), 3);
    assert!(report.moved.iter().all(|m| m.new));
    assert_eq!(ready_logins(&authorize_queue(&t, &s)).await.len(), 3);
    // The requeued logins are pending again until their new jobs record an outcome.
    assert_eq!(ledger.get(date(), &login(0)).await.unwrap(), None);
    assert_eq!(ledger.counts(date()).await.unwrap().failed, 0);
    assert!(ledger
        .list_failed(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(requeuer.pending_count().await.unwrap(), 0);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requeues_at_once_on_separate_connections_move_each_entry_exactly_once() {
    let t = TestRedis::new("ops-requeue-race").await;
    let s = settings(None);
    seed_failed(&t, 200).await;
    let a = Requeuer::new(t.conn.clone(), &t.keys, &s);
    let b = Requeuer::new(second_conn().await, &t.keys, &s);

    let run = |r: Requeuer| {
        tokio::spawn(async move {
            r.requeue_index(IndexKind::Failed, &everything(), RequeueOptions::default())
                .await
        })
    };
    let (ta, tb) = (run(a), run(b));

    let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
    let mut moved: Vec<String> = ra
        .moved
        .iter()
        .chain(&rb.moved)
        .map(|m| m.login_id.as_str().to_string())
        .collect();
    moved.sort();
    let total = moved.len();
    moved.dedup();
    assert_eq!(total, 200, "every entry moved once");
    assert_eq!(moved.len(), 200, "no entry moved twice");
    assert_eq!(ready_logins(&authorize_queue(&t, &s)).await, moved);
    t.cleanup().await;
}

#[tokio::test]
async fn a_dry_run_requeue_reports_what_would_move_and_changes_nothing() {
    let t = TestRedis::new("ops-dry").await;
    let s = settings(None);
    let ledger = seed_failed(&t, 2).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let report = requeuer
        .requeue_index(IndexKind::Failed, &everything(), dry_run())
        .await
        .unwrap();

    assert_eq!(report.moved.len(), 2);
    assert_eq!(
        ledger
            .list_failed(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(ready_logins(&authorize_queue(&t, &s)).await.is_empty());
    t.cleanup().await;
}

#[tokio::test]
async fn a_requeue_killed_after_the_claim_loses_nothing_and_the_next_run_finishes_it_once() {
    let t = TestRedis::new("ops-crash-claim").await;
    let s = settings(None);
    let ledger = seed_failed(&t, 5).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);
    let crash = RequeueOptions {
        crash: CrashPoint::AfterClaim,
        ..RequeueOptions::default()
    };

    let crashed = requeuer
        .requeue_index(IndexKind::Failed, &everything(), crash)
        .await;
    let index_after_crash = ledger.list_failed(&IndexFilter::default()).await.unwrap();
    let pending_after_crash = requeuer.pending_count().await.unwrap();
    let next = requeuer
        .requeue_index(IndexKind::Failed, &everything(), RequeueOptions::default())
        .await
        .unwrap();
    let again = requeuer
        .requeue_index(IndexKind::Failed, &everything(), RequeueOptions::default())
        .await
        .unwrap();

    assert!(matches!(crashed, Err(OpsError::InjectedCrash("claim"))));
    assert!(
        index_after_crash.is_empty(),
        "claimed entries left the index"
    );
    assert_eq!(pending_after_crash, 5, "and are kept pending, not lost");
    assert_eq!(next.resumed.iter().filter(|m| m.new).count(), 5);
    assert!(next.moved.is_empty());
    assert!(again.resumed.is_empty() && again.moved.is_empty());
    let expected: Vec<String> = (0..5).map(|i| login(i).as_str().to_string()).collect();
    assert_eq!(ready_logins(&authorize_queue(&t, &s)).await, expected);
    assert_eq!(requeuer.pending_count().await.unwrap(), 0);
    t.cleanup().await;
}

#[tokio::test]
async fn a_requeue_killed_after_enqueue_is_not_enqueued_twice_by_the_next_run() {
    let t = TestRedis::new("ops-crash-enqueue").await;
    let s = settings(None);
    seed_failed(&t, 4).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);
    let crash = RequeueOptions {
        crash: CrashPoint::AfterEnqueue,
        ..RequeueOptions::default()
    };

    let crashed = requeuer
        .requeue_index(IndexKind::Failed, &everything(), crash)
        .await;
    let next = requeuer
        .requeue_index(IndexKind::Failed, &everything(), RequeueOptions::default())
        .await
        .unwrap();

    assert!(matches!(crashed, Err(OpsError::InjectedCrash("enqueue"))));
    assert_eq!(next.resumed.len(), 4);
    assert!(
        next.resumed.iter().all(|m| !m.new),
        "the replayed claim hit its dedupe key"
    );
    assert_eq!(ready_logins(&authorize_queue(&t, &s)).await.len(), 4);
    assert_eq!(requeuer.pending_count().await.unwrap(), 0);
    t.cleanup().await;
}

#[tokio::test]
async fn a_requeue_by_code_and_login_moves_only_the_matching_entries() {
    let t = TestRedis::new("ops-code").await;
    let s = settings(None);
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    ledger.put(date(), &login(1), &failed("RETRY_LATER")).await;
    ledger
        .put(date(), &login(2), &failed("AGGREGATION_ERROR"))
        .await;
    ledger.put(date(), &login(3), &failed("RETRY_LATER")).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let by_code = requeuer
        .requeue_index(
            IndexKind::Failed,
            &Selection {
                code: Some(FlinksCode::parse("AGGREGATION_ERROR")),
                ..Selection::default()
            },
            RequeueOptions::default(),
        )
        .await
        .unwrap();
    let by_login = requeuer
        .requeue_index(
            IndexKind::Failed,
            &Selection {
                logins: vec![login(3)],
                ..Selection::default()
            },
            RequeueOptions::default(),
        )
        .await
        .unwrap();

    assert_eq!(by_code.moved.len(), 1);
    assert_eq!(by_code.moved[0].login_id, login(2));
    assert_eq!(by_login.moved.len(), 1);
    assert_eq!(by_login.moved[0].login_id, login(3));
    let left = ledger.list_failed(&IndexFilter::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].login_id, login(1));
    t.cleanup().await;
}

#[tokio::test]
async fn a_login_already_refreshed_for_the_date_is_never_requeued() {
    let t = TestRedis::new("ops-refreshed").await;
    let s = settings(None);
    let conn = t.conn.clone();
    let ledger = seed_failed(&t, 2).await;
    ledger.put(date(), &login(0), &refreshed()).await;
    // A stale index entry for a refreshed date (e.g. restored from a backup).
    let _: () = redis::cmd("ZADD")
        .arg(
            t.keys
                .ledger_index("failed", t.keys.ledger_bucket_of(login(0).as_str())),
        )
        .arg(1)
        .arg(format!("{}|{}", date(), login(0).as_str()))
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    let requeuer = Requeuer::new(conn, &t.keys, &s);

    let report = requeuer
        .requeue_index(IndexKind::Failed, &everything(), RequeueOptions::default())
        .await
        .unwrap();

    assert_eq!(report.moved.len(), 1);
    assert_eq!(report.moved[0].login_id, login(1));
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].login_id, login(0));
    t.cleanup().await;
}

#[tokio::test]
async fn an_inactive_logins_records_and_dead_letters_are_not_requeued() {
    let t = TestRedis::new("ops-inactive").await;
    let s = settings(None);
    let ledger = seed_failed(&t, 2).await;
    register(&t, [login(0), login(1), login(2)]).await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    assert!(registry.set_active(&login(0), false).await.unwrap());
    assert!(registry.set_active(&login(2), false).await.unwrap());
    // Login 2's authorize job died.
    let queue = authorize_queue(&t, &s);
    let today = Utc::now().date_naive();
    queue
        .enqueue(
            &AuthorizeJob::new(login(2), today),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    bury_all(&queue).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let dry = requeuer
        .requeue_index(IndexKind::Failed, &everything(), dry_run())
        .await
        .unwrap();
    let report = requeuer
        .requeue_index(IndexKind::Failed, &everything(), RequeueOptions::default())
        .await
        .unwrap();
    let dead = requeuer
        .requeue_dead(&everything(), RequeueOptions::default())
        .await
        .unwrap();

    // The inactive login's record is skipped, named, and stays in the failed index; the
    // active one moves. The inactive login's dead letter stays dead.
    for run in [&dry, &report] {
        let moved: Vec<_> = run.moved.iter().map(|m| m.login_id.clone()).collect();
        let skipped: Vec<_> = run
            .skipped
            .iter()
            .map(|s| (s.login_id.clone(), s.reason))
            .collect();
        assert_eq!(moved, [login(1)]);
        assert_eq!(skipped, [(login(0), "inactive")]);
    }
    let left = ledger.list_failed(&IndexFilter::default()).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.login_id.clone()).collect::<Vec<_>>(),
        [login(0)]
    );
    assert!(dead.moved.is_empty(), "{dead:?}");
    assert_eq!(
        dead.skipped
            .iter()
            .map(|d| (d.login_id.clone(), d.reason))
            .collect::<Vec<_>>(),
        [(Some(login(2).as_str().to_string()), Some("inactive"))]
    );
    assert_eq!(ready_logins(&queue).await, [login(1).as_str().to_string()]);
    t.cleanup().await;
}

#[tokio::test]
async fn reauth_records_requeue_like_failed_ones() {
    let t = TestRedis::new("ops-reauth").await;
    let s = settings(None);
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    ledger.put(date(), &login(7), &reauth()).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let report = requeuer
        .requeue_index(IndexKind::Reauth, &everything(), RequeueOptions::default())
        .await
        .unwrap();

    assert_eq!(report.moved.len(), 1);
    assert!(ledger
        .list_reauth(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    t.cleanup().await;
}

#[tokio::test]
async fn dead_letters_requeue_with_fresh_attempts_but_poison_payloads_only_with_force() {
    let t = TestRedis::new("ops-dead").await;
    let s = settings(None);
    let queue = authorize_queue(&t, &s);
    let raw: Queue<serde_json::Value> = queue.retyped();
    let today = Utc::now().date_naive();
    queue
        .enqueue(
            &AuthorizeJob::new(login(1), today),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    raw.enqueue(
        &serde_json::json!({"garbage": true}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    let worker = WorkerId::generate();
    // Fetching dead-letters the undecodable payload at once; fail the good one for good.
    let leased = queue.fetch(&worker, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    queue
        .fail(
            &leased[0].token,
            &leased[0].id,
            leased[0].attempt,
            shared::queue::JobFailure::Permanent {
                error: "INTERNAL_ERROR".into(),
            },
        )
        .await
        .unwrap();
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let dry = requeuer
        .requeue_dead(&everything(), dry_run())
        .await
        .unwrap();
    let report = requeuer
        .requeue_dead(&everything(), RequeueOptions::default())
        .await
        .unwrap();
    let forced = requeuer
        .requeue_dead(
            &everything(),
            RequeueOptions {
                force: true,
                ..RequeueOptions::default()
            },
        )
        .await
        .unwrap();

    assert_eq!(dry.moved.len(), 1);
    assert_eq!(report.moved.len(), 1);
    assert_eq!(report.moved[0].login_id.as_deref(), Some(login(1).as_str()));
    assert_eq!(report.skipped.len(), 1, "the poison payload stays dead");
    assert_eq!(forced.moved.len(), 1);
    assert_eq!(queue.stats().await.unwrap().dead, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_requeue_by_date_reads_the_date_from_payloads_of_every_version() {
    let t = TestRedis::new("ops-dead-date").await;
    let s = settings(None);
    let queue = authorize_queue(&t, &s);
    let raw: Queue<serde_json::Value> = queue.retyped();
    let today = Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    queue
        .enqueue(
            &AuthorizeJob::new(login(1), today),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    queue
        .enqueue(
            &AuthorizeJob::new(login(2), yesterday),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    // A job an earlier version queued, its payload's names spelled out.
    raw.enqueue(
        &serde_json::json!({"login_id": login(3).as_str(), "routine_date": today}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    bury_all(&queue).await;
    // A poison payload that merely mentions the date is not a job of that date.
    raw.enqueue(
        &serde_json::json!({"note": format!("\"routine_date\":\"{today}\"")}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    let _ = queue.fetch(&WorkerId::generate(), 10).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().dead, 4);
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let report = requeuer
        .requeue_dead(
            &Selection {
                date: Some(today),
                ..Selection::default()
            },
            RequeueOptions {
                force: true,
                ..RequeueOptions::default()
            },
        )
        .await
        .unwrap();
    let by_login = requeuer
        .requeue_dead(
            &Selection {
                logins: vec![login(2)],
                ..Selection::default()
            },
            RequeueOptions::default(),
        )
        .await
        .unwrap();

    let mut moved: Vec<_> = report
        .moved
        .iter()
        .map(|m| (m.login_id.clone().unwrap(), m.date))
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        [
            (login(1).as_str().to_string(), Some(today)),
            (login(3).as_str().to_string(), Some(today)),
        ]
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(by_login.moved.len(), 1);
    assert_eq!(by_login.moved[0].date, Some(yesterday));
    assert_eq!(queue.stats().await.unwrap().dead, 1, "the poison payload");
    t.cleanup().await;
}

#[tokio::test]
async fn purge_removes_only_index_entries_older_than_the_cutoff() {
    let t = TestRedis::new("ops-purge").await;
    let s = settings(None);
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    let old = LedgerOutcome::Failed {
        flinks_code: None,
        http_status: Some(500),
        message: "old".into(),
        attempts: 5,
        at: Utc::now() - chrono::Duration::days(10),
        reason: None,
    };
    ledger.put(date(), &login(1), &old).await;
    ledger.put(date(), &login(2), &failed("RETRY_LATER")).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);
    let week = Duration::from_secs(7 * 86_400);

    let dry = requeuer
        .purge_index(IndexKind::Failed, week, true)
        .await
        .unwrap();
    let after_dry = ledger
        .list_failed(&IndexFilter::default())
        .await
        .unwrap()
        .len();
    let purged = requeuer
        .purge_index(IndexKind::Failed, week, false)
        .await
        .unwrap();

    assert_eq!((dry, after_dry, purged), (1, 2, 1));
    let left = ledger.list_failed(&IndexFilter::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].login_id, login(2));
    t.cleanup().await;
}

#[tokio::test]
async fn reconnected_clears_reauth_on_every_date_and_enqueues_a_fresh_authorize_for_today() {
    let t = TestRedis::new("ops-reconnected").await;
    let s = settings(None);
    register(&t, [login(1)]).await;
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let today = Utc::now().date_naive();
    for d in [date(), today] {
        ledger.put(d, &login(1), &reauth()).await;
    }
    registry.record_outcome(&login(1), &reauth()).await.unwrap();
    // The routine already enqueued today's job once: a reconnect must not be deduped away.
    let queue = authorize_queue(&t, &s);
    let routine_job = AuthorizeJob::new(login(1), today);
    queue
        .enqueue(
            &routine_job,
            EnqueueOptions::default()
                .superseding(routine_job.supersede().key, routine_job.supersede().rank),
        )
        .await
        .unwrap();
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &s);

    let done = ops.reconnected(&login(1), today).await.unwrap().unwrap();
    let unknown = ops.reconnected(&login(9), today).await.unwrap();

    assert_eq!(done.reauth_cleared, 2);
    assert!(ledger
        .list_reauth(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    let status = registry.get(&login(1)).await.unwrap().unwrap();
    assert!(status.reauth_code.is_none() && status.reauth_message.is_none());
    assert_eq!(queue.stats().await.unwrap().ready, 2);
    assert!(unknown.is_none());
    t.cleanup().await;
}

/// An inactive login is not part of the routine: its user reconnecting clears its re-auth
/// records, but no Authorize is queued for it (nothing Flinks would bill, and no outcome
/// for a date whose expected count leaves it out).
#[tokio::test]
async fn reconnected_clears_an_inactive_logins_reauth_but_queues_no_authorize() {
    let t = TestRedis::new("ops-reconnected-inactive").await;
    let s = settings(None);
    let registry = Registry::new(t.conn.clone(), &t.keys);
    registry
        .add(&LoginRecordInput {
            login_id: login(1),
            active: false,
            tag: None,
            priority: None,
        })
        .await
        .unwrap();
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    let today = Utc::now().date_naive();
    ledger.put(today, &login(1), &reauth()).await;
    let queue = authorize_queue(&t, &s);
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &s);

    let done = ops.reconnected(&login(1), today).await.unwrap().unwrap();

    assert_eq!((done.reauth_cleared, done.job_id), (1, None));
    assert!(ledger
        .list_reauth(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queue.stats().await.unwrap().ready, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn deactivate_marks_the_logins_inactive_and_queues_their_change_for_flinks() {
    let t = TestRedis::new("ops-deactivate").await;
    let s = settings(None);
    register(&t, [login(1), login(2)]).await;
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &s);

    let results = ops
        .set_scheduled_refresh(
            &[login(1), login(2), login(3)],
            false,
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert_eq!(
        results.iter().map(|r| r.ok).collect::<Vec<_>>(),
        vec![true, true, false],
        "login 3 is not registered"
    );
    assert_eq!(
        results[0].flinks_scheduled_refresh,
        Some(ScheduledRefreshState::Pending)
    );
    let registry = Registry::new(t.conn.clone(), &t.keys);
    for l in [login(1), login(2)] {
        assert!(!registry.get(&l).await.unwrap().unwrap().active);
    }
    assert_eq!(registry.count_active().await.unwrap(), 0);
    let queue: Queue<serde_json::Value> = Queue::new(
        t.conn.clone(),
        &t.keys,
        queue_config(&s, DEACTIVATION_QUEUE),
    );
    assert_eq!(queue.stats().await.unwrap().ready, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn waiting_for_a_confirmation_that_never_comes_reports_the_login_still_queued() {
    let t = TestRedis::new("ops-deactivate-wait").await;
    let s = settings(None);
    register(&t, [login(1)]).await;
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &s);

    let results = ops
        .set_scheduled_refresh(
            &[login(1)],
            false,
            Some(Duration::from_millis(250)),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert!(!results[0].ok);
    assert!(
        results[0].message.contains("still queued"),
        "{}",
        results[0].message
    );
    assert_eq!(
        results[0].flinks_scheduled_refresh,
        Some(ScheduledRefreshState::Pending)
    );
    t.cleanup().await;
}

#[tokio::test]
async fn idle_logins_are_those_without_a_success_since_the_cutoff() {
    let t = TestRedis::new("ops-idle").await;
    let s = settings(None);
    register(&t, [login(1), login(2)]).await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let mut old = refreshed();
    if let LedgerOutcome::Refreshed { fetched_at, .. } = &mut old {
        *fetched_at = Utc::now() - chrono::Duration::days(40);
    }
    registry.record_outcome(&login(1), &old).await.unwrap();
    registry
        .record_outcome(&login(2), &refreshed())
        .await
        .unwrap();
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &s);

    let idle = ops
        .idle_since(Utc::now() - chrono::Duration::days(30))
        .await
        .unwrap();

    assert_eq!(idle, vec![login(1)]);
    t.cleanup().await;
}

/// A simulator whose GetNightlyRefreshStatus lists login 1 and login 2, failing as these
/// scenarios say.
async fn sim_listing(
    first: flinks_sim::Scenario,
    second: flinks_sim::Scenario,
) -> flinks_sim::SimHandle {
    let rules = flinks_sim::Rules::default()
        .with_login(login(1).as_str(), first)
        .with_login(login(2).as_str(), second);
    flinks_sim::spawn(flinks_sim::SimConfig {
        rules,
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn refresh_status_marks_listed_logins_as_needing_reauth_and_lists_unknown_ones() {
    let t = TestRedis::new("ops-refresh-status").await;
    let sim = sim_listing(
        flinks_sim::Scenario::InvalidPassword,
        flinks_sim::Scenario::QuestionNotFound,
    )
    .await;
    let s = settings(Some(&sim.base_url));
    register(&t, [login(1)]).await;
    let client = FlinksClient::new(FlinksConfig::from_settings(&s).unwrap()).unwrap();
    let cards = client.get_nightly_refresh_status().await.unwrap();
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &s);
    let today = Utc::now().date_naive();

    let report = ops.apply_refresh_status(&cards, today).await.unwrap();

    assert_eq!(report.listed, 2);
    assert_eq!(report.marked, vec![login(1).as_str().to_string()]);
    assert_eq!(report.unknown, vec![login(2).as_str().to_string()]);
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    let entry = ledger.get(today, &login(1)).await.unwrap().unwrap();
    assert_eq!(entry.kind(), "needs_reauth");
    assert_eq!(
        entry.flinks_code().map(|c| c.as_str()),
        Some("INVALID_PASSWORD")
    );
    let status = Registry::new(t.conn.clone(), &t.keys)
        .get(&login(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status
            .reauth_code
            .map(|c| c.as_str().to_string())
            .as_deref(),
        Some("INVALID_PASSWORD")
    );
    t.cleanup().await;
}

/// A login the routine already found needing re-auth for the date keeps what its own
/// Authorize said (FlinksCode, Message, the RequestId to fetch stale data with) when
/// GetNightlyRefreshStatus lists it too: the listing only marks it ineligible.
#[tokio::test]
async fn refresh_status_keeps_the_reauth_a_login_already_has_for_the_date() {
    let t = TestRedis::new("ops-refresh-status-keep").await;
    let sim = sim_listing(
        flinks_sim::Scenario::QuestionNotFound,
        flinks_sim::Scenario::InvalidPassword,
    )
    .await;
    let s = settings(Some(&sim.base_url));
    register(&t, [login(1), login(2)]).await;
    let today = Utc::now().date_naive();
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    let found = LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("QUESTION_NOT_FOUND")),
        message: Some("The MFA question has no stored answer".into()),
        request_id: Some(RequestId::new("r-stale")),
        at: Utc::now(),
        unrecognised_code: false,
    };
    ledger.put(today, &login(1), &found).await;
    ledger.put(today, &login(2), &failed("RETRY_LATER")).await;
    let client = FlinksClient::new(FlinksConfig::from_settings(&s).unwrap()).unwrap();
    let cards = client.get_nightly_refresh_status().await.unwrap();
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &s);

    let report = ops.apply_refresh_status(&cards, today).await.unwrap();

    let mut marked = report.marked.clone();
    marked.sort();
    assert_eq!(marked, [login(1).as_str(), login(2).as_str()]);
    assert_eq!(ledger.get(today, &login(1)).await.unwrap(), Some(found));
    let replaced = ledger.get(today, &login(2)).await.unwrap().unwrap();
    assert_eq!(
        replaced.kind(),
        "needs_reauth",
        "a failure gives way: {replaced:?}"
    );
    let flags = ledger
        .ineligible_flags(today, &[login(1), login(2)])
        .await
        .unwrap();
    assert_eq!(flags, [true, true]);
    t.cleanup().await;
}

#[tokio::test]
async fn the_audit_log_returns_entries_newest_first() {
    let t = TestRedis::new("ops-audit").await;
    let log = AuditLog::new(t.conn.clone(), &t.keys);
    for (i, command) in ["queues requeue", "logins deactivate"].iter().enumerate() {
        log.append(&AuditEntry {
            id: String::new(),
            actor: "alice".into(),
            command: (*command).into(),
            args: format!("arg{i}"),
            count: i as u64 + 1,
            failed: 0,
            at: Utc::now(),
        })
        .await
        .unwrap();
    }

    let entries = log.recent(10).await.unwrap();

    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].command, "logins deactivate");
    assert_eq!(entries[0].count, 2);
    assert_eq!(entries[1].actor, "alice");
    assert!(!entries[1].id.is_empty());
    t.cleanup().await;
}

fn detail_queue(t: &TestRedis, s: &Settings) -> Queue<DetailJob> {
    Queue::new(t.conn.clone(), &t.keys, queue_config(s, DETAIL_QUEUE))
}

/// Leases every ready job of `queue` and fails it for good: the dead letters a crash loop
/// or a permanent failure leaves.
async fn bury_all<T: serde::de::DeserializeOwned>(queue: &Queue<T>) {
    let worker = WorkerId::generate();
    for job in queue.fetch(&worker, 100).await.unwrap() {
        queue
            .fail(
                &job.token,
                &job.id,
                job.attempt,
                shared::queue::JobFailure::Permanent {
                    error: "worker died".into(),
                },
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_dead_authorize_job_whose_detail_fetch_is_still_alive_is_not_requeued() {
    let t = TestRedis::new("ops-dead-chained").await;
    let s = settings(None);
    let today = Utc::now().date_naive();
    let authorize = authorize_queue(&t, &s);
    let detail = detail_queue(&t, &s);
    authorize
        .enqueue(
            &AuthorizeJob::new(login(1), today),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    // The authorize job chained its detail fetch, then died before its ack.
    let worker = WorkerId::generate();
    let leased = authorize.fetch(&worker, 1).await.unwrap().remove(0);
    let chain_key = DetailJob::chained_dedupe_key(leased.id.as_str());
    detail
        .enqueue(
            &DetailJob {
                login_id: login(1),
                routine_date: today,
                request_id: RequestId::new("r-1"),
                last_refresh: None,
                session_restarts: 0,
                polling_since: None,
                polls: 0,
            },
            EnqueueOptions::dedupe(chain_key.clone()),
        )
        .await
        .unwrap();
    authorize
        .fail(
            &leased.token,
            &leased.id,
            leased.attempt,
            shared::queue::JobFailure::Permanent {
                error: "worker died".into(),
            },
        )
        .await
        .unwrap();
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let report = requeuer
        .requeue_dead(&everything(), RequeueOptions::default())
        .await
        .unwrap();

    assert!(report.moved.is_empty(), "{report:?}");
    assert_eq!(report.skipped[0].reason, Some("detail_in_progress"));
    assert_eq!(authorize.stats().await.unwrap().dead, 1);
    assert!(detail.has_dedupe(&chain_key).await.unwrap());
    // Once the detail job is gone (it ran), the letter can be requeued.
    bury_all(&detail).await;
    let later = requeuer
        .requeue_dead(
            &Selection {
                logins: vec![login(1)],
                ..Selection::default()
            },
            RequeueOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(later.moved.len(), 2, "{later:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_dead_detail_poll_restarts_from_a_fresh_authorize_once() {
    let t = TestRedis::new("ops-dead-detail").await;
    let s = settings(None);
    let today = Utc::now().date_naive();
    let detail = detail_queue(&t, &s);
    detail
        .enqueue(
            &DetailJob {
                login_id: login(2),
                routine_date: today,
                request_id: RequestId::new("stale-session"),
                last_refresh: None,
                session_restarts: 1,
                polling_since: Some(Utc::now() - chrono::Duration::hours(3)),
                polls: 40,
            },
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    bury_all(&detail).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let first = requeuer
        .requeue_dead(&everything(), RequeueOptions::default())
        .await
        .unwrap();
    let again = requeuer
        .requeue_dead(&everything(), RequeueOptions::default())
        .await
        .unwrap();

    assert_eq!(first.moved.len(), 1);
    assert_eq!(first.moved[0].queue, DETAIL_QUEUE);
    assert!(again.moved.is_empty());
    let stats = detail.stats().await.unwrap();
    assert_eq!((stats.ready, stats.delayed, stats.dead), (0, 0, 0));
    let authorize = authorize_queue(&t, &s);
    let ready = authorize
        .list(JobState::Ready, &JobFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(ready.len(), 1);
    let job: AuthorizeJob = serde_json::from_str(&ready[0].payload).unwrap();
    assert_eq!(job, AuthorizeJob::new(login(2), today));
    t.cleanup().await;
}

#[tokio::test]
async fn purge_of_dead_letters_keeps_those_not_reviewed_yet() {
    let t = TestRedis::new("ops-purge-unreviewed").await;
    let s = settings(None);
    let authorize = authorize_queue(&t, &s);
    authorize
        .enqueue(
            &AuthorizeJob::new(login(3), Utc::now().date_naive()),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    bury_all(&authorize).await;
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);

    let dry = requeuer.purge_dead(Duration::ZERO, true).await.unwrap();
    let before_review = requeuer.purge_dead(Duration::ZERO, false).await.unwrap();
    let raw: Queue<()> = authorize.retyped();
    let cursor = raw
        .dead_after(0, 10)
        .await
        .unwrap()
        .through
        .expect("one letter");
    raw.advance_dead_review_cursor(cursor).await.unwrap();
    let after_review = requeuer.purge_dead(Duration::ZERO, false).await.unwrap();

    assert_eq!(dry[0], (AUTHORIZE_QUEUE.to_string(), 0));
    assert_eq!(before_review[0], (AUTHORIZE_QUEUE.to_string(), 0));
    assert_eq!(after_review[0], (AUTHORIZE_QUEUE.to_string(), 1));
    t.cleanup().await;
}

#[tokio::test]
async fn a_requeue_of_dead_letters_for_an_expired_date_is_refused_naming_it() {
    let t = TestRedis::new("ops-dead-expired").await;
    let s = settings(None);
    let requeuer = Requeuer::new(t.conn.clone(), &t.keys, &s);
    let old = Utc::now().date_naive() - chrono::Days::new(60);

    let err = requeuer
        .requeue_dead(
            &Selection {
                date: Some(old),
                ..Selection::default()
            },
            RequeueOptions::default(),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(err, OpsError::LedgerExpired(d) if d == old),
        "{err}"
    );
    assert!(err.to_string().contains(&old.to_string()), "{err}");
    t.cleanup().await;
}

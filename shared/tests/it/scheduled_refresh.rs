//! The registry's Flinks nightly-refresh state on a real Redis: a change is durable from
//! the registry write on (the same script sets the active flag and `pending`), it is queued
//! once per change, only the latest change counts, and the sweeper recovers a change whose
//! enqueue never happened.

use std::time::Duration;

use redis::AsyncCommands;
use shared::domain::LoginId;
use shared::jobs::{ScheduledRefreshJob, DEACTIVATION_QUEUE};
use shared::registry::{LoginFilter, Registry};
use shared::scheduled_refresh::{Confirmed, ScheduledRefresh, ScheduledRefreshState};
use shared::write_marks::WRITES_MARKED_FIELD;

use crate::support::{record, TestRedis};

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

/// The jobs waiting on the deactivation queue, in order.
async fn queued(t: &TestRedis) -> Vec<ScheduledRefreshJob> {
    let mut conn = t.conn.clone();
    let ids: Vec<String> = conn
        .lrange(t.keys.queue(DEACTIVATION_QUEUE, "ready"), 0, -1)
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for id in ids {
        let json: String = conn
            .hget(t.keys.queue(DEACTIVATION_QUEUE, &format!("job:{id}")), "p")
            .await
            .unwrap();
        jobs.push(serde_json::from_str(&json).unwrap());
    }
    jobs
}

async fn state(registry: &Registry, n: u32) -> Option<ScheduledRefreshState> {
    registry
        .get(&login(n))
        .await
        .unwrap()
        .unwrap()
        .flinks_scheduled_refresh
}

#[tokio::test]
async fn an_inactive_import_queues_one_change_and_a_new_active_login_none() {
    let t = TestRedis::new("sched-import").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);

    let summary = registry
        .upsert_many(&[record(1, true), record(2, false)])
        .await
        .unwrap();
    // Re-importing the same file changes nothing at Flinks.
    let again = registry
        .upsert_many(&[record(1, true), record(2, false)])
        .await
        .unwrap();

    assert_eq!(summary.flinks_changes, 1);
    assert_eq!(again.flinks_changes, 0);
    assert_eq!(state(&registry, 1).await, Some(ScheduledRefreshState::On));
    assert_eq!(
        state(&registry, 2).await,
        Some(ScheduledRefreshState::Pending)
    );
    let jobs = queued(&t).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].login_id, login(2));
    assert!(!jobs[0].activate);
    // A page covers part of the key buckets: read them all.
    let (mut pending, mut cursor) = (Vec::new(), Some(0));
    while let Some(at) = cursor {
        let page = registry
            .list(LoginFilter::FlinksUnconfirmed, at, 100)
            .await
            .unwrap();
        pending.extend(page.logins.into_iter().map(|l| l.login_id));
        cursor = page.next_cursor;
    }
    assert_eq!(pending, vec![login(2)]);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 1);
    t.cleanup().await;
}

#[tokio::test]
async fn a_crash_between_the_registry_write_and_the_enqueue_cannot_lose_the_change() {
    let t = TestRedis::new("sched-crash").await;
    shared::layout::prepare(&t.conn, &t.keys).await.unwrap();
    let registry = Registry::new(t.conn.clone(), &t.keys);
    registry.add(&record(1, true)).await.unwrap();

    // Step 1 only, as if the process died right after the registry script.
    let (_, due) = registry
        .write_batch_only(&[record(1, false)])
        .await
        .unwrap();

    // The one script wrote the active flag and the pending change together.
    let mut conn = t.conn.clone();
    let (active, desired, stamp, flinks): (String, String, u64, String) = redis::cmd("HMGET")
        .arg(t.keys.login(login(1).as_str()))
        .arg("active")
        .arg("flinks_desired")
        .arg("flinks_stamp")
        .arg("flinks_scheduled_refresh")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((active.as_str(), desired.as_str()), ("0", "0"));
    assert_eq!(flinks, "pending");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].stamp, stamp);
    assert!(queued(&t).await.is_empty(), "nothing enqueued yet");

    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    // The write's mark is fresh: its writer may still be between its two steps.
    assert_eq!(scheduled.repair_index().await.unwrap(), 0);
    // Once the mark is older than the grace, the writer is taken for stopped.
    assert_eq!(
        scheduled
            .repair_index_older_than(Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    let report = scheduled.sweep().await.unwrap();
    assert_eq!(report.requeued, 1);
    // A second sweep finds the job queued and adds nothing.
    assert_eq!(scheduled.sweep().await.unwrap().requeued, 0);
    let jobs = queued(&t).await;
    assert_eq!(
        jobs,
        vec![ScheduledRefreshJob {
            login_id: login(1),
            activate: false,
            stamp
        }]
    );
    t.cleanup().await;
}

/// Makes registered login `n` pending at Flinks with no write marked open, as only a
/// writer that marks nothing (an earlier version) could have left it: a change only a walk
/// of the registry finds, so whether a repair indexes it says whether the repair walked.
async fn plant_unmarked_pending(t: &TestRedis, registry: &Registry, n: u32) {
    registry.add(&record(n, true)).await.unwrap();
    let mut conn = t.conn.clone();
    let () = conn
        .hset_multiple(
            t.keys.login(login(n).as_str()),
            &[
                ("flinks_scheduled_refresh", "pending"),
                ("flinks_stamp", "7"),
            ],
        )
        .await
        .unwrap();
}

async fn open_marks(t: &TestRedis) -> u64 {
    let mut conn = t.conn.clone();
    conn.zcard(t.keys.registry_writes_open()).await.unwrap()
}

#[tokio::test]
async fn the_index_repair_reads_the_registry_only_when_a_write_stopped_half_way() {
    let t = TestRedis::new("sched-marks").await;
    shared::layout::prepare(&t.conn, &t.keys).await.unwrap();
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    plant_unmarked_pending(&t, &registry, 1).await;
    registry.add(&record(2, false)).await.unwrap();
    assert_eq!(open_marks(&t).await, 0, "a finished write closes its mark");
    let many: Vec<_> = (10..2_510).map(|n| record(n, n % 2 == 0)).collect();
    registry.upsert_many(&many).await.unwrap();
    assert_eq!(
        open_marks(&t).await,
        0,
        "an import closes every batch's mark"
    );

    // Every write finished: nothing to repair, and the registry is not read.
    assert_eq!(
        scheduled
            .repair_index_older_than(Duration::ZERO)
            .await
            .unwrap(),
        0
    );

    // A writer stops between its two steps: its mark stays open.
    registry
        .write_batch_only(&[record(3, false)])
        .await
        .unwrap();
    assert_eq!(open_marks(&t).await, 1);
    assert_eq!(
        scheduled.repair_index().await.unwrap(),
        0,
        "within the grace"
    );
    // Past it, the repair walks every login: it finds the stopped write's change and the
    // planted one alike, and closes the mark it acted on.
    assert_eq!(
        scheduled
            .repair_index_older_than(Duration::ZERO)
            .await
            .unwrap(),
        2
    );
    assert_eq!(open_marks(&t).await, 0);
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 3 + 1_250);

    plant_unmarked_pending(&t, &registry, 4).await;
    assert_eq!(
        scheduled
            .repair_index_older_than(Duration::ZERO)
            .await
            .unwrap(),
        0
    );
    t.cleanup().await;
}

/// A Redis that does not know the registry scripts (a new one, a restart, a failover) makes
/// the write load them and write again. Knowing neither, it ran nothing the first time: the
/// second try reports and publishes every change, and no repair needs to walk the registry.
/// Knowing the write script but not the index's (another process loading them at that
/// moment), the first try may have written unreported changes: the write leaves a mark due
/// at once, and the next repair walks and closes it.
#[tokio::test]
async fn a_write_that_had_to_load_its_scripts_flags_itself_only_if_the_first_try_may_have_written()
{
    let (_server, conn) = crate::own_redis::OwnRedis::plain("marks-noscript").await;
    let t = TestRedis {
        conn,
        keys: shared::keys::KeySpace::new("marks-noscript".to_string()),
    };
    shared::layout::prepare(&t.conn, &t.keys).await.unwrap();
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    registry.add(&record(1, false)).await.unwrap();
    assert_eq!(
        state(&registry, 1).await,
        Some(ScheduledRefreshState::Pending)
    );
    assert_eq!(open_marks(&t).await, 0, "no flag: nothing ran unreported");
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 1, "published");

    // Redis forgets its scripts, then another process loads the write script again.
    let mut admin = t.conn.clone();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(include_str!("../../src/lua/registry/registry_write.lua"))
        .query_async(&mut admin)
        .await
        .unwrap();
    registry.add(&record(2, false)).await.unwrap();
    assert_eq!(
        state(&registry, 2).await,
        Some(ScheduledRefreshState::Pending)
    );
    assert_eq!(
        open_marks(&t).await,
        1,
        "only the flag, its own mark closed"
    );
    // The first try wrote login 2's change and its answer was lost: the walk finds it.
    assert_eq!(scheduled.repair_index().await.unwrap(), 1);
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 2);
    assert_eq!(open_marks(&t).await, 0, "the walk closed the flag");
    // The next write finds the scripts loaded: no flag.
    registry.add(&record(3, false)).await.unwrap();
    assert_eq!(open_marks(&t).await, 0);
}

#[tokio::test]
async fn a_namespace_written_before_writes_were_marked_is_walked_by_its_first_repair() {
    let t = TestRedis::new("sched-unmarked").await;
    // The layout an earlier version stored: bucket counts, no `writes_marked`.
    let mut conn = t.conn.clone();
    let () = conn
        .hset_multiple(
            t.keys.layout(),
            &[
                (shared::layout::KEY_BUCKETS_FIELD, t.keys.buckets()),
                (
                    shared::layout::LEDGER_BUCKETS_FIELD,
                    t.keys.ledger_buckets(),
                ),
            ],
        )
        .await
        .unwrap();
    shared::layout::prepare(&t.conn, &t.keys).await.unwrap();
    let marked: Option<String> = conn
        .hget(t.keys.layout(), WRITES_MARKED_FIELD)
        .await
        .unwrap();
    assert_eq!(
        marked, None,
        "data of an earlier version is not taken for marked"
    );
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    plant_unmarked_pending(&t, &registry, 1).await;

    assert_eq!(scheduled.repair_index().await.unwrap(), 1);
    let marked: Option<String> = conn
        .hget(t.keys.layout(), WRITES_MARKED_FIELD)
        .await
        .unwrap();
    assert_eq!(marked.as_deref(), Some("1"));
    plant_unmarked_pending(&t, &registry, 2).await;
    assert_eq!(
        scheduled.repair_index().await.unwrap(),
        0,
        "walked once only"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn only_the_latest_change_is_current_and_confirming_it_settles_the_login() {
    let t = TestRedis::new("sched-latest").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    registry.add(&record(1, true)).await.unwrap();
    registry.set_active(&login(1), false).await.unwrap();
    registry.set_active(&login(1), true).await.unwrap();

    let jobs = queued(&t).await;
    assert_eq!(jobs.len(), 2);
    assert!(!scheduled.is_current(&jobs[0]).await.unwrap(), "superseded");
    assert!(scheduled.is_current(&jobs[1]).await.unwrap());

    assert_eq!(
        scheduled.confirm(&jobs[1]).await.unwrap(),
        Confirmed::Settled
    );
    assert_eq!(state(&registry, 1).await, Some(ScheduledRefreshState::On));
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 0);
    // The superseded `false` landing late at Flinks re-opens the login with `true`.
    assert_eq!(
        scheduled.confirm(&jobs[0]).await.unwrap(),
        Confirmed::Reopened
    );
    assert_eq!(
        state(&registry, 1).await,
        Some(ScheduledRefreshState::Pending)
    );
    let last = queued(&t).await.pop().unwrap();
    assert!(last.activate);
    t.cleanup().await;
}

#[tokio::test]
async fn a_late_change_landing_on_an_active_login_that_stores_no_state_reopens_it_in_full() {
    let t = TestRedis::new("sched-implied").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    // A new active login: `on`, with nothing about Flinks stored.
    registry.add(&record(1, true)).await.unwrap();
    assert!(queued(&t).await.is_empty());
    // A deactivation the login never asked for lands at Flinks (a stale job).
    let stray = ScheduledRefreshJob {
        login_id: login(1),
        activate: false,
        stamp: 1,
    };

    assert_eq!(
        scheduled.confirm(&stray).await.unwrap(),
        Confirmed::Reopened
    );

    // The login wants nightly refresh on again, stored in full so a sweep finds it.
    let mut conn = t.conn.clone();
    let desired: Option<String> = conn
        .hget(t.keys.login(login(1).as_str()), "flinks_desired")
        .await
        .unwrap();
    assert_eq!(desired.as_deref(), Some("1"));
    assert_eq!(
        state(&registry, 1).await,
        Some(ScheduledRefreshState::Pending)
    );
    scheduled.repair_index().await.unwrap();
    scheduled.sweep().await.unwrap();
    assert!(queued(&t).await.iter().any(|job| job.activate));
    t.cleanup().await;
}

#[tokio::test]
async fn a_permanent_failure_is_recorded_and_listed_as_unconfirmed() {
    let t = TestRedis::new("sched-failed").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    registry.add(&record(1, false)).await.unwrap();
    let job = queued(&t).await.pop().unwrap();

    assert!(scheduled
        .record_failure(&job, "INVALID_LOGIN: unknown")
        .await
        .unwrap());

    let status = registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(
        status.flinks_scheduled_refresh,
        Some(ScheduledRefreshState::Failed)
    );
    assert_eq!(
        status.flinks_error.as_deref(),
        Some("INVALID_LOGIN: unknown")
    );
    assert!(!scheduled.is_current(&job).await.unwrap());
    // The sweeper keeps a failed login listed and does not retry it.
    assert_eq!(scheduled.sweep().await.unwrap().requeued, 0);
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 1);
    t.cleanup().await;
}

#[tokio::test]
async fn writing_a_login_whose_change_failed_sends_it_again_and_clears_the_error() {
    let t = TestRedis::new("sched-failed-retry").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    registry.add(&record(1, false)).await.unwrap();
    let failed = queued(&t).await.pop().unwrap();
    scheduled
        .record_failure(&failed, "INVALID_LOGIN: unknown")
        .await
        .unwrap();

    // The same (inactive) state written again, second in a batch after a login with no
    // change.
    let summary = registry
        .upsert_many(&[record(2, true), record(1, false)])
        .await
        .unwrap();

    assert_eq!(summary.flinks_changes, 1);
    let status = registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(
        status.flinks_scheduled_refresh,
        Some(ScheduledRefreshState::Pending)
    );
    assert_eq!(status.flinks_error, None);
    let retried = queued(&t).await.pop().unwrap();
    assert_eq!(retried.login_id, login(1));
    assert!(!retried.activate);
    assert_ne!(retried.stamp, failed.stamp);
    assert!(scheduled.is_current(&retried).await.unwrap());
    t.cleanup().await;
}

#[tokio::test]
async fn every_change_of_one_import_gets_its_own_stamp_across_batches_in_flight() {
    let t = TestRedis::new("sched-stamps").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = ScheduledRefresh::new(t.conn.clone(), &t.keys);
    let n = 2 * shared::registry::BATCH_SIZE as u32 + 100;
    let records: Vec<_> = (0..n).map(|i| record(i, false)).collect();

    let summary = registry.upsert_many(&records).await.unwrap();

    assert_eq!(summary.flinks_changes, u64::from(n));
    let jobs = queued(&t).await;
    assert_eq!(jobs.len(), n as usize);
    let stamps: std::collections::HashSet<u64> = jobs.iter().map(|j| j.stamp).collect();
    assert_eq!(stamps.len(), jobs.len(), "two changes share a stamp");
    for job in jobs.iter().step_by(97) {
        assert!(scheduled.is_current(job).await.unwrap());
    }
    t.cleanup().await;
}

//! Recording outcomes in the ledger and the registry, against a real Redis: in one script
//! on one Redis, through the outbox on a Cluster, where a crash between the two writes is
//! repaired by the drain, and replays are harmless.

use chrono::{Duration, NaiveDate, Utc};
use shared::domain::{FlinksCode, LoginId, RequestId};
use shared::ledger::{Ledger, LedgerOutcome, Overwrite};
use shared::outcomes::Outcomes;
use shared::registry::{LoginRecordInput, Registry};
use std::sync::{Arc, Mutex};

use shared::config::RedisMode;
use shared::queue::{AckAttached, DeliveryToken, EnqueueOptions, Queue, QueueConfig, WorkerId};
use shared::results::{self, ReadPolicy, ResultEntry, ResultsSink, Stored};

use crate::support::{RecordExt, TestRedis};

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, day).unwrap()
}

fn reauth(at: chrono::DateTime<Utc>) -> LedgerOutcome {
    LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("SESSION_EXPIRED")),
        message: Some("reconnect".into()),
        request_id: None,
        at,
        unrecognised_code: false,
    }
}

fn failed(at: chrono::DateTime<Utc>) -> LedgerOutcome {
    LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse("RETRY_LATER")),
        http_status: Some(503),
        message: "bank down".into(),
        attempts: 5,
        at,
        reason: None,
    }
}

fn refreshed(at: chrono::DateTime<Utc>) -> LedgerOutcome {
    LedgerOutcome::Refreshed {
        request_id: RequestId::new("r-1"),
        last_refresh: None,
        stale: true,
        fetched_at: at,
        results_stream_id: None,
    }
}

/// A result of `login` for date 1, fetched now, not stale.
fn fresh_result<'a>(
    login: &'a LoginId,
    request_id: &'a RequestId,
    accounts: &'a serde_json::value::RawValue,
) -> ResultEntry<'a> {
    ResultEntry {
        login_id: login,
        request_id,
        routine_date: date(1),
        fetched_at: Utc::now(),
        last_refresh: None,
        stale: false,
        accounts,
    }
}

struct Fixture {
    redis: TestRedis,
    ledger: Ledger,
    registry: Registry,
    outcomes: Outcomes,
}

async fn fixture(test: &str) -> Fixture {
    let redis = TestRedis::new(test).await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    registry
        .add(&LoginRecordInput {
            login_id: login(1),
            active: true,
            tag: None,
            priority: None,
        })
        .await
        .unwrap();
    Fixture {
        ledger: Ledger::new(redis.conn.clone(), &redis.keys),
        outcomes: Outcomes::new(redis.conn.clone(), &redis.keys),
        registry,
        redis,
    }
}

#[tokio::test]
async fn a_crash_between_the_ledger_and_the_registry_is_repaired_by_the_drain() {
    let f = fixture("outcomes-crash").await;
    let outcome = reauth(Utc::now());
    // The ledger part only: the process dies before it updates the registry.
    assert!(f.ledger.put(date(1), &login(1), &outcome).await);

    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome, None, "the registry is stale");
    assert!(f.registry.history(&login(1)).await.unwrap().is_empty());
    assert_eq!(f.outcomes.pending().await.unwrap(), 1);

    assert_eq!(f.outcomes.drain_once().await.unwrap(), 1);
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    assert_eq!(
        status.reauth_code,
        Some(FlinksCode::parse("SESSION_EXPIRED"))
    );
    assert_eq!(f.registry.history(&login(1)).await.unwrap(), vec![outcome]);
    assert_eq!(f.outcomes.pending().await.unwrap(), 0);
    assert_eq!(f.outcomes.drain_once().await.unwrap(), 0);
    f.redis.cleanup().await;
}

#[tokio::test]
async fn applying_an_outbox_entry_twice_leaves_the_registry_as_once() {
    let f = fixture("outcomes-twice").await;
    let outcome = failed(Utc::now());
    assert!(f.ledger.put(date(1), &login(1), &outcome).await);
    // Applied, then the process dies before it removes the entry from the outbox.
    assert!(f
        .registry
        .record_outcome(&login(1), &outcome)
        .await
        .unwrap());
    let once = f.registry.get(&login(1)).await.unwrap().unwrap();

    assert_eq!(
        f.outcomes.drain_once().await.unwrap(),
        1,
        "the entry replays"
    );
    assert_eq!(f.registry.get(&login(1)).await.unwrap().unwrap(), once);
    assert_eq!(f.registry.history(&login(1)).await.unwrap(), vec![outcome]);
    assert!(!f.outcomes.apply_pending(&login(1)).await.unwrap());
    f.redis.cleanup().await;
}

#[tokio::test]
async fn an_older_outcome_never_replaces_a_later_one() {
    let f = fixture("outcomes-order").await;
    let later = reauth(Utc::now());
    let earlier = failed(Utc::now() - Duration::hours(1));
    assert!(f.registry.record_outcome(&login(1), &later).await.unwrap());
    assert!(!f
        .registry
        .record_outcome(&login(1), &earlier)
        .await
        .unwrap());
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    assert_eq!(status.last_error, None);
    assert_eq!(
        f.registry.history(&login(1)).await.unwrap(),
        vec![later.clone()]
    );

    // In the outbox too: two crashed writes of one login leave the later one pending.
    let other = login(2);
    f.ledger.put(date(2), &other, &later).await;
    f.ledger.put(date(1), &other, &earlier).await;
    assert_eq!(f.outcomes.pending().await.unwrap(), 1);
    f.outcomes.drain_once().await.unwrap();
    let status = f.registry.get(&other).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    f.redis.cleanup().await;
}

/// A write whose update the outbox did not take (a later one of the login, left by a
/// crash, is pending) applies the pending one: the registry ends with the later outcome at
/// once, not one drain later.
#[tokio::test]
async fn recording_beside_a_later_pending_update_applies_the_later_one() {
    let f = fixture("outcomes-beside").await;
    let later = reauth(Utc::now());
    let earlier = failed(Utc::now() - Duration::hours(1));
    f.ledger.put(date(2), &login(1), &later).await;

    assert!(f.outcomes.put(date(1), &login(1), &earlier).await);
    assert_eq!(f.outcomes.pending().await.unwrap(), 0);
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    assert_eq!(f.registry.history(&login(1)).await.unwrap(), vec![later]);
    f.redis.cleanup().await;
}

/// An earlier update a crash left in the outbox never replaces a later outcome recorded
/// after it, whether that write applied its update itself (one Redis) or through the
/// outbox (a Cluster): once drained, the registry and history hold the later one only.
#[tokio::test]
async fn an_earlier_update_left_pending_never_replaces_a_later_outcome() {
    let f = fixture("outcomes-earlier-pending").await;
    let earlier = failed(Utc::now() - Duration::hours(1));
    let later = reauth(Utc::now());
    f.ledger.put(date(1), &login(1), &earlier).await;

    assert!(f.outcomes.put(date(2), &login(1), &later).await);
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    f.outcomes.drain_once().await.unwrap();
    assert_eq!(f.outcomes.pending().await.unwrap(), 0);
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    assert_eq!(status.last_error, None);
    assert_eq!(f.registry.history(&login(1)).await.unwrap(), vec![later]);
    f.redis.cleanup().await;
}

#[tokio::test]
async fn recording_an_outcome_updates_ledger_and_registry_and_empties_the_outbox() {
    let f = fixture("outcomes-record").await;
    let t0 = Utc::now();
    let first = reauth(t0);
    assert!(f.outcomes.put(date(1), &login(1), &first).await);
    assert_eq!(
        f.ledger.get(date(1), &login(1)).await.unwrap(),
        Some(first.clone())
    );
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    assert_eq!(
        f.outcomes.pending().await.unwrap(),
        0,
        "the write's own update applied and cleared"
    );

    let done = refreshed(t0 + Duration::seconds(1));
    assert!(f.outcomes.put(date(1), &login(1), &done).await);
    // A refresh is final: a later failure of the same date is neither recorded nor applied.
    let late = failed(t0 + Duration::seconds(2));
    assert!(!f.outcomes.put(date(1), &login(1), &late).await);
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("refreshed"));
    assert_eq!(status.reauth_code, None);
    assert_eq!(
        f.registry.history(&login(1)).await.unwrap(),
        vec![done, first]
    );

    // The reconciler's fill-only write reaches the registry as well.
    let dead = failed(t0 + Duration::seconds(3));
    assert!(f
        .outcomes
        .record(date(2), &login(1), &dead, Overwrite::Nothing)
        .await
        .unwrap());
    assert!(!f
        .outcomes
        .record(
            date(2),
            &login(1),
            &failed(t0 + Duration::seconds(4)),
            Overwrite::Nothing
        )
        .await
        .unwrap());
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("failed"));
    assert_eq!(f.outcomes.pending().await.unwrap(), 0);
    f.redis.cleanup().await;
}

#[tokio::test]
async fn a_result_stored_over_a_failure_replaces_it_and_a_second_store_leaves_one_stream_entry() {
    let f = fixture("outcomes-result-over-failure").await;
    let sink = ResultsSink::new(f.redis.conn.clone(), &f.redis.keys, 1000);
    let t0 = Utc::now() - Duration::minutes(5);
    assert!(f
        .outcomes
        .record(date(1), &login(1), &failed(t0), Overwrite::Nothing)
        .await
        .unwrap());
    let request_id = RequestId::new("r-9");
    let (login_1, no_accounts) = (
        login(1),
        serde_json::value::to_raw_value(&serde_json::json!([])).unwrap(),
    );
    let entry = fresh_result(&login_1, &request_id, &no_accounts);

    let stored = f.outcomes.store_result(&sink, &entry).await.unwrap();
    let again = f.outcomes.store_result(&sink, &entry).await.unwrap();

    assert!(stored.newly_stored && !again.newly_stored);
    assert_eq!(again.outcome, stored.outcome, "the first store is kept");
    assert_eq!(
        f.ledger.get(date(1), &login(1)).await.unwrap(),
        Some(stored.outcome.clone())
    );
    let counts = f.ledger.counts(date(1)).await.unwrap();
    assert_eq!((counts.refreshed, counts.failed), (1, 0));
    let records = results::read(&f.redis.conn, &f.redis.keys, "-", 10, ReadPolicy::default())
        .await
        .unwrap();
    assert_eq!(records.records.len(), 1, "one stream entry");
    let LedgerOutcome::Refreshed {
        results_stream_id, ..
    } = &stored.outcome
    else {
        panic!("not refreshed: {stored:?}");
    };
    assert_eq!(
        results_stream_id.as_deref(),
        Some(records.records[0].id.as_str())
    );
    f.redis.cleanup().await;
}

#[tokio::test]
async fn a_stored_result_reaches_the_registry_with_its_stream_id() {
    let f = fixture("outcomes-result").await;
    let sink = ResultsSink::new(f.redis.conn.clone(), &f.redis.keys, 1000);
    let request_id = RequestId::new("r-9");
    let (login_1, no_accounts) = (
        login(1),
        serde_json::value::to_raw_value(&serde_json::json!([])).unwrap(),
    );
    let entry = fresh_result(&login_1, &request_id, &no_accounts);
    let stored = f.outcomes.store_result(&sink, &entry).await.unwrap();
    assert!(stored.newly_stored);
    assert_eq!(
        f.outcomes.pending().await.unwrap(),
        0,
        "the write's own update applied and cleared"
    );
    let again = f.outcomes.store_result(&sink, &entry).await.unwrap();
    assert!(!again.newly_stored);

    let history = f.registry.history(&login(1)).await.unwrap();
    assert_eq!(history, vec![stored.outcome.clone()]);
    let LedgerOutcome::Refreshed {
        results_stream_id, ..
    } = &history[0]
    else {
        panic!("not refreshed: {history:?}");
    };
    assert!(results_stream_id.is_some());
    assert_eq!(f.outcomes.pending().await.unwrap(), 0);
    f.redis.cleanup().await;
}

#[tokio::test]
async fn a_result_stored_by_its_jobs_ack_lands_as_a_store_would_and_once() {
    let f = fixture("outcomes-ack-result").await;
    let sink = ResultsSink::new(f.redis.conn.clone(), &f.redis.keys, 1000);
    let request_id = RequestId::new("r-9");
    let accounts =
        serde_json::json!([{"AccountNumber": "1111000", "Balance": {"Current": 5105.50}}]);
    let (login_1, raw_accounts) = (
        login(1),
        serde_json::value::to_raw_value(&accounts).unwrap(),
    );
    let entry = fresh_result(&login_1, &request_id, &raw_accounts);
    let answers: Arc<Mutex<Vec<Stored>>> = Arc::default();
    let write = |entry: &ResultEntry<'_>| {
        let seen = Arc::clone(&answers);
        f.outcomes
            .result_ack_write(&sink, entry, move |stored| {
                seen.lock().unwrap().push(stored.unwrap())
            })
            .unwrap()
    };
    let Some(first) = write(&entry) else {
        assert_eq!(
            f.redis.conn.mode(),
            RedisMode::Cluster,
            "only a Cluster stores apart"
        );
        f.redis.cleanup().await;
        return;
    };
    let queue: Queue<u32> = Queue::new(
        f.redis.conn.clone(),
        &f.redis.keys,
        QueueConfig::new("detail"),
    );
    queue.enqueue(&1, EnqueueOptions::default()).await.unwrap();
    let w = WorkerId::generate();
    let job = queue.fetch(&w, 1).await.unwrap().remove(0);

    let (acked, _) = queue
        .ack_attached(
            &job.token,
            &job.id,
            &AckAttached::default().with_write(first),
            None,
        )
        .await
        .unwrap();
    assert!(acked);
    // The same ack again (its reply lost, say) finds its own refresh: stored once, by it.
    let again = write(&entry).unwrap();
    let (acked, _) = queue
        .ack_attached(
            &job.token,
            &job.id,
            &AckAttached::default().with_write(again),
            None,
        )
        .await
        .unwrap();
    assert!(!acked, "acked already");
    // A redelivery that fetched again stores nothing more.
    let refetched = ResultEntry {
        fetched_at: entry.fetched_at + Duration::seconds(5),
        ..entry
    };
    let redelivered = write(&refetched).unwrap();
    let stale = DeliveryToken::generate(&w);
    queue
        .ack_attached(
            &stale,
            &job.id,
            &AckAttached::default().with_write(redelivered),
            None,
        )
        .await
        .unwrap();

    let answers = answers.lock().unwrap().clone();
    assert_eq!(
        answers.iter().map(|s| s.newly_stored).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert!(
        answers.iter().all(|s| s.outcome == answers[0].outcome),
        "the stored one, kept"
    );
    assert_eq!(
        f.ledger.get(date(1), &login(1)).await.unwrap(),
        Some(answers[0].outcome.clone())
    );
    let history = f.registry.history(&login(1)).await.unwrap();
    assert_eq!(
        history,
        vec![answers[0].outcome.clone()],
        "applied in the same call"
    );
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("refreshed"));
    assert_eq!(f.outcomes.pending().await.unwrap(), 0);
    let records = results::read(&f.redis.conn, &f.redis.keys, "-", 10, ReadPolicy::default())
        .await
        .unwrap();
    assert_eq!(records.records.len(), 1, "one stream entry");
    let LedgerOutcome::Refreshed {
        results_stream_id, ..
    } = &answers[0].outcome
    else {
        panic!("not refreshed: {answers:?}");
    };
    assert_eq!(
        results_stream_id.as_deref(),
        Some(records.records[0].id.as_str())
    );
    assert_eq!(records.records[0].accounts, accounts);
    f.redis.cleanup().await;
}

#[tokio::test]
async fn a_corrupt_outbox_entry_is_replaced_by_a_write_and_dropped_by_the_drain() {
    let f = fixture("outcomes-corrupt").await;
    let mut conn = f.redis.conn.clone();
    let outbox = f
        .redis
        .keys
        .ledger_outbox(f.redis.keys.ledger_bucket_of(login(1).as_str()));
    let _: () = redis::cmd("HSET")
        .arg(&outbox)
        .arg(login(1).as_str())
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .unwrap();
    let outcome = failed(Utc::now());
    assert!(f.ledger.put(date(1), &login(1), &outcome).await);
    assert_eq!(f.outcomes.drain_once().await.unwrap(), 1);
    assert_eq!(f.registry.history(&login(1)).await.unwrap(), vec![outcome]);

    let outbox = f
        .redis
        .keys
        .ledger_outbox(f.redis.keys.ledger_bucket_of(login(2).as_str()));
    let _: () = redis::cmd("HSET")
        .arg(&outbox)
        .arg(login(2).as_str())
        .arg("7|not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(f.outcomes.drain_once().await.unwrap(), 1);
    assert_eq!(f.outcomes.pending().await.unwrap(), 0);
    assert!(f.registry.get(&login(2)).await.unwrap().is_none());
    f.redis.cleanup().await;
}

#[tokio::test]
async fn a_superseded_outcome_leaves_the_logins_state_and_history_alone() {
    let f = fixture("outcomes-superseded").await;
    let t0 = Utc::now();
    let first = reauth(t0);
    assert!(f.outcomes.put(date(1), &login(1), &first).await);
    let waited = LedgerOutcome::Superseded {
        by_date: date(3),
        at: t0 + Duration::seconds(1),
        deadline: None,
        deactivated: false,
    };
    assert!(f.outcomes.put(date(2), &login(1), &waited).await);

    // Flinks was not called: the day it waited says nothing about the login.
    assert_eq!(
        f.ledger.get(date(2), &login(1)).await.unwrap(),
        Some(waited)
    );
    assert_eq!(f.outcomes.pending().await.unwrap(), 0, "nothing to apply");
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    assert_eq!(f.registry.history(&login(1)).await.unwrap(), vec![first]);
    f.redis.cleanup().await;
}

/// A worker's outcomes clear applied entries in batches from a task of their own: the
/// registry is up to date when `record` returns, the outbox empties without a drain, the
/// entries still queued when the worker stops are cleared before the task ends, and
/// applies after that clear their own. On one Redis the writes apply their updates
/// themselves and queue nothing; the Cluster run of this suite exercises the batches.
#[tokio::test]
async fn batched_clears_empty_the_outbox_and_finish_what_is_queued_on_shutdown() {
    let f = fixture("outcomes-batched").await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (outcomes, task) = f.outcomes.clone().with_batched_clears(shutdown.clone());
    let t0 = Utc::now();
    let record = |n: u32, at| {
        let outcomes = outcomes.clone();
        async move {
            outcomes
                .record(date(1), &login(n), &failed(at), Overwrite::AllButRefreshed)
                .await
                .unwrap()
        }
    };

    let written = futures::future::join_all((1..=300).map(|n| record(n, t0))).await;
    assert!(written.iter().all(|w| *w));
    let status = f.registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("failed"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while f.outcomes.pending().await.unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "clears never sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let later = t0 + Duration::seconds(1);
    futures::future::join_all((301..=400).map(|n| record(n, later))).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        f.outcomes.pending().await.unwrap(),
        0,
        "queued clears flushed"
    );

    assert!(record(1, later + Duration::seconds(1)).await);
    assert_eq!(
        f.outcomes.pending().await.unwrap(),
        0,
        "cleared by its apply"
    );
    f.redis.cleanup().await;
}

#[tokio::test]
async fn a_drain_goes_on_past_a_ledger_bucket_it_cannot_read_and_then_reports_it() {
    // Arrange: two ledger buckets; a pending update in the second, and the first's outbox
    // unreadable (a STRING where a HASH belongs: what a shard that fails every command does).
    let mut redis = TestRedis::new("outcomes-bucket-fails").await;
    redis.keys = redis
        .keys
        .clone()
        .with_ledger_buckets(std::num::NonZeroU16::new(2).unwrap());
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let in_second = (1..)
        .map(login)
        .find(|l| redis.keys.ledger_bucket_of(l.as_str()) == 1)
        .unwrap();
    registry
        .add(&LoginRecordInput {
            login_id: in_second.clone(),
            active: true,
            tag: None,
            priority: None,
        })
        .await
        .unwrap();
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let outcome = failed(Utc::now());
    assert!(ledger.put(date(1), &in_second, &outcome).await);
    let mut conn = redis.conn.clone();
    let () = redis::cmd("SET")
        .arg(redis.keys.ledger_outbox(0))
        .arg("not a hash")
        .query_async(&mut conn)
        .await
        .unwrap();
    let outcomes = Outcomes::new(redis.conn.clone(), &redis.keys);

    // Act
    let drained = outcomes.drain_once().await;

    // Assert: the error is reported, and the second bucket's update was applied anyway.
    assert!(drained.is_err(), "{drained:?}");
    assert_eq!(registry.history(&in_second).await.unwrap(), vec![outcome]);
    redis.cleanup().await;
}

/// The ledger script checks the registry update it is handed before it writes anything: a
/// call that claims more arguments than it sends is refused whole, leaving the ledger and
/// the registry as they were (a half-applied script is never rolled back by Redis). One
/// Redis only: on a Cluster the script never writes the registry.
#[tokio::test]
async fn a_ledger_write_with_malformed_registry_arguments_writes_nothing() {
    let f = fixture("outcomes-malformed").await;
    if f.redis.conn.mode() == shared::config::RedisMode::Cluster {
        return;
    }
    let script = redis::Script::new(concat!(
        include_str!("../../src/lua/registry/registry_apply.lua"),
        "\n",
        include_str!("../../src/lua/ledger/ledger_record.lua")
    ));
    let keys = &f.redis.keys;
    let id = login(1);
    let day = "2025-06-01";
    let json = serde_json::to_string(&failed(Utc::now())).unwrap();
    let mut conn = f.redis.conn.clone();
    let mut call = script.prepare_invoke();
    call.key(keys.ledger_date(day, 0))
        .key(keys.ledger_meta(day, 0))
        .key(keys.ledger_index("reauth", 0))
        .key(keys.ledger_index("failed", 0))
        .key(keys.ledger_outbox(0))
        .key(keys.events_stream(0))
        .key(keys.events_episodes(0))
        .key(keys.login(id.as_str()))
        .key(keys.login_history(id.as_str()))
        .arg(&json)
        .arg("failed")
        .arg("0")
        .arg(1_750_000_000_000_i64)
        .arg(3600)
        .arg(0)
        .arg("replace")
        .arg(day)
        .arg("2025-06-01T00:00:00.000Z")
        .arg(1)
        .arg(id.as_str())
        // Six registry arguments announced, four sent: cap, one pair, no field to delete.
        .arg(6)
        .arg(20)
        .arg(1)
        .arg("last_error")
        .arg("bank down");
    let refused = call.invoke_async::<redis::Value>(&mut conn).await;
    let error = refused.expect_err("malformed registry arguments must be refused");
    assert!(error.to_string().contains("invalid arguments"), "{error}");

    let entry: Option<String> = redis::cmd("HGET")
        .arg(keys.ledger_date(day, 0))
        .arg(id.as_str())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entry, None, "no ledger entry");
    let status = f.registry.get(&id).await.unwrap().unwrap();
    assert_eq!(status.last_outcome, None, "the registry untouched");
    assert_eq!(status.last_error, None);
    f.redis.cleanup().await;
}

//! Outcome events on a real Redis: appended by the ledger's own script (one per login per
//! episode), by `logins reconnected` and by Flinks' confirmations; read with filters; capped
//! without trimming what a consumer group or the webhook has not acknowledged.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use shared::config::Settings;
use shared::domain::{FlinksCode, LoginId, RequestId};
use shared::events::{EventRecord, EventType, Events, ReadFilter};
use shared::ledger::{FailureReason, Ledger, LedgerOutcome, Overwrite};
use shared::ops::logins::LoginOps;
use shared::outcomes::Outcomes;
use shared::registry::{LoginRecordInput, Registry};

use crate::support::{RecordExt, TestRedis};

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

/// Day `day` of a run of days starting three weeks ago, by the real clock: the ledger
/// trims from its indexes on arrival an outcome older than its lifetime (35 days), so
/// fixed dates would stop testing what they test. Taken once, so that a run crossing
/// midnight keeps its days.
fn date(day: u32) -> NaiveDate {
    static FIRST: std::sync::LazyLock<NaiveDate> =
        std::sync::LazyLock::new(|| Utc::now().date_naive() - chrono::Days::new(21));
    *FIRST + chrono::Days::new(u64::from(day))
}

fn at(day: u32) -> DateTime<Utc> {
    date(day).and_hms_opt(15, 0, 0).unwrap().and_utc()
}

fn reauth(day: u32) -> LedgerOutcome {
    LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("INVALID_PASSWORD")),
        message: Some("ask the user to reconnect".into()),
        request_id: None,
        at: at(day),
        unrecognised_code: false,
    }
}

fn failed(day: u32, reason: Option<FailureReason>) -> LedgerOutcome {
    LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse("RETRY_LATER")),
        http_status: Some(503),
        message: "bank down".into(),
        attempts: 3,
        at: at(day),
        reason,
    }
}

fn refreshed(day: u32) -> LedgerOutcome {
    LedgerOutcome::Refreshed {
        request_id: RequestId::new("r-1"),
        last_refresh: None,
        stale: false,
        fetched_at: at(day),
        results_stream_id: None,
    }
}

async fn all(events: &Events) -> Vec<EventRecord> {
    events
        .read("-", 10_000, &ReadFilter::default())
        .await
        .unwrap()
        .events
}

fn types(records: &[EventRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| (r.event.event_type.clone(), r.event.login_id.clone()))
        .collect()
}

async fn registered(t: &TestRedis, logins: &[LoginId]) {
    let registry = Registry::new(t.conn.clone(), &t.keys);
    for l in logins {
        registry
            .add(&LoginRecordInput {
                login_id: l.clone(),
                active: true,
                tag: None,
                priority: None,
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_login_broken_for_days_gets_one_needs_reauth_and_its_next_refresh_one_reauth_resolved() {
    let t = TestRedis::new("events-episode").await;
    registered(&t, &[login(1)]).await;
    let outcomes = Outcomes::new(t.conn.clone(), &t.keys);
    let events = Events::new(t.conn.clone(), &t.keys);

    for day in 1..=3 {
        outcomes.put(date(day), &login(1), &reauth(day)).await;
    }
    outcomes.put(date(4), &login(1), &refreshed(4)).await;
    // Still healthy the next day: nothing to act on.
    outcomes.put(date(5), &login(1), &refreshed(5)).await;
    // Broken again: a new episode with an event id of its own.
    outcomes.put(date(6), &login(1), &reauth(6)).await;

    let read = all(&events).await;
    let id = login(1).as_str().to_string();
    assert_eq!(
        types(&read),
        vec![
            ("needs_reauth".to_string(), id.clone()),
            ("reauth_resolved".to_string(), id.clone()),
            ("needs_reauth".to_string(), id.clone()),
        ]
    );
    let first = &read[0].event;
    assert_eq!(first.routine_date, date(1).to_string());
    assert_eq!(
        first.at,
        at(1).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert_eq!(first.flinks_code.as_deref(), Some("INVALID_PASSWORD"));
    assert_eq!(first.unrecognised_code, Some(false));
    assert_eq!(read[1].event.source.as_deref(), Some("refreshed"));
    assert_eq!(read[1].event.routine_date, date(4).to_string());
    let ids: std::collections::HashSet<&str> =
        read.iter().map(|r| r.event.event_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "every event has an id of its own");
    t.cleanup().await;
}

#[tokio::test]
async fn invalid_logins_get_one_event_per_episode_and_failures_one_per_date() {
    let t = TestRedis::new("events-failed").await;
    registered(&t, &[login(1), login(2)]).await;
    let outcomes = Outcomes::new(t.conn.clone(), &t.keys);
    let events = Events::new(t.conn.clone(), &t.keys);
    let invalid = Some(FailureReason::InvalidLogin);

    for day in 1..=2 {
        outcomes
            .put(date(day), &login(1), &failed(day, invalid))
            .await;
    }
    // A failure recorded again for the same date (a redelivered job, the dead-letter
    // reconciler) is the same failure.
    outcomes.put(date(1), &login(2), &failed(1, None)).await;
    outcomes.put(date(1), &login(2), &failed(1, None)).await;
    outcomes
        .record(date(1), &login(2), &failed(1, None), Overwrite::Nothing)
        .await
        .unwrap();
    outcomes.put(date(2), &login(2), &failed(2, None)).await;

    let read = all(&events).await;
    let (one, two) = (login(1).as_str().to_string(), login(2).as_str().to_string());
    assert_eq!(
        types(&read),
        vec![
            ("invalid_login".to_string(), one),
            ("failed".to_string(), two.clone()),
            ("failed".to_string(), two),
        ]
    );
    assert_eq!(read[1].event.http_status, Some(503));
    assert_eq!(read[1].event.message.as_deref(), Some("bank down"));
    t.cleanup().await;
}

#[tokio::test]
async fn no_event_without_its_outcome_a_refreshed_date_stays_final() {
    let t = TestRedis::new("events-final").await;
    registered(&t, &[login(1)]).await;
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    let events = Events::new(t.conn.clone(), &t.keys);

    assert!(ledger.put(date(1), &login(1), &refreshed(1)).await);
    // A late re-auth answer for a refreshed date writes nothing, so it appends nothing.
    assert!(!ledger.put(date(1), &login(1), &reauth(1)).await);

    assert!(all(&events).await.is_empty());
    t.cleanup().await;
}

#[tokio::test]
async fn logins_reconnected_resolves_the_episode_once_and_the_next_refresh_adds_nothing() {
    let t = TestRedis::new("events-reconnected").await;
    registered(&t, &[login(1)]).await;
    let settings = Settings::load_from(None, crate::support::redis_env()).unwrap();
    let outcomes = Outcomes::new(t.conn.clone(), &t.keys);
    let events = Events::new(t.conn.clone(), &t.keys);
    let ops = LoginOps::new(t.conn.clone(), &t.keys, &settings);
    let today = Utc::now().date_naive();
    outcomes.put(date(1), &login(1), &reauth(1)).await;
    outcomes.put(date(2), &login(1), &reauth(2)).await;

    let first = ops.reconnected(&login(1), today).await.unwrap().unwrap();
    let again = ops.reconnected(&login(1), today).await.unwrap().unwrap();
    outcomes
        .put(
            today,
            &login(1),
            &LedgerOutcome::Refreshed {
                request_id: RequestId::new("r-2"),
                last_refresh: None,
                stale: false,
                fetched_at: Utc::now(),
                results_stream_id: None,
            },
        )
        .await;

    assert_eq!((first.reauth_cleared, again.reauth_cleared), (2, 0));
    let read = all(&events).await;
    let kinds: Vec<&str> = read.iter().map(|r| r.event.event_type.as_str()).collect();
    assert_eq!(kinds, ["needs_reauth", "reauth_resolved"]);
    assert_eq!(read[1].event.source.as_deref(), Some("reconnected"));
    assert_eq!(
        read[1].event.routine_date,
        today.format("%Y-%m-%d").to_string()
    );
    t.cleanup().await;
}

#[tokio::test]
async fn a_flinks_confirmation_appends_one_event_however_often_it_is_replayed() {
    let t = TestRedis::new("events-flinks").await;
    let events = Events::new(t.conn.clone(), &t.keys);
    let now = Utc::now();

    let first = events
        .flinks_confirmed(&login(1), false, 10, now)
        .await
        .unwrap();
    let replay = events
        .flinks_confirmed(&login(1), false, 10, now)
        .await
        .unwrap();
    let older = events
        .flinks_confirmed(&login(1), true, 9, now)
        .await
        .unwrap();
    let next = events
        .flinks_confirmed(&login(1), true, 11, now)
        .await
        .unwrap();

    assert!(first.is_some() && replay.is_none() && older.is_none() && next.is_some());
    let kinds: Vec<String> = all(&events)
        .await
        .into_iter()
        .map(|r| r.event.event_type)
        .collect();
    assert_eq!(kinds, ["deactivated", "activated"]);
    t.cleanup().await;
}

#[tokio::test]
async fn read_filters_by_type_and_since_and_pages_with_next() {
    let t = TestRedis::new("events-read").await;
    registered(&t, &[login(1), login(2), login(3)]).await;
    let outcomes = Outcomes::new(t.conn.clone(), &t.keys);
    let events = Events::new(t.conn.clone(), &t.keys);
    outcomes.put(date(1), &login(1), &reauth(1)).await;
    outcomes.put(date(1), &login(2), &failed(1, None)).await;
    outcomes.put(date(1), &login(3), &reauth(1)).await;

    let reauths = events
        .read(
            "-",
            10,
            &ReadFilter {
                types: vec![EventType::NeedsReauth],
                since: None,
            },
        )
        .await
        .unwrap();
    let page = events.read("-", 1, &ReadFilter::default()).await.unwrap();
    let rest = events
        .read(page.next.as_deref().unwrap(), 10, &ReadFilter::default())
        .await
        .unwrap();
    let future = events
        .read(
            "-",
            10,
            &ReadFilter {
                types: vec![],
                since: Some(Utc::now() + Duration::hours(1)),
            },
        )
        .await
        .unwrap();

    assert_eq!(reauths.events.len(), 2);
    assert!(reauths
        .events
        .iter()
        .all(|r| r.event.event_type == "needs_reauth"));
    // A page of one may hold two events of one id (each in its ledger bucket's stream).
    assert!(!page.events.is_empty());
    assert_eq!(page.events.len() + rest.events.len(), 3);
    assert!(rest.next.is_none());
    assert!(future.events.is_empty());
    t.cleanup().await;
}

#[tokio::test]
async fn the_cap_never_trims_what_a_consumer_group_or_the_webhook_has_not_acknowledged() {
    // One stream, whatever the suite's ledger bucket count: the ids below are its order.
    let mut t = TestRedis::new("events-trim").await;
    t.keys = t
        .keys
        .clone()
        .with_ledger_buckets(std::num::NonZeroU16::MIN);
    let logins: Vec<LoginId> = (1..=10).map(login).collect();
    registered(&t, &logins).await;
    let outcomes = Outcomes::new(t.conn.clone(), &t.keys);
    let events = Events::new(t.conn.clone(), &t.keys);
    for l in &logins {
        outcomes.put(date(1), l, &reauth(1)).await;
    }
    let ids: Vec<String> = all(&events).await.into_iter().map(|r| r.id).collect();
    let mut conn = t.conn.clone();
    let key = events.stream_keys().remove(0);
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("app")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The group read 4 entries and acknowledged the first 2.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("app")
        .arg("c1")
        .arg("COUNT")
        .arg(4)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("XACK")
        .arg(&key)
        .arg("app")
        .arg(&ids[0])
        .arg(&ids[1])
        .query_async(&mut conn)
        .await
        .unwrap();

    let held = events.trim(3, false).await.unwrap();
    assert_eq!((held.trimmed, held.held), (2, 5));
    let kept: Vec<String> = all(&events).await.into_iter().map(|r| r.id).collect();
    assert_eq!(kept, ids[2..].to_vec());

    // The group catches up; the webhook has delivered up to the 6th entry only.
    let _: i64 = redis::cmd("XACK")
        .arg(&key)
        .arg("app")
        .arg(&ids[2])
        .arg(&ids[3])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("app")
        .arg("c1")
        .arg("NOACK")
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let cursor = t.keys.events_webhook_cursor(0);
    let () = redis::cmd("SET")
        .arg(&cursor)
        .arg(&ids[5])
        .query_async(&mut conn)
        .await
        .unwrap();
    let webhook = events.trim(3, true).await.unwrap();
    assert_eq!((webhook.trimmed, webhook.held), (4, 1));

    let () = redis::cmd("SET")
        .arg(&cursor)
        .arg(&ids[9])
        .query_async(&mut conn)
        .await
        .unwrap();
    let done = events.trim(3, true).await.unwrap();
    assert_eq!((done.trimmed, done.held), (1, 0));
    assert_eq!(events.entries().await.unwrap(), 3);
    t.cleanup().await;
}

#[tokio::test]
async fn a_confirmed_deactivation_appends_its_event_and_the_sweep_appends_one_a_crash_left_out() {
    let t = TestRedis::new("events-deactivated").await;
    registered(&t, &[login(1), login(2)]).await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let scheduled = shared::scheduled_refresh::ScheduledRefresh::new(t.conn.clone(), &t.keys);
    let events = Events::new(t.conn.clone(), &t.keys);
    registry.set_active(&login(1), false).await.unwrap();
    registry.set_active(&login(2), false).await.unwrap();
    let stamp = |n: u32| {
        let mut conn = t.conn.clone();
        let key = t.keys.login(login(n).as_str());
        async move {
            let stamp: u64 = redis::cmd("HGET")
                .arg(key)
                .arg("flinks_stamp")
                .query_async(&mut conn)
                .await
                .unwrap();
            stamp
        }
    };
    let job = |n: u32, stamp: u64| shared::jobs::ScheduledRefreshJob {
        login_id: login(n),
        activate: false,
        stamp,
    };

    // Login 1: confirmed normally. Login 2: Flinks confirmed, and the worker died right
    // after the registry said `off` (simulated by settling the hash by hand).
    scheduled.confirm(&job(1, stamp(1).await)).await.unwrap();
    let mut conn = t.conn.clone();
    let () = redis::cmd("HSET")
        .arg(t.keys.login(login(2).as_str()))
        .arg("flinks_scheduled_refresh")
        .arg("off")
        .query_async(&mut conn)
        .await
        .unwrap();
    scheduled.sweep().await.unwrap();
    scheduled.sweep().await.unwrap();

    let read = all(&events).await;
    assert_eq!(
        types(&read),
        vec![
            ("deactivated".to_string(), login(1).as_str().to_string()),
            ("deactivated".to_string(), login(2).as_str().to_string()),
        ]
    );
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 0);
    t.cleanup().await;
}

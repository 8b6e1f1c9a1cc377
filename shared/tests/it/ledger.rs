//! The per-(LoginId, date) ledger and the date report against a real Redis.

use chrono::{Duration, NaiveDate, Utc};
use shared::config::RedisMode;
use shared::domain::{FlinksCode, LoginId, RequestId};
use shared::jobs::AuthorizeJob;
use shared::ledger::{IndexFilter, IndexKind, Ledger, LedgerOutcome, Overwrite};
use shared::queue::{EnqueueOptions, Queue, QueueConfig, WorkerId};
use shared::registry::{LoginRecordInput, Registry};

use crate::support::{RecordExt, TestRedis};

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, day).unwrap()
}

fn refreshed(stale: bool) -> LedgerOutcome {
    LedgerOutcome::Refreshed {
        request_id: RequestId::new(uuid::Uuid::new_v4().to_string()),
        last_refresh: None,
        stale,
        fetched_at: Utc::now(),
        results_stream_id: Some("1-0".into()),
    }
}

fn reauth(code: &str) -> LedgerOutcome {
    LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse(code)),
        message: Some(format!("{code} message")),
        request_id: None,
        at: Utc::now(),
        unrecognised_code: false,
    }
}

fn failed() -> LedgerOutcome {
    LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse("INVALID_LOGIN")),
        http_status: Some(401),
        message: "invalid login".into(),
        attempts: 1,
        at: Utc::now(),
        reason: None,
    }
}

#[tokio::test]
async fn a_refreshed_entry_is_final_and_the_first_write_wins() {
    let redis = TestRedis::new("ledger-first-write").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let first = refreshed(false);

    assert!(ledger.put(date(1), &login(1), &first).await);
    assert!(!ledger.put(date(1), &login(1), &refreshed(true)).await);
    assert!(!ledger.put(date(1), &login(1), &failed()).await);

    assert_eq!(ledger.get(date(1), &login(1)).await.unwrap(), Some(first));
    assert!(ledger.is_done(date(1), &login(1)).await.unwrap());
    assert!(ledger.has_outcome(date(1), &login(1)).await.unwrap());
    assert!(
        !ledger.has_outcome(date(2), &login(1)).await.unwrap(),
        "dates are separate"
    );
    let counts = ledger.counts(date(1)).await.unwrap();
    assert_eq!(
        (counts.refreshed, counts.stale, counts.failed, counts.done()),
        (1, 0, 0, 1)
    );
    redis.cleanup().await;
}

/// A refresh, nearly every write, bumps no counter: the refreshed count is the date's
/// entries of no other kind, so a `count:refreshed` an earlier version kept is not read.
#[tokio::test]
async fn the_refreshed_count_is_the_entries_of_no_other_kind() {
    let redis = TestRedis::new("ledger-refreshed-count").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    for n in 1..=3 {
        ledger.put(date(1), &login(n), &refreshed(n == 3)).await;
    }
    ledger.put(date(1), &login(4), &failed()).await;
    ledger
        .put(date(1), &login(5), &reauth("QUESTION_NOT_FOUND"))
        .await;
    let d = date(1).to_string();
    let mut conn = redis.conn.clone();
    for bucket in redis.keys.all_ledger_buckets() {
        let () = redis::cmd("HSET")
            .arg(redis.keys.ledger_meta(&d, bucket))
            .arg("count:refreshed")
            .arg(99)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // The failure refreshed after all: one refreshed more, one failure less.
    ledger.put(date(1), &login(4), &refreshed(false)).await;

    let counts = ledger.counts(date(1)).await.unwrap();
    assert_eq!(
        (
            counts.refreshed,
            counts.stale,
            counts.needs_reauth,
            counts.failed,
            counts.done()
        ),
        (4, 1, 1, 0, 5)
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn a_failed_or_reauth_entry_is_replaced_by_a_later_refresh_and_leaves_its_index() {
    let redis = TestRedis::new("ledger-replace").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    ledger.put(date(1), &login(1), &failed()).await;
    ledger
        .put(date(1), &login(2), &reauth("SESSION_EXPIRED"))
        .await;
    assert_eq!(
        ledger
            .list_failed(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(ledger.has_outcome(date(1), &login(1)).await.unwrap());
    assert!(
        !ledger.is_done(date(1), &login(1)).await.unwrap(),
        "a failure is not final"
    );

    assert!(ledger.put(date(1), &login(1), &refreshed(true)).await);
    assert!(ledger.put(date(1), &login(2), &refreshed(false)).await);

    assert!(ledger
        .list_failed(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(ledger
        .list_reauth(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    let counts = ledger.counts(date(1)).await.unwrap();
    assert_eq!(
        (
            counts.refreshed,
            counts.stale,
            counts.needs_reauth,
            counts.failed
        ),
        (2, 1, 0, 0)
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn reauth_and_failed_indexes_list_across_dates_with_filters_and_removal() {
    let redis = TestRedis::new("ledger-index").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    ledger
        .put(date(1), &login(1), &reauth("SESSION_EXPIRED"))
        .await;
    ledger
        .put(date(2), &login(1), &reauth("SESSION_EXPIRED"))
        .await;
    ledger
        .put(date(2), &login(2), &reauth("DISABLED_LOGIN"))
        .await;
    ledger.put(date(2), &login(3), &failed()).await;

    assert_eq!(
        ledger
            .list_reauth(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
    let on_day_2 = IndexFilter {
        date: Some(date(2)),
        ..Default::default()
    };
    assert_eq!(ledger.list_reauth(&on_day_2).await.unwrap().len(), 2);
    let disabled = IndexFilter {
        code: Some(FlinksCode::parse("DISABLED_LOGIN")),
        ..Default::default()
    };
    let found = ledger.list_reauth(&disabled).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].date, &found[0].login_id), (date(2), &login(2)));
    let one_login = IndexFilter {
        login: Some(login(1)),
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(ledger.list_reauth(&one_login).await.unwrap().len(), 1);
    assert_eq!(
        ledger.list_failed(&IndexFilter::default()).await.unwrap()[0].login_id,
        login(3)
    );

    assert!(ledger
        .remove_from_index(IndexKind::Reauth, date(1), &login(1))
        .await
        .unwrap());
    assert!(!ledger
        .remove_from_index(IndexKind::Reauth, date(1), &login(1))
        .await
        .unwrap());
    assert_eq!(
        ledger
            .list_reauth(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        ledger.get(date(1), &login(1)).await.unwrap().is_some(),
        "the entry stays"
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn expected_retries_and_start_are_kept_per_date_and_keys_expire() {
    let redis = TestRedis::new("ledger-meta").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    ledger.set_expected(date(1), 42).await.unwrap();
    let started = ledger.started_at(date(1)).await.unwrap().unwrap();
    ledger.set_expected(date(1), 43).await.unwrap();
    ledger.incr_retries(date(1)).await.unwrap();
    ledger.put(date(1), &login(1), &failed()).await;

    assert_eq!(ledger.expected(date(1)).await.unwrap(), 43);
    assert_eq!(
        ledger.started_at(date(1)).await.unwrap(),
        Some(started),
        "first start kept"
    );
    assert_eq!(ledger.incr_retries(date(1)).await.unwrap(), 2);
    assert_eq!(ledger.retries(date(1)).await.unwrap(), 2);
    assert_eq!(ledger.expected(date(2)).await.unwrap(), 0);
    let bucket = redis.keys.ledger_bucket_of(login(1).as_str());
    let ttl = ttl(&redis, &redis.keys.ledger_date("2025-06-01", bucket)).await;
    assert!(ttl > 30 * 24 * 3600, "ttl {ttl}");
    redis.cleanup().await;
}

/// Seconds `key` has left (`-1`: no expiry, `-2`: no key).
async fn ttl(redis: &TestRedis, key: &str) -> i64 {
    let mut conn = redis.conn.clone();
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Expiries are kept up once an hour per date, not per write; a key first written between
/// two upkeeps (the date's first failure or re-auth after its first refresh: its meta hash,
/// which a refresh does not write, and the indexes) must not be left without one.
#[tokio::test]
async fn every_key_a_record_writes_expires_also_between_upkeeps() {
    let redis = TestRedis::new("ledger-upkeep").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let bucket = redis.keys.ledger_bucket_of(login(1).as_str());
    let mut same_bucket = (2..)
        .map(login)
        .filter(|l| redis.keys.ledger_bucket_of(l.as_str()) == bucket);
    let (failing, reauthing) = (same_bucket.next().unwrap(), same_bucket.next().unwrap());
    ledger.put(date(1), &login(1), &refreshed(false)).await;
    ledger.put(date(1), &failing, &failed()).await;
    ledger
        .put(date(1), &reauthing, &reauth("QUESTION_NOT_FOUND"))
        .await;

    let d = date(1).to_string();
    for key in [
        redis.keys.ledger_date(&d, bucket),
        redis.keys.ledger_meta(&d, bucket),
        redis.keys.ledger_index(IndexKind::Failed.as_str(), bucket),
        redis.keys.ledger_index(IndexKind::Reauth.as_str(), bucket),
    ] {
        let ttl = ttl(&redis, &key).await;
        assert!(ttl > 30 * 24 * 3600, "{key}: ttl {ttl}");
    }
    redis.cleanup().await;
}

/// Once an hour of a date's expiry has run down, the next write renews every key's and
/// trims index members of expired dates (a write of a process that has not had the date
/// checked in the last minutes: here another ledger, as another worker's would be).
#[tokio::test]
async fn a_write_an_hour_after_the_last_upkeep_renews_expiries_and_trims_the_indexes() {
    let redis = TestRedis::new("ledger-upkeep-due").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    ledger.put(date(1), &login(1), &failed()).await;
    let d = date(1).to_string();
    let bucket = redis.keys.ledger_bucket_of(login(1).as_str());
    let keys = [
        redis.keys.ledger_date(&d, bucket),
        redis.keys.ledger_meta(&d, bucket),
        redis.keys.ledger_index(IndexKind::Failed.as_str(), bucket),
    ];
    let failed_index = redis.keys.ledger_index(IndexKind::Failed.as_str(), bucket);
    let mut conn = redis.conn.clone();
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.expire(key, 30 * 24 * 3600).ignore();
    }
    // A member of a date long expired (score: its outcome's time, 1970).
    pipe.zadd(&failed_index, "1970-01-01|gone", 1).ignore();
    let () = pipe.query_async(&mut conn).await.unwrap();

    // A login of the same ledger bucket, so its write sees the bucket's expiries.
    let neighbour = (2..)
        .map(login)
        .find(|l| redis.keys.ledger_bucket_of(l.as_str()) == bucket)
        .unwrap();
    Ledger::new(redis.conn.clone(), &redis.keys)
        .put(date(1), &neighbour, &failed())
        .await;

    for key in &keys {
        let ttl = ttl(&redis, key).await;
        assert!(ttl > 34 * 24 * 3600, "{key}: ttl {ttl}");
    }
    let gone: Option<f64> = redis::cmd("ZSCORE")
        .arg(&failed_index)
        .arg("1970-01-01|gone")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(gone, None, "expired dates trimmed");
    redis.cleanup().await;
}

/// A process whose write had a date's upkeep checked asks for no check on its next writes
/// of that date for some minutes (one command less per refresh), unless a write creates
/// one of the date's counters: its keys may be new.
#[tokio::test]
async fn a_process_asks_for_no_upkeep_check_right_after_one_unless_a_counter_is_new() {
    let redis = TestRedis::new("ledger-upkeep-recheck").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let bucket = redis.keys.ledger_bucket_of(login(1).as_str());
    let same_bucket = |from: u32| {
        (from..)
            .map(login)
            .find(|l| redis.keys.ledger_bucket_of(l.as_str()) == bucket)
            .unwrap()
    };
    let (second, third) = (same_bucket(2), same_bucket(1_000));
    ledger.put(date(1), &login(1), &refreshed(false)).await;
    let key = redis.keys.ledger_date(&date(1).to_string(), bucket);
    let mut conn = redis.conn.clone();
    let shortened = 30 * 24 * 3600;
    let () = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(shortened)
        .query_async(&mut conn)
        .await
        .unwrap();

    // Another refresh: no check, so the shortened expiry stays.
    ledger.put(date(1), &second, &refreshed(false)).await;
    assert!(
        ttl(&redis, &key).await <= shortened,
        "checked again at once"
    );

    // The date's first failure creates its counter: checked, and renewed.
    ledger.put(date(1), &third, &failed()).await;
    let renewed = ttl(&redis, &key).await;
    assert!(renewed > 34 * 24 * 3600, "ttl {renewed}");
    redis.cleanup().await;
}

#[tokio::test]
async fn the_report_counts_lists_and_names_its_json_fields() {
    let redis = TestRedis::new("report-counts").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let records: Vec<_> = (0..10)
        .map(|n| LoginRecordInput {
            login_id: login(n),
            active: n < 8,
            tag: None,
            priority: None,
        })
        .collect();
    registry.upsert_many(&records).await.unwrap();
    ledger.set_expected(date(2), 8).await.unwrap();
    let now = Utc::now();
    ledger
        .set_started_at(date(2), now - Duration::minutes(2))
        .await
        .unwrap();
    ledger.put(date(2), &login(0), &refreshed(false)).await;
    ledger.put(date(2), &login(1), &refreshed(true)).await;
    ledger
        .put(date(2), &login(2), &reauth("SESSION_EXPIRED"))
        .await;
    ledger.put(date(2), &login(3), &failed()).await;
    ledger.incr_retries(date(2)).await.unwrap();

    let report = shared::report::build(&ledger, &registry, date(2), 20.0, 0, now)
        .await
        .unwrap();

    assert_eq!(
        (report.active, report.expected, report.done, report.pending),
        (8, 8, 4, 4)
    );
    assert_eq!(report.refreshed, 2);
    assert_eq!(report.stale, vec![login(1)]);
    assert_eq!(report.retries, 1);
    assert!((report.throughput_per_minute.unwrap() - 2.0).abs() < 0.01);
    assert_eq!(
        report.eta_seconds,
        Some(12),
        "4 pending at 20/min (+1% margin)"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["date"], "2025-06-02");
    assert_eq!(json["done"], 4);
    assert_eq!(json["pending"], 4);
    assert_eq!(json["refreshed"], 2);
    assert_eq!(json["stale"][0], login(1).as_str());
    assert_eq!(json["reauth"][0]["login_id"], login(2).as_str());
    assert_eq!(json["reauth"][0]["flinks_code"], "SESSION_EXPIRED");
    assert_eq!(json["reauth"][0]["message"], "SESSION_EXPIRED message");
    assert_eq!(json["failed"][0]["flinks_code"], "INVALID_LOGIN");
    assert_eq!(json["failed"][0]["message"], "invalid login");
    assert_eq!(json["new_reauth"][0], login(2).as_str());
    let text = report.render_text(20);
    assert!(text.contains("SESSION_EXPIRED"), "{text}");
    // Counts per FlinksCode, and lists cut at the limit with how many more there are.
    assert!(
        text.lines().any(|l| l.starts_with("needs re-auth")
            && l.contains("SESSION_EXPIRED")
            && l.trim_end().ends_with('1')),
        "{text}"
    );
    let cut = report.render_text(0);
    assert!(!cut.contains(login(2).as_str()), "{cut}");
    assert!(cut.contains("… and 1 more"), "{cut}");
    redis.cleanup().await;
}

#[tokio::test]
async fn new_reauth_lists_only_logins_that_did_not_need_it_the_day_before() {
    let redis = TestRedis::new("report-day-over-day").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    ledger
        .put(date(1), &login(1), &reauth("SESSION_EXPIRED"))
        .await;
    ledger.put(date(1), &login(2), &refreshed(false)).await;
    ledger
        .put(date(2), &login(1), &reauth("SESSION_EXPIRED"))
        .await;
    ledger
        .put(date(2), &login(2), &reauth("DISABLED_LOGIN"))
        .await;

    let report = shared::report::build(&ledger, &registry, date(2), 0.0, 0, Utc::now())
        .await
        .unwrap();

    assert_eq!(report.reauth.len(), 2);
    assert_eq!(report.new_reauth, vec![login(2)]);
    assert_eq!(
        report.pending, 0,
        "never negative without an expected count"
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn a_corrupt_entry_or_counter_never_stops_a_write_half_way() {
    let t = TestRedis::new("ledger-corrupt").await;
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    let d = date(9);
    let mut conn = t.conn.clone();
    // An entry whose kind is not a string, and a counter that is not a number.
    let bucket = t.keys.ledger_bucket_of(login(1).as_str());
    let _: () = redis::pipe()
        .hset(
            t.keys.ledger_date("2025-06-09", bucket),
            login(1).as_str(),
            r#"{"kind":5}"#,
        )
        .hset(
            t.keys.ledger_meta("2025-06-09", bucket),
            "count:failed",
            "garbage",
        )
        .query_async(&mut conn)
        .await
        .unwrap();

    assert!(ledger.put(d, &login(1), &failed()).await);
    assert!(ledger.put(d, &login(2), &failed()).await);

    assert_eq!(
        ledger.get(d, &login(1)).await.unwrap(),
        Some(failed_like(&ledger, d, 1).await)
    );
    assert_eq!(
        ledger
            .list_failed(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(ledger.counts(d).await.unwrap().failed, 2);
    t.cleanup().await;
}

async fn failed_like(ledger: &Ledger, d: NaiveDate, n: u32) -> LedgerOutcome {
    let outcome = ledger.get(d, &login(n)).await.unwrap().unwrap();
    assert_eq!(outcome.kind(), "failed");
    outcome
}

#[tokio::test]
async fn a_page_of_logins_is_recorded_in_one_call_keeping_what_is_final() {
    let redis = TestRedis::new("ledger-many").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let done = refreshed(false);
    ledger.put(date(1), &login(1), &done).await;
    ledger.put(date(1), &login(2), &failed()).await;
    ledger
        .put(date(1), &login(3), &reauth("SESSION_EXPIRED"))
        .await;
    let superseded = LedgerOutcome::Superseded {
        by_date: date(2),
        at: Utc::now(),
        deadline: None,
        deactivated: false,
    };
    // More logins than one script call takes, so the pages are checked too.
    let logins: Vec<LoginId> = (1..=shared::ledger::RECORD_PAGE as u32 + 5)
        .map(login)
        .collect();

    let written = ledger
        .record_many(date(1), &logins, &superseded, Overwrite::AllButRefreshed)
        .await
        .unwrap();

    assert_eq!(
        written,
        logins.len() as u64 - 1,
        "the refreshed login is final"
    );
    assert_eq!(ledger.get(date(1), &login(1)).await.unwrap(), Some(done));
    for n in [2, 3, 4, shared::ledger::RECORD_PAGE as u32 + 5] {
        assert_eq!(
            ledger.get(date(1), &login(n)).await.unwrap(),
            Some(superseded.clone()),
            "login {n}"
        );
    }
    let counts = ledger.counts(date(1)).await.unwrap();
    assert_eq!(
        (
            counts.refreshed,
            counts.needs_reauth,
            counts.failed,
            counts.superseded
        ),
        (1, 0, 0, logins.len() as u64 - 1)
    );
    assert!(ledger
        .list_failed(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(ledger
        .list_reauth(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());

    // Fill-only: a page where every pair has an entry writes nothing.
    let again = ledger
        .record_many(date(1), &logins[..3], &failed(), Overwrite::Nothing)
        .await
        .unwrap();
    assert_eq!(again, 0);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_login_twice_in_one_page_is_counted_and_indexed_once() {
    let redis = TestRedis::new("ledger-many-twice").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    ledger
        .put(date(1), &login(1), &reauth("SESSION_EXPIRED"))
        .await;

    let written = ledger
        .record_many(
            date(1),
            &[login(1), login(1), login(2)],
            &failed(),
            Overwrite::AllButRefreshed,
        )
        .await
        .unwrap();

    assert_eq!(written, 3);
    let counts = ledger.counts(date(1)).await.unwrap();
    assert_eq!((counts.needs_reauth, counts.failed), (0, 2));
    assert!(ledger
        .list_reauth(&IndexFilter::default())
        .await
        .unwrap()
        .is_empty());
    let mut failed_logins: Vec<String> = ledger
        .list_failed(&IndexFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.login_id.as_str().to_owned())
        .collect();
    failed_logins.sort();
    assert_eq!(failed_logins, [login(1).as_str(), login(2).as_str()]);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_login_in_two_windows_of_one_page_is_counted_and_indexed_once() {
    let redis = TestRedis::new("ledger-many-windows").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    // 70 logins, the first again at the end: the script takes 64 logins at a time.
    let mut logins: Vec<LoginId> = (1..=70).map(login).collect();
    logins.push(login(1));

    let written = ledger
        .record_many(date(1), &logins, &failed(), Overwrite::AllButRefreshed)
        .await
        .unwrap();

    assert_eq!(written, 71);
    assert_eq!(ledger.counts(date(1)).await.unwrap().failed, 70);
    assert_eq!(
        ledger
            .list_failed(&IndexFilter {
                limit: Some(500),
                ..IndexFilter::default()
            })
            .await
            .unwrap()
            .len(),
        70
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn the_authorize_check_read_with_a_lease_answers_as_the_check_itself() {
    let redis = TestRedis::new("ledger-leased-check").await;
    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    let Some(reads) = ledger.authorize_check_reads(AuthorizeJob::LAYOUT) else {
        assert!(
            redis.keys.ledger_buckets() > 1,
            "one bucket always has reads"
        );
        redis.cleanup().await;
        return;
    };
    let queue: Queue<AuthorizeJob> = Queue::new(
        redis.conn.clone(),
        &redis.keys,
        QueueConfig::new("leased-check"),
    )
    .with_lease_reads(reads);
    assert!(ledger.put(date(1), &login(1), &refreshed(false)).await);
    ledger.mark_ineligible(date(1), &login(2)).await.unwrap();
    assert!(ledger.put(date(1), &login(3), &failed()).await);
    let jobs = [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2)].map(|(n, day)| {
        (
            AuthorizeJob::new(login(n), date(day)),
            EnqueueOptions::default(),
        )
    });
    queue.enqueue_many(jobs).await.unwrap();
    // The done login and date again, written in a form that decodes to the same job but
    // names keys the ledger never writes.
    let other_form = serde_json::json!([format!("{{{}}}", login(1).as_str()), "2025-6-1"]);
    queue
        .retyped::<serde_json::Value>()
        .enqueue(&other_form, EnqueueOptions::default())
        .await
        .unwrap();

    let mut leased = queue.fetch(&WorkerId::generate(), 10).await.unwrap();

    let odd = leased.pop().unwrap();
    let cluster = redis.conn.mode() == RedisMode::Cluster;
    let mut got = Vec::new();
    for job in &leased {
        let (login, day) = (&job.job.login_id, job.job.routine_date);
        let direct = ledger.authorize_check(day, login).await.unwrap();
        let Some(reads) = &job.reads else {
            assert!(cluster, "only a Cluster reads none");
            continue;
        };
        let from_lease = ledger.authorize_check_from(AuthorizeJob::LAYOUT, login, day, reads);
        assert_eq!(from_lease, Some(direct), "{:?}", job.job);
        got.push((direct.done, direct.ineligible));
    }
    assert_eq!(odd.job, AuthorizeJob::new(login(1), date(1)));
    let odd_check = odd.reads.as_ref().and_then(|reads| {
        ledger.authorize_check_from(AuthorizeJob::LAYOUT, &odd.job.login_id, date(1), reads)
    });
    assert_eq!(odd_check, None, "the handler reads for itself");
    assert!(
        ledger
            .authorize_check(date(1), &login(1))
            .await
            .unwrap()
            .done
    );
    if !cluster {
        assert!(odd.reads.is_some());
        assert_eq!(
            got,
            [
                (true, false),
                (false, true),
                (false, false),
                (false, false),
                (false, false)
            ],
            "done; ineligible; failed (not final); nothing; another date"
        );
    }
    let bucketed = Ledger::new(
        redis.conn.clone(),
        &redis
            .keys
            .clone()
            .with_ledger_buckets(std::num::NonZeroU16::new(2).unwrap()),
    );
    assert_eq!(bucketed.authorize_check_reads(AuthorizeJob::LAYOUT), None);
    redis.cleanup().await;
}

//! The login registry and CSV import against a real Redis.

use chrono::{NaiveDateTime, Utc};
use std::num::NonZeroU16;

use futures::TryStreamExt;
use redis::AsyncCommands;
use shared::domain::{FlinksCode, LoginId, RequestId};
use shared::import::{self, ImportError, ImportOptions};
use shared::ledger::LedgerOutcome;
use shared::registry::{LoginFilter, LoginRecordInput, Registry, HISTORY_LEN};
use shared::scheduled_refresh::ScheduledRefreshState;

use crate::support::{record, TestRedis};

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

fn csv_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("logins-{}.csv", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path
}

async fn all(registry: &Registry, filter: LoginFilter) -> Vec<LoginId> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page = registry.list(filter, cursor, 100).await.unwrap();
        out.extend(page.logins.into_iter().map(|l| l.login_id));
        match page.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn upsert_counts_active_and_inactive_and_reimport_updates_in_place() {
    let redis = TestRedis::new("registry-upsert").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let records: Vec<_> = (0..2_500).map(|n| record(n, n % 5 != 0)).collect();

    let first = registry.upsert_many(&records).await.unwrap();
    assert_eq!(
        (first.upserted, first.active, first.inactive, first.new),
        (2_500, 2_000, 500, 2_500)
    );
    assert_eq!(registry.count_active().await.unwrap(), 2_000);
    assert_eq!(registry.count_inactive().await.unwrap(), 500);

    let flipped: Vec<_> = (0..10).map(|n| record(n, n % 5 == 0)).collect();
    let second = registry.upsert_many(&flipped).await.unwrap();
    assert_eq!(second.new, 0);
    assert_eq!(registry.count_active().await.unwrap(), 2_000 - 8 + 2);
    assert!(registry.get(&login(0)).await.unwrap().unwrap().active);
    assert!(!registry.get(&login(1)).await.unwrap().unwrap().active);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_rewrite_keeps_what_it_does_not_give_and_each_login_of_a_batch_gets_its_own_fields() {
    let redis = TestRedis::new("registry-rewrite").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let tagged = |n, tag: &str, priority| LoginRecordInput {
        tag: Some(tag.into()),
        priority: Some(priority),
        ..record(n, true)
    };
    registry
        .upsert_many(&[tagged(1, "vip", 5), tagged(2, "pilot", 9), record(3, false)])
        .await
        .unwrap();
    let added = registry.get(&login(1)).await.unwrap().unwrap().added_at;
    // A field earlier versions wrote on every write and nothing reads.
    let mut conn = redis.conn.clone();
    let key = redis.keys.login(login(1).as_str());
    let () = conn
        .hset(&key, "updated_at", "2026-01-01T00:00:00.000000000+00:00")
        .await
        .unwrap();

    // No tag, no priority given: both kept, and the first registration time too.
    let second = registry
        .upsert_many(&[record(1, true), record(2, true)])
        .await
        .unwrap();

    assert_eq!(second.new, 0);
    let one = registry.get(&login(1)).await.unwrap().unwrap();
    let two = registry.get(&login(2)).await.unwrap().unwrap();
    let three = registry.get(&login(3)).await.unwrap().unwrap();
    assert_eq!((one.tag.as_deref(), one.priority), (Some("vip"), 5));
    assert_eq!((two.tag.as_deref(), two.priority), (Some("pilot"), 9));
    assert_eq!((three.tag, three.priority, three.active), (None, 0, false));
    assert!(added.is_some());
    assert_eq!(one.added_at, added);
    let stale: Option<String> = conn.hget(&key, "updated_at").await.unwrap();
    assert_eq!(
        stale, None,
        "the unread field goes when the login is written"
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn a_new_active_login_stores_only_what_is_not_implied_and_reads_back_whole() {
    let redis = TestRedis::new("registry-compact").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let mut conn = redis.conn.clone();
    // Login 2 as earlier versions wrote an active login: its time as text, no Flinks state.
    let old_key = redis.keys.login(login(2).as_str());
    let () = conn
        .hset_multiple(
            &old_key,
            &[("active", "1"), ("added_at", "2026-01-02T03:04:05.678Z")],
        )
        .await
        .unwrap();
    let before = Utc::now();

    registry
        .upsert_many(&[record(1, true), record(2, true)])
        .await
        .unwrap();

    // Login 1's hash holds its flag and its time as a number, nothing about Flinks; the
    // rewrite of login 2 added nothing either.
    let key = redis.keys.login(login(1).as_str());
    let mut stored: Vec<String> = conn.hkeys(&key).await.unwrap();
    stored.sort();
    assert_eq!(stored, ["active", "added_at"]);
    let mut old: Vec<String> = conn.hkeys(&old_key).await.unwrap();
    old.sort();
    assert_eq!(old, ["active", "added_at"]);
    let millis: i64 = conn.hget(&key, "added_at").await.unwrap();
    assert!((before.timestamp_millis()..=Utc::now().timestamp_millis()).contains(&millis));
    // Both read as on at Flinks, with their registration times.
    for n in [1, 2] {
        let status = registry.get(&login(n)).await.unwrap().unwrap();
        assert_eq!(
            status.flinks_scheduled_refresh,
            Some(ScheduledRefreshState::On)
        );
    }
    let one = registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(one.added_at.map(|t| t.timestamp_millis()), Some(millis));
    let two = registry.get(&login(2)).await.unwrap().unwrap();
    assert_eq!(
        two.added_at.map(|t| t.to_rfc3339()),
        Some("2026-01-02T03:04:05.678+00:00".to_string())
    );
    let page = registry.list(LoginFilter::All, 0, 100).await.unwrap();
    assert!(page
        .logins
        .iter()
        .all(|l| l.flinks_scheduled_refresh == Some(ScheduledRefreshState::On)));

    // Deactivated, each is a change due at Flinks, stored in full.
    let summary = registry
        .upsert_many(&[record(1, false), record(2, false)])
        .await
        .unwrap();
    assert_eq!(summary.flinks_changes, 2);
    let one = registry.get(&login(1)).await.unwrap().unwrap();
    assert_eq!(
        one.flinks_scheduled_refresh,
        Some(ScheduledRefreshState::Pending)
    );
    redis.cleanup().await;
}

#[tokio::test]
async fn list_and_scan_active_page_through_exactly_the_matching_logins() {
    let redis = TestRedis::new("registry-list").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let records: Vec<_> = (0..300).map(|n| record(n, n % 3 != 0)).collect();
    registry.upsert_many(&records).await.unwrap();

    let active = all(&registry, LoginFilter::Active).await;
    let inactive = all(&registry, LoginFilter::Inactive).await;
    assert_eq!(active.len(), 200);
    assert_eq!(inactive.len(), 100);
    assert_eq!(all(&registry, LoginFilter::All).await.len(), 300);
    assert!(inactive.contains(&login(3)) && !active.contains(&login(3)));

    let pages: Vec<Vec<LoginId>> = registry.scan_active(50).try_collect().await.unwrap();
    let mut scanned: Vec<LoginId> = pages.into_iter().flatten().collect();
    scanned.sort();
    assert_eq!(scanned, active, "each active login once");
    redis.cleanup().await;
}

#[tokio::test]
async fn a_walk_of_the_active_logins_returns_each_once_whatever_the_counts_say() {
    let redis = TestRedis::new("registry-walk-counts").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let records: Vec<_> = (0..400).map(|n| record(n, n % 4 != 0)).collect();
    registry.upsert_many(&records).await.unwrap();
    let mut active = all(&registry, LoginFilter::Active).await;
    active.sort();
    assert_eq!(active.len(), 300);
    let mut conn = redis.conn.clone();
    let walk = async |registry: &Registry| {
        let mut ids: Vec<LoginId> = registry
            .scan_active(40)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        ids.sort();
        ids
    };

    // Counts that read as 0 (the walk plans its largest pages), corrupt ones (read as 0
    // too), and counts far above the truth (its smallest pages): the counts only size the
    // pages, every shard is read once.
    for (active_count, inactive_count) in [("0", "0"), ("x", "-3"), ("2000000", "2000000")] {
        for bucket in redis.keys.all_buckets() {
            let _: () = conn
                .hset_multiple(
                    redis.keys.login_index_counts(bucket),
                    &[("active", active_count), ("inactive", inactive_count)],
                )
                .await
                .unwrap();
        }
        assert_eq!(walk(&registry).await, active, "counts {active_count}");
    }
    redis.cleanup().await;
}

#[tokio::test]
async fn a_login_is_one_field_of_the_index_through_every_change_and_counted_once() {
    let redis = TestRedis::new("registry-one-set").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let mut conn = redis.conn.clone();
    // Its flag in its shard, and how many fields of every shard hold it.
    let mut indexed = async |n: u32| -> (Option<String>, usize) {
        let id = login(n);
        let (bucket, shard) = shared::login_index::shard_of(&redis.keys, id.as_str());
        let flag: Option<String> = conn
            .hget(redis.keys.login_index_shard(bucket, shard), id.as_str())
            .await
            .unwrap();
        let mut copies = 0;
        for shard in 0..shared::login_index::SHARDS / u32::from(redis.keys.buckets()) {
            let found: bool = conn
                .hexists(redis.keys.login_index_shard(bucket, shard), id.as_str())
                .await
                .unwrap();
            copies += usize::from(found);
        }
        (flag, copies)
    };
    let flag = |f: &str| (Some(f.to_string()), 1);
    registry
        .upsert_many(&[record(1, true), record(2, false)])
        .await
        .unwrap();
    assert_eq!((indexed(1).await, indexed(2).await), (flag("1"), flag("0")));

    assert!(registry.set_active(&login(1), false).await.unwrap());
    assert!(registry.set_active(&login(2), true).await.unwrap());
    assert_eq!((indexed(1).await, indexed(2).await), (flag("0"), flag("1")));
    // Imported again as it already is: still once, and counted once.
    registry.upsert_many(&[record(1, false)]).await.unwrap();
    registry.upsert_many(&[record(1, false)]).await.unwrap();
    assert_eq!(indexed(1).await, flag("0"));
    assert_eq!(registry.count_active().await.unwrap(), 1);
    assert_eq!(registry.count_inactive().await.unwrap(), 1);
    // An unknown login is not in the index, and is not written.
    assert!(!registry.set_active(&login(3), true).await.unwrap());
    assert!(registry.get(&login(3)).await.unwrap().is_none());
    redis.cleanup().await;
}

#[tokio::test]
async fn logins_spread_over_buckets_and_read_back_as_with_one_bucket() {
    let one = TestRedis::new("registry-one-bucket").await;
    let one = TestRedis {
        keys: one.keys.clone().with_buckets(NonZeroU16::MIN),
        ..one
    };
    let many = TestRedis::new("registry-buckets").await;
    let records: Vec<_> = (0..300).map(|n| record(n, n % 3 != 0)).collect();
    let (single, bucketed) = (
        Registry::new(one.conn.clone(), &one.keys),
        Registry::new(many.conn.clone(), &many.keys),
    );
    single.upsert_many(&records).await.unwrap();
    bucketed.upsert_many(&records).await.unwrap();
    bucketed.set_active(&login(1), false).await.unwrap();
    single.set_active(&login(1), false).await.unwrap();

    let mut conn = many.conn.clone();
    let mut used = 0;
    for bucket in many.keys.all_buckets() {
        let counts: Vec<u64> = conn
            .hvals(many.keys.login_index_counts(bucket))
            .await
            .unwrap();
        used += u32::from(counts.iter().sum::<u64>() > 0);
    }
    let buckets = u32::from(many.keys.buckets());
    assert!(
        used * 10 >= buckets * 9,
        "300 logins use at least 90% of the {buckets} buckets, used {used}"
    );
    for filter in [LoginFilter::Active, LoginFilter::Inactive, LoginFilter::All] {
        assert_eq!(all(&single, filter).await, all(&bucketed, filter).await);
    }
    assert_eq!(bucketed.count_active().await.unwrap(), 199);
    assert_eq!(
        (
            single.count_active().await.unwrap(),
            single.count_inactive().await.unwrap()
        ),
        (
            bucketed.count_active().await.unwrap(),
            bucketed.count_inactive().await.unwrap()
        )
    );
    let fp = shared::domain::Fingerprint::parse(&login(7).fingerprint()).unwrap();
    assert_eq!(
        bucketed.find_by_fingerprint(&fp).await.unwrap(),
        vec![login(7)]
    );
    one.cleanup().await;
    many.cleanup().await;
}

#[tokio::test]
async fn set_active_moves_a_known_login_and_refuses_an_unknown_one() {
    let redis = TestRedis::new("registry-set-active").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    registry.add(&record(1, true)).await.unwrap();

    assert!(registry.set_active(&login(1), false).await.unwrap());
    assert_eq!(registry.count_active().await.unwrap(), 0);
    assert!(!registry.get(&login(1)).await.unwrap().unwrap().active);
    assert!(!registry.set_active(&login(2), true).await.unwrap());
    assert!(registry.get(&login(2)).await.unwrap().is_none());
    redis.cleanup().await;
}

#[tokio::test]
async fn record_outcome_updates_the_latest_state_and_keeps_a_capped_history() {
    let redis = TestRedis::new("registry-outcome").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let id = login(7);
    registry
        .add(&LoginRecordInput {
            login_id: id.clone(),
            active: true,
            tag: Some("vip".into()),
            priority: None,
        })
        .await
        .unwrap();
    let start = Utc::now() - chrono::Duration::hours(1);
    // Distinct outcomes: recording the same one again adds nothing to the history.
    for i in 0..HISTORY_LEN + 5 {
        let reauth = LedgerOutcome::NeedsReauth {
            flinks_code: Some(FlinksCode::parse("SESSION_EXPIRED")),
            message: Some("reconnect".into()),
            request_id: None,
            at: start + chrono::Duration::seconds(i as i64),
            unrecognised_code: false,
        };
        assert!(registry.record_outcome(&id, &reauth).await.unwrap());
        assert!(registry.record_outcome(&id, &reauth).await.unwrap());
    }
    assert_eq!(registry.history(&id).await.unwrap().len(), HISTORY_LEN);
    let status = registry.get(&id).await.unwrap().unwrap();
    assert_eq!(
        status.reauth_code,
        Some(FlinksCode::parse("SESSION_EXPIRED"))
    );
    assert_eq!(status.last_outcome.as_deref(), Some("needs_reauth"));
    assert_eq!(status.tag.as_deref(), Some("vip"));

    let last_refresh: NaiveDateTime = "2025-01-02T03:04:05".parse().unwrap();
    let refreshed = LedgerOutcome::Refreshed {
        request_id: RequestId::new("r-1"),
        last_refresh: Some(last_refresh),
        stale: true,
        fetched_at: Utc::now(),
        results_stream_id: None,
    };
    // As earlier versions wrote it: the outcome's time again, as text.
    let key = redis.keys.login(id.as_str());
    let mut conn = redis.conn.clone();
    let () = conn
        .hset(&key, "last_outcome_at", "2024-01-01T00:00:00.000Z")
        .await
        .unwrap();
    registry.record_outcome(&id, &refreshed).await.unwrap();
    let status = registry.get(&id).await.unwrap().unwrap();
    assert_eq!(status.last_outcome.as_deref(), Some("refreshed"));
    assert_eq!(status.last_refresh, Some(last_refresh));
    assert_eq!(status.stale, Some(true));
    // Both times are the outcome's, to the millisecond, kept as numbers: the text copy goes.
    let at = refreshed.at().timestamp_millis();
    assert_eq!(
        status.last_success_at.map(|t| t.timestamp_millis()),
        Some(at)
    );
    assert_eq!(
        status.last_outcome_at.map(|t| t.timestamp_millis()),
        Some(at)
    );
    let (success_ms, text): (i64, Option<String>) = redis::cmd("HMGET")
        .arg(&key)
        .arg("last_success_at")
        .arg("last_outcome_at")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((success_ms, text), (at, None));
    assert_eq!(
        status.reauth_code, None,
        "a refresh clears the re-auth state"
    );
    let history = registry.history(&id).await.unwrap();
    assert_eq!(history.len(), HISTORY_LEN);
    assert_eq!(history[0], refreshed);
    redis.cleanup().await;
}

#[tokio::test]
async fn an_outcome_replayed_onto_a_login_written_by_an_earlier_version_is_kept_once() {
    let redis = TestRedis::new("registry-outcome-earlier-version").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let id = login(8);
    let outcome = LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("QUESTION_NOT_FOUND")),
        message: None,
        request_id: None,
        at: Utc::now(),
        unrecognised_code: false,
    };
    assert!(registry.record_outcome(&id, &outcome).await.unwrap());
    // As an earlier version left it: the outcome's time as text only, no score.
    let key = redis.keys.login(id.as_str());
    let mut conn = redis.conn.clone();
    let () = redis::cmd("HDEL")
        .arg(&key)
        .arg("last_outcome_ms")
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = conn
        .hset(&key, "last_outcome_at", "2024-01-01T00:00:00.000Z")
        .await
        .unwrap();

    assert!(registry.record_outcome(&id, &outcome).await.unwrap());
    assert_eq!(registry.history(&id).await.unwrap(), vec![outcome]);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_good_csv_imports_with_active_and_tag_columns_in_any_order() {
    let redis = TestRedis::new("import-good").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let file = csv_file(&format!(
        "Tag,LoginId,Active\nvip,{},yes\n,{},0\nx,{},FALSE\n,{},\n",
        login(1).as_str(),
        login(2).as_str(),
        login(3).as_str(),
        login(4).as_str()
    ));
    let parsed = import::parse_file(&file, ImportOptions::default()).unwrap();
    let written = registry.upsert_many(&parsed.records).await.unwrap();

    assert_eq!(
        (written.upserted, written.active, written.inactive),
        (4, 2, 2)
    );
    assert_eq!(
        registry
            .get(&login(1))
            .await
            .unwrap()
            .unwrap()
            .tag
            .as_deref(),
        Some("vip")
    );
    assert!(
        registry.get(&login(4)).await.unwrap().unwrap().active,
        "empty Active means active"
    );
    std::fs::remove_file(file).unwrap();
    redis.cleanup().await;
}

#[tokio::test]
async fn a_csv_with_bad_rows_names_each_line_and_imports_nothing_unless_skipping() {
    let redis = TestRedis::new("import-bad").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let file = csv_file(&format!(
        "LoginId,Active\n{},true\nnot-a-uuid,true\n{},maybe\n",
        login(1).as_str(),
        login(2).as_str()
    ));

    let err = import::parse_file(&file, ImportOptions::default()).unwrap_err();
    let ImportError::InvalidRows { errors, total, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*total, 2);
    assert_eq!((errors[0].line, errors[1].line), (3, 4));
    assert_eq!(
        registry.count_active().await.unwrap(),
        0,
        "nothing imported"
    );

    let parsed = import::parse_file(&file, ImportOptions { skip_invalid: true }).unwrap();
    registry.upsert_many(&parsed.records).await.unwrap();
    assert_eq!(parsed.skipped_total, 2);
    assert_eq!(registry.count_active().await.unwrap(), 1);
    std::fs::remove_file(file).unwrap();
    redis.cleanup().await;
}

#[tokio::test]
#[ignore = "benchmark: cargo test -p shared --test it -- --ignored a_million"]
async fn a_million_logins_import_in_well_under_a_minute() {
    let redis = TestRedis::new("import-million").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let records: Vec<_> = (0..1_000_000).map(|n| record(n, true)).collect();
    let started = std::time::Instant::now();
    registry.upsert_many(&records).await.unwrap();
    let took = started.elapsed();
    eprintln!("upserted 1,000,000 logins in {took:?}");
    assert_eq!(registry.count_active().await.unwrap(), 1_000_000);
    redis.cleanup().await;
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
}

fn refreshed_at(at: &str) -> LedgerOutcome {
    LedgerOutcome::Refreshed {
        request_id: RequestId::new("r-1"),
        last_refresh: None,
        stale: false,
        fetched_at: chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc),
        results_stream_id: None,
    }
}

#[tokio::test]
async fn priority_is_kept_unless_given_and_zero_is_not_stored() {
    let redis = TestRedis::new("registry-priority").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let with = |priority| LoginRecordInput {
        priority,
        ..record(1, true)
    };
    registry.add(&with(Some(7))).await.unwrap();
    registry.add(&with(None)).await.unwrap();
    assert_eq!(registry.get(&login(1)).await.unwrap().unwrap().priority, 7);
    let keys = registry.refresh_order_keys(&[login(1)]).await.unwrap();
    assert_eq!(keys[0].priority, 7);

    registry.add(&with(Some(0))).await.unwrap();
    assert_eq!(registry.get(&login(1)).await.unwrap().unwrap().priority, 0);
    let mut conn = redis.conn.clone();
    let stored: Option<String> = redis::cmd("HGET")
        .arg(redis.keys.login(login(1).as_str()))
        .arg("priority")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, None, "priority 0 is the absent field");
    redis.cleanup().await;
}

#[tokio::test]
async fn data_age_is_the_oldest_refresh_of_active_logins_with_never_refreshed_apart() {
    let redis = TestRedis::new("registry-data-age").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    registry
        .upsert_many(&[
            record(1, true),
            record(2, true),
            record(3, true),
            record(4, false),
        ])
        .await
        .unwrap();
    for (n, at) in [
        (1, "2026-11-20T12:00:00Z"),
        (2, "2026-11-10T08:00:00Z"),
        (4, "2026-10-01T00:00:00Z"),
    ] {
        registry
            .record_outcome(&login(n), &refreshed_at(at))
            .await
            .unwrap();
    }

    let age = registry.data_age().await.unwrap();

    // Login 4 refreshed earliest but is inactive; login 3 never refreshed.
    assert_eq!(
        age.oldest_refresh_at.map(|t| t.to_rfc3339()),
        Some("2026-11-10T08:00:00+00:00".to_string())
    );
    assert_eq!(age.never_refreshed, 1);
    redis.cleanup().await;
}

#[tokio::test]
async fn an_import_after_redis_forgot_its_scripts_loads_them_again_and_loses_nothing() {
    // Its own server: flushing the scripts of the shared one would fail other tests.
    let (_server, conn) = crate::own_redis::OwnRedis::plain("scripts").await;
    let keys = shared::KeySpace::new("scripts");
    let registry = Registry::new(conn.clone(), &keys);
    let mut admin = conn.clone();
    registry
        .upsert_many(&(0..10).map(|n| record(n, true)).collect::<Vec<_>>())
        .await
        .unwrap();

    // A restart or a failover: Redis knows no script.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let summary = registry
        .upsert_many(&(5..20).map(|n| record(n, n % 2 == 0)).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!((summary.upserted, summary.new), (15, 10));
    // Another process has loaded one of the two scripts again, not yet the other.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let write = include_str!("../../src/lua/registry/registry_write.lua");
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(write)
        .query_async(&mut admin)
        .await
        .unwrap();
    registry
        .upsert_many(&(20..30).map(|n| record(n, true)).collect::<Vec<_>>())
        .await
        .unwrap();

    // 0-4 and 6, 8; the even ones of 10-19; 20-29.
    assert_eq!(registry.count_active().await.unwrap(), 5 + 2 + 5 + 10);
    assert_eq!(registry.count_inactive().await.unwrap(), 8);
    let listed = all(&registry, LoginFilter::All).await;
    assert_eq!(listed, (0..30).map(login).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_listing_walks_the_index_in_pages_of_about_the_count_asked() {
    let redis = TestRedis::new("registry-pages").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    let records: Vec<_> = (0..3_000).map(|n| record(n, true)).collect();
    registry.upsert_many(&records).await.unwrap();

    let mut sizes = Vec::new();
    let mut cursor = Some(0);
    while let Some(at) = cursor {
        let page = registry.list(LoginFilter::All, at, 500).await.unwrap();
        sizes.push(page.logins.len());
        cursor = page.next_cursor;
    }

    assert_eq!(sizes.iter().sum::<usize>(), 3_000);
    let (last, full) = sizes.split_last().unwrap();
    assert!(*last <= 1_000, "{sizes:?}");
    // Whole shards are read, so a page may run past the count, not far past it.
    assert!(full.iter().all(|n| (500..1_000).contains(n)), "{sizes:?}");
    redis.cleanup().await;
}

#[tokio::test]
async fn a_login_flagged_inactive_reads_inactive_by_itself_and_with_a_lease() {
    let redis = TestRedis::new("registry-inactive").await;
    let registry = Registry::new(redis.conn.clone(), &redis.keys);
    registry
        .upsert_many(&[record(1, true), record(2, true)])
        .await
        .unwrap();
    assert!(registry.set_active(&login(2), false).await.unwrap());

    // A hash without the flag (not written by the registry) is not inactive either.
    let mut conn = redis.conn.clone();
    let _: () = conn
        .hset(redis.keys.login(login(4).as_str()), "priority", "1")
        .await
        .unwrap();

    // Read by itself: only the registered, inactive login; an unknown one is not inactive.
    let mut alone = Vec::new();
    for n in 1..=4 {
        alone.push(registry.is_inactive(&login(n)).await.unwrap());
    }
    assert_eq!(alone, [false, true, false, false]);
    let logins: Vec<LoginId> = (1..=4).map(login).collect();
    assert_eq!(registry.inactive_flags(&logins).await.unwrap(), alone);

    // The same as a lease read of jobs `["<LoginId>", ...]`.
    let queue: shared::queue::Queue<serde_json::Value> = shared::queue::Queue::new(
        redis.conn.clone(),
        &redis.keys,
        shared::queue::QueueConfig::new("inactive-reads"),
    )
    .with_lease_reads(vec![
        registry.inactive_read(shared::queue::PayloadElement::First)
    ]);
    for n in 1..=3 {
        queue
            .enqueue(
                &serde_json::json!([login(n).as_str(), "2026-11-25"]),
                shared::queue::EnqueueOptions::default(),
            )
            .await
            .unwrap();
    }
    let jobs = queue
        .fetch(&shared::queue::WorkerId::generate(), 3)
        .await
        .unwrap();
    if redis.conn.mode() == shared::config::RedisMode::Cluster {
        // A script there may touch only its queue's slot: the queue makes no reads.
        assert!(jobs.iter().all(|j| j.reads.is_none()));
        redis.cleanup().await;
        return;
    }
    let mut leased = Vec::new();
    for (n, job) in (1..=3).zip(&jobs) {
        let reads = job.reads.as_ref().expect("reads on one Redis");
        leased.push(registry.inactive_from(
            shared::queue::PayloadElement::First,
            &login(n),
            reads,
            0,
        ));
    }
    assert_eq!(leased, [Some(false), Some(true), Some(false)]);
    // Values read for another login's text are not this login's answer.
    let reads = jobs[1].reads.as_ref().unwrap();
    assert_eq!(
        registry.inactive_from(shared::queue::PayloadElement::First, &login(1), reads, 0),
        None
    );
    assert_eq!(
        registry.inactive_from(shared::queue::PayloadElement::First, &login(2), reads, 1),
        None
    );
    redis.cleanup().await;
}

//! The key layout check and the one-time move of a pre-bucket registry, on a real Redis.

use std::num::NonZeroU16;

use redis::AsyncCommands;
use shared::domain::LoginId;
use shared::keys::DEFAULT_KEY_BUCKETS;
use shared::layout::{self, LayoutError};
use shared::registry::Registry;

use crate::support::{record, TestRedis};

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

/// Every login `filter` lists, page by page of `count`, sorted.
async fn listed(
    registry: &Registry,
    filter: shared::registry::LoginFilter,
    count: usize,
) -> Vec<LoginId> {
    let mut listed = Vec::new();
    let mut cursor = Some(0);
    while let Some(at) = cursor {
        let page = registry.list(filter, at, count).await.unwrap();
        listed.extend(page.logins.into_iter().map(|l| l.login_id));
        cursor = page.next_cursor;
    }
    listed.sort();
    listed
}

/// Deletes the login index that `logins` were filed in, as a registry of an earlier layout
/// has none.
async fn drop_index(t: &TestRedis, logins: impl IntoIterator<Item = u32>) {
    let mut conn = t.conn.clone();
    for n in logins {
        let (bucket, shard) = shared::login_index::shard_of(&t.keys, login(n).as_str());
        let () = conn
            .unlink(t.keys.login_index_shard(bucket, shard))
            .await
            .unwrap();
    }
    for bucket in t.keys.all_buckets() {
        let () = conn
            .unlink(t.keys.login_index_counts(bucket))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_process_with_another_bucket_count_is_refused_naming_the_stored_count() {
    let t = TestRedis::new("layout-count").await;
    layout::prepare(&t.conn, &t.keys).await.unwrap();
    layout::prepare(&t.conn, &t.keys).await.unwrap();

    let eight = t.keys.clone().with_buckets(NonZeroU16::new(8).unwrap());
    let error = layout::prepare(&t.conn, &eight).await.unwrap_err();
    assert!(matches!(
        error,
        LayoutError::BucketsChanged {
            stored: DEFAULT_KEY_BUCKETS,
            configured: 8,
            ..
        }
    ));
    let text = error.to_string();
    assert!(
        text.contains("KEY_BUCKETS=8")
            && text.contains(&format!("set KEY_BUCKETS={DEFAULT_KEY_BUCKETS}")),
        "{text}"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn a_process_with_another_ledger_bucket_count_is_refused_naming_the_stored_count() {
    let t = TestRedis::new("layout-ledger-count").await;
    let four = t
        .keys
        .clone()
        .with_ledger_buckets(NonZeroU16::new(4).unwrap());
    layout::prepare(&t.conn, &four).await.unwrap();

    let one = t.keys.clone().with_ledger_buckets(NonZeroU16::MIN);
    let text = layout::prepare(&t.conn, &one)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("LEDGER_BUCKETS=1") && text.contains("set LEDGER_BUCKETS=4"),
        "{text}"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn a_layout_stored_before_ledger_buckets_keeps_its_ledger_under_one_tag() {
    let t = TestRedis::new("layout-ledger-legacy").await;
    let mut conn = t.conn.clone();
    // What a version without ledger buckets stored.
    let () = conn
        .hset(
            t.keys.layout(),
            layout::KEY_BUCKETS_FIELD,
            t.keys.buckets().to_string(),
        )
        .await
        .unwrap();

    let eight = t
        .keys
        .clone()
        .with_ledger_buckets(NonZeroU16::new(8).unwrap());
    let text = layout::prepare(&t.conn, &eight)
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("set LEDGER_BUCKETS=1"), "{text}");
    let one = t.keys.clone().with_ledger_buckets(NonZeroU16::MIN);
    layout::prepare(&t.conn, &one).await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn a_namespace_with_a_single_tag_ledger_but_no_layout_keeps_one_ledger_bucket() {
    let t = TestRedis::new("layout-ledger-no-layout").await;
    let single = t.keys.clone().with_ledger_buckets(NonZeroU16::MIN);
    let mut conn = t.conn.clone();
    // What a version before any layout HASH left: a date's outcomes under `{ns:ledger}`.
    let today = chrono::Utc::now().date_naive().to_string();
    let () = conn
        .hset(single.ledger_date(&today, 0), login(1).as_str(), "{}")
        .await
        .unwrap();

    let eight = t
        .keys
        .clone()
        .with_ledger_buckets(NonZeroU16::new(8).unwrap());
    let text = layout::prepare(&t.conn, &eight)
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("set LEDGER_BUCKETS=1"), "{text}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_corrupt_stored_bucket_count_is_refused() {
    let t = TestRedis::new("layout-corrupt").await;
    let mut conn = t.conn.clone();
    let () = conn
        .hset(t.keys.layout(), layout::KEY_BUCKETS_FIELD, "zero")
        .await
        .unwrap();
    let error = layout::prepare(&t.conn, &t.keys).await.unwrap_err();
    assert!(matches!(error, LayoutError::Corrupt { ref value, .. } if value == "zero"));
    t.cleanup().await;
}

#[tokio::test]
async fn a_pre_bucket_registry_moves_into_the_buckets_once_and_keeps_the_hash_flag() {
    // A registry that old had its ledger under one tag, whatever the suite's bucket count.
    let mut t = TestRedis::new("layout-migrate").await;
    t.keys = t.keys.clone().with_ledger_buckets(NonZeroU16::MIN);
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let records: Vec<_> = (0..50).map(|n| record(n, n % 5 != 0)).collect();
    registry.upsert_many(&records).await.unwrap();
    // The layout before buckets: the same logins in one `all` and one `active` SET, one
    // unconfirmed change in the old index. Login 1 is still in the old active SET although
    // its hash was deactivated since.
    let mut conn = t.conn.clone();
    drop_index(&t, 0..50).await;
    for bucket in t.keys.all_buckets() {
        let () = conn
            .unlink(t.keys.logins_flinks_unconfirmed(bucket))
            .await
            .unwrap();
    }
    let ids: Vec<String> = (0..50).map(|n| login(n).as_str().to_string()).collect();
    let active: Vec<&String> = ids
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 5 != 0)
        .map(|(_, id)| id)
        .collect();
    let () = conn.sadd(t.keys.legacy_logins_all(), &ids).await.unwrap();
    let () = conn
        .sadd(t.keys.legacy_logins_active(), &active)
        .await
        .unwrap();
    let () = conn
        .hset(t.keys.login(login(1).as_str()), "active", "0")
        .await
        .unwrap();
    let () = conn
        .zadd(
            t.keys.legacy_logins_flinks_unconfirmed(),
            login(1).as_str(),
            7,
        )
        .await
        .unwrap();

    let first = layout::prepare(&t.conn, &t.keys).await.unwrap();
    let again = layout::prepare(&t.conn, &t.keys).await.unwrap();

    assert_eq!((first.migrated_logins, again.migrated_logins), (50, 0));
    assert_eq!(registry.count_active().await.unwrap(), 39);
    assert_eq!(registry.count_inactive().await.unwrap(), 11);
    let scheduled = shared::scheduled_refresh::ScheduledRefresh::new(t.conn.clone(), &t.keys);
    assert_eq!(scheduled.count_unconfirmed().await.unwrap(), 1);
    assert!(!registry.set_active(&login(99), true).await.unwrap());
    assert!(registry.set_active(&login(0), true).await.unwrap());
    let exists: (bool, bool, bool) = redis::pipe()
        .exists(t.keys.legacy_logins_all())
        .exists(t.keys.legacy_logins_active())
        .exists(t.keys.legacy_logins_flinks_unconfirmed())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, (false, false, false));
    t.cleanup().await;
}

#[tokio::test]
async fn a_bucket_all_set_is_split_then_indexed_once_losing_no_login() {
    let t = TestRedis::new("layout-split").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let records: Vec<_> = (0..60).map(|n| record(n, n % 4 != 0)).collect();
    registry.upsert_many(&records).await.unwrap();
    // The layout before the inactive SETs: every login of a bucket in its `all` SET, the
    // active ones in its `active` SET too, no inactive SET and no index. Login 100 was
    // written since by a process of the new layout: inactive, in the index only.
    let mut conn = t.conn.clone();
    drop_index(&t, 0..60).await;
    let ids = |keep: fn(u32) -> bool| -> Vec<String> {
        (0..60)
            .filter(|n| keep(*n))
            .map(|n| login(n).as_str().to_string())
            .collect()
    };
    for id in ids(|_| true) {
        let bucket = t.keys.bucket_of(&id);
        let () = conn
            .sadd(t.keys.legacy_logins_all_bucket(bucket), &id)
            .await
            .unwrap();
    }
    for id in ids(|n| n % 4 != 0) {
        let bucket = t.keys.bucket_of(&id);
        let () = conn
            .sadd(t.keys.legacy_logins_active_bucket(bucket), &id)
            .await
            .unwrap();
    }
    registry.upsert_many(&[record(100, false)]).await.unwrap();
    // Login 1 (active) still has an inactive entry, as after going back to an earlier
    // version that activated it again: the split takes it out.
    let () = conn
        .sadd(
            t.keys
                .legacy_logins_inactive_bucket(t.keys.bucket_of(login(1).as_str())),
            login(1).as_str(),
        )
        .await
        .unwrap();

    let first = layout::prepare(&t.conn, &t.keys).await.unwrap();
    let again = layout::prepare(&t.conn, &t.keys).await.unwrap();

    assert_eq!((first.split_inactive, again.split_inactive), (15, 0));
    assert_eq!((first.indexed, again.indexed), (60, 0));
    assert_eq!(registry.count_active().await.unwrap(), 45);
    assert_eq!(registry.count_inactive().await.unwrap(), 16);
    let listed = listed(&registry, shared::registry::LoginFilter::Inactive, 100).await;
    let mut expected: Vec<LoginId> = (0..60).filter(|n| n % 4 == 0).map(login).collect();
    expected.push(login(100));
    assert_eq!(listed, expected);
    for bucket in t.keys.all_buckets() {
        let exists: u64 = redis::cmd("EXISTS")
            .arg(t.keys.legacy_logins_all_bucket(bucket))
            .arg(t.keys.legacy_logins_active_bucket(bucket))
            .arg(t.keys.legacy_logins_inactive_bucket(bucket))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(exists, 0, "bucket {bucket} still has a SET");
    }
    t.cleanup().await;
}

#[tokio::test]
async fn bucket_sets_move_into_the_index_under_the_hash_flag_page_by_page() {
    let t = TestRedis::new("layout-index").await;
    // More than a page of the move, in one bucket's SETs.
    let one = t.keys.clone().with_buckets(NonZeroU16::MIN);
    let t = TestRedis { keys: one, ..t };
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let records: Vec<_> = (0..2_500).map(|n| record(n, n % 2 == 0)).collect();
    registry.upsert_many(&records).await.unwrap();
    drop_index(&t, 0..2_500).await;
    // The layout before the index: each login in its bucket's active or inactive SET.
    // Login 2 is still in the active SET although its hash was deactivated since (the
    // hash is the truth); login 5 was filed since by a process of the new layout.
    let mut conn = t.conn.clone();
    for (active, keep) in [(true, 0), (false, 1)] {
        let ids: Vec<String> = (0..2_500)
            .filter(|n| n % 2 == keep && *n != 5)
            .map(|n| login(n).as_str().to_string())
            .collect();
        let set = if active {
            t.keys.legacy_logins_active_bucket(0)
        } else {
            t.keys.legacy_logins_inactive_bucket(0)
        };
        let () = conn.sadd(set, ids).await.unwrap();
    }
    let () = conn
        .hset(t.keys.login(login(2).as_str()), "active", "0")
        .await
        .unwrap();
    registry.upsert_many(&[record(5, true)]).await.unwrap();

    let first = layout::prepare(&t.conn, &t.keys).await.unwrap();
    let again = layout::prepare(&t.conn, &t.keys).await.unwrap();

    assert_eq!((first.indexed, again.indexed), (2_499, 0));
    assert_eq!(registry.count_active().await.unwrap(), 1_250);
    assert_eq!(registry.count_inactive().await.unwrap(), 1_250);
    let status = registry.get(&login(2)).await.unwrap().unwrap();
    assert!(!status.active);
    let active = listed(&registry, shared::registry::LoginFilter::Active, 500).await;
    let mut expected: Vec<LoginId> = (0..2_500)
        .filter(|n| (n % 2 == 0 && *n != 2) || *n == 5)
        .map(login)
        .collect();
    expected.sort();
    assert_eq!(active, expected);
    let exists: u64 = redis::cmd("EXISTS")
        .arg(t.keys.legacy_logins_active_bucket(0))
        .arg(t.keys.legacy_logins_inactive_bucket(0))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn the_way_back_rebuilds_the_bucket_sets_from_the_index_and_the_next_start_moves_them_in_again(
) {
    let t = TestRedis::new("layout-back").await;
    let registry = Registry::new(t.conn.clone(), &t.keys);
    let records: Vec<_> = (0..200).map(|n| record(n, n % 3 != 0)).collect();
    registry.upsert_many(&records).await.unwrap();
    let back = redis::Script::new(include_str!("../../../scripts/rollback/index-to-sets.lua"));
    let shards = shared::login_index::shards_per_bucket(&t.keys);
    let mut conn = t.conn.clone();
    let mut filed = 0;
    for bucket in t.keys.all_buckets() {
        let n: u64 = back
            .key(t.keys.login_index_counts(bucket))
            .key(t.keys.legacy_logins_active_bucket(bucket))
            .key(t.keys.legacy_logins_inactive_bucket(bucket))
            .arg(shards)
            .invoke_async(&mut conn)
            .await
            .unwrap();
        filed += n;
    }

    assert_eq!(filed, 200);
    let (mut active, mut inactive) = (Vec::new(), Vec::new());
    for bucket in t.keys.all_buckets() {
        let a: Vec<String> = conn
            .smembers(t.keys.legacy_logins_active_bucket(bucket))
            .await
            .unwrap();
        let i: Vec<String> = conn
            .smembers(t.keys.legacy_logins_inactive_bucket(bucket))
            .await
            .unwrap();
        active.extend(a);
        inactive.extend(i);
    }
    active.sort();
    inactive.sort();
    let ids = |active: bool| -> Vec<String> {
        let mut ids: Vec<String> = (0..200)
            .filter(|n| (n % 3 != 0) == active)
            .map(|n| login(n).as_str().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!((active, inactive), (ids(true), ids(false)));
    assert_eq!(
        registry.count_active().await.unwrap(),
        0,
        "no index is left"
    );

    let again = layout::prepare(&t.conn, &t.keys).await.unwrap();
    assert_eq!(again.indexed, 200);
    assert_eq!(registry.count_active().await.unwrap(), 133);
    assert_eq!(registry.count_inactive().await.unwrap(), 67);
    t.cleanup().await;
}

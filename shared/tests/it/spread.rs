//! How a million logins spread over the shards of a Redis Cluster: a measurement, run by
//! hand (`LEDGER_BUCKETS=64 scripts/redis-cluster run -- cargo test -p shared --test it
//! spread -- --ignored --nocapture`; `SPREAD_LOGINS` sets the size). It registers the
//! logins, stores one date's refresh of each through the results sink (ledger entry,
//! counters, outbox, results-stream entry with one small account, registry state and
//! history), and prints each primary's `used_memory` growth. Standalone, it prints the one
//! server's figure.

use chrono::{NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use shared::domain::{LoginId, RequestId};
use shared::ledger::Ledger;
use shared::outcomes::Outcomes;
use shared::registry::{LoginRecordInput, Registry};
use shared::results::{ResultEntry, ResultsSink};

use crate::support::TestRedis;

async fn used_memory_per_primary(t: &TestRedis) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for mut node in t.conn.primaries().await.unwrap() {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .arg("memory")
            .query_async(&mut node)
            .await
            .unwrap();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("?")
                .trim()
                .to_string()
        };
        let used = field("used_memory:").parse().unwrap_or(0);
        out.push((format!("port {}", field("tcp_port:")), used));
    }
    out.sort();
    out
}

#[tokio::test]
#[ignore = "a measurement: a million logins, run by hand against a cluster"]
async fn a_million_logins_and_a_dates_outcomes_spread_over_the_primaries() {
    let n: u32 = std::env::var("SPREAD_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let t = TestRedis::new("spread").await;
    let before = used_memory_per_primary(&t).await;
    let ids: Vec<LoginId> = (0..n)
        .map(|i| LoginId::parse(&format!("00000000-0000-4000-8000-{i:012x}")).unwrap())
        .collect();
    let records: Vec<LoginRecordInput> = ids
        .iter()
        .map(|id| LoginRecordInput {
            login_id: id.clone(),
            active: true,
            tag: None,
            priority: None,
        })
        .collect();
    let started = std::time::Instant::now();
    let registry = Registry::new(t.conn.clone(), &t.keys);
    registry.upsert_many(&records).await.unwrap();
    let imported = started.elapsed();
    let after_import = used_memory_per_primary(&t).await;

    let date = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let outcomes = Outcomes::new(t.conn.clone(), &t.keys);
    let sink = ResultsSink::new(t.conn.clone(), &t.keys, u64::from(n));
    let request_id = RequestId::new("8f2d6c1e-1f4a-4a3b-9a65-0c1d2e3f4a5b");
    // One chequing account, about 200 bytes: a small answer, so the streams do not drown
    // the rest of the ledger in the figures.
    let accounts = serde_json::json!([{
        "Id": "4b7d3c5e-2f1a-4e8b-9c6d-0a1b2c3d4e5f",
        "Title": "Chequing",
        "AccountNumber": "1111000",
        "Balance": {"Available": 1234.56, "Current": 1234.56, "Limit": null},
        "Category": "Operations",
        "Currency": "CAD"
    }]);
    let accounts = serde_json::value::to_raw_value(&accounts).unwrap();
    futures::stream::iter(ids.iter())
        .map(|id| {
            let entry = ResultEntry {
                login_id: id,
                request_id: &request_id,
                routine_date: date,
                fetched_at: Utc::now(),
                last_refresh: None,
                stale: false,
                accounts: &accounts,
            };
            let (outcomes, sink) = (&outcomes, &sink);
            async move { outcomes.store_result(sink, &entry).await.map(|_| ()) }
        })
        .buffer_unordered(64)
        .try_for_each(|_| async { Ok(()) })
        .await
        .unwrap();
    let recorded = started.elapsed() - imported;
    let after = used_memory_per_primary(&t).await;

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let grown: Vec<u64> = after
        .iter()
        .zip(&before)
        .map(|((_, a), (_, b))| a.saturating_sub(*b))
        .collect();
    let total: u64 = grown.iter().sum();
    println!(
        "{n} logins, KEY_BUCKETS={}, LEDGER_BUCKETS={}, import {:.0} s, outcomes {:.0} s",
        t.keys.buckets(),
        t.keys.ledger_buckets(),
        imported.as_secs_f64(),
        recorded.as_secs_f64()
    );
    println!("| primary | registry only (MiB) | registry + one date's outcomes (MiB) | share |");
    println!("|---|---|---|---|");
    for (((node, _), (_, imported)), (grown, (_, b))) in after
        .iter()
        .zip(&after_import)
        .zip(grown.iter().zip(&before))
    {
        println!(
            "| {node} | {:.0} | {:.0} | {:.0}% |",
            mib(imported.saturating_sub(*b)),
            mib(*grown),
            100.0 * *grown as f64 / total.max(1) as f64
        );
    }

    assert_eq!(registry.count_active().await.unwrap(), u64::from(n));
    let ledger = Ledger::new(t.conn.clone(), &t.keys);
    assert_eq!(ledger.counts(date).await.unwrap().refreshed, u64::from(n));
    t.cleanup().await;
}

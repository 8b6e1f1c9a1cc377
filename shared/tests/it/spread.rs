//! How a million logins spread over the shards of a Redis Cluster: a measurement, run by
//! hand (`scripts/redis-cluster run -- cargo test -p shared --test it spread -- --ignored
//! --nocapture`; `SPREAD_LOGINS` sets the size). It registers the logins, records one
//! date's `refreshed` outcome for each (ledger, outbox, registry state and history; no
//! results-stream entry, whose size is the account data's), and prints each primary's
//! `used_memory` growth. Standalone, it prints the one server's figure.

use chrono::{NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use shared::domain::{LoginId, RequestId};
use shared::ledger::{Ledger, LedgerOutcome, Overwrite};
use shared::outcomes::Outcomes;
use shared::registry::{LoginRecordInput, Registry};

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
    let request_id = RequestId::new("8f2d6c1e-1f4a-4a3b-9a65-0c1d2e3f4a5b");
    futures::stream::iter(ids.iter())
        .map(|id| {
            let outcome = LedgerOutcome::Refreshed {
                request_id: request_id.clone(),
                last_refresh: None,
                stale: false,
                fetched_at: Utc::now(),
                results_stream_id: None,
            };
            let outcomes = &outcomes;
            async move {
                outcomes
                    .record(date, id, &outcome, Overwrite::AllButRefreshed)
                    .await
            }
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
        "{n} logins, KEY_BUCKETS={}, import {:.0} s, outcomes {:.0} s",
        t.keys.buckets(),
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

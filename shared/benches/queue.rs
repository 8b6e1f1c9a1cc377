//! Queue backend throughput: enqueue rate, and no-op jobs per second through one apalis
//! worker at concurrency 32. Needs Redis (`REDIS_URL`); uses its own
//! namespace and deletes it afterwards.
//!
//! `cargo bench -p shared --bench queue` (optionally `-- <jobs> <batch>...`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use serde::{Deserialize, Serialize};
use shared::queue::{EnqueueOptions, Queue, QueueConfig, RedisBackend};
use shared::KeySpace;
use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimitLayer;

#[derive(Serialize, Deserialize)]
struct Noop {
    i: u64,
}

#[derive(Clone)]
struct Done {
    count: Arc<AtomicU64>,
    target: u64,
    stop: CancellationToken,
}

async fn noop(_job: Noop, done: Data<Done>) -> Result<(), BoxDynError> {
    if done.count.fetch_add(1, Ordering::SeqCst) + 1 == done.target {
        done.stop.cancel();
    }
    Ok(())
}

async fn cleanup(conn: &mut shared::redis_conn::RedisConn, ns: &str) {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{ns}:*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(conn)
                .await
                .unwrap();
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let jobs = args.first().copied().unwrap_or(20_000);
    let batches: Vec<usize> = if args.len() > 1 {
        args[1..].iter().map(|&b| b as usize).collect()
    } else {
        vec![1, 8, 32]
    };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut conn = shared::queue::connect(&url).await.unwrap();
    let ns = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let keys = KeySpace::new(&ns);
    let config = QueueConfig::new("bench");

    // Enqueue: sequential single enqueues, then batched enqueue_many.
    let q: Queue<Noop> = Queue::new(conn.clone(), &keys, config.clone());
    let n_single = 5_000u64;
    let t = Instant::now();
    for i in 0..n_single {
        q.enqueue(&Noop { i }, EnqueueOptions::dedupe(format!("single:{i}")))
            .await
            .unwrap();
    }
    let single = n_single as f64 / t.elapsed().as_secs_f64();
    cleanup(&mut conn, &ns).await;
    let t = Instant::now();
    q.enqueue_many((0..jobs).map(|i| (Noop { i }, EnqueueOptions::dedupe(format!("batch:{i}")))))
        .await
        .unwrap();
    let batched = jobs as f64 / t.elapsed().as_secs_f64();
    println!("enqueue, one call per job, with dedupe key: {single:.0} jobs/s ({n_single} jobs)");
    println!(
        "enqueue_many (1,000 per script call), with dedupe key: {batched:.0} jobs/s ({jobs} jobs)"
    );
    cleanup(&mut conn, &ns).await;

    for batch in batches {
        for _run in 0..3 {
            let q: Queue<Noop> = Queue::new(conn.clone(), &keys, config.clone());
            q.enqueue_many((0..jobs).map(|i| (Noop { i }, EnqueueOptions::default())))
                .await
                .unwrap();
            let stop = CancellationToken::new();
            let done = Done {
                count: Arc::new(AtomicU64::new(0)),
                target: jobs,
                stop: stop.clone(),
            };
            let worker = WorkerBuilder::new("bench")
                .backend(RedisBackend::new(q.clone()).with_batch(batch))
                .data(done)
                .layer(ConcurrencyLimitLayer::new(32))
                .build(noop);
            let t = Instant::now();
            worker
                .run_until(async move {
                    stop.cancelled().await;
                    Ok::<(), std::io::Error>(())
                })
                .await
                .unwrap();
            let elapsed = t.elapsed();
            let s = q.stats().await.unwrap();
            assert_eq!(s.succeeded_total, jobs, "every job acked");
            assert_eq!((s.ready, s.in_flight, s.dead), (0, 0, 0));
            println!(
                "worker, concurrency 32, batch {batch}: {:.0} jobs/s ({jobs} no-op jobs in {:.2} s)",
                jobs as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            );
            cleanup(&mut conn, &ns).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

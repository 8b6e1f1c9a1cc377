//! Test support for `shared/tests/it/queue/kill.rs`: an apalis worker process that claims
//! `HOLD` jobs, logs each start to Redis and then hangs in its handlers (renewing leases)
//! until it is killed with SIGKILL. Not a production binary.
//!
//! Environment: `REDIS_URL`, `NS` (namespace), `QUEUE`, `LEASE_MS`, `HOLD`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use shared::queue::{FetchGate, Queue, QueueConfig, RedisBackend};
use shared::redis_conn::RedisConn;
use shared::KeySpace;

#[derive(Deserialize)]
struct Ping {
    n: u64,
}

/// Lets `HOLD` fetches through, then blocks fetching forever.
struct FetchCount(AtomicUsize);

impl FetchGate for FetchCount {
    fn ready(&self) -> BoxFuture<'static, ()> {
        if self.0.fetch_sub(1, Ordering::SeqCst) > 0 {
            async {}.boxed()
        } else {
            futures::future::pending().boxed()
        }
    }
}

#[derive(Clone)]
struct Log(RedisConn, String);

async fn hang(job: Ping, log: Data<Log>) -> Result<(), BoxDynError> {
    let Log(mut conn, key) = (*log).clone();
    redis::cmd("RPUSH")
        .arg(&key)
        .arg(format!("child:{}", job.n))
        .query_async::<()>(&mut conn)
        .await?;
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is required"));
    let keys = KeySpace::new(var("NS")?);
    let conn = shared::redis_conn::connect_in_env_mode(&var("REDIS_URL")?).await?;
    let config = QueueConfig::new(var("QUEUE")?)
        .with_lease(Duration::from_millis(var("LEASE_MS")?.parse()?));
    let hold: usize = var("HOLD")?.parse()?;
    let queue: Queue<Ping> = Queue::new(conn.clone(), &keys, config);
    let backend =
        RedisBackend::new(queue).with_fetch_gate(Arc::new(FetchCount(AtomicUsize::new(hold))));
    let worker = WorkerBuilder::new("queue-test-child")
        .backend(backend)
        .data(Log(conn, keys.global("test-log")))
        .build(hang);
    worker.run().await?;
    Ok(())
}

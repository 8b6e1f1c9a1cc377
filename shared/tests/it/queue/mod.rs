//! Queue backend against a real Redis (`REDIS_URL`, default 127.0.0.1:6379). Each test owns a
//! unique namespace and deletes its keys when done (even on panic): no FLUSHALL, no serial.

mod ack_fetch;
mod ack_write;
mod apalis_worker;
mod chain;
mod clock;
mod core;
mod corrupt;
mod fencing;
mod kill;
mod lease_entry;
mod lease_reads;
mod migrate;
mod ops;
mod outage;
mod supersede;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::queue::{Backoff, EnqueueOptions, LeasedJob, Queue, QueueConfig, WorkerId};
use shared::redis_conn::RedisConn;
use shared::KeySpace;

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A job type for tests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Ping {
    pub(crate) n: u64,
}

/// Queues one `Ping { n: 1 }` on `q` and leases it to `worker`.
pub(crate) async fn leased_ping(q: &Queue<Ping>, worker: &WorkerId) -> LeasedJob<Ping> {
    q.enqueue(&Ping { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();
    q.fetch(worker, 1).await.unwrap().remove(0)
}

/// The `n` of up to `max` jobs leased from `q` to `worker`, sorted.
pub(crate) async fn leased_ns(q: &Queue<Ping>, worker: &WorkerId, max: usize) -> Vec<u64> {
    let jobs = q.fetch(worker, max).await.unwrap();
    let mut ns: Vec<u64> = jobs.into_iter().map(|j| j.job.n).collect();
    ns.sort_unstable();
    ns
}

/// A test's own namespace; its keys are deleted on drop.
pub(crate) struct TestNs {
    pub(crate) keys: KeySpace,
    pub(crate) conn: RedisConn,
}

impl TestNs {
    pub(crate) async fn new(test: &str) -> Self {
        let ns = format!("test-{test}-{}", uuid::Uuid::new_v4().simple());
        let conn = shared::redis_conn::connect_in_env_mode(&redis_url())
            .await
            .expect("redis");
        Self {
            keys: KeySpace::new(ns),
            conn,
        }
    }

    /// A queue config fit for fast tests: 1 s lease, short backoff, fast polling, every
    /// leasing call free to promote due jobs.
    pub(crate) fn config(&self, name: &str) -> QueueConfig {
        let mut c = QueueConfig::new(name).with_lease(Duration::from_secs(1));
        c.backoff = Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
            jitter: 0.0,
        };
        c.poll_interval = Duration::from_millis(20);
        c.promote_every = Duration::ZERO;
        c
    }

    pub(crate) fn queue<T>(&self, config: QueueConfig) -> Queue<T> {
        Queue::new(self.conn.clone(), &self.keys, config)
    }

    /// The PTTL (ms) of `key`.
    pub(crate) async fn pttl(&self, key: &str) -> i64 {
        let mut conn = self.conn.clone();
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// Every key of this namespace.
    pub(crate) async fn all_keys(&self) -> Vec<String> {
        self.keys.scan_all(&self.conn).await.unwrap()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        // Synchronous, so it also runs when a test panics.
        for pattern in self.keys.patterns() {
            let mut cursor: u64 = 0;
            loop {
                let Ok((next, batch)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(5000)
                    .query(&mut conn)
                else {
                    return;
                };
                if !batch.is_empty() {
                    let _: redis::RedisResult<()> =
                        redis::cmd("UNLINK").arg(&batch).query(&mut conn);
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

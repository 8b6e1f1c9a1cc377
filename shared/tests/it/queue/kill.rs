//! kill -9 of a worker process holding jobs: another worker finishes them after the lease;
//! nothing is lost and nothing runs twice while its lease is alive.
//!
//! The process killed is this test binary run again with only
//! [`child_worker_hangs_in_its_jobs_until_killed`], which is a no-op unless the parent set
//! its environment: the fixture lives next to the test, not as a binary of the crate.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use futures::future::BoxFuture;
use futures::FutureExt;
use shared::queue::{EnqueueOptions, FetchGate, Queue, QueueConfig, RedisBackend};
use shared::redis_conn::RedisConn;
use shared::KeySpace;
use tokio_util::sync::CancellationToken;

use super::apalis_worker::Runs;
use super::{eventually, redis_url, Ping, TestNs};

async fn quick(job: Ping, runs: Data<Runs>) -> Result<(), BoxDynError> {
    runs.record(job.n);
    Ok(())
}

async fn child_log(t: &TestNs) -> Vec<String> {
    let mut conn = t.conn.clone();
    redis::cmd("LRANGE")
        .arg(t.keys.global("test-log"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn jobs_of_a_killed_process_are_finished_by_another_after_the_lease_and_never_twice() {
    let t = TestNs::new("kill9").await;
    let q: Queue<Ping> = t.queue(t.config("q"));
    q.enqueue_many((0..10).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();

    // The child claims 3 jobs and hangs in them, renewing their 1 s leases.
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_NS, t.keys.namespace())
        .env("REDIS_URL", redis_url())
        .env("QUEUE", "q")
        .env("LEASE_MS", "1000")
        .env("HOLD", "3")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child");
    let started = eventually(Duration::from_secs(20), || async {
        child_log(&t).await.len() == 3
    })
    .await;
    assert!(started, "child started its 3 jobs");
    let held: Vec<u64> = child_log(&t)
        .await
        .iter()
        .map(|s| s.trim_start_matches("child:").parse().unwrap())
        .collect();

    // Another worker runs the other 7 and, while the child lives (2 s = two leases), none of
    // the child's jobs.
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("survivor")
        .backend(RedisBackend::new(q.clone()))
        .data(runs.clone())
        .build(quick);
    let token = stop.clone();
    let handle = tokio::spawn(worker.run_until(async move {
        token.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_kill = runs.get();
    assert_eq!(before_kill.len(), 7, "{before_kill:?}");
    assert!(
        held.iter().all(|n| !before_kill.contains_key(n)),
        "ran a job whose lease was alive"
    );
    assert_eq!(q.stats().await.unwrap().in_flight, 3);

    child.kill().expect("kill -9");
    child.wait().unwrap();

    let all_done = eventually(Duration::from_secs(10), || async {
        q.stats().await.unwrap().succeeded_total == 10
    })
    .await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(all_done, "{:?}", q.stats().await.unwrap());
    let runs = runs.get();
    assert_eq!(runs.len(), 10);
    assert!(runs.values().all(|&r| r == 1), "{runs:?}");
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.rescued_total, s.in_flight, s.ready, s.dead),
        (3, 0, 0, 0)
    );
}

/// The child's test name, as the harness filters it.
const CHILD_TEST: &str = "queue::kill::child_worker_hangs_in_its_jobs_until_killed";

/// Set only by the parent: the namespace the child works in.
const CHILD_NS: &str = "QUEUE_KILL_CHILD_NS";

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

/// The killed process: an apalis worker that claims `HOLD` jobs of `QUEUE`, logs each start
/// to Redis, then hangs in its handlers (renewing leases) until SIGKILL.
#[tokio::test]
#[ignore = "the child process of the kill -9 test; it runs it"]
async fn child_worker_hangs_in_its_jobs_until_killed() {
    let Ok(namespace) = std::env::var(CHILD_NS) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is required"));
    let keys = KeySpace::new(namespace);
    let conn = shared::redis_conn::connect_in_env_mode(&redis_url())
        .await
        .unwrap();
    let config = QueueConfig::new(var("QUEUE"))
        .with_lease(Duration::from_millis(var("LEASE_MS").parse().unwrap()));
    let hold: usize = var("HOLD").parse().unwrap();
    let queue: Queue<Ping> = Queue::new(conn.clone(), &keys, config);
    let backend =
        RedisBackend::new(queue).with_fetch_gate(Arc::new(FetchCount(AtomicUsize::new(hold))));
    let worker = WorkerBuilder::new("queue-kill-child")
        .backend(backend)
        .data(Log(conn, keys.global("test-log")))
        .build(hang);
    worker.run().await.unwrap();
}

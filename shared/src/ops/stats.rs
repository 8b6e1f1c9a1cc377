//! The one snapshot of the routine's queues, workers and results stream. `producer queues
//! stats`, the sampler's gauges ([`crate::gauges`]) and the live report (`producer report
//! --watch`) all read it, so they cannot disagree: one clock, Redis' `TIME`, read once per
//! snapshot (the clock the queue scripts stamp jobs and heartbeats with, directly or through
//! a worker's estimate of it, ahead by at most the round trip of the renewal it came
//! from), and one notion of
//! a live worker, [`crate::queue::worker_alive`].
//!
//! Per queue (authorize, detail): jobs per state, the age of the job next in line, in
//! flight per worker and dead letters; the ledger's re-auth and failed index sizes;
//! requeues left pending by a crashed run; the worker processes with their last heartbeat
//! and in-flight jobs; the results stream's length and each consumer group's lag. Reads
//! only; prints nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use serde::Serialize;

use super::requeue::pending_key;
use super::OpsError;
use crate::jobs::{AUTHORIZE_QUEUE, DETAIL_QUEUE};
use crate::keys::KeySpace;
use crate::ledger::IndexKind;
use crate::queue::{redis_now_ms, worker_alive, Queue, QueueConfig};

/// The queues a snapshot reads, in order.
pub const SNAPSHOT_QUEUES: [&str; 2] = [AUTHORIZE_QUEUE, DETAIL_QUEUE];

/// The state of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueSnapshot {
    /// `authorize` or `detail`.
    pub queue: String,
    /// Jobs ready to run.
    pub ready: u64,
    /// How long ago the job next in line was first enqueued, ms (`None`: nothing ready).
    pub oldest_ready_age_ms: Option<u64>,
    /// Jobs waiting for their time (retries, polls).
    pub delayed: u64,
    /// Of the delayed jobs, those already due.
    pub delayed_due: u64,
    /// Jobs leased to workers.
    pub in_flight: u64,
    /// In-flight jobs per worker id.
    pub in_flight_by_worker: BTreeMap<String, u64>,
    /// Dead letters.
    pub dead: u64,
    /// Jobs ever enqueued / acknowledged / dead-lettered / requeued from dead.
    pub enqueued_total: u64,
    /// Jobs ever acknowledged.
    pub succeeded_total: u64,
    /// Jobs ever dead-lettered.
    pub dead_total: u64,
    /// Dead letters ever requeued.
    pub requeued_total: u64,
}

/// A worker process seen by a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerSnapshot {
    /// The worker id.
    pub worker: String,
    /// Which queues it heartbeats on.
    pub queues: Vec<String>,
    /// Its last heartbeat, ms since the epoch (Redis' clock).
    pub last_heartbeat_ms: u64,
    /// How long before the snapshot that was, ms.
    pub heartbeat_age_ms: u64,
    /// Heartbeat within [`crate::queue::ALIVE_LEASES`] leases.
    pub alive: bool,
    /// Jobs it holds leased, all queues together.
    pub in_flight: u64,
}

/// One consumer group of the results stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerGroupSnapshot {
    /// The group's name (chosen by the consuming service).
    pub group: String,
    /// Entries delivered to the group and not acknowledged yet.
    pub pending: u64,
    /// Entries not delivered to the group yet (`None` when Redis cannot tell, e.g.
    /// after entries were trimmed past the group's position).
    pub lag: Option<u64>,
}

/// The results stream consumers read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResultsSnapshot {
    /// Entries in the stream now (capped at about `RESULTS_STREAM_MAXLEN`).
    pub length: u64,
    /// Its consumer groups, by name.
    pub groups: Vec<ConsumerGroupSnapshot>,
}

/// Everything `producer queues stats` prints and the sampler publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// When it was read, ms since the epoch on Redis' clock.
    pub taken_at_ms: u64,
    /// The authorize and detail queues.
    pub queues: Vec<QueueSnapshot>,
    /// Entries of the ledger's re-auth index (all dates).
    pub reauth: u64,
    /// Entries of the ledger's failed index (all dates).
    pub failed: u64,
    /// Requeue claims a crashed run left behind (finished by the next requeue).
    pub requeue_pending: u64,
    /// Worker processes, newest heartbeat first.
    pub workers: Vec<WorkerSnapshot>,
    /// The results stream.
    pub results: ResultsSnapshot,
}

impl Snapshot {
    /// Worker processes alive.
    pub fn workers_alive(&self) -> u64 {
        self.workers.iter().filter(|w| w.alive).count() as u64
    }

    /// The snapshot of `queue`, if it is one of [`SNAPSHOT_QUEUES`].
    pub fn queue(&self, queue: &str) -> Option<&QueueSnapshot> {
        self.queues.iter().find(|q| q.queue == queue)
    }
}

/// The routine date due now and its stored deadline, till when that date's authorize
/// backlog is called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutineDeadline {
    /// The routine date due now.
    pub date: chrono::NaiveDate,
    /// Its deadline, if a run stored one.
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

/// What `queues stats` shows: the snapshot, the control state and the due routine date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    /// The queues, indexes and workers.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// The rate limit in force and the paused queues.
    pub control: crate::control::ControlView,
    /// The routine date due now and its deadline.
    pub routine: RoutineDeadline,
}

/// Reads the snapshot; `worker_lease` is `WORKER_LEASE`, which decides who is alive.
pub async fn snapshot(
    conn: &RedisConn,
    keys: &KeySpace,
    worker_lease: Duration,
) -> Result<Snapshot, OpsError> {
    let mut c = conn.clone();
    let now_ms = redis_now_ms(&mut c).await?;
    let mut queues = Vec::new();
    let mut workers: BTreeMap<String, WorkerSnapshot> = BTreeMap::new();
    for name in SNAPSHOT_QUEUES {
        let queue: Queue<()> = Queue::new(
            conn.clone(),
            keys,
            QueueConfig::new(name).with_lease(worker_lease),
        );
        let stats = queue.stats_at(now_ms).await?;
        let in_flight_by_worker = queue.in_flight_by_worker().await?;
        let oldest = queue.oldest_ready_enqueued_ms().await?;
        for (worker, beat) in queue.workers().await? {
            let entry = workers
                .entry(worker.clone())
                .or_insert_with(|| WorkerSnapshot {
                    worker,
                    queues: Vec::new(),
                    last_heartbeat_ms: 0,
                    heartbeat_age_ms: 0,
                    alive: false,
                    in_flight: 0,
                });
            entry.queues.push(name.to_string());
            entry.last_heartbeat_ms = entry.last_heartbeat_ms.max(beat);
        }
        for (worker, n) in &in_flight_by_worker {
            if let Some(entry) = workers.get_mut(worker) {
                entry.in_flight += n;
            }
        }
        queues.push(QueueSnapshot {
            queue: name.to_string(),
            ready: stats.ready,
            oldest_ready_age_ms: oldest.map(|at| now_ms.saturating_sub(at)),
            delayed: stats.delayed,
            delayed_due: stats.delayed_due,
            in_flight: stats.in_flight,
            in_flight_by_worker,
            dead: stats.dead,
            enqueued_total: stats.enqueued_total,
            succeeded_total: stats.succeeded_total,
            dead_total: stats.dead_total,
            requeued_total: stats.requeued_total,
        });
    }
    let mut pipe = redis::pipe();
    for bucket in keys.all_ledger_buckets() {
        pipe.zcard(keys.ledger_index(IndexKind::Reauth.as_str(), bucket))
            .zcard(keys.ledger_index(IndexKind::Failed.as_str(), bucket))
            .zcard(pending_key(keys, bucket));
    }
    let cards: Vec<u64> = pipe.query_async(&mut c).await?;
    let sum = |first: usize| cards.iter().skip(first).step_by(3).sum::<u64>();
    let (reauth, failed, requeue_pending) = (sum(0), sum(1), sum(2));
    let mut workers: Vec<WorkerSnapshot> = workers
        .into_values()
        .map(|mut w| {
            w.heartbeat_age_ms = now_ms.saturating_sub(w.last_heartbeat_ms);
            w.alive = worker_alive(w.last_heartbeat_ms, now_ms, worker_lease);
            w
        })
        .collect();
    workers.sort_by_key(|w| std::cmp::Reverse(w.last_heartbeat_ms));
    Ok(Snapshot {
        taken_at_ms: now_ms,
        queues,
        reauth,
        failed,
        requeue_pending,
        workers,
        results: results_stream(&mut c, keys).await?,
    })
}

/// The results streams of every ledger bucket, summed: a consumer group's pending entries
/// and lag add up over the streams it reads (its lag is unknown when one stream's is).
async fn results_stream(
    conn: &mut RedisConn,
    keys: &KeySpace,
) -> Result<ResultsSnapshot, OpsError> {
    let mut length = 0;
    let mut groups: std::collections::BTreeMap<String, ConsumerGroupSnapshot> = Default::default();
    for bucket in keys.all_ledger_buckets() {
        let key = keys.results_stream(bucket);
        let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(conn).await?;
        if !exists {
            continue;
        }
        length += redis::cmd("XLEN")
            .arg(&key)
            .query_async::<u64>(conn)
            .await?;
        let reply: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(conn)
            .await?;
        for g in reply.groups {
            let sum = groups
                .entry(g.name.clone())
                .or_insert_with(|| ConsumerGroupSnapshot {
                    group: g.name,
                    pending: 0,
                    lag: Some(0),
                });
            sum.pending += g.pending as u64;
            sum.lag = sum.lag.zip(g.lag).map(|(a, b)| a + b as u64);
        }
    }
    Ok(ResultsSnapshot {
        length,
        groups: groups.into_values().collect(),
    })
}

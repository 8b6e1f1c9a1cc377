//! One snapshot for `producer queues stats`: per queue (authorize, detail) the jobs per
//! state, in flight per worker and dead letters; the ledger's re-auth and failed index
//! sizes; requeues left pending by a crashed run; the worker processes with their last
//! heartbeat. Reads only.

use std::collections::BTreeMap;

use crate::redis_conn::RedisConn;
use serde::Serialize;

use super::requeue::pending_key;
use super::OpsError;
use crate::config::Settings;
use crate::jobs::{queue_config, AUTHORIZE_QUEUE, DETAIL_QUEUE};
use crate::keys::KeySpace;
use crate::ledger::IndexKind;
use crate::queue::Queue;

/// The state of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueSnapshot {
    /// `authorize` or `detail`.
    pub queue: String,
    /// Jobs ready to run.
    pub ready: u64,
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
    /// Its last heartbeat, ms since the epoch.
    pub last_heartbeat_ms: u64,
    /// Heartbeat within three leases.
    pub alive: bool,
}

/// Everything `producer queues stats` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
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
}

/// Reads the snapshot.
pub async fn snapshot(
    conn: &RedisConn,
    keys: &KeySpace,
    settings: &Settings,
) -> Result<Snapshot, OpsError> {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let alive_after = now_ms.saturating_sub(3 * settings.worker_lease.as_millis() as u64);
    let mut queues = Vec::new();
    let mut workers: BTreeMap<String, WorkerSnapshot> = BTreeMap::new();
    for name in [AUTHORIZE_QUEUE, DETAIL_QUEUE] {
        let queue: Queue<()> = Queue::new(conn.clone(), keys, queue_config(settings, name));
        let stats = queue.stats().await?;
        queues.push(QueueSnapshot {
            queue: name.to_string(),
            ready: stats.ready,
            delayed: stats.delayed,
            delayed_due: stats.delayed_due,
            in_flight: stats.in_flight,
            in_flight_by_worker: queue.in_flight_by_worker().await?,
            dead: stats.dead,
            enqueued_total: stats.enqueued_total,
            succeeded_total: stats.succeeded_total,
            dead_total: stats.dead_total,
            requeued_total: stats.requeued_total,
        });
        for (worker, beat) in queue.workers().await? {
            let entry = workers
                .entry(worker.clone())
                .or_insert_with(|| WorkerSnapshot {
                    worker,
                    queues: Vec::new(),
                    last_heartbeat_ms: 0,
                    alive: false,
                });
            entry.queues.push(name.to_string());
            entry.last_heartbeat_ms = entry.last_heartbeat_ms.max(beat);
            entry.alive = entry.last_heartbeat_ms >= alive_after;
        }
    }
    let mut c = conn.clone();
    let (reauth, failed, requeue_pending): (u64, u64, u64) = redis::pipe()
        .zcard(keys.ledger_index(IndexKind::Reauth.as_str()))
        .zcard(keys.ledger_index(IndexKind::Failed.as_str()))
        .zcard(pending_key(keys))
        .query_async(&mut c)
        .await?;
    let mut workers: Vec<WorkerSnapshot> = workers.into_values().collect();
    workers.sort_by_key(|w| std::cmp::Reverse(w.last_heartbeat_ms));
    Ok(Snapshot {
        queues,
        reauth,
        failed,
        requeue_pending,
        workers,
    })
}

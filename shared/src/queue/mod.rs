//! Durable Redis queue that apalis workers run on.
//!
//! Why not apalis-redis: see `docs/design-notes.md` (wedge at 8,000 due jobs, heartbeat
//! starvation, 25 hard-coded attempts, dedupe off by default, poison payloads kill workers,
//! recovery keyed on worker names). This module keeps apalis-core's worker model and replaces
//! the storage: [`Queue`] is the library (enqueue, fetch, ack, fail, ops), [`RedisBackend`]
//! plugs it into `apalis_core::worker::builder::WorkerBuilder`.
//!
//! # Key layout
//!
//! Every key is built by [`KeySpace::queue`](crate::keys::KeySpace::queue), so all keys of a
//! queue share the hash tag `{ns:queue}` (one Redis Cluster slot), and every Lua script
//! declares every key it touches in `KEYS`.
//!
//! | key `{ns:queue}:…` | type | content |
//! |---|---|---|
//! | `ready` | LIST | ids ready to run (FIFO; rescued jobs go to the front) |
//! | `delayed` | ZSET | id → due time (ms): retries, scheduled work, polls |
//! | `inflight` | ZSET | `<id>\|<delivery token>` → lease deadline (ms): the entry names the delivery holding the lease (`<worker id>/<random>`, one per fetch), so the ack's `ZREM` of it is the holder check and a lease writes nothing to the job's hash; an earlier version's entry is the bare id, its holder in the hash's `o` |
//! | `dead` | ZSET | id → time of death (ms), unique and increasing (see `dead_clock`); capped at `dead_cap` |
//! | `job:<id>` | HASH | one job: `p` JSON payload, `a` deliveries spent (counted when a delivery fails or its lease expires; one in flight is not counted yet), `r` 1 once an attempt was given back, `t` enqueue time (ms), `d` its dedupe key, `e` last error; deleted with one DEL on ack |
//! | `counters` | HASH | enqueued, succeeded, retried, dead, rescued, requeued, superseded (replaced, or not queued because the key had a later rank), deleted totals; `ready_tombstones` (superseded or deleted ids still in `ready`, skipped by fetch); `dead_clock` (last dead-letter score), `dead_reviewed` (the review cursor); `rank_dedupe_since`, `legacy_dedupe_until` (see `migrate.rs`) |
//! | `workers` | ZSET | worker id → last heartbeat (ms) |
//! | `dedupe:<key>` | STRING | id of the job that took the dedupe key; TTL `dedupe_ttl`, or the job's own ([`EnqueueOptions::dedupe_for`]) |
//! | `done:<id>` | HASH | attempts, finished_at, worker; only when `finished_retention` is set (default: none) |
//! | `pending:<shard>` | HASH | supersede key → `rank\|id` of its latest job, kept after the job ends: the key's dedupe record (see `lua/queue/enqueue.lua`); the key's shard is [`keys::PENDING_SHARDS`]-way FNV-1a, so each shard stays a small listpack. `pending` itself is the one hash of earlier versions, moved at start (see `migrate.rs`) |
//! | `superseded` | LIST | superseded jobs, until the enqueuer records them: `id\|<rank that took over>\|r<own rank>\|payload` (the rank that took over prefixed `a` when superseded on arrival; a replaced job's payload is that of the job that replaced it) |
//!
//! Times are on Redis' clock, so processes with skewed clocks agree on deadlines; an ack
//! needs no time and reads none. A call that leases jobs is given the worker's estimate of
//! that clock, taken from its last renewal (see `clock.rs`), instead of reading `TIME`. Jobs stored by the previous version (one queue-wide
//! hash per field) are moved into their own hashes at start (see `migrate.rs`).
//!
//! # Lifecycle of a job
//!
//! ```text
//!  enqueue ──(dedupe key taken, or its supersede key at this rank?)──► Duplicate (nothing stored)
//!     │ new                 delay
//!     ├──────────────────────────────► delayed ──(due; promoted ≤ promote_chunk per call)──┐
//!     ▼                                   ▲                                                │
//!   ready ◄───────────────────────────────┼────────────────────────────────────────────────┘
//!     │ fetch: LPOP, entry `id|delivery`, │ fail(Retry), attempts + 1 < max:
//!     │ scored now+lease                  │ backoff + jitter (or the handler's delay)
//!     ▼                                   │
//!   inflight ──────────────────────────────┘
//!     │ │ │  renew (heartbeat task, every lease/3) keeps the deadline ahead
//!     │ │ └─ lease expired (process died) ─► reaper ─► ready (front), rescued += 1
//!     │ │                                         └─► dead if that was the last attempt
//!     │ └── fail(Permanent) / last attempt / undecodable payload ─► dead
//!     ▼                                                              │ requeue_dead
//!   ack: the job's hash deleted (one DEL)                            ▼
//!                                                                  ready
//! ```
//!
//! # Wiring a worker
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use apalis_core::worker::builder::WorkerBuilder;
//! use shared::queue::{connect, EnqueueOptions, JobFailure, Queue, QueueConfig, RedisBackend};
//! use shared::KeySpace;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Authorize {
//!     login: String,
//! }
//!
//! // Ok acks; JobFailure::retry/retry_after retries (backoff or the given delay) until
//! // max_attempts; JobFailure::permanent (or apalis' AbortError) dead-letters at once;
//! // JobFailure::Defer runs the job again later without spending an attempt.
//! async fn authorize(job: Authorize) -> Result<(), JobFailure> {
//!     if job.login.is_empty() {
//!         return Err(JobFailure::permanent("empty login"));
//!     }
//!     Err(JobFailure::retry_after("202: still pending", Duration::from_secs(10)))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = connect("redis://127.0.0.1:6379").await?;
//! let keys = KeySpace::new("nightly-refresh");
//! let config = QueueConfig::new("authorize").with_lease(Duration::from_secs(60)); // WORKER_LEASE
//! let queue: Queue<Authorize> = Queue::new(conn, &keys, config);
//! let job = Authorize { login: "l-1".into() };
//! queue.enqueue(&job, EnqueueOptions::dedupe("authorize:l-1:2026-11-25")).await?;
//!
//! let worker = WorkerBuilder::new("authorize")
//!     .backend(RedisBackend::new(queue.clone())) // .with_batch(n), .with_fetch_gate(limiter)
//!     .build(authorize);
//! worker.run().await?;
//! # Ok(()) }
//! ```
//!
//! Delivery is at least once: a job whose process dies mid-run runs again after its lease
//! expires, never while its lease is alive. Every delivery counts as an attempt, so
//! `max_attempts` bounds how often a job can run, crashes included.

mod backend;
mod clock;
mod config;
mod conn;
mod core;
mod error;
mod handoff;
mod invocation;
mod keys;
mod lease;
pub mod metrics_names;
mod migrate;
mod ops;
mod promote_gate;
mod scripts;
mod single;
mod types;

pub use backend::{FetchGate, LeaseLost, QueueLayer, QueueService, RedisBackend};
pub use clock::RedisClock;
pub use config::{Backoff, QueueConfig};
pub use conn::{connect, manager_config, redact, CONNECTION_TIMEOUT, RESPONSE_TIMEOUT};
pub use core::Queue;
pub use error::QueueError;
pub use lease::{Heartbeat, HeldJobs};
pub use ops::{redis_now_ms, worker_alive, ALIVE_LEASES};
pub use scripts::AckWriteScript;
pub use single::JobChange;
pub use types::{
    AckAttached, AckWith, AckWrite, ChainedJob, DeadPage, DeadSelector, DeliveryToken,
    EnqueueOptions, Enqueued, FailOutcome, JobFailure, JobFilter, JobId, JobInfo, JobState,
    LeaseFacts, LeaseRead, LeaseReadValues, LeasedJob, PayloadElement, PayloadText, QueueStats,
    Supersede, Superseded, WorkerId,
};

//! `Queue<T>`: enqueue, fetch with a lease, ack, fail (retry or dead-letter), renew, reap and
//! promote. Each state change is one Lua script, so a crash between two calls never leaves a
//! job in two states or in none.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::RedisMode;
use crate::redis_conn::RedisConn;
use redis::Script;

use super::invocation::Invocation;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::clock::RedisClock;
use super::config::QueueConfig;
use super::error::QueueError;
use super::keys::QueueKeys;
use super::metrics_names as m;
use super::promote_gate::PromoteGate;
use super::scripts;
use super::types::{
    AckAttached, AckWrite, ChainedJob, DeliveryToken, EnqueueOptions, Enqueued, FailOutcome,
    JobFailure, JobId, LeaseRead, LeaseReadValues, LeasedJob, Superseded, WorkerId,
};
use crate::keys::KeySpace;

/// Jobs per enqueue script call (7 arguments each).
const ENQUEUE_CHUNK: usize = 1_000;
/// Expired leases handled per reap script call.
const REAP_CHUNK: usize = 1_000;
/// Longest error text stored with a job.
const MAX_ERROR_LEN: usize = 2_000;

/// A durable queue of `T` (JSON) in Redis. Cheap to clone; clones share the connection.
///
/// The ops functions (stats, list, requeue, purge) work on any `T`; a tool that does not
/// know the job type can use `Queue<serde_json::Value>`.
pub struct Queue<T> {
    pub(crate) conn: RedisConn,
    pub(crate) keys: Arc<QueueKeys>,
    pub(crate) config: Arc<QueueConfig>,
    /// Made for each job leased (see [`Queue::with_lease_reads`]); empty for none.
    reads: Arc<[LeaseRead]>,
    /// Redis' clock as the last renewal read it: what a lease's deadline counts from.
    clock: Arc<RedisClock>,
    /// Whether a leasing call may promote due delayed jobs (see `promote_gate.rs`).
    promote_gate: Arc<PromoteGate>,
    _job: PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            keys: Arc::clone(&self.keys),
            config: Arc::clone(&self.config),
            reads: Arc::clone(&self.reads),
            clock: Arc::clone(&self.clock),
            promote_gate: Arc::clone(&self.promote_gate),
            _job: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.config.name)
            .field("ready_key", &self.keys.get(super::keys::READY))
            .finish()
    }
}

impl<T> Queue<T> {
    /// A queue over an existing connection (see [`super::connect`]).
    pub fn new(conn: RedisConn, keys: &KeySpace, config: QueueConfig) -> Self {
        Self {
            conn,
            keys: Arc::new(QueueKeys::new(keys, &config.name)),
            reads: Arc::from([]),
            clock: Arc::default(),
            promote_gate: Arc::new(PromoteGate::new(config.promote_every)),
            config: Arc::new(config),
            _job: PhantomData,
        }
    }

    /// Connects to `url` and opens the queue.
    pub async fn connect(
        url: &str,
        keys: &KeySpace,
        config: QueueConfig,
    ) -> Result<Self, QueueError> {
        Ok(Self::new(super::conn::connect(url).await?, keys, config))
    }

    /// The same queue seen with another job type (e.g. `serde_json::Value` for ops tools).
    pub fn retyped<U>(&self) -> Queue<U> {
        Queue {
            conn: self.conn.clone(),
            keys: Arc::clone(&self.keys),
            config: Arc::clone(&self.config),
            reads: Arc::clone(&self.reads),
            clock: Arc::clone(&self.clock),
            promote_gate: Arc::clone(&self.promote_gate),
            _job: PhantomData,
        }
    }

    /// Makes `reads` for each job this queue leases, in the script call that leases it, and
    /// hands their answers to the handler with the job ([`LeasedJob::reads`]): a handler's
    /// first look-ups cost no round trip of their own, and are as fresh as the lease. On
    /// one Redis only (a single server or Sentinel's master): on a Cluster a script may
    /// touch only its own slot, so the queue makes no reads there and every job's `reads`
    /// is `None`, as it is for a payload not of their shape; the handler then reads for
    /// itself. A job a buffer holds for a while carries what was read when it was leased.
    pub fn with_lease_reads(mut self, reads: Vec<LeaseRead>) -> Self {
        if self.conn.mode() != RedisMode::Cluster {
            self.reads = Arc::from(reads);
        }
        self
    }

    /// The reads made for each job leased, as script arguments: their count, then per read
    /// its command, key prefix and element, argument prefix and element.
    fn push_reads(&self, inv: &mut Invocation<'_>) {
        inv.arg(self.reads.len());
        for read in self.reads.iter() {
            inv.arg(read.command.as_arg())
                .arg(read.key.prefix.as_str())
                .arg(read.key.element_arg())
                .arg(read.arg.prefix.as_str())
                .arg(read.arg.element_arg());
        }
    }

    /// The queue's estimate of its Redis' clock, which the calls that lease jobs count
    /// their deadlines from (see [`RedisClock`]); every renewal sets it.
    pub fn clock(&self) -> &RedisClock {
        &self.clock
    }

    /// The queue's configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn redis_err(&self, source: redis::RedisError) -> QueueError {
        QueueError::Redis {
            queue: self.config.name.clone(),
            source,
        }
    }

    /// A script invocation with the queue's standard keys already declared.
    pub(crate) fn invocation<'a>(&self, script: &'a Script) -> Invocation<'a> {
        let mut inv = Invocation::new(script);
        for k in &self.keys.script_keys {
            inv.key(k);
        }
        inv
    }

    pub(crate) async fn run<R: redis::FromRedisValue>(
        &self,
        inv: &Invocation<'_>,
    ) -> Result<R, QueueError> {
        let mut conn = self.conn.clone();
        inv.invoke(&mut conn).await.map_err(|e| self.redis_err(e))
    }

    fn count(&self, name: &'static str, n: u64) {
        if n > 0 {
            metrics::counter!(name, "queue" => self.config.name.clone()).increment(n);
        }
    }

    fn count_outcome(&self, outcome: &'static str) {
        metrics::counter!(m::JOBS_PROCESSED_TOTAL, "queue" => self.config.name.clone(), "outcome" => outcome)
            .increment(1);
    }

    /// Marks job `id` done: its payload and metadata are deleted (a short record is kept for
    /// `finished_retention`). Returns false, changing nothing, if the delivery `token` no
    /// longer holds the lease (it expired and the job went back to ready, or was fetched
    /// again: it will run, or is running, again).
    pub async fn ack(&self, token: &DeliveryToken, id: &JobId) -> Result<bool, QueueError> {
        let mut inv = self.invocation(&scripts::ACK);
        inv.key(self.keys.done(id.as_str()))
            .arg(id.as_str())
            .arg(token.as_str())
            .arg(self.config.finished_retention.as_millis() as u64);
        let acked: i64 = self.run(&inv).await?;
        if acked == 1 {
            self.count_outcome(m::OUTCOME_SUCCEEDED);
        }
        Ok(acked == 1)
    }

    /// Records a failed attempt (`attempt` is the [`LeasedJob::attempt`] that failed): a
    /// retry goes to the delayed set after the backoff (or the given delay) unless
    /// `max_attempts` deliveries were made; a permanent failure is dead-lettered at once.
    /// [`FailOutcome::LeaseLost`], changing nothing, if the delivery `token` no longer holds
    /// the lease.
    pub async fn fail(
        &self,
        token: &DeliveryToken,
        id: &JobId,
        attempt: u32,
        failure: JobFailure,
    ) -> Result<FailOutcome, QueueError> {
        let mode = failure.mode();
        let (error, delay) = match failure {
            JobFailure::Retry { error, delay } => (
                error,
                delay.unwrap_or_else(|| self.config.backoff.delay(attempt)),
            ),
            JobFailure::Permanent { error } => (error, Duration::ZERO),
            JobFailure::Defer { error, delay } => (error, delay),
        };
        let mut inv = self.invocation(&scripts::FAIL);
        inv.arg(id.as_str())
            .arg(token.as_str())
            .arg(truncate(&error))
            .arg(mode)
            .arg(delay.as_millis() as u64)
            .arg(self.config.max_attempts)
            .arg(self.config.dead_cap);
        let code: i64 = self.run(&inv).await?;
        Ok(match code {
            1 => {
                self.count_outcome(m::OUTCOME_RETRIED);
                FailOutcome::Retried
            }
            2 => {
                self.count_outcome(m::OUTCOME_DEAD);
                FailOutcome::Dead
            }
            3 => {
                self.count_outcome(m::OUTCOME_RETRIED);
                FailOutcome::Deferred
            }
            _ => FailOutcome::LeaseLost,
        })
    }

    /// Extends the leases still held by their delivery (`(id, token)` pairs) to now + lease
    /// and marks `worker` alive. Returns the ids whose delivery no longer holds them.
    pub async fn renew(
        &self,
        worker: &WorkerId,
        leases: &[(JobId, DeliveryToken)],
    ) -> Result<Vec<JobId>, QueueError> {
        let mut lost = Vec::new();
        let mut chunks: Vec<&[(JobId, DeliveryToken)]> = leases.chunks(1_000).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let mut inv = self.invocation(&scripts::RENEW);
            inv.arg(worker.as_str())
                .arg(self.config.lease.as_millis() as u64)
                .arg(self.config.worker_retention.as_millis() as u64);
            for (id, token) in chunk {
                inv.arg(id.as_str()).arg(token.as_str());
            }
            let sent = Instant::now();
            let (now, l): (i64, Vec<String>) = self.run(&inv).await?;
            self.clock.sample(now, sent, Instant::now());
            lost.extend(l.into_iter().map(JobId::from));
        }
        Ok(lost)
    }

    /// Returns every job whose lease expired to the front of ready (or dead-letters it if
    /// that was its last allowed attempt). Returns how many were rescued; the total is kept
    /// in the queue's counters.
    pub async fn reap_expired(&self) -> Result<usize, QueueError> {
        let mut rescued = 0usize;
        loop {
            let mut inv = self.invocation(&scripts::REAP);
            inv.arg(REAP_CHUNK)
                .arg(self.config.max_attempts)
                .arg(self.config.dead_cap);
            let (r, buried): (usize, usize) = self.run(&inv).await?;
            rescued += r;
            self.count(m::JOBS_RESCUED_TOTAL, r as u64);
            for _ in 0..buried {
                self.count_outcome(m::OUTCOME_DEAD);
            }
            if r + buried < REAP_CHUNK {
                return Ok(rescued);
            }
        }
    }

    /// Moves at most `chunk` due delayed jobs to ready. Returns how many moved.
    pub async fn promote_due(&self, chunk: usize) -> Result<usize, QueueError> {
        let mut inv = self.invocation(&scripts::PROMOTE);
        inv.arg(chunk.max(1));
        self.run(&inv).await
    }

    /// Promotes due delayed jobs chunk by chunk (`promote_chunk` each, so Redis is never
    /// blocked long), at most `max_chunks` chunks. Returns how many moved.
    pub async fn promote_all_due(&self, max_chunks: usize) -> Result<usize, QueueError> {
        let chunk = self.config.promote_chunk.max(1);
        let mut moved = 0;
        for _ in 0..max_chunks {
            let n = self.promote_due(chunk).await?;
            moved += n;
            if n < chunk {
                break;
            }
        }
        Ok(moved)
    }

    /// Gives leased jobs that never started back to the front of ready (their attempt is
    /// undone), each only if its delivery (`(id, token)` pairs) still holds it. Used on
    /// graceful shutdown. Returns how many were released.
    pub async fn release(&self, leases: &[(JobId, DeliveryToken)]) -> Result<usize, QueueError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let mut inv = self.invocation(&scripts::RELEASE);
        for (id, token) in leases {
            inv.arg(id.as_str()).arg(token.as_str());
        }
        self.run(&inv).await
    }

    /// Removes `worker` from the set of live workers (on graceful stop).
    pub async fn deregister(&self, worker: &WorkerId) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("ZREM")
            .arg(self.keys.get(super::keys::WORKERS))
            .arg(worker.as_str())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))
    }

    /// True while `dedupe_key` is taken (a job with it was enqueued and the key has not
    /// expired or been cleared).
    pub async fn has_dedupe(&self, dedupe_key: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.keys.dedupe(dedupe_key))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(n > 0)
    }

    /// The id of the job holding `dedupe_key`, while the key lives.
    pub async fn dedupe_holder(&self, dedupe_key: &str) -> Result<Option<JobId>, QueueError> {
        let mut conn = self.conn.clone();
        let id: Option<String> = redis::cmd("GET")
            .arg(self.keys.dedupe(dedupe_key))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(id.map(JobId::from))
    }

    /// True while job `id` is still to run or running (ready, delayed or in flight): it
    /// has a payload and is not a dead letter.
    pub async fn is_alive(&self, id: &JobId) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let (has_payload, dead_score): (bool, Option<f64>) = redis::pipe()
            .cmd("HEXISTS")
            .arg(self.keys.job(id.as_str()))
            .arg(super::keys::field::PAYLOAD)
            .cmd("ZSCORE")
            .arg(self.keys.get(super::keys::DEAD))
            .arg(id.as_str())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(has_payload && dead_score.is_none())
    }

    /// Deletes a dedupe key so the same key can be enqueued again (a forced re-run).
    /// Returns true if it existed.
    pub async fn clear_dedupe(&self, dedupe_key: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("DEL")
            .arg(self.keys.dedupe(dedupe_key))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(n > 0)
    }
}

impl<T: Serialize> Queue<T> {
    /// Enqueues one job. With a dedupe key already taken, nothing is stored and the
    /// holder's id is returned as [`Enqueued::Duplicate`].
    pub async fn enqueue(&self, job: &T, options: EnqueueOptions) -> Result<Enqueued, QueueError> {
        let mut out = self.enqueue_many([(job, options)]).await?;
        Ok(out.pop().expect("one result per job"))
    }

    /// `job` prepared for another queue's ack to queue in the same step
    /// ([`Queue::ack_chaining`]), or `None` where that cannot be done and the caller
    /// enqueues it itself: on a Cluster (each queue's keys share a slot of their own), for
    /// a job with a supersede key, and for one without a dedupe key (an ack retried after
    /// its reply was lost must find the job queued already, not queue it again).
    pub fn chained(
        &self,
        job: &T,
        options: &EnqueueOptions,
    ) -> Result<Option<ChainedJob>, QueueError> {
        if self.conn.mode() == RedisMode::Cluster
            || options.supersede.is_some()
            || options.dedupe_key.is_none()
        {
            return Ok(None);
        }
        let payload = serde_json::to_string(job).map_err(|source| QueueError::Encode {
            queue: self.config.name.clone(),
            source,
        })?;
        Ok(Some(ChainedJob {
            queue: self.config.name.clone(),
            keys: [
                super::keys::READY,
                super::keys::DELAYED,
                super::keys::COUNTERS,
            ]
            .map(|k| self.keys.get(k).to_string()),
            id: JobId::generate(),
            payload,
            delay_ms: delay_ms(options),
            dedupe_ttl_ms: self.dedupe_ttl_ms(options),
            dedupe: options
                .dedupe_key
                .as_ref()
                .map(|label| (label.clone(), self.keys.dedupe(label))),
        }))
    }

    /// Enqueues many jobs, up to 1,000 per script call (each call atomic; consecutive jobs
    /// whose dedupe keys live differently go in separate calls). Results are in order.
    pub async fn enqueue_many<J, I>(&self, jobs: I) -> Result<Vec<Enqueued>, QueueError>
    where
        J: Borrow<T>,
        I: IntoIterator<Item = (J, EnqueueOptions)>,
    {
        let mut results = Vec::new();
        let mut batch: Vec<(String, EnqueueOptions)> = Vec::with_capacity(ENQUEUE_CHUNK);
        for (job, opts) in jobs {
            let payload =
                serde_json::to_string(job.borrow()).map_err(|source| QueueError::Encode {
                    queue: self.config.name.clone(),
                    source,
                })?;
            // One script call takes one dedupe lifetime: a job with another starts a call.
            if batch
                .first()
                .is_some_and(|(_, first)| self.dedupe_ttl_ms(first) != self.dedupe_ttl_ms(&opts))
            {
                results.extend(self.enqueue_chunk(std::mem::take(&mut batch)).await?);
            }
            batch.push((payload, opts));
            if batch.len() == ENQUEUE_CHUNK {
                results.extend(self.enqueue_chunk(std::mem::take(&mut batch)).await?);
            }
        }
        if !batch.is_empty() {
            results.extend(self.enqueue_chunk(batch).await?);
        }
        Ok(results)
    }

    /// How long the dedupe key of a job enqueued with `options` lives, in ms.
    fn dedupe_ttl_ms(&self, options: &EnqueueOptions) -> u64 {
        options
            .dedupe_ttl
            .unwrap_or(self.config.dedupe_ttl)
            .as_millis()
            .max(1) as u64
    }

    /// Enqueues `batch` in one script call; its jobs share one dedupe lifetime, the first's.
    async fn enqueue_chunk(
        &self,
        batch: Vec<(String, EnqueueOptions)>,
    ) -> Result<Vec<Enqueued>, QueueError> {
        let ttl = batch
            .first()
            .map_or(1, |(_, first)| self.dedupe_ttl_ms(first));
        let mut inv = self.invocation(&scripts::ENQUEUE);
        inv.arg(ttl).arg(batch.len());
        let ids: Vec<JobId> = batch.iter().map(|_| JobId::generate()).collect();
        match uniform_batch(&batch) {
            Some((delay_ms, rank)) => {
                inv.arg(4).arg(delay_ms).arg(rank);
                for ((payload, opts), id) in batch.iter().zip(&ids) {
                    let key = opts.supersede.as_ref().map_or("", |s| s.key.as_str());
                    inv.arg(id.as_str())
                        .arg(payload.as_str())
                        .arg(key)
                        .arg(super::keys::pending_shard(key));
                }
            }
            None => {
                inv.arg(8);
                let mut next_key = self.keys.script_keys.len() + 1; // Lua KEYS are 1-based
                for ((payload, opts), id) in batch.iter().zip(&ids) {
                    inv.arg(id.as_str())
                        .arg(payload.as_str())
                        .arg(delay_ms(opts));
                    match &opts.dedupe_key {
                        Some(label) => {
                            inv.key(self.keys.dedupe(label))
                                .arg(next_key)
                                .arg(label.as_str());
                            next_key += 1;
                        }
                        None => {
                            inv.arg(0).arg("");
                        }
                    }
                    match &opts.supersede {
                        Some(s) => inv
                            .arg(s.key.as_str())
                            .arg(s.rank)
                            .arg(super::keys::pending_shard(&s.key)),
                        None => inv.arg("").arg(0).arg(0),
                    };
                }
            }
        }
        // The script answers the duplicates only: (index in the batch, the id they duplicate).
        let duplicates: Vec<(usize, String)> = self.run(&inv).await?;
        let mut out: Vec<Enqueued> = ids.into_iter().map(Enqueued::New).collect();
        for (index, existing) in duplicates {
            debug_assert!(index < out.len(), "enqueue.lua answered index {index}");
            if let Some(slot) = out.get_mut(index) {
                *slot = Enqueued::Duplicate(JobId::from(existing));
            }
        }
        self.count(
            m::JOBS_ENQUEUED_TOTAL,
            out.iter().filter(|e| e.is_new()).count() as u64,
        );
        Ok(out)
    }
}

/// A job's delay as `enqueue.lua` takes it: whole ms, at least 1 when there is one, 0 for none.
fn delay_ms(options: &EnqueueOptions) -> u64 {
    options.delay.map_or(0, |d| d.as_millis().max(1) as u64)
}

/// The delay (ms) and supersede rank every job of `batch` shares, when they share both and
/// none has a dedupe key: such a batch (a routine's) goes to `enqueue.lua` in its compact
/// layout, half the arguments a job.
fn uniform_batch(batch: &[(String, EnqueueOptions)]) -> Option<(u64, i64)> {
    let (_, first) = batch.first()?;
    let rank = first.supersede.as_ref()?.rank;
    let delay = delay_ms(first);
    batch
        .iter()
        .all(|(_, o)| {
            o.dedupe_key.is_none()
                && o.supersede.as_ref().is_some_and(|s| s.rank == rank)
                && delay_ms(o) == delay
        })
        .then_some((delay, rank))
}

impl<T: DeserializeOwned> Queue<T> {
    /// Up to `limit` superseded jobs not yet forgotten, oldest first. Record each (e.g. in
    /// the ledger), then [`Queue::forget_superseded`] them: a crash in between leaves them
    /// here for the next caller, so recording must be idempotent. An entry whose payload does
    /// not decode as `T` is dropped with a warning (nothing could record it).
    pub async fn superseded(&self, limit: usize) -> Result<Vec<Superseded<T>>, QueueError> {
        let mut conn = self.conn.clone();
        let key = self.keys.get(super::keys::SUPERSEDED);
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(limit.max(1) - 1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            match decode_superseded(&entry) {
                Some(superseded) => out.push(superseded),
                None => {
                    tracing::warn!(queue = %self.config.name, "undecodable superseded entry dropped");
                    let _: i64 = redis::cmd("LREM")
                        .arg(key)
                        .arg(1)
                        .arg(&entry)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| self.redis_err(e))?;
                }
            }
        }
        Ok(out)
    }
}

/// Decodes an outbox entry: "id|<by rank>|r<own rank>|payload", with an `a` before the by
/// rank for a job superseded on arrival; earlier versions wrote "id|<by rank>|payload"
/// (`a` alike) and "id|payload", each with the job's own payload. No JSON value starts with
/// `r`, so a rank marker is never mistaken for a payload; an "id|payload" entry is told
/// from the others by its payload's `{`, so it must be a JSON object (the routine's were,
/// in the versions that wrote that form).
fn decode_superseded<T: DeserializeOwned>(entry: &str) -> Option<Superseded<T>> {
    let (id, rest) = entry.split_once('|')?;
    let (by_rank, on_arrival, rest) = match rest.split_once('|') {
        Some((by, rest)) if !by.starts_with('{') => match by.strip_prefix('a') {
            Some(by) => (Some(by.parse().ok()?), true, rest),
            None => (Some(by.parse().ok()?), false, rest),
        },
        _ => (None, false, rest),
    };
    let (rank, payload) = match rest.strip_prefix('r') {
        Some(rest) if by_rank.is_some() => {
            let (rank, payload) = rest.split_once('|')?;
            (Some(rank.parse().ok()?), payload)
        }
        _ => (None, rest),
    };
    Some(Superseded {
        id: JobId::from(id),
        job: serde_json::from_str(payload).ok()?,
        rank,
        by_rank,
        on_arrival,
        entry: entry.to_owned(),
    })
}

impl<T> Queue<T> {
    /// Removes recorded entries from the superseded outbox (one script call: a trim of
    /// the outbox's head in the usual case). Safe with concurrent callers: each entry is
    /// removed once.
    pub async fn forget_superseded(&self, done: &[Superseded<T>]) -> Result<(), QueueError> {
        if done.is_empty() {
            return Ok(());
        }
        let mut inv = self.invocation(&scripts::FORGET_SUPERSEDED);
        for s in done {
            inv.arg(&s.entry);
        }
        self.run::<i64>(&inv).await.map(|_| ())
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Leases up to `max` ready jobs to `worker` (promoting due delayed jobs first when ready
    /// runs short), all under one fresh [`DeliveryToken`]. A payload that does not decode as `T` is dead-lettered with the decode
    /// error and not returned; the caller carries on.
    pub async fn fetch(
        &self,
        worker: &WorkerId,
        max: usize,
    ) -> Result<Vec<LeasedJob<T>>, QueueError> {
        let token = DeliveryToken::generate(worker);
        let mut inv = self.invocation(&scripts::FETCH);
        inv.arg(worker.as_str())
            .arg(max.max(1))
            .arg(self.config.lease.as_millis() as u64)
            .arg(self.promote_gate.chunk(self.config.promote_chunk))
            .arg(token.as_str())
            .arg(self.clock.script_arg());
        self.push_reads(&mut inv);
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        let raw = leased_jobs(reply, self.reads.len()).map_err(|e| self.redis_err(e))?;
        Ok(self.decode_leased(raw, &token).await)
    }

    /// Acks job `id` (as [`Queue::ack`]) and leases up to `max` ready jobs to `worker` in
    /// the same script call (as [`Queue::fetch`]), so a busy worker pays one round trip per
    /// job. The ack's result is the first element. Claims without any gate: a worker that
    /// must hold a permit before claiming uses [`Queue::ack`] and [`Queue::fetch`].
    pub async fn ack_and_fetch(
        &self,
        token: &DeliveryToken,
        id: &JobId,
        worker: &WorkerId,
        max: usize,
    ) -> Result<(bool, Vec<LeasedJob<T>>), QueueError> {
        let (acked, _, _, jobs) = self
            .ack_fetch(token, id, Some((worker, max)), None, None)
            .await?;
        Ok((acked, jobs))
    }

    /// Acks job `id` (as [`Queue::ack`]) and queues `chained` (from [`Queue::chained`] of a
    /// queue on the same Redis) in the same script call, leasing up to `max` ready jobs to
    /// `worker` as well when `next` names them. The chained job is queued even when the
    /// lease was lost (the ack then answers false): the work that produced it was done, and
    /// its dedupe key keeps a redelivery from producing it twice. Answers the ack, what
    /// became of the chained job, and the jobs leased.
    pub async fn ack_chaining(
        &self,
        token: &DeliveryToken,
        id: &JobId,
        chained: &ChainedJob,
        next: Option<(&WorkerId, usize)>,
    ) -> Result<(bool, Enqueued, Vec<LeasedJob<T>>), QueueError> {
        let (acked, enqueued, _, jobs) =
            self.ack_fetch(token, id, next, Some(chained), None).await?;
        let enqueued = enqueued.expect("a chained job has an outcome");
        self.count_chained(chained, &enqueued);
        Ok((acked, enqueued, jobs))
    }

    /// Acks job `id` with what its handler attached (as [`Queue::ack_chaining`] for the
    /// chained job; the [`AckWrite`] runs first, in the same script call, lease held or
    /// not, and is told its answer), leasing up to `max` ready jobs to `worker` as well
    /// when `next` names them. Answers the ack and the jobs leased. An error from the
    /// write is the call's error: nothing was acked or queued.
    pub async fn ack_attached(
        &self,
        token: &DeliveryToken,
        id: &JobId,
        attached: &AckAttached,
        next: Option<(&WorkerId, usize)>,
    ) -> Result<(bool, Vec<LeasedJob<T>>), QueueError> {
        let chained = attached.chained.as_ref();
        let write = attached.write.as_ref();
        let (acked, enqueued, written, jobs) =
            self.ack_fetch(token, id, next, chained, write).await?;
        if let (Some(c), Some(e)) = (chained, &enqueued) {
            self.count_chained(c, e);
        }
        if let Some(w) = write {
            (w.answered)(&written);
        }
        Ok((acked, jobs))
    }

    fn count_chained(&self, chained: &ChainedJob, enqueued: &Enqueued) {
        if enqueued.is_new() {
            metrics::counter!(m::JOBS_ENQUEUED_TOTAL, "queue" => chained.queue.clone())
                .increment(1);
        }
    }

    /// `ack_fetch.lua` (with the write's script when there is one): the ack, the chained
    /// job's outcome (when there is one), the write's answer (0 without one), the leases.
    async fn ack_fetch(
        &self,
        token: &DeliveryToken,
        id: &JobId,
        next: Option<(&WorkerId, usize)>,
        chained: Option<&ChainedJob>,
        write: Option<&AckWrite>,
    ) -> Result<(bool, Option<Enqueued>, redis::Value, Vec<LeasedJob<T>>), QueueError> {
        let (next, max) = match next {
            Some((worker, max)) => (Some(DeliveryToken::generate(worker)), max),
            None => (None, 0),
        };
        let script = write.map_or(&*scripts::ACK_FETCH, |w| &w.script.0);
        let mut inv = self.invocation(script);
        inv.key(self.keys.done(id.as_str()))
            .arg(id.as_str())
            .arg(token.as_str())
            .arg(self.config.finished_retention.as_millis() as u64)
            .arg(max)
            .arg(self.config.lease.as_millis() as u64)
            .arg(if max > 0 {
                self.promote_gate.chunk(self.config.promote_chunk)
            } else {
                0
            })
            .arg(next.as_ref().map_or("", |t| t.as_str()))
            .arg(self.clock.script_arg());
        self.push_reads(&mut inv);
        match chained {
            Some(c) => {
                for key in &c.keys {
                    inv.key(key);
                }
                inv.arg(c.id.as_str())
                    .arg(c.payload.as_str())
                    .arg(c.delay_ms)
                    .arg(c.dedupe_ttl_ms);
                match &c.dedupe {
                    Some((label, key)) => {
                        inv.key(key).arg(label.as_str());
                    }
                    None => {
                        inv.arg("");
                    }
                }
            }
            // The write's arguments follow the chained job's five, there or not.
            None if write.is_some() => {
                inv.arg("").arg("").arg(0).arg(0).arg("");
            }
            None => {}
        }
        if let Some(w) = write {
            inv.arg(w.keys.len()).arg(w.args.len());
            for arg in &w.args {
                inv.arg(arg.as_slice());
            }
            for key in &w.keys {
                inv.key(key);
            }
        }
        let reply: Vec<redis::Value> = self.run(&inv).await?;
        let mut reply = reply.into_iter();
        let acked: i64 = take(&mut reply).map_err(|e| self.redis_err(e))?;
        let duplicate: String = take(&mut reply).map_err(|e| self.redis_err(e))?;
        let written = reply.next().unwrap_or(redis::Value::Nil);
        let raw = leased_jobs(reply, self.reads.len()).map_err(|e| self.redis_err(e))?;
        if acked == 1 {
            self.count_outcome(m::OUTCOME_SUCCEEDED);
        }
        // Its own id under its dedupe key: an earlier try of this very call queued it.
        let enqueued = chained.map(|c| {
            if duplicate.is_empty() || duplicate == c.id.as_str() {
                Enqueued::New(c.id.clone())
            } else {
                Enqueued::Duplicate(JobId::from(duplicate))
            }
        });
        let jobs = match next {
            Some(next) => self.decode_leased(raw, &next).await,
            None => Vec::new(),
        };
        Ok((acked == 1, enqueued, written, jobs))
    }

    /// Decodes freshly leased jobs; an undecodable payload is dead-lettered at once.
    async fn decode_leased(&self, raw: Vec<RawLeased>, token: &DeliveryToken) -> Vec<LeasedJob<T>> {
        let mut jobs = Vec::with_capacity(raw.len());
        let leased_at = Instant::now();
        for (id, payload, attempt, first, reads) in raw {
            let id = JobId::from(id);
            match serde_json::from_str::<T>(&payload) {
                Ok(job) => jobs.push(LeasedJob {
                    id,
                    job,
                    attempt,
                    first_delivery: first == 1,
                    token: token.clone(),
                    reads: reads.and_then(|(elements, values)| {
                        Some(LeaseReadValues {
                            elements: elements.try_into().ok()?,
                            values,
                        })
                    }),
                    leased_at,
                }),
                Err(e) => {
                    tracing::warn!(queue = %self.config.name, job_id = %id, error.message = %e,
                        "undecodable payload: dead-lettering it");
                    let failure = JobFailure::permanent(format!("undecodable payload: {e}"));
                    // On a Redis error the lease expires and the reaper retries the burial.
                    if let Err(e) = self.fail(token, &id, attempt, failure).await {
                        tracing::warn!(queue = %self.config.name, job_id = %id,
                            error.message = %e, "could not dead-letter an undecodable payload");
                    }
                }
            }
        }
        jobs
    }
}

/// One leased job as `lease_ready` (common.lua) returns it: id, payload, attempt, 1 when it
/// is the job's first delivery, and its lease reads' answers with the payload strings they
/// were built from (None when none were made).
type RawLeased = (
    String,
    String,
    u32,
    u8,
    Option<(Vec<String>, Vec<Option<String>>)>,
);

/// The next value of a script's flat reply as a `T` (a reply that ends early reads as nil,
/// which only an `Option` accepts).
fn take<T: redis::FromRedisValue>(
    values: &mut impl Iterator<Item = redis::Value>,
) -> Result<T, redis::RedisError> {
    Ok(redis::from_redis_value(
        values.next().unwrap_or(redis::Value::Nil),
    )?)
}

/// The jobs `lease_ready` (common.lua) appended to a script's reply, one after another: id,
/// payload, attempt, 1 when it is the job's first delivery, then, when the call made
/// `reads` lease reads, 0 when they answered nothing, or 1, the two payload strings they
/// were built from and one answer per read.
fn leased_jobs(
    values: impl IntoIterator<Item = redis::Value>,
    reads: usize,
) -> Result<Vec<RawLeased>, redis::RedisError> {
    let mut values = values.into_iter().peekable();
    let mut jobs = Vec::new();
    while values.peek().is_some() {
        let id = take(&mut values)?;
        let payload = take(&mut values)?;
        let attempt = take(&mut values)?;
        let first = take(&mut values)?;
        let answered = if reads > 0 && take::<u8>(&mut values)? == 1 {
            let elements = vec![take(&mut values)?, take(&mut values)?];
            let answers = (0..reads)
                .map(|_| take(&mut values))
                .collect::<Result<Vec<Option<String>>, _>>()?;
            Some((elements, answers))
        } else {
            None
        };
        jobs.push((id, payload, attempt, first, answered));
    }
    Ok(jobs)
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_ERROR_LEN {
        return s;
    }
    let mut end = MAX_ERROR_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redis::Value;

    use super::{decode_superseded, leased_jobs, uniform_batch};
    use crate::queue::EnqueueOptions;

    fn text(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn leased_jobs_are_read_one_after_another_from_a_flat_reply() {
        let reply = vec![
            // Answered: the payload's strings, then one answer per read (nil for none).
            text("a"),
            text("[\"L1\",\"2026-11-25\"]"),
            Value::Int(1),
            Value::Int(1),
            Value::Int(1),
            text("L1"),
            text("2026-11-25"),
            text("{}"),
            Value::Nil,
            // Not answered.
            text("b"),
            text("[\"L2\"]"),
            Value::Int(3),
            Value::Int(0),
            Value::Int(0),
        ];
        let jobs = leased_jobs(reply, 2).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            jobs[0],
            (
                "a".into(),
                "[\"L1\",\"2026-11-25\"]".into(),
                1,
                1,
                Some((
                    vec!["L1".into(), "2026-11-25".into()],
                    vec![Some("{}".into()), None]
                ))
            )
        );
        assert_eq!(jobs[1], ("b".into(), "[\"L2\"]".into(), 3, 0, None));
    }

    #[test]
    fn without_lease_reads_a_job_is_four_values() {
        let reply = vec![text("a"), text("[]"), Value::Int(2), Value::Int(0)];
        assert_eq!(
            leased_jobs(reply, 0).unwrap(),
            [("a".into(), "[]".into(), 2, 0, None)]
        );
        assert!(leased_jobs(Vec::new(), 3).unwrap().is_empty());
    }

    #[test]
    fn a_reply_that_ends_inside_a_job_is_an_error() {
        let reply = vec![text("a"), text("[]"), Value::Int(2)];
        assert!(leased_jobs(reply, 0).is_err());
        let reply = vec![
            text("a"),
            text("[]"),
            Value::Int(2),
            Value::Int(1),
            Value::Int(1),
        ];
        assert!(leased_jobs(reply, 1).is_err());
    }

    #[test]
    fn only_a_batch_of_one_rank_and_one_delay_without_dedupe_keys_is_uniform() {
        let job = |options: EnqueueOptions| (String::from("[]"), options);
        let ranked = |key: &str, rank| EnqueueOptions::default().superseding(key, rank);
        let hour = Duration::from_secs(3600);

        let routine = [job(ranked("a", 7)), job(ranked("b", 7))];
        let delayed = [
            job(ranked("a", 7).delayed(hour)),
            job(ranked("b", 7).delayed(hour)),
        ];
        let two_ranks = [job(ranked("a", 7)), job(ranked("b", 8))];
        let two_delays = [job(ranked("a", 7)), job(ranked("b", 7).delayed(hour))];
        let deduped = [
            job(ranked("a", 7)),
            job(EnqueueOptions {
                dedupe_key: Some("x".into()),
                ..ranked("b", 7)
            }),
        ];
        let unranked = [job(ranked("a", 7)), job(EnqueueOptions::default())];

        assert_eq!(uniform_batch(&routine), Some((0, 7)));
        assert_eq!(uniform_batch(&delayed), Some((3_600_000, 7)));
        assert_eq!(uniform_batch(&two_ranks), None);
        assert_eq!(uniform_batch(&two_delays), None);
        assert_eq!(uniform_batch(&deduped), None);
        assert_eq!(uniform_batch(&unranked), None);
        assert_eq!(uniform_batch(&[]), None);
    }

    #[test]
    fn superseded_entries_decode_in_every_format_ever_written() {
        type Decoded = (String, Option<i64>, Option<i64>, bool, Option<String>);
        let decode = |entry: &str| -> Option<Decoded> {
            decode_superseded::<serde_json::Value>(entry).map(|d| {
                let a = d.job["a"].as_str().map(str::to_owned);
                (d.id.as_str().to_owned(), d.rank, d.by_rank, d.on_arrival, a)
            })
        };
        let xy = Some("x|y".to_owned());

        let replaced = decode(r#"j1|739580|r739579|{"a":"x|y"}"#);
        let arrived = decode(r#"j3|a739581|r739580|{"a":"x|y"}"#);
        let ranked = decode(r#"j1|739580|{"a":"x|y"}"#);
        let ranked_on_arrival = decode(r#"j3|a739581|{"a":"x|y"}"#);
        let oldest = decode(r#"j2|{"a":"x|y"}"#);

        let j = |id: &str| id.to_owned();
        assert_eq!(
            replaced,
            Some((j("j1"), Some(739579), Some(739580), false, xy.clone()))
        );
        assert_eq!(
            arrived,
            Some((j("j3"), Some(739580), Some(739581), true, xy.clone()))
        );
        assert_eq!(
            ranked,
            Some((j("j1"), None, Some(739580), false, xy.clone()))
        );
        assert_eq!(
            ranked_on_arrival,
            Some((j("j3"), None, Some(739581), true, xy.clone()))
        );
        assert_eq!(oldest, Some((j("j2"), None, None, false, xy)));
        assert!(decode("j3|not-a-rank|{}").is_none());
        assert!(decode("j3|739580|rnot-a-rank|{}").is_none());
        assert!(decode("j3|739580|r739579").is_none());
        assert!(decode("no separator").is_none());
    }
}

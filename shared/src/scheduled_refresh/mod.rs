//! Keeps each login's nightly refresh at Flinks in step with the registry's active flag.
//!
//! Flinks bills every LoginId whose nightly refresh is on, so a login that becomes inactive
//! in the registry must be switched off at Flinks (`PATCH /SetScheduledRefresh`,
//! `IsActivated: false`), and one that becomes active again switched back on, by the
//! system rather than by an operator remembering to.
//!
//! # Durability without a cross-slot script
//!
//! The registry's keys carry no common hash tag, so no Lua script may touch both a login's
//! hash and the queue (Redis Cluster). Instead:
//!
//! 1. The registry write (`registry_write.lua`, each login's hash on its own) sets the active
//!    flag **and**, in the same script, `flinks_desired`, a fresh `flinks_stamp` and
//!    `flinks_scheduled_refresh = pending`. The change is durable from that step on.
//! 2. The writer then indexes the login in its key bucket's `logins:flinks_unconfirmed` ZSET (score =
//!    stamp) and enqueues a [`ScheduledRefreshJob`] on the `deactivation` queue, deduped
//!    per (login, stamp).
//! 3. A sweeper ([`ScheduledRefresh::sweep`]) re-enqueues every indexed login still pending
//!    (dedupe makes that free when the job exists), and [`ScheduledRefresh::repair_index`]
//!    re-indexes pending logins that a crash between steps 1 and 2 left out of the index
//!    (every write is marked open until its step 2, so the repair reads the registry only
//!    when a mark outlived its writer: [`crate::write_marks`]).
//!
//! So a crash after step 1 delays the call but never loses it.
//!
//! # Only the latest change counts
//!
//! A job whose stamp is no longer the login's is superseded and calls nothing. If a newer
//! change wants the other value while an older call was in flight, that call may land at
//! Flinks after the newer one; the confirm script then re-opens the login under a new
//! stamp, so the value Flinks ends with is always the registry's.
//!
//! Each confirmed change appends an `activated` / `deactivated` event ([`crate::events`])
//! before the login leaves the index, so a crash in between is caught by the sweep.
//!
//! States shown per login: `on` / `off` (Flinks confirmed with a 200), `pending` (queued or
//! being retried), `failed` (Flinks refused permanently, e.g. an unknown LoginId; recorded
//! with its error and not retried until the login is written again).

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::redis_conn::RedisConn;
use redis::Script;
use serde::Serialize;

use crate::domain::LoginId;
use crate::events::{Events, EventsError};
use crate::jobs::{ScheduledRefreshJob, DEACTIVATION_QUEUE};
use crate::keys::KeySpace;
use crate::queue::{EnqueueOptions, Queue, QueueConfig, QueueError};
use crate::write_marks;

static CONFIRM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/scheduled_refresh/confirm.lua")));
static FAIL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/scheduled_refresh/fail.lua")));
static UNINDEX: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/scheduled_refresh/unindex.lua")));

/// Index entries read per sweep page; logins scanned per repair page.
const PAGE: usize = 1_000;

/// How old a registry write's mark must be before the index repair takes its writer for
/// stopped: a live writer finishes a batch in well under a second, and clocks of hosts
/// differ by far less.
pub const REPAIR_GRACE: Duration = Duration::from_secs(120);

/// Why a scheduled-refresh operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduledRefreshError {
    /// Redis did not answer or refused the command; the caller retries later.
    #[error("scheduled refresh: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The queue refused the enqueue.
    #[error("scheduled refresh: {0}")]
    Queue(#[from] QueueError),
    /// The `activated` / `deactivated` event could not be appended; the sweep retries.
    #[error("scheduled refresh: {0}")]
    Events(#[from] EventsError),
}

/// A login's nightly-refresh state at Flinks, as far as the registry knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledRefreshState {
    /// Flinks confirmed nightly refresh on.
    On,
    /// Flinks confirmed nightly refresh off.
    Off,
    /// A change is queued or being retried.
    Pending,
    /// Flinks refused the change permanently (see the login's `flinks_error`).
    Failed,
}

impl ScheduledRefreshState {
    /// The name stored and shown (`on`, `off`, `pending`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }

    /// The state stored as `raw`, if it is one.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            "pending" => Some(Self::Pending),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Not confirmed by Flinks (pending or failed).
    pub fn is_unconfirmed(self) -> bool {
        matches!(self, Self::Pending | Self::Failed)
    }
}

/// What [`ScheduledRefresh::confirm`] did with a 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The change was the latest: the login is now `on` / `off`.
    Settled,
    /// A newer change wanting the same value superseded it; its job settles it.
    Superseded,
    /// A newer change wants the other value; a fresh job was queued to send it again.
    Reopened,
    /// The login is no longer registered.
    Gone,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Pending logins whose job was (re-)enqueued (new jobs only).
    pub requeued: u64,
    /// Settled logins removed from the index.
    pub removed: u64,
}

/// A fresh change stamp: microseconds since the epoch plus `offset` (a batch passes each
/// record's position so stamps are unique within it).
pub fn new_stamp(offset: u64) -> u64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    micros + offset
}

/// Each job with its (login, stamp) dedupe key, collected so no closure lives across an
/// await (that would make the futures of callers not `Send`).
fn with_dedupe(jobs: &[ScheduledRefreshJob]) -> Vec<(ScheduledRefreshJob, EnqueueOptions)> {
    jobs.iter()
        .map(|job| (job.clone(), EnqueueOptions::dedupe(job.dedupe_key())))
        .collect()
}

/// The scheduled-refresh side of the registry of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct ScheduledRefresh {
    conn: RedisConn,
    keys: KeySpace,
    queue: Queue<ScheduledRefreshJob>,
    events: Events,
}

impl ScheduledRefresh {
    /// For the namespace of `keys`, enqueueing with the default queue configuration (only
    /// its dedupe TTL matters to an enqueue).
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        let queue = Queue::new(conn.clone(), keys, QueueConfig::new(DEACTIVATION_QUEUE));
        Self::with_queue(conn, keys, queue)
    }

    /// For the namespace of `keys`, on `queue` (the worker's, configured from settings).
    pub fn with_queue(conn: RedisConn, keys: &KeySpace, queue: Queue<ScheduledRefreshJob>) -> Self {
        Self {
            events: Events::new(conn.clone(), keys),
            conn,
            keys: keys.clone(),
            queue,
        }
    }

    /// The `deactivation` queue.
    pub fn queue(&self) -> &Queue<ScheduledRefreshJob> {
        &self.queue
    }

    /// Step 2 of a change (after the registry script made it durable): index the logins,
    /// then enqueue their jobs (deduped per login and stamp).
    pub async fn publish(&self, jobs: &[ScheduledRefreshJob]) -> Result<(), ScheduledRefreshError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.zadd(
                self.index_of(&job.login_id),
                job.login_id.as_str(),
                job.stamp,
            )
            .ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
        self.queue.enqueue_many(with_dedupe(jobs)).await?;
        Ok(())
    }

    /// Whether `job` is still the login's latest change and not yet settled (a job that
    /// is not calls nothing).
    pub async fn is_current(
        &self,
        job: &ScheduledRefreshJob,
    ) -> Result<bool, ScheduledRefreshError> {
        let mut conn = self.conn.clone();
        let (stamp, state): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.login(job.login_id.as_str()))
            .arg("flinks_stamp")
            .arg("flinks_scheduled_refresh")
            .query_async(&mut conn)
            .await?;
        Ok(stamp == Some(job.stamp) && state.as_deref() == Some("pending"))
    }

    /// Flinks answered 200 to `job`'s call: settle the login (see [`Confirmed`]).
    pub async fn confirm(
        &self,
        job: &ScheduledRefreshJob,
    ) -> Result<Confirmed, ScheduledRefreshError> {
        let mut conn = self.conn.clone();
        let reopen = new_stamp(0).max(job.stamp + 1);
        let result: i64 = CONFIRM
            .key(self.keys.login(job.login_id.as_str()))
            .arg(job.stamp)
            .arg(if job.activate { "1" } else { "0" })
            .arg(reopen)
            .invoke_async(&mut conn)
            .await?;
        match result {
            1 => {
                // Before the unindex: a crash in between leaves the login indexed, and the
                // sweep appends the event then (deduplicated by the stamp).
                self.events
                    .flinks_confirmed(&job.login_id, job.activate, job.stamp, chrono::Utc::now())
                    .await?;
                self.unindex(&job.login_id, job.stamp).await?;
                Ok(Confirmed::Settled)
            }
            2 => {
                self.publish(&[ScheduledRefreshJob {
                    login_id: job.login_id.clone(),
                    activate: !job.activate,
                    stamp: reopen,
                }])
                .await?;
                Ok(Confirmed::Reopened)
            }
            0 => Ok(Confirmed::Superseded),
            _ => {
                self.unindex(&job.login_id, job.stamp).await?;
                Ok(Confirmed::Gone)
            }
        }
    }

    /// Flinks refused `job` permanently: the login becomes `failed` with `message` (unless
    /// a newer change superseded it). Returns whether it was recorded.
    pub async fn record_failure(
        &self,
        job: &ScheduledRefreshJob,
        message: &str,
    ) -> Result<bool, ScheduledRefreshError> {
        let mut conn = self.conn.clone();
        let recorded: i64 = FAIL
            .key(self.keys.login(job.login_id.as_str()))
            .arg(job.stamp)
            .arg(message)
            .invoke_async(&mut conn)
            .await?;
        Ok(recorded == 1)
    }

    /// The index ZSET of `login`'s key bucket.
    fn index_of(&self, login: &LoginId) -> String {
        self.keys
            .logins_flinks_unconfirmed(self.keys.bucket_of(login.as_str()))
    }

    async fn unindex(&self, login: &LoginId, score: u64) -> Result<bool, ScheduledRefreshError> {
        let mut conn = self.conn.clone();
        let removed: i64 = UNINDEX
            .key(self.index_of(login))
            .arg(login.as_str())
            .arg(score)
            .invoke_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    /// Walks the index: re-enqueues the job of every login still pending (a no-op while
    /// its job exists), removes settled logins, keeps failed ones.
    pub async fn sweep(&self) -> Result<SweepReport, ScheduledRefreshError> {
        let mut report = SweepReport::default();
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        loop {
            let (raw, next) = self.scan_unconfirmed(cursor, PAGE).await?;
            let entries: Vec<(LoginId, u64)> = raw
                .chunks_exact(2)
                .filter_map(|pair| Some((LoginId::parse(&pair[0]).ok()?, pair[1].parse().ok()?)))
                .collect();
            let mut jobs = Vec::new();
            for (login, score) in entries {
                let (desired, stamp, state): (Option<String>, Option<u64>, Option<String>) =
                    redis::cmd("HMGET")
                        .arg(self.keys.login(login.as_str()))
                        .arg("flinks_desired")
                        .arg("flinks_stamp")
                        .arg("flinks_scheduled_refresh")
                        .query_async(&mut conn)
                        .await?;
                match (state.as_deref(), desired, stamp) {
                    (Some("pending"), Some(desired), Some(stamp)) => {
                        jobs.push(ScheduledRefreshJob {
                            login_id: login,
                            activate: desired == "1",
                            stamp,
                        })
                    }
                    (Some("failed"), _, _) => {}
                    (Some(settled @ ("on" | "off")), _, Some(stamp)) => {
                        // A confirmation whose caller stopped before its event: append it
                        // (a no-op when the caller did).
                        self.events
                            .flinks_confirmed(&login, settled == "on", stamp, chrono::Utc::now())
                            .await?;
                        if self.unindex(&login, score).await? {
                            report.removed += 1;
                        }
                    }
                    _ => {
                        if self.unindex(&login, score).await? {
                            report.removed += 1;
                        }
                    }
                }
            }
            if !jobs.is_empty() {
                let enqueued = self.queue.enqueue_many(with_dedupe(&jobs)).await?;
                report.requeued += enqueued.iter().filter(|e| e.is_new()).count() as u64;
            }
            match next {
                Some(next) => cursor = next,
                None => return Ok(report),
            }
        }
    }

    /// Indexes the logins pending or failed but missing from the index (a writer that
    /// stopped between the registry script and the index), if a write's mark says one may
    /// have ([`crate::write_marks`]): then it scans every login. Returns how many it
    /// indexed. Cheap when no write stopped half-way: run it at start and now and then.
    pub async fn repair_index(&self) -> Result<u64, ScheduledRefreshError> {
        self.repair_index_older_than(REPAIR_GRACE).await
    }

    /// [`ScheduledRefresh::repair_index`], taking marks older than `grace` for writers
    /// that stopped.
    pub async fn repair_index_older_than(
        &self,
        grace: Duration,
    ) -> Result<u64, ScheduledRefreshError> {
        let mut conn = self.conn.clone();
        let due = write_marks::repair_due(&mut conn, &self.keys, grace).await?;
        if !due.walk() {
            return Ok(0);
        }
        let added = self.index_unconfirmed_logins().await?;
        write_marks::repaired(&mut conn, &self.keys, &due).await?;
        Ok(added)
    }

    /// Scans every login and indexes those pending or failed but missing from the index.
    /// Returns how many it indexed.
    async fn index_unconfirmed_logins(&self) -> Result<u64, ScheduledRefreshError> {
        let mut conn = self.conn.clone();
        let mut added = 0;
        let mut cursor = 0u64;
        loop {
            let (ids, next) = crate::login_index::page(
                &mut conn,
                &self.keys,
                crate::login_index::Which::All,
                cursor,
                PAGE,
            )
            .await?;
            if !ids.is_empty() {
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.cmd("HMGET")
                        .arg(self.keys.login(id))
                        .arg("flinks_scheduled_refresh")
                        .arg("flinks_stamp");
                }
                let rows: Vec<(Option<String>, Option<u64>)> = pipe.query_async(&mut conn).await?;
                let mut fix = redis::pipe();
                let mut any = false;
                for (id, (state, stamp)) in ids.iter().zip(rows) {
                    let unconfirmed = state
                        .as_deref()
                        .and_then(ScheduledRefreshState::parse)
                        .is_some_and(ScheduledRefreshState::is_unconfirmed);
                    if unconfirmed {
                        fix.cmd("ZADD")
                            .arg(self.keys.logins_flinks_unconfirmed(self.keys.bucket_of(id)))
                            .arg("NX")
                            .arg(stamp.unwrap_or(0))
                            .arg(id);
                        any = true;
                    }
                }
                if any {
                    let counts: Vec<u64> = fix.query_async(&mut conn).await?;
                    added += counts.iter().sum::<u64>();
                }
            }
            match next {
                Some(next) => cursor = next,
                None => return Ok(added),
            }
        }
    }

    /// Logins whose change Flinks has not confirmed (pending or failed).
    pub async fn count_unconfirmed(&self) -> Result<u64, ScheduledRefreshError> {
        let mut pipe = redis::pipe();
        for bucket in self.keys.all_buckets() {
            pipe.zcard(self.keys.logins_flinks_unconfirmed(bucket));
        }
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(counts.iter().sum())
    }

    /// One page of unconfirmed LoginIds from `cursor` (0 first); `None` when done.
    pub async fn list_unconfirmed(
        &self,
        cursor: u64,
        count: usize,
    ) -> Result<(Vec<LoginId>, Option<u64>), ScheduledRefreshError> {
        let (raw, next) = self.scan_unconfirmed(cursor, count).await?;
        let ids = raw
            .chunks_exact(2)
            .filter_map(|pair| LoginId::parse(&pair[0]).ok())
            .collect();
        Ok((ids, next))
    }

    /// One ZSCAN page of the unconfirmed index over its buckets: member, score, member...
    async fn scan_unconfirmed(
        &self,
        cursor: u64,
        count: usize,
    ) -> Result<(Vec<String>, Option<u64>), redis::RedisError> {
        let mut conn = self.conn.clone();
        crate::registry::scan_buckets(
            &mut conn,
            &self.keys,
            "ZSCAN",
            &[KeySpace::logins_flinks_unconfirmed],
            cursor,
            count,
        )
        .await
    }
}

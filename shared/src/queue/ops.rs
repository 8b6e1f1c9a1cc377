//! Ops functions (the `producer queues` commands are thin wrappers): counts per state, list
//! with filters, atomic requeue of dead letters, purge.

use std::collections::BTreeMap;
use std::time::Duration;

use super::core::Queue;
use super::error::QueueError;
use super::keys::{field, lease_of, COUNTERS, DEAD, DELAYED, INFLIGHT, READY, WORKERS};
use super::scripts;
use super::types::{
    DeadPage, DeadSelector, DeliveryToken, JobFilter, JobId, JobInfo, JobState, QueueStats,
};

/// Ids read per page while listing or selecting.
const PAGE: usize = 500;

/// One job as its state's listing names it: its id, its score (delayed: when due; in
/// flight: the lease deadline; dead: when it died) and, in flight, the delivery its
/// in-flight entry names as the lease holder.
pub(super) struct Listed {
    pub(super) id: String,
    pub(super) at: Option<u64>,
    pub(super) holder: Option<String>,
}

impl Listed {
    /// A ready job (a list entry has no score).
    pub(super) fn unscored(id: String) -> Self {
        Self {
            id,
            at: None,
            holder: None,
        }
    }

    /// A delayed or dead job with its score.
    pub(super) fn scored(id: String, at: u64) -> Self {
        Self {
            id,
            at: Some(at),
            holder: None,
        }
    }

    /// An in-flight entry with its lease deadline.
    fn lease(entry: &str, deadline: u64) -> Self {
        let (id, holder) = lease_of(entry);
        Self {
            id: id.to_string(),
            at: Some(deadline),
            holder: holder.map(str::to_string),
        }
    }
}

/// Ready ids read from the head of the list to find the oldest job that is not a
/// tombstone (superseded jobs leave their id behind until a fetch drops it).
const OLDEST_SCAN: isize = 100;

/// A worker process is alive while its last heartbeat is at most this many leases old.
/// Every view of the workers (`queues stats`, the sampler's gauges, the live report)
/// decides with [`worker_alive`], on Redis' clock.
pub const ALIVE_LEASES: u32 = 3;

/// Whether a worker whose last heartbeat was at `last_heartbeat_ms` is alive at `now_ms`
/// (both on Redis' clock, as the queue scripts write heartbeats), given `WORKER_LEASE`.
pub fn worker_alive(last_heartbeat_ms: u64, now_ms: u64, lease: Duration) -> bool {
    last_heartbeat_ms >= alive_since(now_ms, lease)
}

fn alive_since(now_ms: u64, lease: Duration) -> u64 {
    now_ms.saturating_sub(u64::from(ALIVE_LEASES) * lease.as_millis() as u64)
}

/// Redis' clock, in ms since the epoch: the clock the queue scripts stamp jobs and
/// heartbeats with, so every reader compares like with like.
pub async fn redis_now_ms(
    conn: &mut crate::redis_conn::RedisConn,
) -> Result<u64, redis::RedisError> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1_000 + micros / 1_000)
}

impl<T> Queue<T> {
    /// Counts per state and the lifetime counters, on Redis' clock.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut conn = self.conn.clone();
        let now = redis_now_ms(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        self.stats_at(now).await
    }

    /// Counts per state and the lifetime counters, with `now_ms` read from Redis' clock
    /// by the caller (one reading for a whole snapshot of several queues).
    pub async fn stats_at(&self, now: u64) -> Result<QueueStats, QueueError> {
        let alive_since = alive_since(now, self.config.lease);
        let k = |i| self.keys.get(i);
        let mut conn = self.conn.clone();
        #[allow(clippy::type_complexity)]
        let (ready, delayed, due, in_flight, dead, alive, counters): (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            BTreeMap<String, String>,
        ) = redis::pipe()
            .llen(k(READY))
            .zcard(k(DELAYED))
            .zcount(k(DELAYED), "-inf", now)
            .zcard(k(INFLIGHT))
            .zcard(k(DEAD))
            .zcount(k(WORKERS), alive_since, "+inf")
            .hgetall(k(COUNTERS))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        // A corrupt counter reads as 0 rather than hiding every other number.
        let c = |name: &str| counters.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(QueueStats {
            ready: ready.saturating_sub(c("ready_tombstones")),
            delayed,
            delayed_due: due,
            in_flight,
            dead,
            workers_alive: alive,
            enqueued_total: c("enqueued"),
            succeeded_total: c("succeeded"),
            retried_total: c("retried"),
            dead_total: c("dead"),
            rescued_total: c("rescued"),
            requeued_total: c("requeued"),
            superseded_total: c("superseded"),
        })
    }

    /// When the job next in line (the head of the ready list) was enqueued, ms on Redis'
    /// clock; `None` when nothing is ready. A retried or promoted job keeps its first
    /// enqueue time, so this reads "how long the next job has been in the system".
    /// Tombstones at the head are skipped (up to a hundred; beyond that, `None`).
    pub async fn oldest_ready_enqueued_ms(&self) -> Result<Option<u64>, QueueError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.get(READY))
            .arg(0)
            .arg(OLDEST_SCAN - 1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        if ids.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(self.keys.job(id), field::ENQUEUED);
        }
        let stamps: Vec<Option<u64>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(stamps.into_iter().flatten().next())
    }

    /// Every job in flight, soonest deadline first. The in-flight set holds only the jobs
    /// leased right now (bounded by the workers' concurrency), so it is read whole.
    pub(super) async fn leases(&self) -> Result<Vec<Listed>, QueueError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.get(INFLIGHT))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(entries
            .iter()
            .map(|(entry, at)| Listed::lease(entry, *at as u64))
            .collect())
    }

    /// In-flight job counts per worker process.
    pub async fn in_flight_by_worker(&self) -> Result<BTreeMap<String, u64>, QueueError> {
        let mut leases = self.leases().await?;
        // An earlier version's lease keeps its holder in the job's hash.
        let unnamed: Vec<usize> = (0..leases.len())
            .filter(|&i| leases[i].holder.is_none())
            .collect();
        if !unnamed.is_empty() {
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            for &i in &unnamed {
                pipe.hget(self.keys.job(&leases[i].id), field::OWNER);
            }
            let owners: Vec<Option<String>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            for (i, owner) in unnamed.into_iter().zip(owners) {
                leases[i].holder = owner;
            }
        }
        let mut out = BTreeMap::new();
        for owner in leases.into_iter().filter_map(|l| l.holder) {
            let worker = DeliveryToken::worker_of(&owner).to_string();
            *out.entry(worker).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// Worker processes with their last heartbeat (ms since the epoch), newest first.
    pub async fn workers(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("ZREVRANGE")
            .arg(self.keys.get(WORKERS))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))
    }

    /// Up to `limit` jobs in `state` that match `filter` (ready: oldest first; delayed and
    /// in-flight: soonest first; dead: newest first). Pages through the whole state until
    /// `limit` matches are found.
    pub async fn list(
        &self,
        state: JobState,
        filter: &JobFilter,
        limit: usize,
    ) -> Result<Vec<JobInfo>, QueueError> {
        let matches = |job: &JobInfo| filter.matches(job);
        Ok(self.list_from(state, &matches, 0, limit).await?.0)
    }

    /// Like [`Queue::list`] with any predicate, starting at position `start` of the
    /// state's order; also returns the position to continue from, `None` when the state
    /// was read to its end.
    /// Positions shift as jobs move, so a page may skip or repeat a job that moved
    /// meanwhile: this is for inspection, never for selecting work.
    pub async fn list_from(
        &self,
        state: JobState,
        matches: &(dyn Fn(&JobInfo) -> bool + Sync),
        start: usize,
        limit: usize,
    ) -> Result<(Vec<JobInfo>, Option<usize>), QueueError> {
        let mut out = Vec::new();
        let mut pos = start;
        while out.len() < limit {
            let page = self.page_ids(state, pos, PAGE).await?;
            if page.is_empty() {
                return Ok((out, None));
            }
            let positions: BTreeMap<String, usize> = page
                .iter()
                .enumerate()
                .map(|(i, listed)| (listed.id.clone(), pos + i))
                .collect();
            pos += page.len();
            for job in self.describe(state, page).await? {
                if matches(&job) {
                    if out.len() == limit {
                        return Ok((out, Some(positions[job.id.as_str()])));
                    }
                    out.push(job);
                }
            }
        }
        Ok((out, Some(pos)))
    }

    /// Up to `limit` dead letters matching `filter`, newest first.
    pub async fn list_dead(
        &self,
        filter: &JobFilter,
        limit: usize,
    ) -> Result<Vec<JobInfo>, QueueError> {
        self.list(JobState::Dead, filter, limit).await
    }

    /// Dead letters scored above `cursor`, oldest first: about `limit` of them, always
    /// ending on a whole score (letters that share the last score are all included), so a
    /// reader that moves its cursor to [`DeadPage::through`] never skips or re-reads one.
    /// Scores are unique for letters buried by this version, and ties only come from older
    /// data, but the page is correct either way.
    pub async fn dead_after(&self, cursor: u64, limit: usize) -> Result<DeadPage, QueueError> {
        let limit = limit.max(1);
        let mut conn = self.conn.clone();
        let mut page: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.get(DEAD))
            .arg(format!("({cursor}"))
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        if page.len() == limit {
            let last = page[page.len() - 1].1;
            let ties: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(self.keys.get(DEAD))
                .arg(last)
                .arg(last)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            page.retain(|(_, score)| *score != last);
            page.extend(ties);
        }
        let through = page.iter().map(|(_, score)| *score as u64).max();
        let mut letters = Vec::with_capacity(page.len());
        for chunk in page.chunks(PAGE) {
            let chunk = chunk
                .iter()
                .map(|(id, at)| Listed::scored(id.clone(), *at as u64))
                .collect();
            letters.extend(self.describe(JobState::Dead, chunk).await?);
        }
        Ok(DeadPage { letters, through })
    }

    /// The dead-letter review cursor: every letter scored at or below it was reviewed
    /// (by the worker's reconciler). Letters are always buried above it.
    pub async fn dead_review_cursor(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("HGET")
            .arg(self.keys.get(COUNTERS))
            .arg("dead_reviewed")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(raw.and_then(|r| r.parse().ok()).unwrap_or(0))
    }

    /// Moves the review cursor forward to `to` (never back); returns the cursor.
    pub async fn advance_dead_review_cursor(&self, to: u64) -> Result<u64, QueueError> {
        let mut inv = self.invocation(&scripts::REVIEW_DEAD);
        inv.arg(to);
        self.run(&inv).await
    }

    /// Moves the selected dead letters back to ready and returns their ids. Each id is moved
    /// by one atomic script step that only pushes it if it removed it from the dead set, so
    /// a crash half-way loses nothing and two operators at once never enqueue a job twice.
    /// With `reset_attempts` the job gets `max_attempts` fresh deliveries; without, one more.
    /// Dedupe keys are not consulted: requeue works regardless.
    pub async fn requeue_dead(
        &self,
        selector: DeadSelector,
        reset_attempts: bool,
    ) -> Result<Vec<JobId>, QueueError> {
        let mut requeued = Vec::new();
        match selector {
            DeadSelector::Ids(ids) => {
                for chunk in ids.chunks(PAGE) {
                    requeued.extend(self.requeue_ids(chunk, reset_attempts).await?);
                }
            }
            DeadSelector::All => loop {
                let page = self.page_ids(JobState::Dead, 0, PAGE).await?;
                if page.is_empty() {
                    break;
                }
                let ids: Vec<JobId> = page.into_iter().map(|l| JobId::from(l.id)).collect();
                let moved = self.requeue_ids(&ids, reset_attempts).await?;
                // Another operator may have taken the page; only stop when the set is empty.
                requeued.extend(moved);
            },
            DeadSelector::Filter(filter) => {
                let matching: Vec<JobId> = self
                    .list(JobState::Dead, &filter, usize::MAX)
                    .await?
                    .into_iter()
                    .map(|j| j.id)
                    .collect();
                for chunk in matching.chunks(PAGE) {
                    requeued.extend(self.requeue_ids(chunk, reset_attempts).await?);
                }
            }
        }
        Ok(requeued)
    }

    async fn requeue_ids(
        &self,
        ids: &[JobId],
        reset_attempts: bool,
    ) -> Result<Vec<JobId>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.invocation(&scripts::REQUEUE_DEAD);
        inv.arg(if reset_attempts { "1" } else { "0" });
        for id in ids {
            inv.arg(id.as_str());
        }
        let out: Vec<String> = self.run(&inv).await?;
        Ok(out.into_iter().map(JobId::from).collect())
    }

    /// Deletes the dead letters `ids`, payload and all (ids not in the dead set are
    /// skipped); returns the ids this call deleted, so two callers never both act on one.
    pub async fn drop_dead(&self, ids: &[JobId]) -> Result<Vec<JobId>, QueueError> {
        let mut dropped = Vec::new();
        for chunk in ids.chunks(PAGE) {
            let mut inv = self.invocation(&scripts::DROP_DEAD);
            for id in chunk {
                inv.arg(id.as_str());
            }
            let out: Vec<String> = self.run(&inv).await?;
            dropped.extend(out.into_iter().map(JobId::from));
        }
        Ok(dropped)
    }

    /// Deletes dead letters that died more than `older_than` ago, payload and all.
    /// Returns how many.
    pub async fn purge_dead(&self, older_than: Duration) -> Result<usize, QueueError> {
        self.purge_dead_where(older_than, false).await
    }

    /// Like [`Queue::purge_dead`], but only letters the review cursor has passed
    /// ([`Queue::dead_review_cursor`]): a letter not reviewed yet is never deleted.
    pub async fn purge_reviewed_dead(&self, older_than: Duration) -> Result<usize, QueueError> {
        self.purge_dead_where(older_than, true).await
    }

    async fn purge_dead_where(
        &self,
        older_than: Duration,
        reviewed_only: bool,
    ) -> Result<usize, QueueError> {
        let mut purged = 0;
        loop {
            let mut inv = self.invocation(&scripts::PURGE_DEAD);
            inv.arg(u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX))
                .arg(PAGE)
                .arg(if reviewed_only { "1" } else { "0" });
            let n: usize = self.run(&inv).await?;
            purged += n;
            if n < PAGE {
                return Ok(purged);
            }
        }
    }

    pub(super) async fn page_ids(
        &self,
        state: JobState,
        start: usize,
        count: usize,
    ) -> Result<Vec<Listed>, QueueError> {
        let mut conn = self.conn.clone();
        let stop = (start + count - 1) as i64;
        let res = match state {
            JobState::Ready => {
                let ids: Result<Vec<String>, _> = redis::cmd("LRANGE")
                    .arg(self.keys.get(READY))
                    .arg(start)
                    .arg(stop)
                    .query_async(&mut conn)
                    .await;
                ids.map(|v| v.into_iter().map(Listed::unscored).collect())
            }
            JobState::Delayed | JobState::InFlight | JobState::Dead => {
                let (key, cmd) = match state {
                    JobState::Delayed => (DELAYED, "ZRANGE"),
                    JobState::InFlight => (INFLIGHT, "ZRANGE"),
                    _ => (DEAD, "ZREVRANGE"),
                };
                let ids: Result<Vec<(String, f64)>, _> = redis::cmd(cmd)
                    .arg(self.keys.get(key))
                    .arg(start)
                    .arg(stop)
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await;
                ids.map(|v| {
                    v.into_iter()
                        .map(|(entry, s)| match state {
                            JobState::InFlight => Listed::lease(&entry, s as u64),
                            _ => Listed::scored(entry, s as u64),
                        })
                        .collect()
                })
            }
        };
        res.map_err(|e| self.redis_err(e))
    }

    pub(super) async fn describe(
        &self,
        state: JobState,
        page: Vec<Listed>,
    ) -> Result<Vec<JobInfo>, QueueError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for listed in &page {
            pipe.cmd("HMGET").arg(self.keys.job(&listed.id)).arg(&[
                field::PAYLOAD,
                field::ATTEMPTS,
                field::ERROR,
                field::DEDUPE,
                field::OWNER,
                field::ENQUEUED,
            ]);
        }
        #[allow(clippy::type_complexity)]
        let jobs: Vec<(
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        )> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        let mut out = Vec::with_capacity(page.len());
        for (listed, job) in page.into_iter().zip(jobs) {
            let (payload, spent, last_error, dedupe_key, owner, enqueued) = job;
            let Some(payload) = payload else {
                continue; // acked or purged between the two reads
            };
            // A corrupt count reads as 0, as the scripts read it.
            let spent: u32 = spent.and_then(|a| a.parse().ok()).unwrap_or(0);
            // A lease named in its entry is a delivery the hash does not count yet; an
            // earlier version's lease counted it and keeps its holder in the hash.
            let (attempts, owner) = match listed.holder {
                Some(holder) => (spent.saturating_add(1), Some(holder)),
                None => (spent, owner),
            };
            out.push(JobInfo {
                id: JobId::from(listed.id),
                state,
                payload,
                attempts,
                last_error,
                dedupe_key,
                owner,
                enqueued_at_ms: enqueued.and_then(|t| t.parse().ok()),
                at_ms: listed.at,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_alive_while_its_heartbeat_is_at_most_three_leases_old() {
        let lease = Duration::from_secs(30);
        let now = 1_000_000_000;
        assert!(worker_alive(now, now, lease));
        assert!(worker_alive(now - 90_000, now, lease));
        assert!(!worker_alive(now - 90_001, now, lease));
        // A heartbeat stamped after the reading (another client's TIME) is alive too.
        assert!(worker_alive(now + 5, now, lease));
        assert!(worker_alive(0, 10, lease));
    }
}

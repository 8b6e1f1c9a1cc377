//! Upgrades of what earlier versions stored.
//!
//! Jobs kept each field in its own queue-wide hash (`payload`, `attempts`, `owner`, ...);
//! they move to one hash per job (`job:<id>`). Workers and producers run the move at start,
//! before touching the queue; it is idempotent (a second run finds nothing to move) and resumable (each job moves whole in
//! one script call, so a crash half-way loses nothing). A job leased by an old worker keeps
//! its lease record; that worker's ack no longer finds it and the reaper runs the job again,
//! as after any lost lease.
//!
//! It does not make old and new versions run side by side: an old process keeps writing the
//! old layout, which new workers never read. [`Queue::migrate_layout`] detects that (old jobs
//! reappearing after several passes) and refuses with [`QueueError::LegacyWriters`].
//!
//! Pending entries (a supersede key's latest job) lived in one hash per queue; they move to
//! small shards (see [`super::keys::PENDING_SHARDS`]), a chunk per script call. Until the
//! old hash is gone the enqueue script reads it too, so an older process writing it during
//! an upgrade loses no dedupe record.
//!
//! A superseding job's dedupe record is its key's pending entry, kept after the job ends;
//! earlier versions kept a dedupe key per job instead and dropped the pending entry when
//! the job ended. So for one dedupe TTL after the first start of this version on a queue
//! that was used before, [`Queue::legacy_dedupe_open`] says so and the routine passes its
//! dedupe keys as well: a date run before the upgrade is not queued again for a login whose
//! job of that date already ended.

use std::sync::LazyLock;

use redis::Script;

use super::core::Queue;
use super::error::QueueError;
use super::scripts;

/// Set in the counters at the first start of a version that dedupes superseding jobs by
/// their pending entry (epoch ms).
const RANK_DEDUPE_SINCE: &str = "rank_dedupe_since";
/// Until when (epoch ms) dedupe keys of an earlier version may still be alive.
const LEGACY_DEDUPE_UNTIL: &str = "legacy_dedupe_until";

/// See the script's header.
static OPEN_LEGACY_WINDOW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/queue/open_legacy_dedupe_window.lua")));

/// Jobs scanned per script call.
const CHUNK: usize = 500;
/// Whole passes over the old payload hash before concluding that an old process still
/// writes it.
const MAX_PASSES: usize = 3;

impl<T> Queue<T> {
    /// Moves every job stored in the previous layout into its own hash and deletes the old
    /// hashes. Returns how many jobs moved (0 when there was nothing to do).
    pub async fn migrate_layout(&self) -> Result<u64, QueueError> {
        let mut moved = 0u64;
        for _ in 0..MAX_PASSES {
            let mut cursor = "0".to_string();
            loop {
                let mut inv = self.invocation(&scripts::MIGRATE);
                for key in self.keys.legacy() {
                    inv.key(key);
                }
                inv.arg(&cursor).arg(CHUNK);
                let (next, n, done): (String, u64, i64) = self.run(&inv).await?;
                moved += n;
                if done == 1 {
                    if moved > 0 {
                        tracing::info!(queue = %self.name(), jobs = moved,
                            "moved jobs of the previous storage layout to one hash per job");
                    }
                    return Ok(moved);
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Err(QueueError::LegacyWriters {
            queue: self.name().to_string(),
        })
    }

    /// Moves the pending entries of the one-hash layout into their shards and deletes the
    /// old hash. Returns how many entries moved (0 when there was nothing to do). When an
    /// older process keeps writing the old hash, the entries it writes stay there after
    /// [`MAX_PASSES`] passes; enqueues still read them, and the next start moves them.
    pub async fn migrate_pending(&self) -> Result<u64, QueueError> {
        let legacy = self.keys.get(super::keys::PENDING).to_string();
        let mut conn = self.conn.clone();
        let mut moved = 0u64;
        for _ in 0..MAX_PASSES {
            let mut cursor = 0u64;
            loop {
                let (next, flat): (u64, Vec<String>) = redis::cmd("HSCAN")
                    .arg(&legacy)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(CHUNK)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.redis_err(e))?;
                if !flat.is_empty() {
                    let mut inv = self.invocation(&scripts::MIGRATE_PENDING);
                    for entry in flat.chunks_exact(2) {
                        inv.arg(&entry[0])
                            .arg(super::keys::pending_shard(&entry[0]))
                            .arg(&entry[1]);
                    }
                    moved += self.run::<u64>(&inv).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            let left: bool = redis::cmd("EXISTS")
                .arg(&legacy)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            if !left {
                break;
            }
        }
        if moved > 0 {
            tracing::info!(queue = %self.name(), entries = moved,
                "moved the dedupe records of superseding jobs into their shards");
        }
        Ok(moved)
    }

    /// Notes the first start of this version on the queue: when the queue was used before
    /// (it has counted an enqueue), the previous version's dedupe keys may still be alive for
    /// one dedupe TTL, and [`Queue::legacy_dedupe_open`] says so until then. One atomic
    /// step, so a process starting beside another, or a crash, never sees the note without
    /// the window. Idempotent.
    pub async fn open_legacy_dedupe_window(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let opened: i64 = OPEN_LEGACY_WINDOW
            .key(self.keys.get(super::keys::COUNTERS))
            .arg(RANK_DEDUPE_SINCE)
            .arg(LEGACY_DEDUPE_UNTIL)
            .arg(self.config().dedupe_ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        if opened == 1 {
            tracing::info!(queue = %self.name(), "dedupe keys of the previous version are honoured for one dedupe TTL");
        }
        Ok(())
    }

    /// Whether dedupe keys of an earlier version may still be alive (see the module docs).
    /// A value that is not a time (corrupt) reads as open: honouring old keys is only
    /// slower, never wrong.
    pub async fn legacy_dedupe_open(&self) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let until: Option<String> = redis::cmd("HGET")
            .arg(self.keys.get(super::keys::COUNTERS))
            .arg(LEGACY_DEDUPE_UNTIL)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(until.is_some_and(|until| {
            until
                .parse::<i64>()
                .map_or(true, |until| chrono::Utc::now().timestamp_millis() < until)
        }))
    }
}

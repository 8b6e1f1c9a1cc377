//! Marks of registry writes in progress, so that the scheduled-refresh index repair reads
//! the registry only when a writer may have stopped half-way.
//!
//! A registry write has two steps (see [`crate::scheduled_refresh`]): the registry script
//! makes a login's Flinks change `pending`, then the writer indexes it and enqueues its
//! job. A writer that dies in between leaves a pending change the sweeper cannot see, and
//! finding it means reading every login's hash: at a million logins, a million reads. Run
//! by every worker at start and every few minutes, that walk cost Redis more than the
//! writes it guards, to find nothing nearly every time.
//!
//! So every write is marked: before its first step a writer adds a mark (a ZSET member
//! scored by the writer's clock, ms) to `ns:registry:writes_open`, and removes it after its
//! second step (an import removes its batches' marks together, every 30 s and at its end).
//! A mark older than [`crate::scheduled_refresh::REPAIR_GRACE`] belongs to a writer that
//! stopped; only then does the repair walk the registry, and it removes the marks it saw
//! once the walk is done. A write that knows it left changes unpublished (a
//! script reloaded half-way through a batch) leaves a mark scored 0, due at once.
//!
//! Data written before writes were marked may hold a change a crash left unindexed, with no
//! mark to say so. The layout HASH's `writes_marked` field says the namespace needs no such
//! walk: set when a process finds the namespace empty ([`crate::layout::prepare`]), or by
//! the first repair's full walk. A producer of an earlier version still writing in a rolling
//! upgrade writes unmarked; upgrade producers with the workers.

use crate::keys::KeySpace;
use crate::redis_conn::RedisConn;

/// The layout HASH's field: `1` when every registry write of the namespace is marked.
pub const WRITES_MARKED_FIELD: &str = "writes_marked";

/// Marks read per repair, or removed per command, at most: the repair removes what it
/// read, so a pile of stale marks is cleared over a few repairs, each one a single walk.
const STALE_PAGE: usize = 1_000;

/// One write's mark: a member of the marks ZSET unique to this write.
#[derive(Debug, Clone)]
pub(crate) struct WriteMark {
    member: String,
}

impl WriteMark {
    /// A fresh mark (not yet stored).
    pub(crate) fn new() -> Self {
        Self {
            member: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Adds to `pipe` what stores the mark, scored by this process' clock.
    pub(crate) fn open(&self, pipe: &mut redis::Pipeline, keys: &KeySpace) {
        pipe.zadd(keys.registry_writes_open(), &self.member, now_ms())
            .ignore();
    }

    /// Adds to `pipe` a second mark, due at once: the write may have left changes
    /// unpublished, whatever happens to its own mark.
    pub(crate) fn flag_unpublished(&self, pipe: &mut redis::Pipeline, keys: &KeySpace) {
        pipe.zadd(
            keys.registry_writes_open(),
            format!("{}:unpublished", self.member),
            0,
        )
        .ignore();
    }

    /// Removes the mark: both steps of the write are done.
    pub(crate) async fn close(
        &self,
        conn: &mut RedisConn,
        keys: &KeySpace,
    ) -> Result<(), redis::RedisError> {
        Self::close_all(conn, keys, std::slice::from_ref(self)).await
    }

    /// Removes every mark of `marks` (writes done), a thousand per command.
    pub(crate) async fn close_all(
        conn: &mut RedisConn,
        keys: &KeySpace,
        marks: &[WriteMark],
    ) -> Result<(), redis::RedisError> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for chunk in marks.chunks(STALE_PAGE) {
            pipe.cmd("ZREM")
                .arg(keys.registry_writes_open())
                .arg(chunk.iter().map(|m| m.member.as_str()).collect::<Vec<_>>())
                .ignore();
        }
        pipe.query_async(conn).await
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What a repair must do before it may skip the walk.
#[derive(Debug, Default)]
pub(crate) struct RepairDue {
    /// Marks older than the grace: writes that stopped between their steps.
    pub(crate) stale: Vec<String>,
    /// The namespace holds data written before writes were marked.
    pub(crate) unmarked_data: bool,
}

impl RepairDue {
    /// Whether the registry must be walked.
    pub(crate) fn walk(&self) -> bool {
        self.unmarked_data || !self.stale.is_empty()
    }
}

/// Reads whether a repair must walk the registry: marks older than `grace` ms, and whether
/// the namespace's writes are all marked (one round trip).
pub(crate) async fn repair_due(
    conn: &mut RedisConn,
    keys: &KeySpace,
    grace: std::time::Duration,
) -> Result<RepairDue, redis::RedisError> {
    let before = now_ms().saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let (stale, marked): (Vec<String>, Option<String>) = redis::pipe()
        .cmd("ZRANGEBYSCORE")
        .arg(keys.registry_writes_open())
        .arg("-inf")
        .arg(before)
        .arg("LIMIT")
        .arg(0)
        .arg(STALE_PAGE)
        .hget(keys.layout(), WRITES_MARKED_FIELD)
        .query_async(conn)
        .await?;
    Ok(RepairDue {
        stale,
        unmarked_data: marked.as_deref() != Some("1"),
    })
}

/// After a walk that started once `due` was read: the stale marks it covered are removed,
/// and the namespace is known to hold no unmarked data any more.
pub(crate) async fn repaired(
    conn: &mut RedisConn,
    keys: &KeySpace,
    due: &RepairDue,
) -> Result<(), redis::RedisError> {
    let mut pipe = redis::pipe();
    if !due.stale.is_empty() {
        pipe.cmd("ZREM")
            .arg(keys.registry_writes_open())
            .arg(&due.stale)
            .ignore();
    }
    if due.unmarked_data {
        pipe.hset_nx(keys.layout(), WRITES_MARKED_FIELD, 1).ignore();
    }
    pipe.query_async(conn).await
}

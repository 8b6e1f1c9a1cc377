//! The Lua scripts, loaded once: each is `common.lua` (key names and helpers) followed by the
//! script's own file. `redis::Script` runs them by SHA and loads them on `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("../lua/queue/common.lua");

fn load(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

pub(crate) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/enqueue.lua")));
pub(crate) static FETCH: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/fetch.lua")));
pub(crate) static ACK: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/ack.lua")));
pub(crate) static FAIL: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/fail.lua")));
pub(crate) static RENEW: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/renew.lua")));
pub(crate) static REAP: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/reap.lua")));
pub(crate) static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/promote.lua")));
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/release.lua")));
pub(crate) static REQUEUE_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/requeue_dead.lua")));
pub(crate) static PURGE_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/purge_dead.lua")));
pub(crate) static REVIEW_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/review_dead.lua")));
pub(crate) static DROP_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/drop_dead.lua")));
pub(crate) static DELETE_JOB: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/delete_job.lua")));
pub(crate) static PROMOTE_JOB: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/promote_job.lua")));
const ACK_FETCH_BODY: &str = include_str!("../lua/queue/ack_fetch.lua");
pub(crate) static ACK_FETCH: LazyLock<Script> =
    LazyLock::new(|| load(&format!("local ack_write = nil\n{ACK_FETCH_BODY}")));
pub(crate) static FORGET_SUPERSEDED: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/forget_superseded.lua")));
pub(crate) static MIGRATE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/migrate.lua")));
pub(crate) static MIGRATE_PENDING: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/migrate_pending.lua")));

/// `ack_fetch.lua` with a write of another module attached (see [`super::AckWrite`]): the
/// write's Lua source becomes the body of a function `ack_write(KEYS, ARGV)` called with
/// its own keys and arguments, so a script written to be called on its own (reading
/// `KEYS[1]`, `ARGV[1]`, ending in `return`) runs unchanged inside the ack's call, as long
/// as it uses neither `...` nor a `#!lua` flags line. Like any script it should check its
/// input before its first write: Redis keeps what a script wrote before an error. Build
/// one per kind of write, once (a `LazyLock`): each is a script of its own in Redis.
pub struct AckWriteScript(pub(crate) Script);

impl AckWriteScript {
    /// The ack script with `write_source` attached.
    pub fn new(write_source: &str) -> Self {
        Self(load(&format!(
            "local function ack_write(KEYS, ARGV)\n{write_source}\nend\n{ACK_FETCH_BODY}"
        )))
    }
}

impl std::fmt::Debug for AckWriteScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AckWriteScript")
            .field(&self.0.get_hash())
            .finish()
    }
}

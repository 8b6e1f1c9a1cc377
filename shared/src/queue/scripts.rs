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
pub(crate) static ACK_FETCH: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/ack_fetch.lua")));
pub(crate) static FORGET_SUPERSEDED: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/forget_superseded.lua")));
pub(crate) static MIGRATE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/migrate.lua")));
pub(crate) static MIGRATE_PENDING: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/migrate_pending.lua")));

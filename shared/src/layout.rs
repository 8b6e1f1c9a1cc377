//! The key layout of a deployment: checked, and upgraded once, when a process starts.
//!
//! `KEY_BUCKETS` decides which key holds each login in the bucketed keys
//! ([`KeySpace::bucket_of`]), so the count is part of the data: a process that used another
//! count would look for logins in the wrong buckets and silently miss them. The first
//! process stores the count in the layout HASH (`ns:layout`, field `key_buckets`); every
//! later process must be configured with the same count and refuses to start otherwise.
//! Changing it needs an empty namespace (a new `REFRESH_NAMESPACE`, with the logins
//! imported again).
//!
//! The registry's logins are in the login index ([`crate::login_index`]). Two layouts came
//! before it, and [`prepare`] moves both into it:
//! - each bucket kept an `active` and an `inactive` SET, each login in one of them (88
//!   bytes a login at a million, twice the index's): every member is filed in the index
//!   under the active flag of its login's hash, then taken out of its SET, a page at a
//!   time, so a start that stops half-way leaves the rest for the next;
//! - before that, each bucket kept an `all` SET beside the active one: every member of a
//!   bucket's `all` is first filed by whether its `active` SET holds it (into the inactive
//!   SET or out of it) and `all` deleted, one atomic script per bucket (`split_all.lua`),
//!   and then moved into the index with the rest.
//!
//! Registries written before buckets existed keep their logins in one `ns:logins:all` and
//! one `ns:logins:active` SET, and their unconfirmed Flinks changes in one
//! `ns:logins:flinks_unconfirmed` ZSET. [`prepare`] moves them into the buckets: every id
//! into the login index under the active flag its login's hash holds (the hash is the
//! truth, so a login deactivated by a newer process meanwhile is not revived); every
//! unconfirmed change with its stamp, unless the bucket already holds a newer one; then the
//! old keys are removed. Every step is idempotent, so a process that stops half-way leaves
//! the old SETs in place and the next start finishes the move. A process of an earlier
//! version still running in a rolling upgrade writes the old SETs again: the next start of
//! any process moves those logins too.
//!
//! `LEDGER_BUCKETS` does the same for the ledger ([`KeySpace::ledger_bucket_of`]), stored
//! in field `ledger_buckets`. A deployment whose data predates ledger buckets (a layout
//! HASH without the field, or no layout but a registry or ledger of an older version) has
//! its ledger under one tag: its count is 1, whatever the first process that finds it says.
//!
//! A namespace it finds empty is stored as one whose registry writes are all marked
//! (field `writes_marked`, see [`crate::write_marks`]).
//!
//! What it does not do: re-bucket data to another count, or migrate keys outside the
//! registry's index and SETs.

use std::sync::LazyLock;

use redis::Script;

use crate::keys::KeySpace;
use crate::login_index;
use crate::redis_conn::RedisConn;
use crate::write_marks::WRITES_MARKED_FIELD;

static SPLIT_ALL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/registry/split_all.lua")));

/// The field of the layout HASH holding the bucket count.
pub const KEY_BUCKETS_FIELD: &str = "key_buckets";
/// The field of the layout HASH holding the ledger bucket count.
pub const LEDGER_BUCKETS_FIELD: &str = "ledger_buckets";

/// Ids read per page (`SSCAN`, `SRANDMEMBER`) while migrating.
const PAGE: usize = 1_000;

/// Why the layout could not be checked or upgraded.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Redis did not answer; nothing is lost, the next start resumes.
    #[error("key layout: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The process is configured with another bucket count than the data was written
    /// with: fix `KEY_BUCKETS` (or `LEDGER_BUCKETS`), or start over in an empty namespace.
    #[error(
        "{variable}={configured}, but the data of namespace {namespace:?} is laid out in \
         {stored} buckets ({key} {field}): set {variable}={stored}; another \
         count needs an empty namespace (a new REFRESH_NAMESPACE, logins imported again)"
    )]
    BucketsChanged {
        /// The setting: `KEY_BUCKETS` or `LEDGER_BUCKETS`.
        variable: &'static str,
        /// The layout HASH's field holding the count.
        field: &'static str,
        /// The namespace.
        namespace: String,
        /// The layout HASH's key.
        key: String,
        /// The count the data is laid out in.
        stored: u16,
        /// The count this process was configured with.
        configured: u16,
    },
    /// The stored bucket count is not a number from 1 to 1024: fix or remove the field.
    #[error("key layout: {key} {field} is {value:?}, not a bucket count")]
    Corrupt {
        /// The layout HASH's key.
        key: String,
        /// The field.
        field: &'static str,
        /// The stored value.
        value: String,
    },
}

impl LayoutError {
    /// True when the configuration is the operator's to fix (a bucket count other than the
    /// data's), not when Redis failed or the stored layout is damaged.
    pub fn is_usage(&self) -> bool {
        matches!(self, LayoutError::BucketsChanged { .. })
    }
}

/// What [`prepare`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Logins moved from the pre-bucket `all` SET (0 when there were none).
    pub migrated_logins: u64,
    /// Logins filed as inactive from the buckets' `all` SETs (0 when there were none).
    pub split_inactive: u64,
    /// Logins moved from the buckets' active and inactive SETs into the login index (0
    /// when there were none).
    pub indexed: u64,
}

/// Checks that `keys`' bucket count is the deployment's (storing it on first use), then
/// moves the registries of earlier layouts into the login index. Every process calls it
/// once before touching the registry.
pub async fn prepare(conn: &RedisConn, keys: &KeySpace) -> Result<Prepared, LayoutError> {
    check_buckets(conn, keys).await?;
    let mut prepared = move_pre_bucket(conn, keys).await?;
    prepared.split_inactive = split_all(conn, keys).await?;
    prepared.indexed = index_sets(conn, keys).await?;
    Ok(prepared)
}

/// Moves every member of the buckets' active and inactive SETs into the login index, under
/// the active flag of its login's hash (the truth: a login deactivated meanwhile by a
/// process of an earlier version stays inactive), a page at a time: a page leaves its SET
/// only once it is filed, so a stop half-way loses nothing. Returns how many it moved.
async fn index_sets(conn: &RedisConn, keys: &KeySpace) -> Result<u64, LayoutError> {
    let mut conn = conn.clone();
    let sets: Vec<String> = keys
        .all_buckets()
        .flat_map(|b| {
            [
                keys.legacy_logins_active_bucket(b),
                keys.legacy_logins_inactive_bucket(b),
            ]
        })
        .collect();
    let mut pipe = redis::pipe();
    for set in &sets {
        pipe.exists(set);
    }
    let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
    let sets: Vec<&String> = sets
        .iter()
        .zip(exists)
        .filter_map(|(set, exists)| exists.then_some(set))
        .collect();
    if sets.is_empty() {
        return Ok(0);
    }
    login_index::load_file_script(&mut conn).await?;
    let mut moved = 0u64;
    for set in sets {
        loop {
            let ids: Vec<String> = redis::cmd("SRANDMEMBER")
                .arg(set)
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            if ids.is_empty() {
                break;
            }
            let flags = active_flags(&mut conn, keys, &ids).await?;
            let mut pipe = redis::pipe();
            login_index::file(&mut pipe, keys, ids.iter().map(String::as_str).zip(flags));
            let () = pipe.query_async(&mut conn).await?;
            // Its own round trip: a pipeline would remove them even if filing failed.
            let _: u64 = redis::cmd("SREM")
                .arg(set)
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
            moved += ids.len() as u64;
        }
    }
    if moved > 0 {
        tracing::info!(
            logins = moved,
            "key layout: logins moved into the login index"
        );
    }
    Ok(moved)
}

/// Files every member of each bucket's `all` SET by whether the bucket's active SET holds
/// it (into the inactive SET or out of it), and deletes `all` (see `split_all.lua`): one
/// pipelined round trip of a script per bucket. Returns how many it filed as inactive.
async fn split_all(conn: &RedisConn, keys: &KeySpace) -> Result<u64, LayoutError> {
    let mut conn = conn.clone();
    SPLIT_ALL.prepare_invoke().load_async(&mut conn).await?;
    let mut pipe = redis::pipe();
    for bucket in keys.all_buckets() {
        pipe.cmd("EVALSHA")
            .arg(SPLIT_ALL.get_hash())
            .arg(3)
            .arg(keys.legacy_logins_all_bucket(bucket))
            .arg(keys.legacy_logins_active_bucket(bucket))
            .arg(keys.legacy_logins_inactive_bucket(bucket));
    }
    let filed: Vec<u64> = pipe.query_async(&mut conn).await?;
    let filed = filed.iter().sum();
    if filed > 0 {
        tracing::info!(
            logins = filed,
            "key layout: inactive logins filed in the buckets' inactive SETs"
        );
    }
    Ok(filed)
}

/// Moves a registry written before buckets into them.
async fn move_pre_bucket(conn: &RedisConn, keys: &KeySpace) -> Result<Prepared, LayoutError> {
    let mut conn = conn.clone();
    let mut prepared = Prepared::default();
    let (all, active, unconfirmed) = (
        keys.legacy_logins_all(),
        keys.legacy_logins_active(),
        keys.legacy_logins_flinks_unconfirmed(),
    );
    let exists: (bool, bool, bool) = redis::pipe()
        .exists(&all)
        .exists(&active)
        .exists(&unconfirmed)
        .query_async(&mut conn)
        .await?;
    if exists == (false, false, false) {
        return Ok(prepared);
    }
    prepared.migrated_logins = move_set(&mut conn, keys, &all, Target::All).await?;
    move_set(&mut conn, keys, &active, Target::Active).await?;
    move_set(&mut conn, keys, &unconfirmed, Target::Unconfirmed).await?;
    // Only once every id is in its bucket: a stop before this line repeats the move.
    let _: () = redis::pipe()
        .unlink(&all)
        .ignore()
        .unlink(&active)
        .ignore()
        .unlink(&unconfirmed)
        .ignore()
        .query_async(&mut conn)
        .await?;
    tracing::info!(
        logins = prepared.migrated_logins,
        buckets = keys.buckets(),
        "key layout: registry moved into buckets"
    );
    Ok(prepared)
}

async fn check_buckets(conn: &RedisConn, keys: &KeySpace) -> Result<(), LayoutError> {
    let key = keys.layout();
    let mut conn = conn.clone();
    let written_before = written_before_ledger_buckets(&mut conn, keys).await?;
    let ledger_default = if written_before {
        1
    } else {
        keys.ledger_buckets()
    };
    let mut pipe = redis::pipe();
    if !written_before {
        // A namespace this version starts has every registry write marked.
        pipe.hset_nx(&key, WRITES_MARKED_FIELD, 1).ignore();
    }
    let (buckets, ledger_buckets): (String, String) = pipe
        .hset_nx(&key, KEY_BUCKETS_FIELD, keys.buckets())
        .ignore()
        .hset_nx(&key, LEDGER_BUCKETS_FIELD, ledger_default)
        .ignore()
        .hget(&key, KEY_BUCKETS_FIELD)
        .hget(&key, LEDGER_BUCKETS_FIELD)
        .query_async(&mut conn)
        .await?;
    let check = |variable, field, stored: String, configured: u16| {
        let parsed = stored
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=crate::keys::MAX_KEY_BUCKETS).contains(n));
        match parsed {
            None => Err(LayoutError::Corrupt {
                key: key.clone(),
                field,
                value: stored,
            }),
            Some(n) if n != configured => Err(LayoutError::BucketsChanged {
                variable,
                field,
                namespace: keys.namespace().to_string(),
                key: key.clone(),
                stored: n,
                configured,
            }),
            Some(_) => Ok(()),
        }
    };
    check("KEY_BUCKETS", KEY_BUCKETS_FIELD, buckets, keys.buckets())?;
    check(
        "LEDGER_BUCKETS",
        LEDGER_BUCKETS_FIELD,
        ledger_buckets,
        keys.ledger_buckets(),
    )
}

/// True when the namespace holds data of a version before ledger buckets, whose ledger is
/// under the one `{ns:ledger}` tag: a layout HASH without `ledger_buckets` (checked by the
/// caller's HSETNX), a registry from before key buckets, or any single-tag ledger key (the
/// outbox, the streams, the indexes, or a date's hash of the last [`LEDGER_TTL`] days).
///
/// [`LEDGER_TTL`]: crate::ledger::LEDGER_TTL
async fn written_before_ledger_buckets(
    conn: &mut RedisConn,
    keys: &KeySpace,
) -> Result<bool, LayoutError> {
    let (layout, legacy_logins): (bool, bool) = redis::pipe()
        .hexists(keys.layout(), KEY_BUCKETS_FIELD)
        .exists(keys.legacy_logins_all())
        .query_async(conn)
        .await?;
    if layout || legacy_logins {
        return Ok(true);
    }
    // One tag, so one EXISTS over them all, also on a cluster.
    let single = keys.clone().with_ledger_buckets(std::num::NonZeroU16::MIN);
    let mut ledger_keys = vec![
        single.ledger_outbox(0),
        single.events_stream(0),
        single.results_stream(0),
        single.ledger_index("reauth", 0),
        single.ledger_index("failed", 0),
    ];
    let today = chrono::Utc::now().date_naive();
    let days = crate::ledger::LEDGER_TTL.as_secs() / 86_400 + 1;
    for back in 0..=days {
        let date = (today - chrono::Days::new(back)).to_string();
        ledger_keys.push(single.ledger_date(&date, 0));
    }
    let found: u64 = redis::cmd("EXISTS")
        .arg(&ledger_keys)
        .query_async(conn)
        .await?;
    Ok(found > 0)
}

#[derive(Clone, Copy)]
enum Target {
    All,
    Active,
    /// A ZSET: member, score pairs.
    Unconfirmed,
}

/// Copies every id of the old SET (or ZSET) `from` into its bucket's; returns how many ids
/// it read.
async fn move_set(
    conn: &mut RedisConn,
    keys: &KeySpace,
    from: &str,
    target: Target,
) -> Result<u64, LayoutError> {
    let mut moved = 0u64;
    let mut cursor = 0u64;
    loop {
        let command = match target {
            Target::All | Target::Active => "SSCAN",
            Target::Unconfirmed => "ZSCAN",
        };
        let (next, ids): (u64, Vec<String>) = redis::cmd(command)
            .arg(from)
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await?;
        if let Target::Unconfirmed = target {
            moved += (ids.len() / 2) as u64;
            let mut pipe = redis::pipe();
            for pair in ids.chunks_exact(2) {
                // NX: a change indexed in the bucket since is newer than the old entry.
                pipe.cmd("ZADD")
                    .arg(keys.logins_flinks_unconfirmed(keys.bucket_of(&pair[0])))
                    .arg("NX")
                    .arg(&pair[1])
                    .arg(&pair[0])
                    .ignore();
            }
            let () = pipe.query_async(conn).await?;
        } else {
            moved += ids.len() as u64;
            let flags = active_flags(conn, keys, &ids).await?;
            // The old active SET may still hold a login deactivated since: only the old
            // `all` SET files logins as inactive.
            let logins = ids
                .iter()
                .zip(flags)
                .filter(|(_, active)| *active || matches!(target, Target::All))
                .map(|(id, active)| (id.as_str(), active));
            login_index::load_file_script(conn).await?;
            let mut pipe = redis::pipe();
            login_index::file(&mut pipe, keys, logins);
            let () = pipe.query_async(conn).await?;
        }
        if next == 0 {
            return Ok(moved);
        }
        cursor = next;
    }
}

/// Whether each of `ids`' login hash says active.
async fn active_flags(
    conn: &mut RedisConn,
    keys: &KeySpace,
    ids: &[String],
) -> Result<Vec<bool>, LayoutError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hget(keys.login(id), "active");
    }
    let flags: Vec<Option<String>> = pipe.query_async(conn).await?;
    Ok(flags
        .iter()
        .map(|flag| flag.as_deref() == Some("1"))
        .collect())
}

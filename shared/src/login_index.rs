//! The registry's index of logins: which LoginIds are registered, and which of them are
//! active.
//!
//! Every registered login is one field of one small HASH, its shard (`{ns:registry:<b>}:
//! index:<s>`, LoginId -> `1` active or `0` inactive), and each key bucket keeps how many
//! of each it holds (`{ns:registry:<b>}:index:counts`). Why shards rather than a SET per
//! bucket: a member of a SET of thousands is a hash-table entry, about 88 bytes at a
//! million logins, while a shard of a few dozen fields stays a listpack, about 43 bytes a
//! login. With [`SHARDS`] shards in all, a shard stays under Redis' listpack limit
//! (`hash-max-listpack-entries`, 512 by default) up to about seven million logins (about
//! one and a half million with the limit lowered to 128); beyond that a shard becomes a
//! hash table and a login costs about what a SET member did.
//!
//! Shards are spread over the key buckets, so on a Redis Cluster they spread over the
//! masters, and a bucket's shards and counts share its hash tag: one script files a
//! bucket's logins and bumps its counts atomically (`index_file.lua`), so the counts stay
//! the index's own (filing a login twice never counts it twice). Counts are what the
//! sampler reads every tick: summing thousands of shards' lengths would cost Redis a
//! command per shard.
//!
//! Readers walk the shards in order, a whole shard per read (`HGETALL`), so unlike `SSCAN`
//! a walk never returns a login twice.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use crate::keys::KeySpace;
use crate::redis_conn::RedisConn;

static FILE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/registry/index_file.lua")));

/// Shards in all, spread evenly over the key buckets (at least [`MIN_SHARDS_PER_BUCKET`]
/// each). Part of the data layout: changing it would put logins in other shards.
pub const SHARDS: u32 = 16_384;
/// The fewest shards a bucket has, whatever `KEY_BUCKETS` is.
const MIN_SHARDS_PER_BUCKET: u32 = 16;
/// The most shards read in one pipelined round trip of a walk.
const MAX_ROUND: u64 = 512;
/// The fewest shards a page of a planned [`walk`] reads: however many logins the counts
/// claim, a walk reads at most 1,024 pages.
const MIN_PAGE: u64 = 16;

/// Which logins a walk returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// Active ones.
    Active,
    /// Inactive ones.
    Inactive,
    /// Every registered one.
    All,
}

impl Which {
    fn keeps(self, flag: &str) -> bool {
        match self {
            Which::Active => flag == "1",
            Which::Inactive => flag != "1",
            Which::All => true,
        }
    }
}

/// Shards of each bucket of `keys`.
pub fn shards_per_bucket(keys: &KeySpace) -> u32 {
    (SHARDS / u32::from(keys.buckets())).max(MIN_SHARDS_PER_BUCKET)
}

/// The bucket and shard of `login_id`: its bucket ([`KeySpace::bucket_of`]), and within
/// it the FNV-1a hash's quotient by the bucket count, modulo the bucket's shards (the
/// quotient, so that the shard does not repeat what the bucket already decided).
pub fn shard_of(keys: &KeySpace, login_id: &str) -> (u16, u32) {
    let hash = crate::keys::fnv1a(login_id);
    let buckets = u64::from(keys.buckets());
    let shard = (hash / buckets) % u64::from(shards_per_bucket(keys));
    ((hash % buckets) as u16, shard as u32)
}

/// The key of the `position`-th shard of a walk: bucket after bucket, shard after shard.
fn shard_at(keys: &KeySpace, position: u64) -> String {
    let per_bucket = u64::from(shards_per_bucket(keys));
    keys.login_index_shard(
        (position / per_bucket) as u16,
        (position % per_bucket) as u32,
    )
}

fn total_shards(keys: &KeySpace) -> u64 {
    u64::from(keys.buckets()) * u64::from(shards_per_bucket(keys))
}

/// Loads `index_file.lua`, which [`file`] calls by its hash.
pub(crate) async fn load_file_script(conn: &mut RedisConn) -> Result<(), redis::RedisError> {
    FILE.prepare_invoke().load_async(conn).await.map(|_| ())
}

/// Adds to `pipe` what files each of `logins` (LoginId, active) in the index under its
/// flag: one `index_file.lua` call per bucket, each atomic with the bucket's counts. The
/// script must be loaded ([`load_file_script`]).
pub(crate) fn file<'a>(
    pipe: &mut redis::Pipeline,
    keys: &KeySpace,
    logins: impl IntoIterator<Item = (&'a str, bool)>,
) {
    for (bucket, logins) in keys.by_bucket(logins, |(id, _)| id) {
        // Each login's shard as its place in KEYS: KEYS[1] is the counts HASH, so the
        // first shard is KEYS[2].
        let mut shards: Vec<u32> = Vec::new();
        let mut place: HashMap<u32, usize> = HashMap::new();
        let places: Vec<usize> = logins
            .iter()
            .map(|(id, _)| {
                let (_, shard) = shard_of(keys, id);
                *place.entry(shard).or_insert_with(|| {
                    shards.push(shard);
                    shards.len() + 1
                })
            })
            .collect();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(FILE.get_hash())
            .arg(shards.len() + 1)
            .arg(keys.login_index_counts(bucket));
        for shard in &shards {
            cmd.arg(keys.login_index_shard(bucket, *shard));
        }
        for ((id, active), place) in logins.iter().zip(places) {
            cmd.arg(place).arg(if *active { "1" } else { "0" }).arg(*id);
        }
        pipe.add_command(cmd).ignore();
    }
}

/// One page of a walk over the index from shard `cursor` (0 for the first page): the
/// LoginIds `which` asks for, and where the next page starts (`None` once every shard is
/// read). Reads whole shards in pipelined rounds: one shard first, then as many as the
/// logins found so far per shard read say the rest of the page needs (twice as many as
/// the last round while none was found, at most [`MAX_ROUND`]). So a page takes about two
/// round trips, holds about `count` logins or a shard's worth more, and a walk of an empty
/// index takes a few dozen round trips, not one per shard.
pub(crate) async fn page(
    conn: &mut RedisConn,
    keys: &KeySpace,
    which: Which,
    cursor: u64,
    count: usize,
) -> Result<(Vec<String>, Option<u64>), redis::RedisError> {
    let total = total_shards(keys);
    let mut at = cursor.min(total);
    let count = count.max(1);
    let mut round = 1u64;
    let mut read = 0u64;
    let mut ids = Vec::new();
    while at < total && ids.len() < count {
        let end = (at + round).min(total);
        ids.extend(read_range(conn, keys, which, at..end).await?);
        read += end - at;
        at = end;
        round = match ids.len() as u64 {
            0 => round * 2,
            found => ((count as u64 - found.min(count as u64)) * read).div_ceil(found),
        }
        .clamp(1, MAX_ROUND);
    }
    Ok((ids, (at < total).then_some(at)))
}

/// The logins `which` asks for in the shards at walk positions `range` (one pipelined
/// round trip, a whole shard per read).
async fn read_range(
    conn: &mut RedisConn,
    keys: &KeySpace,
    which: Which,
    range: std::ops::Range<u64>,
) -> Result<Vec<String>, redis::RedisError> {
    let mut pipe = redis::pipe();
    for position in range {
        pipe.cmd("HGETALL").arg(shard_at(keys, position));
    }
    let shards: Vec<Vec<(String, String)>> = pipe.query_async(conn).await?;
    Ok(shards
        .into_iter()
        .flatten()
        .filter(|(_, flag)| which.keeps(flag))
        .map(|(id, _)| id)
        .collect())
}

/// A whole walk over the index as pages read `in_flight` at a time: the logins `which`
/// asks for, each once. Unlike [`page`], whose next page starts where the last one ended,
/// the pages are ranges of shards planned up front from the index's counts (see
/// [`page_shards`]), so the next pages are on their way while one is decoded. The counts
/// only size the pages: every shard is read once whatever they say, and a count that is
/// missing or corrupt reads as 0 (pages of [`MAX_ROUND`] shards). Pages come in walk
/// order; a login filed while the walk runs may or may not be in it. The walk ends at
/// its first error.
pub(crate) fn walk(
    conn: RedisConn,
    keys: &KeySpace,
    which: Which,
    count: usize,
    in_flight: usize,
) -> impl futures::Stream<Item = Result<Vec<String>, redis::RedisError>> + Send + '_ {
    use futures::{StreamExt, TryStreamExt};
    let planned = async move {
        let mut counts_conn = conn.clone();
        let expected = expected(&mut counts_conn, keys, which).await?;
        let total = total_shards(keys);
        let per_page = page_shards(total, expected, count);
        let pages = futures::stream::iter((0..total).step_by(per_page as usize))
            .map(move |start| {
                let mut conn = conn.clone();
                let range = start..(start + per_page).min(total);
                async move { read_range(&mut conn, keys, which, range).await }
            })
            .buffered(in_flight.max(1));
        Ok::<_, redis::RedisError>(pages)
    };
    futures::stream::once(planned)
        .try_flatten()
        .scan(false, |failed, page| {
            let next = (!*failed).then(|| {
                *failed = page.is_err();
                page
            });
            futures::future::ready(next)
        })
}

/// How many shards a page of a planned [`walk`] reads: about `count` of the `expected`
/// logins the walk keeps, within [`MIN_PAGE`] and [`MAX_ROUND`] shards: an index of fewer
/// than 32 pages' worth is walked in 32 smaller pages, one of more than about ten million
/// logins in 1,024 larger ones.
fn page_shards(total: u64, expected: u64, count: usize) -> u64 {
    (count.max(1) as u64)
        .saturating_mul(total)
        .div_ceil(expected.max(1))
        .clamp(MIN_PAGE, MAX_ROUND)
}

/// How many logins the buckets' counts say a walk for `which` keeps (one pipelined round
/// trip). A missing or corrupt count reads as 0: this only sizes a walk's pages.
async fn expected(
    conn: &mut RedisConn,
    keys: &KeySpace,
    which: Which,
) -> Result<u64, redis::RedisError> {
    let mut pipe = redis::pipe();
    for bucket in keys.all_buckets() {
        pipe.cmd("HMGET")
            .arg(keys.login_index_counts(bucket))
            .arg("active")
            .arg("inactive");
    }
    let counts: Vec<(Option<String>, Option<String>)> = pipe.query_async(conn).await?;
    let read = |raw: &Option<String>| {
        raw.as_deref()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(counts.iter().fold(0u64, |sum, (active, inactive)| {
        sum.saturating_add(match which {
            Which::Active => read(active),
            Which::Inactive => read(inactive),
            Which::All => read(active).saturating_add(read(inactive)),
        })
    }))
}

/// How many logins the index holds as active (`true`) or inactive: the buckets' counts,
/// summed (one pipelined round trip).
pub(crate) async fn count(
    conn: &mut RedisConn,
    keys: &KeySpace,
    active: bool,
) -> Result<u64, redis::RedisError> {
    let field = if active { "active" } else { "inactive" };
    let mut pipe = redis::pipe();
    for bucket in keys.all_buckets() {
        pipe.hget(keys.login_index_counts(bucket), field);
    }
    let counts: Vec<Option<i64>> = pipe.query_async(conn).await?;
    Ok(counts
        .iter()
        .map(|n| u64::try_from(n.unwrap_or(0)).unwrap_or(0))
        .sum())
}

/// Whether `login_id` is registered.
pub(crate) async fn contains(
    conn: &mut RedisConn,
    keys: &KeySpace,
    login_id: &str,
) -> Result<bool, redis::RedisError> {
    let (bucket, shard) = shard_of(keys, login_id);
    redis::cmd("HEXISTS")
        .arg(keys.login_index_shard(bucket, shard))
        .arg(login_id)
        .query_async(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_page_holds_about_the_count_asked_within_its_shard_bounds() {
        let total = u64::from(SHARDS);
        // A million logins: 17 shards of about 61 logins, about 1,000 a page.
        assert_eq!(page_shards(total, 1_000_000, 1_000), 17);
        // Ten million: the floor of 16 shards, about 9,800 a page, 1,024 pages.
        assert_eq!(page_shards(total, 10_000_000, 1_000), MIN_PAGE);
        // A thousand, none, or counts that read as 0: the ceiling, 32 pages.
        assert_eq!(page_shards(total, 1_000, 1_000), MAX_ROUND);
        assert_eq!(page_shards(total, 0, 1_000), MAX_ROUND);
        // Nothing overflows, whatever the counts or the count asked.
        assert_eq!(page_shards(total, u64::MAX, usize::MAX), MIN_PAGE);
        assert_eq!(page_shards(total, 1, usize::MAX), MAX_ROUND);
    }

    #[test]
    fn a_login_falls_in_its_own_bucket_and_shards_spread_evenly() {
        let keys = KeySpace::new("t1");
        let per_bucket = shards_per_bucket(&keys);
        assert_eq!(per_bucket * u32::from(keys.buckets()), SHARDS);
        let mut per_shard = vec![0u32; SHARDS as usize];
        for n in 0..SHARDS * 50 {
            let id = format!("{n:08x}-0000-4000-8000-000000000000");
            let (bucket, shard) = shard_of(&keys, &id);
            assert_eq!(bucket, keys.bucket_of(&id));
            assert!(shard < per_bucket);
            per_shard[(u32::from(bucket) * per_bucket + shard) as usize] += 1;
        }
        // 50 a shard on average: none empty, none twice the average.
        assert!(
            per_shard.iter().all(|n| (10..100).contains(n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn many_buckets_still_get_several_shards_each() {
        let keys = KeySpace::new("t1").with_buckets(std::num::NonZeroU16::new(1024).unwrap());
        assert_eq!(shards_per_bucket(&keys), 16);
        assert_eq!(total_shards(&keys), 1024 * 16);
        assert_eq!(shard_at(&keys, 16 * 3 + 5), "{t1:registry:3}:index:5");
    }

    #[test]
    fn which_keeps_by_flag() {
        assert!(Which::Active.keeps("1") && !Which::Active.keeps("0"));
        assert!(Which::Inactive.keeps("0") && !Which::Inactive.keeps("1"));
        assert!(Which::All.keeps("0") && Which::All.keeps("1"));
    }
}

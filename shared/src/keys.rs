//! `KeySpace`: the only place Redis keys are built.
//!
//! Every key starts with the deployment's namespace (`REFRESH_NAMESPACE`), so two
//! deployments — or two tests running in parallel — share one Redis without touching
//! each other's keys and without `FLUSHALL`. Keys that belong to one queue carry a hash
//! tag `{namespace:queue}` so that all of a queue's keys (and so every Lua script over
//! them) land in one Redis Cluster slot.
//!
//! What grows with the number of logins is spread over `KEY_BUCKETS` buckets, each under
//! its own hash tag, so that a Redis Cluster spreads it over its shards instead of one slot
//! holding it all. A login's bucket is [`KeySpace::bucket_of`], a stable hash of its
//! LoginId: the bucket count is part of the key layout, fixed per deployment (see
//! [`crate::layout`]).

use std::collections::BTreeMap;
use std::num::NonZeroU16;

/// The bucket count when `KEY_BUCKETS` is not set.
pub const DEFAULT_KEY_BUCKETS: u16 = 64;
/// The ledger bucket count when `LEDGER_BUCKETS` is not set and `REDIS_MODE=cluster` (on one
/// Redis or Sentinel it is 1: nothing to spread over).
pub const DEFAULT_CLUSTER_LEDGER_BUCKETS: u16 = 64;
/// The most buckets a deployment may have: every per-bucket listing reads each bucket.
pub const MAX_KEY_BUCKETS: u16 = 1024;

/// Builds Redis keys for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    namespace: String,
    buckets: NonZeroU16,
    ledger_buckets: NonZeroU16,
}

impl KeySpace {
    /// A key space for `namespace` (e.g. `nightly-refresh`, or a unique name per test),
    /// with [`DEFAULT_KEY_BUCKETS`] buckets.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            buckets: NonZeroU16::new(DEFAULT_KEY_BUCKETS).unwrap_or(NonZeroU16::MIN),
            ledger_buckets: NonZeroU16::MIN,
        }
    }

    /// The same key space laid out in `buckets` buckets (`KEY_BUCKETS`, validated by the
    /// settings to 1..=[`MAX_KEY_BUCKETS`]).
    pub fn with_buckets(mut self, buckets: NonZeroU16) -> Self {
        self.buckets = buckets;
        self
    }

    /// The same key space with the ledger spread over `buckets` ledger buckets
    /// (`LEDGER_BUCKETS`, validated by the settings to 1..=[`MAX_KEY_BUCKETS`]). One, the
    /// default, keeps every ledger key under the one `{ns:ledger}` tag.
    pub fn with_ledger_buckets(mut self, buckets: NonZeroU16) -> Self {
        self.ledger_buckets = buckets;
        self
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// How many buckets the per-login keys are spread over.
    pub fn buckets(&self) -> u16 {
        self.buckets.get()
    }

    /// Every bucket, `0..buckets`.
    pub fn all_buckets(&self) -> std::ops::Range<u16> {
        0..self.buckets.get()
    }

    /// The bucket of `login_id`: FNV-1a (64 bit) of its canonical text, modulo the bucket
    /// count. Stable across versions and platforms: changing it moves every login.
    pub fn bucket_of(&self, login_id: &str) -> u16 {
        (fnv1a(login_id) % u64::from(self.buckets.get())) as u16
    }

    /// How many ledger buckets the ledger, its indexes, outbox and streams are spread over.
    pub fn ledger_buckets(&self) -> u16 {
        self.ledger_buckets.get()
    }

    /// Every ledger bucket, `0..ledger_buckets`.
    pub fn all_ledger_buckets(&self) -> std::ops::Range<u16> {
        0..self.ledger_buckets.get()
    }

    /// `items` grouped by the key bucket of the LoginId `login_of` gives each: buckets in
    /// order, each bucket's items in the order given. One command or script call per bucket
    /// follows.
    pub fn by_bucket<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        login_of: impl Fn(&T) -> &str,
    ) -> BTreeMap<u16, Vec<T>> {
        group(items, |item| self.bucket_of(login_of(item)))
    }

    /// [`KeySpace::by_bucket`] by ledger bucket ([`KeySpace::ledger_bucket_of`]).
    pub fn by_ledger_bucket<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        login_of: impl Fn(&T) -> &str,
    ) -> BTreeMap<u16, Vec<T>> {
        group(items, |item| self.ledger_bucket_of(login_of(item)))
    }

    /// The ledger bucket of `login_id`: the same hash as [`KeySpace::bucket_of`], modulo
    /// the ledger bucket count. Everything the ledger holds of a login (its outcomes, index
    /// entries, outbox entry, events and results) lives in this one bucket, so one script
    /// records it all in one Redis Cluster slot.
    pub fn ledger_bucket_of(&self, login_id: &str) -> u16 {
        (fnv1a(login_id) % u64::from(self.ledger_buckets.get())) as u16
    }

    /// The deployment's key layout HASH (`ns:layout`): the bucket count its data is laid
    /// out in (see [`crate::layout`]).
    pub fn layout(&self) -> String {
        self.global("layout")
    }

    /// A key of one queue, hash-tagged by queue: `{ns:queue}:suffix`.
    pub fn queue(&self, queue: &str, suffix: &str) -> String {
        format!("{{{}:{}}}:{}", self.namespace, queue, suffix)
    }

    /// A key outside any queue: `ns:suffix`.
    pub fn global(&self, suffix: &str) -> String {
        format!("{}:{}", self.namespace, suffix)
    }

    /// A key of the global rate limiter, hash-tagged `{ns:ratelimit}:suffix` so that its
    /// script's keys (last grant, cool-down, stored limit) land in one Redis Cluster slot.
    pub fn ratelimit(&self, suffix: &str) -> String {
        format!("{{{}:ratelimit}}:{}", self.namespace, suffix)
    }

    /// Control: the operator-set rate limit, permits per minute (see [`crate::control`]).
    pub fn rate_limit_per_minute(&self) -> String {
        self.ratelimit("per_minute")
    }

    /// Control: a routine date's deadline, Unix milliseconds (see [`crate::control`]).
    pub fn routine_deadline(&self, date: chrono::NaiveDate) -> String {
        self.global(&format!("routine:deadline:{date}"))
    }

    /// Control: a queue's pause flag, a HASH (reason, actor, since) present while paused.
    pub fn queue_paused(&self, queue: &str) -> String {
        self.queue(queue, "paused")
    }

    /// Console: one session, a STRING of JSON with an expiry, named by the SHA-256 (hex) of
    /// its cookie token so the key never holds a usable token (see [`crate::console::auth`]).
    pub fn console_session(&self, token_sha256: &str) -> String {
        self.global(&format!("console:session:{token_sha256}"))
    }

    /// Console: failed logins of one user name or client address (`kind`: `user` or
    /// `address`, named by its SHA-256 so any text fits), a counter with an expiry.
    pub fn console_login_failures(&self, kind: &str, who_sha256: &str) -> String {
        self.global(&format!("console:login_failures:{kind}:{who_sha256}"))
    }

    /// Registry: one login's HASH (`ns:login:{id}`).
    pub fn login(&self, login_id: &str) -> String {
        format!("{}:login:{}", self.namespace, login_id)
    }

    /// Registry: one login's capped outcome history LIST (`ns:login:{id}:history`).
    pub fn login_history(&self, login_id: &str) -> String {
        format!("{}:login:{}:history", self.namespace, login_id)
    }

    /// Registry: the marks of writes in progress, a ZSET of mark -> start (ms). See
    /// [`crate::write_marks`].
    pub fn registry_writes_open(&self) -> String {
        self.global("registry:writes_open")
    }

    /// Registry: one bucket's key, hash-tagged by bucket: `{ns:registry:<b>}:suffix`.
    fn registry_bucket(&self, bucket: u16, suffix: &str) -> String {
        format!("{{{}:registry:{}}}:{}", self.namespace, bucket, suffix)
    }

    /// Registry: one shard of a bucket's login index, a HASH of LoginId -> `1` (active) or
    /// `0` (inactive). See [`crate::login_index`].
    pub fn login_index_shard(&self, bucket: u16, shard: u32) -> String {
        self.registry_bucket(bucket, &format!("index:{shard}"))
    }

    /// Registry: how many logins a bucket's index holds, a HASH with fields `active` and
    /// `inactive`. See [`crate::login_index`].
    pub fn login_index_counts(&self, bucket: u16) -> String {
        self.registry_bucket(bucket, "index:counts")
    }

    /// Registry, the layout before the login index: the SET of active LoginIds of one
    /// bucket. Read only to migrate it (see [`crate::layout`]).
    pub fn legacy_logins_active_bucket(&self, bucket: u16) -> String {
        self.registry_bucket(bucket, "logins:active")
    }

    /// Registry, the layout before the login index: the SET of inactive LoginIds of one
    /// bucket. Read only to migrate it (see [`crate::layout`]).
    pub fn legacy_logins_inactive_bucket(&self, bucket: u16) -> String {
        self.registry_bucket(bucket, "logins:inactive")
    }

    /// Registry, the layout before the inactive SETs: one bucket's SET of every LoginId,
    /// active or not. Read only to migrate it (see [`crate::layout`]).
    pub fn legacy_logins_all_bucket(&self, bucket: u16) -> String {
        self.registry_bucket(bucket, "logins:all")
    }

    /// Registry, the layout before buckets: the one SET of active LoginIds
    /// (`ns:logins:active`). Read only to migrate it (see [`crate::layout`]).
    pub fn legacy_logins_active(&self) -> String {
        format!("{}:logins:active", self.namespace)
    }

    /// Registry, the layout before buckets: the one SET of every LoginId
    /// (`ns:logins:all`). Read only to migrate it (see [`crate::layout`]).
    pub fn legacy_logins_all(&self) -> String {
        format!("{}:logins:all", self.namespace)
    }

    /// Registry: one bucket's ZSET of logins whose Flinks nightly-refresh change is not
    /// confirmed (pending or failed), score = the change's stamp. See [`crate::scheduled_refresh`].
    pub fn logins_flinks_unconfirmed(&self, bucket: u16) -> String {
        self.registry_bucket(bucket, "logins:flinks_unconfirmed")
    }

    /// Registry, the layout before buckets: the one ZSET of unconfirmed Flinks changes
    /// (`ns:logins:flinks_unconfirmed`). Read only to migrate it (see [`crate::layout`]).
    pub fn legacy_logins_flinks_unconfirmed(&self) -> String {
        format!("{}:logins:flinks_unconfirmed", self.namespace)
    }

    /// The hash tag of ledger bucket `bucket`: `{ns:ledger}` when the ledger has one bucket
    /// (the layout before ledger buckets, kept as it was), `{ns:ledger:<b>}` otherwise. Every
    /// key of a bucket shares it, so the record script touches one Redis Cluster slot.
    fn ledger_tag(&self, bucket: u16) -> String {
        if self.ledger_buckets.get() == 1 {
            format!("{{{}:ledger}}", self.namespace)
        } else {
            format!("{{{}:ledger:{}}}", self.namespace, bucket)
        }
    }

    /// Ledger: the HASH of outcomes of one routine date in one ledger bucket, LoginId →
    /// JSON (`{ns:ledger}:date:YYYY-MM-DD`).
    pub fn ledger_date(&self, date: &str, bucket: u16) -> String {
        format!("{}:date:{}", self.ledger_tag(bucket), date)
    }

    /// Ledger: per-date HASH of one ledger bucket's outcome counters; bucket 0's also holds
    /// the date's metadata (expected, started_at, retries).
    pub fn ledger_meta(&self, date: &str, bucket: u16) -> String {
        format!("{}:meta:{}", self.ledger_tag(bucket), date)
    }

    /// Ledger: per-date HASH (of one ledger bucket) LoginId → TOO_MANY_REQUESTS answers that
    /// login got that day.
    pub fn ledger_throttles(&self, date: &str, bucket: u16) -> String {
        format!("{}:throttles:{}", self.ledger_tag(bucket), date)
    }

    /// Ledger: per-date SET (of one ledger bucket) of the LoginIds GetNightlyRefreshStatus
    /// listed as ineligible: recorded as needs re-auth and not authorized that date.
    pub fn ledger_ineligible(&self, date: &str, bucket: u16) -> String {
        format!("{}:ineligible:{}", self.ledger_tag(bucket), date)
    }

    /// Ledger: one ledger bucket's cross-date index ZSET of one kind (`reauth`, `failed`),
    /// member `date|LoginId`, score = outcome time in epoch milliseconds.
    pub fn ledger_index(&self, kind: &str, bucket: u16) -> String {
        format!("{}:index:{}", self.ledger_tag(bucket), kind)
    }

    /// A ledger bucket's outcome outbox HASH (`{ns:ledger}:outbox`), LoginId → registry
    /// update still to apply. It shares the bucket's hash tag because the ledger script fills
    /// it in the same atomic step as the outcome (see [`crate::outcomes`]).
    pub fn ledger_outbox(&self, bucket: u16) -> String {
        format!("{}:outbox", self.ledger_tag(bucket))
    }

    /// A ledger bucket's outcome events stream (`{ns:ledger}:events`, see [`crate::events`]).
    /// It shares the bucket's hash tag because the ledger script appends to it atomically.
    pub fn events_stream(&self, bucket: u16) -> String {
        format!("{}:events", self.ledger_tag(bucket))
    }

    /// Events: HASH (of one ledger bucket) LoginId → the login's open episode
    /// (`<type>|<routine date>|<start ms>`), so one episode gets one event however many days
    /// it lasts.
    pub fn events_episodes(&self, bucket: u16) -> String {
        format!("{}:events:episodes", self.ledger_tag(bucket))
    }

    /// Events: one key of the webhook delivery (`lease`, `dead`). Every webhook key shares
    /// the single-bucket ledger tag (`{ns:ledger}`), whatever the ledger bucket count, so
    /// one script moves a bucket's cursor only while its pod holds the one lease.
    pub fn events_webhook(&self, suffix: &str) -> String {
        format!("{{{}:ledger}}:events:webhook:{}", self.namespace, suffix)
    }

    /// Events: the webhook's position in ledger bucket `bucket`'s events stream, a STRING
    /// (the last entry id delivered or parked) beside the lease (see
    /// [`KeySpace::events_webhook`]): `…:webhook:cursor`, with several buckets
    /// `…:webhook:cursor:<b>`.
    pub fn events_webhook_cursor(&self, bucket: u16) -> String {
        if self.ledger_buckets.get() == 1 {
            self.events_webhook("cursor")
        } else {
            self.events_webhook(&format!("cursor:{bucket}"))
        }
    }

    /// Events: HASH (of one ledger bucket) LoginId → the stamp of the last SetScheduledRefresh
    /// change whose `activated` / `deactivated` event was appended (so a retried
    /// confirmation adds none).
    pub fn events_flinks_stamps(&self, bucket: u16) -> String {
        format!("{}:events:flinks_stamps", self.ledger_tag(bucket))
    }

    /// A ledger bucket's results stream (`{ns:ledger}:results`). It shares the bucket's hash
    /// tag because one script appends to it and writes the ledger atomically.
    pub fn results_stream(&self, bucket: u16) -> String {
        format!("{}:results", self.ledger_tag(bucket))
    }
}

/// `items` grouped by `bucket_of`, buckets in order, items in the order given.
fn group<T>(
    items: impl IntoIterator<Item = T>,
    bucket_of: impl Fn(&T) -> u16,
) -> BTreeMap<u16, Vec<T>> {
    let mut out: BTreeMap<u16, Vec<T>> = BTreeMap::new();
    for item in items {
        out.entry(bucket_of(&item)).or_default().push(item);
    }
    out
}

/// FNV-1a (64 bit) of `text`: the stable hash behind both kinds of bucket.
pub(crate) fn fnv1a(text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Whole-namespace operations, by SCAN (never `KEYS`, which blocks a shared Redis).
impl KeySpace {
    /// The MATCH patterns covering every key of this namespace: plain and hash-tagged.
    pub fn patterns(&self) -> [String; 2] {
        [
            format!("{}:*", self.namespace),
            format!("{{{}:*", self.namespace),
        ]
    }

    /// Every key of the namespace.
    pub async fn scan_all(
        &self,
        conn: &crate::redis_conn::RedisConn,
    ) -> Result<Vec<String>, redis::RedisError> {
        let mut out = Vec::new();
        self.for_each_page(conn, |page| {
            out.extend_from_slice(page);
        })
        .await?;
        Ok(out)
    }

    /// Deletes every key of the namespace in batches (SCAN + UNLINK): test teardown,
    /// demos, and retiring a deployment. Returns how many keys were removed.
    pub async fn delete_all(
        &self,
        conn: &crate::redis_conn::RedisConn,
    ) -> Result<u64, redis::RedisError> {
        let mut pages = Vec::new();
        self.for_each_page(conn, |page| pages.push(page.to_vec()))
            .await?;
        let mut conn = conn.clone();
        let mut removed = 0u64;
        for page in pages {
            // One UNLINK per key: on a cluster a page spans slots, and a pipeline of
            // single-key commands goes to each key's node.
            let mut pipe = redis::pipe();
            for key in &page {
                pipe.cmd("UNLINK").arg(key);
            }
            let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
            removed += counts.iter().sum::<u64>();
        }
        Ok(removed)
    }

    async fn for_each_page(
        &self,
        conn: &crate::redis_conn::RedisConn,
        mut f: impl FnMut(&[String]),
    ) -> Result<(), redis::RedisError> {
        // SCAN walks one node's keys: on a cluster, walk every primary.
        for mut conn in conn.primaries().await? {
            self.scan_node(&mut conn, &mut f).await?;
        }
        Ok(())
    }

    async fn scan_node(
        &self,
        conn: &mut crate::redis_conn::RedisConn,
        f: &mut impl FnMut(&[String]),
    ) -> Result<(), redis::RedisError> {
        for pattern in self.patterns() {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(conn)
                    .await?;
                if !keys.is_empty() {
                    f(&keys);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_share_a_hash_tag_per_queue() {
        let keys = KeySpace::new("t1");
        assert_eq!(keys.queue("authorize", "ready"), "{t1:authorize}:ready");
        assert_eq!(keys.queue("authorize", "job:abc"), "{t1:authorize}:job:abc");
        assert_eq!(keys.global("ratelimit"), "t1:ratelimit");
        assert_eq!(keys.ratelimit("x"), "{t1:ratelimit}:x");
        assert_eq!(keys.rate_limit_per_minute(), "{t1:ratelimit}:per_minute");
        assert_eq!(keys.queue_paused("detail"), "{t1:detail}:paused");
    }

    #[test]
    fn registry_index_and_sets_are_hash_tagged_per_bucket() {
        let keys = KeySpace::new("t1");
        assert_eq!(keys.login_index_shard(3, 17), "{t1:registry:3}:index:17");
        assert_eq!(keys.login_index_counts(3), "{t1:registry:3}:index:counts");
        assert_eq!(
            keys.legacy_logins_active_bucket(3),
            "{t1:registry:3}:logins:active"
        );
        assert_eq!(
            keys.legacy_logins_inactive_bucket(15),
            "{t1:registry:15}:logins:inactive"
        );
        assert_eq!(
            keys.legacy_logins_all_bucket(15),
            "{t1:registry:15}:logins:all"
        );
        assert_eq!(keys.legacy_logins_active(), "t1:logins:active");
    }

    #[test]
    fn one_ledger_bucket_keeps_the_single_ledger_tag_and_several_get_one_each() {
        let one = KeySpace::new("t1");
        assert_eq!(one.ledger_buckets(), 1);
        assert_eq!(
            one.ledger_date("2026-12-01", 0),
            "{t1:ledger}:date:2026-12-01"
        );
        assert_eq!(one.results_stream(0), "{t1:ledger}:results");
        assert_eq!(one.ledger_bucket_of("anything"), 0);
        let eight = KeySpace::new("t1").with_ledger_buckets(NonZeroU16::new(8).unwrap());
        assert_eq!(
            eight.ledger_date("2026-12-01", 5),
            "{t1:ledger:5}:date:2026-12-01"
        );
        assert_eq!(eight.events_stream(7), "{t1:ledger:7}:events");
        assert_eq!(eight.ledger_outbox(0), "{t1:ledger:0}:outbox");
        assert_eq!(eight.all_ledger_buckets(), 0..8);
        // The same hash as the registry's buckets, modulo the ledger's count.
        let id = "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10";
        assert_eq!(
            eight.ledger_bucket_of(id),
            KeySpace::new("t1")
                .with_buckets(NonZeroU16::new(8).unwrap())
                .bucket_of(id)
        );
    }

    #[test]
    fn a_login_bucket_is_a_stable_hash_of_its_id() {
        let sixteen = KeySpace::new("t1").with_buckets(NonZeroU16::new(16).unwrap());
        let id = "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10";
        // Pinned: a different answer would move every login of every deployment.
        assert_eq!(sixteen.bucket_of(id), 1);
        assert_eq!(
            sixteen.bucket_of(""),
            (0xcbf2_9ce4_8422_2325u64 % 16) as u16
        );
        let one = KeySpace::new("t1").with_buckets(NonZeroU16::MIN);
        assert_eq!(one.bucket_of(id), 0);
        assert_eq!(one.all_buckets(), 0..1);
    }

    #[test]
    fn logins_spread_over_every_bucket() {
        let keys = KeySpace::new("t1");
        let mut per_bucket = [0u32; DEFAULT_KEY_BUCKETS as usize];
        for n in 0..1_000 * u32::from(DEFAULT_KEY_BUCKETS) {
            let id = format!("00000000-0000-4000-8000-{n:012x}");
            per_bucket[keys.bucket_of(&id) as usize] += 1;
        }
        // 1,000 each on average: none is starved or doubled.
        assert!(
            per_bucket.iter().all(|&c| (800..1200).contains(&c)),
            "{per_bucket:?}"
        );
    }
}

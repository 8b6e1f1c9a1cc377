//! `KeySpace`: the only place Redis keys are built.
//!
//! Every key starts with the deployment's namespace (`REFRESH_NAMESPACE`), so two
//! deployments — or two tests running in parallel — share one Redis without touching
//! each other's keys and without `FLUSHALL`. Keys that belong to one queue carry a hash
//! tag `{namespace:queue}` so that all of a queue's keys (and so every Lua script over
//! them) land in one Redis Cluster slot.

/// Builds Redis keys for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    namespace: String,
}

impl KeySpace {
    /// A key space for `namespace` (e.g. `nightly-refresh`, or a unique name per test).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.namespace
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

    /// Registry: one login's HASH (`ns:login:{id}`).
    pub fn login(&self, login_id: &str) -> String {
        format!("{}:login:{}", self.namespace, login_id)
    }

    /// Registry: one login's capped outcome history LIST (`ns:login:{id}:history`).
    pub fn login_history(&self, login_id: &str) -> String {
        format!("{}:login:{}:history", self.namespace, login_id)
    }

    /// Registry: the SET of active LoginIds.
    pub fn logins_active(&self) -> String {
        format!("{}:logins:active", self.namespace)
    }

    /// Registry: the SET of every known LoginId, active or not.
    pub fn logins_all(&self) -> String {
        format!("{}:logins:all", self.namespace)
    }

    /// Registry: the ZSET of logins whose Flinks nightly-refresh change is not confirmed
    /// (pending or failed), score = the change's stamp. See [`crate::scheduled_refresh`].
    pub fn logins_flinks_unconfirmed(&self) -> String {
        format!("{}:logins:flinks_unconfirmed", self.namespace)
    }

    /// Ledger: the HASH of outcomes of one routine date, LoginId → JSON
    /// (`{ns:ledger}:date:YYYY-MM-DD`). Every ledger key shares the `{ns:ledger}` hash tag so
    /// the record script touches one Redis Cluster slot.
    pub fn ledger_date(&self, date: &str) -> String {
        format!("{{{}:ledger}}:date:{}", self.namespace, date)
    }

    /// Ledger: per-date counters and metadata HASH (expected, started_at, retries, counts).
    pub fn ledger_meta(&self, date: &str) -> String {
        format!("{{{}:ledger}}:meta:{}", self.namespace, date)
    }

    /// Ledger: per-date HASH LoginId → TOO_MANY_REQUESTS answers that login got that day.
    pub fn ledger_throttles(&self, date: &str) -> String {
        format!("{{{}:ledger}}:throttles:{}", self.namespace, date)
    }

    /// Ledger: per-date SET of the LoginIds GetNightlyRefreshStatus listed as ineligible:
    /// recorded as needs re-auth and not authorized that date.
    pub fn ledger_ineligible(&self, date: &str) -> String {
        format!("{{{}:ledger}}:ineligible:{}", self.namespace, date)
    }

    /// Ledger: the cross-date index ZSET of one kind (`reauth`, `failed`),
    /// member `date|LoginId`, score = outcome time in epoch milliseconds.
    pub fn ledger_index(&self, kind: &str) -> String {
        format!("{{{}:ledger}}:index:{}", self.namespace, kind)
    }

    /// The outcome outbox HASH (`{ns:ledger}:outbox`), LoginId → registry update still to
    /// apply. It shares the ledger's hash tag because the ledger script fills it in the same
    /// atomic step as the outcome (see [`crate::outcomes`]).
    pub fn ledger_outbox(&self) -> String {
        format!("{{{}:ledger}}:outbox", self.namespace)
    }

    /// The outcome events stream (`{ns:ledger}:events`, see [`crate::events`]). It shares
    /// the ledger's hash tag because the ledger script appends to it atomically.
    pub fn events_stream(&self) -> String {
        format!("{{{}:ledger}}:events", self.namespace)
    }

    /// Events: HASH LoginId → the login's open episode (`<type>|<routine date>|<start ms>`),
    /// so one episode gets one event however many days it lasts.
    pub fn events_episodes(&self) -> String {
        format!("{{{}:ledger}}:events:episodes", self.namespace)
    }

    /// Events: one key of the webhook delivery (`cursor`, `lease`, `dead`).
    pub fn events_webhook(&self, suffix: &str) -> String {
        format!("{{{}:ledger}}:events:webhook:{}", self.namespace, suffix)
    }

    /// Events: HASH LoginId → the stamp of the last SetScheduledRefresh change whose
    /// `activated` / `deactivated` event was appended (so a retried confirmation adds none).
    pub fn events_flinks_stamps(&self) -> String {
        format!("{{{}:ledger}}:events:flinks_stamps", self.namespace)
    }

    /// The results stream (`{ns:ledger}:results`). It shares the ledger's hash tag because
    /// one script appends to it and writes the ledger atomically.
    pub fn results_stream(&self) -> String {
        format!("{{{}:ledger}}:results", self.namespace)
    }
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
}

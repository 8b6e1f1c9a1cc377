//! Every Redis-backed store of one namespace, opened once from `Settings`: the routine's
//! queues, the ledger, the registry, the outcome recorder, the results stream, the global
//! rate limiter, the run-time control, the outcome events and the audit trail.
//!
//! Why one place: a queue's configuration (attempts, lease, backoff) is part of its
//! contract. The producer that enqueues, the worker that runs the jobs and the operator
//! commands that list or requeue them must open each queue the same way, so nobody builds
//! a `Queue` by hand. Opening does no I/O: every store only clones the connection.
//!
//! What it does not do: connect (see [`crate::redis_conn`]) or check that results may be
//! stored in clear (a worker calls `Settings::require_results_encryption` first).

use crate::redis_conn::RedisConn;

use crate::config::Settings;
use crate::control::Control;
use crate::events::Events;
use crate::jobs::{
    queue_config, AuthorizeJob, DetailJob, ScheduledRefreshJob, AUTHORIZE_QUEUE,
    DEACTIVATION_QUEUE, DETAIL_QUEUE,
};
use crate::keys::KeySpace;
use crate::ledger::Ledger;
use crate::ops::audit::AuditLog;
use crate::outcomes::Outcomes;
use crate::queue::{Queue, QueueError};
use crate::ratelimit::RateLimiter;
use crate::registry::Registry;
use crate::results::ResultsSink;

/// The stores of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    /// Cached-Authorize jobs.
    pub authorize: Queue<AuthorizeJob>,
    /// GetAccountsDetail jobs and their polls.
    pub detail: Queue<DetailJob>,
    /// SetScheduledRefresh jobs: attempts never run out (the backoff is capped at
    /// `RETRY_MAX_DELAY`), since Flinks keeps billing a login until it confirms.
    pub deactivation: Queue<ScheduledRefreshJob>,
    /// One outcome per (LoginId, routine date).
    pub ledger: Ledger,
    /// The LoginId registry.
    pub registry: Registry,
    /// Records outcomes in the ledger and the registry.
    pub outcomes: Outcomes,
    /// The results stream, encrypted when `RESULTS_ENCRYPTION_KEY` is set.
    pub results: ResultsSink,
    /// The global rate limiter, seeded with `RATE_LIMIT_PER_MINUTE`.
    pub limiter: RateLimiter,
    /// The run-time control: stored rate limit, paused queues, routine deadlines.
    pub control: Control,
    /// The outcome events stream.
    pub events: Events,
    /// The audit trail of operator commands.
    pub audit: AuditLog,
}

impl Stores {
    /// Opens the stores of the namespace of `keys` on `conn`, configured from `settings`.
    pub fn open(conn: RedisConn, keys: &KeySpace, settings: &Settings) -> Self {
        let mut deactivation = queue_config(settings, DEACTIVATION_QUEUE);
        deactivation.max_attempts = u32::MAX;
        Self {
            authorize: Queue::new(conn.clone(), keys, queue_config(settings, AUTHORIZE_QUEUE)),
            detail: Queue::new(conn.clone(), keys, queue_config(settings, DETAIL_QUEUE)),
            deactivation: Queue::new(conn.clone(), keys, deactivation),
            ledger: Ledger::new(conn.clone(), keys),
            registry: Registry::new(conn.clone(), keys),
            outcomes: Outcomes::new(conn.clone(), keys),
            results: ResultsSink::new(conn.clone(), keys, settings.results_stream_maxlen)
                .with_cipher(settings.results_cipher.clone()),
            limiter: RateLimiter::new(conn.clone(), keys, settings.rate_limit_per_minute),
            control: Control::new(conn.clone(), keys),
            events: Events::new(conn.clone(), keys),
            audit: AuditLog::new(conn, keys),
        }
    }

    /// Moves jobs every queue still holds in the previous storage layout to the current
    /// one (see [`Queue::migrate_layout`], [`Queue::migrate_pending`]) and notes when the routine's dedupe records
    /// changed form (see [`Queue::open_legacy_dedupe_window`]); run by workers and producers
    /// at start. Returns how many jobs moved.
    pub async fn migrate_queues(&self) -> Result<u64, QueueError> {
        let moved = self.authorize.migrate_layout().await?
            + self.detail.migrate_layout().await?
            + self.deactivation.migrate_layout().await?;
        self.authorize.migrate_pending().await?;
        self.authorize.open_legacy_dedupe_window().await?;
        Ok(moved)
    }

    /// The queue called `name` (`authorize`, `detail` or `deactivation`), typed as the
    /// caller reads its payloads; `None` for any other name.
    pub fn queue<T>(&self, name: &str) -> Option<Queue<T>> {
        match name {
            AUTHORIZE_QUEUE => Some(self.authorize.retyped()),
            DETAIL_QUEUE => Some(self.detail.retyped()),
            DEACTIVATION_QUEUE => Some(self.deactivation.retyped()),
            _ => None,
        }
    }
}

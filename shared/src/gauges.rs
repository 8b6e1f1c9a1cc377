//! The sampler: every few seconds it reads the queues and the due routine's ledger from
//! Redis and sets gauges, so whichever pod Prometheus scrapes answers the same, current
//! values (aggregate them with `max`, never `sum`: every pod exports the same numbers).
//!
//! What it sets (names and labels in [`crate::metrics`]): jobs per queue and state, worker
//! processes alive, the due routine date's expected / done / remaining LoginIds and their
//! outcomes, its ETA at the configured rate and its deadline (the next firing), the logins
//! whose nightly-refresh change Flinks has not confirmed, the active logins and the day's
//! capacity at the rate limit in force, which queues an operator paused, whether Redis
//! answered, and when a sample last
//! succeeded.
//!
//! It never writes to Redis and never fails: an error is logged (once per outage, not
//! every tick), `redis_up` drops to 0, and the next tick tries again. The counters and
//! histograms recorded where things happen live elsewhere; this module only samples state.

use std::collections::HashSet;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::control::{Control, ControlError, PAUSABLE_QUEUES};
use crate::forecast::capacity_per_day;
use crate::keys::KeySpace;
use crate::ledger::{Ledger, LedgerCounts, LedgerError};
use crate::metrics::{
    ACTIVE_LOGINS, FLINKS_SCHEDULED_REFRESH_UNCONFIRMED, QUEUE_JOBS, QUEUE_PAUSED,
    RATE_LIMIT_PER_MINUTE, REDIS_UP, ROUTINE_CAPACITY_PER_DAY, ROUTINE_DEADLINE_TIMESTAMP_SECONDS,
    ROUTINE_DONE_LOGINS, ROUTINE_ETA_SECONDS, ROUTINE_LOGINS, ROUTINE_QUEUES,
    SAMPLER_LAST_SUCCESS_TIMESTAMP_SECONDS, WORKERS_ALIVE,
};
use crate::queue::{Queue, QueueConfig, QueueError, QueueStats};
use crate::ratelimit::eta_at_rate;
use crate::routine::{due_date, next_fire};
use crate::scheduled_refresh::{ScheduledRefresh, ScheduledRefreshError};

/// Default time between two samples.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What the sampler needs to know besides Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Time between two samples.
    pub interval: Duration,
    /// `RATE_LIMIT_PER_MINUTE`: the limit while none is stored (0 = off: the ETA is NaN).
    pub rate_per_minute: f64,
    /// `ROUTINE_AT`: with `routine_tz`, decides which date is "today's" routine.
    pub routine_at: NaiveTime,
    /// `ROUTINE_TZ`.
    pub routine_tz: Tz,
    /// `WORKER_LEASE`: a worker is alive while its heartbeat is younger than 3 leases.
    pub worker_lease: Duration,
}

impl SamplerConfig {
    /// The sampler's view of `settings`, sampling every [`DEFAULT_INTERVAL`].
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            rate_per_minute: settings.rate_limit_per_minute,
            routine_at: settings.routine_at,
            routine_tz: settings.routine_tz,
            worker_lease: settings.worker_lease,
        }
    }
}

/// Why one sample failed (the sampler logs it and tries again next tick).
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Reading a queue failed.
    #[error("sampler: {0}")]
    Queue(#[from] QueueError),
    /// Reading the ledger failed.
    #[error("sampler: {0}")]
    Ledger(#[from] LedgerError),
    /// Reading the registry failed.
    #[error("sampler: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// Reading the control state failed.
    #[error("sampler: {0}")]
    Control(#[from] ControlError),
    /// Reading the scheduled-refresh index failed.
    #[error("sampler: {0}")]
    ScheduledRefresh(#[from] ScheduledRefreshError),
    /// Another Redis command failed.
    #[error("sampler: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One queue's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSample {
    /// The queue's name.
    pub queue: &'static str,
    /// Its counts per state.
    pub stats: QueueStats,
}

/// Everything one sample read.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Counts of the routine's queues.
    pub queues: Vec<QueueSample>,
    /// Distinct worker processes alive across the routine's queues.
    pub workers_alive: u64,
    /// The routine date the sample describes (the due one at sampling time).
    pub date: NaiveDate,
    /// Its expected LoginIds (active when the routine started; 0 before it ran).
    pub expected: u64,
    /// Its recorded outcomes.
    pub counts: LedgerCounts,
    /// The rate limit in force, LoginIds per minute (0 = off).
    pub rate_per_minute: f64,
    /// Per pausable queue, whether it is paused.
    pub paused: Vec<(&'static str, bool)>,
    /// Seconds to authorize the remaining LoginIds at the rate in force.
    pub eta_seconds: Option<f64>,
    /// The date's deadline: the schedule's next firing after the sample.
    pub deadline: DateTime<Utc>,
    /// Logins whose nightly-refresh change Flinks has not confirmed (pending or failed).
    pub flinks_unconfirmed: u64,
    /// Active logins in the registry.
    pub active: u64,
    /// Authorizes a day at the configured rate (`None`: the limiter is off).
    pub capacity_per_day: Option<u64>,
}

impl Sample {
    /// LoginIds of the date with no outcome yet.
    pub fn remaining(&self) -> u64 {
        self.expected.saturating_sub(self.counts.done())
    }

    /// Sets every sampled gauge on the current recorder.
    pub fn publish(&self) {
        for q in &self.queues {
            let s = &q.stats;
            for (state, value) in [
                ("ready", s.ready),
                ("delayed", s.delayed),
                ("in_flight", s.in_flight),
                ("dead", s.dead),
            ] {
                metrics::gauge!(QUEUE_JOBS, "queue" => q.queue, "state" => state).set(value as f64);
            }
        }
        metrics::gauge!(WORKERS_ALIVE).set(self.workers_alive as f64);
        let c = &self.counts;
        for (state, value) in [
            ("expected", self.expected),
            ("done", c.done()),
            ("remaining", self.remaining()),
        ] {
            metrics::gauge!(ROUTINE_LOGINS, "state" => state).set(value as f64);
        }
        for (outcome, value) in [
            ("refreshed", c.refreshed.saturating_sub(c.stale)),
            ("stale", c.stale),
            ("needs_reauth", c.needs_reauth),
            ("failed", c.failed),
            ("superseded", c.superseded),
        ] {
            metrics::gauge!(ROUTINE_DONE_LOGINS, "outcome" => outcome).set(value as f64);
        }
        metrics::gauge!(ROUTINE_ETA_SECONDS).set(self.eta_seconds.unwrap_or(f64::NAN));
        metrics::gauge!(ROUTINE_DEADLINE_TIMESTAMP_SECONDS).set(self.deadline.timestamp() as f64);
        metrics::gauge!(FLINKS_SCHEDULED_REFRESH_UNCONFIRMED).set(self.flinks_unconfirmed as f64);
        metrics::gauge!(ACTIVE_LOGINS).set(self.active as f64);
        metrics::gauge!(ROUTINE_CAPACITY_PER_DAY)
            .set(self.capacity_per_day.map_or(f64::NAN, |c| c as f64));
        metrics::gauge!(RATE_LIMIT_PER_MINUTE).set(self.rate_per_minute);
        for (queue, paused) in &self.paused {
            metrics::gauge!(QUEUE_PAUSED, "queue" => *queue).set(if *paused { 1.0 } else { 0.0 });
        }
        metrics::gauge!(REDIS_UP).set(1.0);
        metrics::gauge!(SAMPLER_LAST_SUCCESS_TIMESTAMP_SECONDS).set(Utc::now().timestamp() as f64);
    }
}

/// Reads one sample from Redis, for the routine that is due at `now`.
pub async fn sample_once(
    conn: &RedisConn,
    keys: &KeySpace,
    config: &SamplerConfig,
    now: DateTime<Utc>,
) -> Result<Sample, SampleError> {
    let mut queues = Vec::with_capacity(ROUTINE_QUEUES.len());
    let mut alive = HashSet::new();
    let mut redis_conn = conn.clone();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut redis_conn).await?;
    let redis_now_ms = secs * 1_000 + micros / 1_000;
    let alive_since = redis_now_ms.saturating_sub(3 * config.worker_lease.as_millis() as u64);
    for name in ROUTINE_QUEUES {
        let queue: Queue<serde_json::Value> = Queue::new(
            conn.clone(),
            keys,
            QueueConfig::new(name).with_lease(config.worker_lease),
        );
        let stats = queue.stats().await?;
        alive.extend(
            queue
                .workers()
                .await?
                .into_iter()
                .filter(|(_, beat)| *beat >= alive_since)
                .map(|(id, _)| id),
        );
        queues.push(QueueSample { queue: name, stats });
    }
    let date = due_date(now, config.routine_at, config.routine_tz);
    let ledger = Ledger::new(conn.clone(), keys);
    let expected = ledger.expected(date).await?;
    let counts = ledger.counts(date).await?;
    let remaining = expected.saturating_sub(counts.done());
    let control = Control::new(conn.clone(), keys);
    let rate_per_minute = control.rate_limit(config.rate_per_minute).await?.per_minute;
    let mut paused = Vec::with_capacity(PAUSABLE_QUEUES.len());
    for queue in PAUSABLE_QUEUES {
        paused.push((queue, control.is_paused(queue).await?));
    }
    Ok(Sample {
        queues,
        workers_alive: alive.len() as u64,
        date,
        expected,
        counts,
        rate_per_minute,
        paused,
        eta_seconds: eta_at_rate(rate_per_minute, remaining).map(|d| d.as_secs_f64()),
        deadline: next_fire(now, config.routine_at, config.routine_tz),
        flinks_unconfirmed: ScheduledRefresh::new(conn.clone(), keys)
            .count_unconfirmed()
            .await?,
        active: crate::registry::Registry::new(conn.clone(), keys)
            .count_active()
            .await?,
        capacity_per_day: capacity_per_day(rate_per_minute),
    })
}

/// Samples now and then every `config.interval` until `shutdown` fires. Errors are logged
/// and set `redis_up` to 0; the task never ends on its own.
pub fn spawn_sampler(
    conn: RedisConn,
    keys: KeySpace,
    config: SamplerConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(config.interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let sampled = tokio::select! {
                _ = shutdown.cancelled() => return,
                sampled = sample_once(&conn, &keys, &config, Utc::now()) => sampled,
            };
            match sampled {
                Ok(sample) => {
                    sample.publish();
                    if failing {
                        tracing::info!("sampler: Redis answers again; gauges are current");
                        failing = false;
                    }
                }
                Err(error) => {
                    metrics::gauge!(REDIS_UP).set(0.0);
                    if failing {
                        tracing::debug!(error.message = %error, "sampler: still failing");
                    } else {
                        tracing::warn!(
                            error.message = %error,
                            error.cause_chain = ?error,
                            "sampler: cannot read Redis; gauges are stale until it answers"
                        );
                        failing = true;
                    }
                }
            }
        }
    })
}

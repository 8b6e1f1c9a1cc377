//! The sampler: every few seconds it reads the queues and the due routine's ledger from
//! Redis and sets gauges, so whichever pod Prometheus scrapes answers the same, current
//! values (aggregate them with `max`, never `sum`: every pod exports the same numbers).
//!
//! What it reads is the one snapshot `producer queues stats` prints too
//! ([`crate::ops::stats::snapshot`]: Redis' clock, one notion of a live worker), plus the
//! routine's ledger and the control state.
//!
//! What it sets (names and labels in [`crate::metrics`]): jobs per queue and state, the age
//! of the job next in line per queue, worker processes alive, the results stream's length
//! and its consumer groups' lag, the due routine date's expected / done / remaining
//! LoginIds and their outcomes, its ETA at the configured rate and its deadline (the next
//! firing), the logins whose nightly-refresh change Flinks has not confirmed, the active
//! logins and the day's capacity at the rate limit in force, which queues an operator
//! paused, whether Redis answered, and when a sample last succeeded.
//!
//! It never writes to Redis and never fails: an error is logged (once per outage, not
//! every tick), `redis_up` drops to 0, and the next tick tries again. The counters and
//! histograms recorded where things happen live elsewhere; this module only samples state.

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
    ACTIVE_LOGINS, FLINKS_SCHEDULED_REFRESH_UNCONFIRMED, QUEUE_JOBS,
    QUEUE_OLDEST_READY_AGE_SECONDS, QUEUE_PAUSED, RATE_LIMIT_PER_MINUTE, REDIS_UP,
    RESULTS_CONSUMER_GROUP_LAG_ENTRIES, RESULTS_CONSUMER_GROUP_PENDING_ENTRIES,
    RESULTS_STREAM_ENTRIES, ROUTINE_CAPACITY_PER_DAY, ROUTINE_DEADLINE_TIMESTAMP_SECONDS,
    ROUTINE_DONE_LOGINS, ROUTINE_ETA_SECONDS, ROUTINE_LOGINS,
    SAMPLER_LAST_SUCCESS_TIMESTAMP_SECONDS, WORKERS_ALIVE,
};
use crate::ops::stats::{snapshot, Snapshot};
use crate::ops::OpsError;
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
    /// `WORKER_LEASE`: decides which workers are alive ([`crate::queue::worker_alive`]).
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
    /// Reading the queues, workers or results stream failed.
    #[error("sampler: {0}")]
    Snapshot(#[from] OpsError),
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

/// Everything one sample read.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The routine's queues, workers and results stream.
    pub snapshot: Snapshot,
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
    /// The date's deadline: the one its run stored, else the schedule's next firing.
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
        for q in &self.snapshot.queues {
            for (state, value) in [
                ("ready", q.ready),
                ("delayed", q.delayed),
                ("in_flight", q.in_flight),
                ("dead", q.dead),
            ] {
                metrics::gauge!(QUEUE_JOBS, "queue" => q.queue.clone(), "state" => state)
                    .set(value as f64);
            }
            // Nothing ready: 0 rather than no value, so an age alert clears when a queue drains.
            metrics::gauge!(QUEUE_OLDEST_READY_AGE_SECONDS, "queue" => q.queue.clone())
                .set(q.oldest_ready_age_ms.unwrap_or(0) as f64 / 1_000.0);
        }
        metrics::gauge!(WORKERS_ALIVE).set(self.snapshot.workers_alive() as f64);
        let results = &self.snapshot.results;
        metrics::gauge!(RESULTS_STREAM_ENTRIES).set(results.length as f64);
        for g in &results.groups {
            metrics::gauge!(RESULTS_CONSUMER_GROUP_LAG_ENTRIES, "group" => g.group.clone())
                .set(g.lag.map_or(f64::NAN, |l| l as f64));
            metrics::gauge!(RESULTS_CONSUMER_GROUP_PENDING_ENTRIES, "group" => g.group.clone())
                .set(g.pending as f64);
        }
        let c = &self.counts;
        for (state, value) in [
            ("expected", self.expected),
            ("done", c.done()),
            ("remaining", self.remaining()),
        ] {
            metrics::gauge!(ROUTINE_LOGINS, "state" => state).set(value as f64);
        }
        for (outcome, value) in [
            ("refreshed", c.refreshed),
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
    let snapshot = snapshot(conn, keys, config.worker_lease).await?;
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
        snapshot,
        date,
        expected,
        counts,
        rate_per_minute,
        paused,
        eta_seconds: eta_at_rate(rate_per_minute, remaining).map(|d| d.as_secs_f64()),
        // The deadline the routine stored for the date; the next firing until it ran.
        deadline: control
            .routine_deadline(date)
            .await?
            .unwrap_or_else(|| next_fire(now, config.routine_at, config.routine_tz)),
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

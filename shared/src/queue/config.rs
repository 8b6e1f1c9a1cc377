//! `QueueConfig`: the knobs of one queue (attempts, backoff, lease, retention, caps).
//!
//! Defaults suit the nightly routine; the worker sets `lease` from `WORKER_LEASE`
//! ([`crate::config::Settings::worker_lease`]).

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter for retries: attempt `n` waits
/// `min(base * 2^(n-1), max)`, scaled by a random factor in `[1 - jitter, 1 + jitter]`
/// (and never above `max`).
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Relative jitter, 0.0 (none) to 1.0.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(10 * 60),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before the next try after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 || raw.is_zero() {
            return raw;
        }
        let factor = rand::rng().random_range((1.0 - jitter)..=(1.0 + jitter));
        raw.mul_f64(factor).min(self.max)
    }
}

/// Configuration of one queue. Build with [`QueueConfig::new`] and adjust the public fields.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// The queue's stable name (a `const`, never a Rust type name); part of every key.
    pub name: String,
    /// Deliveries allowed per job, the first included. After the last one fails (or its lease
    /// expires) the job is dead-lettered.
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: Backoff,
    /// How long a fetched job stays leased without a renewal (`WORKER_LEASE`, default 60 s).
    /// Heartbeats renew every `lease / 3`.
    pub lease: Duration,
    /// How long a small record of a finished job (`done:<id>`: attempts, time, worker) is
    /// kept; zero (the default) keeps nothing, so an ack is one DEL of the job's hash.
    /// Nothing in the routine reads the record: its outcome is in the ledger.
    pub finished_retention: Duration,
    /// At most this many dead letters are kept; the oldest are trimmed first.
    pub dead_cap: usize,
    /// Lifetime of a dedupe key: long enough to outlive the job's whole life, retries and
    /// dead letter included.
    pub dedupe_ttl: Duration,
    /// Most delayed jobs promoted to ready by one script call.
    pub promote_chunk: usize,
    /// A process's calls that lease jobs promote due delayed jobs (when ready runs dry) at
    /// most once per this interval, so polling a nearly empty queue does not read the
    /// delayed set every time; a due job waits at most this long past its due time. Zero:
    /// every call may promote.
    pub promote_every: Duration,
    /// How long an idle worker waits before fetching again.
    pub poll_interval: Duration,
    /// Workers not seen for this long are dropped from the "alive" set.
    pub worker_retention: Duration,
}

impl QueueConfig {
    /// Defaults for queue `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_attempts: 5,
            backoff: Backoff::default(),
            lease: Duration::from_secs(60),
            finished_retention: Duration::ZERO,
            dead_cap: 100_000,
            dedupe_ttl: Duration::from_secs(3 * 86_400),
            promote_chunk: 1_000,
            promote_every: Duration::from_millis(100),
            poll_interval: Duration::from_millis(200),
            worker_retention: Duration::from_secs(3_600),
        }
    }

    /// The same configuration with another lease (e.g. `settings.worker_lease`).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often a process renews its leases and runs the reaper: a third of the lease.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(50))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_and_is_capped() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(5),
            jitter: 0.0,
        };
        assert_eq!(b.delay(1), Duration::from_secs(1));
        assert_eq!(b.delay(2), Duration::from_secs(2));
        assert_eq!(b.delay(3), Duration::from_secs(4));
        assert_eq!(b.delay(4), Duration::from_secs(5));
        assert_eq!(b.delay(100), Duration::from_secs(5));
    }

    #[test]
    fn backoff_jitter_stays_within_its_band() {
        let b = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
            jitter: 0.5,
        };
        for _ in 0..100 {
            let d = b.delay(1);
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(15),
                "{d:?}"
            );
        }
    }
}

//! The global rate limit: at most the stored limit (see [`crate::control`], seeded from
//! `RATE_LIMIT_PER_MINUTE`) of authorizations per minute across every worker process of a
//! namespace.
//!
//! A per-process limiter (tower's `RateLimit`, apalis' `.rate_limit`) sends N times the
//! budget with N pods, so the state lives in Redis: one key holds when the last permit was
//! granted, advanced atomically by `gcra.lua` on Redis' own clock (`TIME`), so workers'
//! clock skew cannot matter. The script reads the operator-set limit on every call (same
//! hash tag), so `producer ratelimit set` reaches every worker at its next request. Permits are spaced evenly (burst of
//! one) rather than released in a burst at a window's start, and the spacing carries a
//! small safety margin ([`SPACING_MARGIN`]) so network jitter between the permit and the
//! request's arrival at Flinks cannot squeeze one call too many into a 60 s window.
//!
//! When Flinks answers TOO_MANY_REQUESTS anyway, [`RateLimiter::cool_down`] sets a key
//! that pauses every worker at once. First attempts and retries draw from the same budget.
//!
//! A permit is taken with [`RateLimiter::acquire`] *immediately* before the limited request
//! is sent, after every preparatory call (minting an authorize token, ledger checks): the
//! limiter spaces permits, so anything slow between a permit and its request would let a
//! later permit's request overtake it and crowd a window. To avoid claiming work long
//! before it can run, a worker first waits with [`RateLimiter::wait_until_likely`], which
//! peeks at the limiter without taking anything. While the limit is off (0), a limiter
//! that heard so from Redis less than [`OFF_TRUSTED_FOR`] ago answers peeks itself.
//!
//! A permit is asked of Redis for every request, with one exception: a job whose lease
//! read the stored limit ([`RateLimiter::limit_read`]) and found it off, less than
//! [`OFF_TRUSTED_FOR`] before its request, is granted one on that read
//! ([`RateLimiter::granted_by_read`]), which was made in the same script call that leased
//! the job. An unthrottled routine then spends no call per login on a limiter that grants
//! everything, and a limit set meanwhile holds every request whose job is leased after
//! it (every request, once the jobs leased before it have run).
//!
//! This module does not decide *what* to do while waiting; the caller passes a
//! cancellation token so shutdown never waits for a permit.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::queue::{LeaseRead, PayloadText};
use crate::redis_conn::RedisConn;
use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::keys::KeySpace;

/// Spacing safety margin: permits are `60 s / limit × (1 + margin)` apart.
pub const SPACING_MARGIN: f64 = 0.01;

/// How long an answer saying the limit is off is trusted: by peeks
/// ([`RateLimiter::wait_until_likely`], [`RateLimiter::off_recently`]), so a busy worker
/// with no limit peeks once a second instead of before every claim, and by a lease's read
/// of the limit ([`RateLimiter::granted_by_read`]).
pub const OFF_TRUSTED_FOR: Duration = Duration::from_secs(1);

/// Whether "the limit is off", heard from Redis at `heard_at`, may still be believed at
/// `now`: less than [`OFF_TRUSTED_FOR`] later.
fn off_still_trusted(heard_at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(heard_at) < OFF_TRUSTED_FOR
}

/// Metric: permits granted or refused (`result` = granted | throttled).
pub const PERMITS_TOTAL: &str = "nightly_refresh_rate_limit_permits_total";
/// Metric: time spent waiting for a permit, per granted permit.
pub const WAIT_SECONDS: &str = "nightly_refresh_rate_limit_wait_seconds";
/// Metric: cool-downs triggered by TOO_MANY_REQUESTS.
pub const COOLDOWNS_TOTAL: &str = "nightly_refresh_rate_limit_cooldowns_total";

static GCRA: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/ratelimit/gcra.lua")));

/// Why a permit could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// Redis did not answer; the caller retries later (no permit was taken).
    #[error("rate limiter: Redis unavailable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The answer to one permit request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The caller may start one authorization now.
    Granted,
    /// Not yet: ask again after this long.
    Wait(Duration),
}

/// A granted permit, with how long the caller waited for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// Time from the first request to the grant.
    pub waited: Duration,
}

/// The Redis-backed global limiter. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    conn: RedisConn,
    last_key: String,
    cooldown_key: String,
    limit_key: String,
    per_minute: f64,
    /// When Redis last answered that the limit is off (asked at), `None` when the last
    /// answer said it is on. Shared by the limiter's clones.
    off_seen: Arc<Mutex<Option<Instant>>>,
}

impl RateLimiter {
    /// A limiter for the namespace of `keys`. It obeys the stored limit
    /// ([`crate::control::Control::set_rate_limit`]); `per_minute` applies only while none
    /// is stored. A limit of `0` turns it off (every request is granted at once).
    pub fn new(conn: RedisConn, keys: &KeySpace, per_minute: f64) -> Self {
        Self {
            conn,
            last_key: keys.ratelimit("authorize:last"),
            cooldown_key: keys.ratelimit("authorize:cooldown"),
            limit_key: keys.rate_limit_per_minute(),
            per_minute,
            off_seen: Arc::default(),
        }
    }

    /// True when Redis answered less than [`OFF_TRUSTED_FOR`] ago that the limit is off.
    pub fn off_recently(&self) -> bool {
        self.off_recently_at(Instant::now())
    }

    /// [`RateLimiter::off_recently`] as of `now` (tests inject a clock here).
    pub fn off_recently_at(&self, now: Instant) -> bool {
        self.off_seen
            .lock()
            .expect("rate limiter lock")
            .is_some_and(|at| off_still_trusted(at, now))
    }

    /// The limit used while none is stored, LoginIds per minute.
    pub fn fallback_per_minute(&self) -> f64 {
        self.per_minute
    }

    /// Milliseconds between two permits at the fallback limit, margin included.
    pub fn interval(&self) -> Duration {
        interval_at_rate(self.per_minute)
    }

    /// A [lease read](crate::queue::Queue::with_lease_reads) of the stored limit, for
    /// [`RateLimiter::granted_by_read`].
    pub fn limit_read(&self) -> LeaseRead {
        LeaseRead::get(PayloadText::fixed(self.limit_key.as_str()))
    }

    /// Whether the limit is off going by `stored`, what [`RateLimiter::limit_read`]
    /// answered: the stored limit is 0, or none is stored and this process' fallback is
    /// 0. Only a plain number is believed (what `producer ratelimit set` writes): a value
    /// `gcra.lua` might read another way is never taken as off.
    pub fn off_by(&self, stored: Option<&str>) -> bool {
        let plain = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+'))
        };
        let limit = match stored {
            None => Some(self.per_minute),
            Some(text) if plain(text) => text.parse::<f64>().ok(),
            Some(_) => None,
        };
        limit.is_some_and(|limit| limit <= 0.0)
    }

    /// A permit granted on the answer of [`RateLimiter::limit_read`] (`stored`), read
    /// `read_at` in the call that leased the job, without asking Redis again: when the
    /// limit was off then ([`RateLimiter::off_by`]) and `now` is less than
    /// [`OFF_TRUSTED_FOR`] later. `None` otherwise: then [`RateLimiter::acquire`]. Counted
    /// as a granted permit, with no wait.
    pub fn granted_by_read(
        &self,
        stored: Option<&str>,
        read_at: Instant,
        now: Instant,
    ) -> Option<Permit> {
        if !self.off_by(stored) || !off_still_trusted(read_at, now) {
            return None;
        }
        {
            let mut seen = self.off_seen.lock().expect("rate limiter lock");
            if seen.is_none_or(|at| at < read_at) {
                *seen = Some(read_at);
            }
        }
        metrics::counter!(PERMITS_TOTAL, "result" => "granted").increment(1);
        metrics::histogram!(WAIT_SECONDS).record(0.0);
        Some(Permit {
            waited: Duration::ZERO,
        })
    }

    /// One atomic permit request on Redis' clock.
    pub async fn try_acquire(&self) -> Result<Attempt, RateLimitError> {
        self.try_acquire_at(None).await
    }

    /// One permit request with an injected clock (`now_ms`), for tests of edge cases.
    pub async fn try_acquire_at(&self, now_ms: Option<u64>) -> Result<Attempt, RateLimitError> {
        let attempt = self.gcra(now_ms, false).await?;
        let result = match attempt {
            Attempt::Granted => "granted",
            Attempt::Wait(_) => "throttled",
        };
        metrics::counter!(PERMITS_TOTAL, "result" => result).increment(1);
        Ok(attempt)
    }

    /// What [`RateLimiter::try_acquire_at`] would answer now, without taking a permit.
    pub async fn peek_at(&self, now_ms: Option<u64>) -> Result<Attempt, RateLimitError> {
        self.gcra(now_ms, true).await
    }

    async fn gcra(&self, now_ms: Option<u64>, peek: bool) -> Result<Attempt, RateLimitError> {
        let mut conn = self.conn.clone();
        let asked = Instant::now();
        let (granted, wait_ms): (i64, i64) = GCRA
            .key(&self.last_key)
            .key(&self.cooldown_key)
            .key(&self.limit_key)
            .arg(self.per_minute)
            .arg(now_ms.map(|n| n.to_string()).unwrap_or_default())
            .arg(if peek { "1" } else { "0" })
            .arg(SPACING_MARGIN)
            .invoke_async(&mut conn)
            .await?;
        let off = granted == 1 && wait_ms < 0;
        *self.off_seen.lock().expect("rate limiter lock") = off.then_some(asked);
        if granted == 1 {
            Ok(Attempt::Granted)
        } else {
            Ok(Attempt::Wait(Duration::from_millis(wait_ms.max(1) as u64)))
        }
    }

    /// Waits until a permit would be granted, taking none: a worker calls this before it
    /// claims a job, then [`RateLimiter::acquire`] right before the limited request. Returns
    /// false when `cancel` fires first. Other workers may take the permit in between; the
    /// caller then waits in `acquire` for the next one. Asks nothing while the limit was
    /// off less than [`OFF_TRUSTED_FOR`] ago.
    pub async fn wait_until_likely(&self, cancel: &CancellationToken) -> bool {
        if self.off_recently() {
            return !cancel.is_cancelled();
        }
        self.retry_until_granted(cancel, || self.peek_at(None))
            .await
    }

    /// Waits for a permit. Returns `None` when `cancel` fires first (shutdown), so a
    /// waiting worker never holds up a drain. Redis errors are retried with backoff, a
    /// wait is never an error.
    pub async fn acquire(&self, cancel: &CancellationToken) -> Option<Permit> {
        let started = Instant::now();
        if !self
            .retry_until_granted(cancel, || self.try_acquire())
            .await
        {
            return None;
        }
        let waited = started.elapsed();
        metrics::histogram!(WAIT_SECONDS).record(waited.as_secs_f64());
        Some(Permit { waited })
    }

    /// Calls `attempt` until it answers granted (true), sleeping for the wait it names,
    /// or backing off on Redis errors; false when `cancel` fires first.
    async fn retry_until_granted<F, Fut>(&self, cancel: &CancellationToken, attempt: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt, RateLimitError>>,
    {
        let mut redis_backoff = Duration::from_millis(100);
        loop {
            let pause = match attempt().await {
                Ok(Attempt::Granted) => return true,
                Ok(Attempt::Wait(wait)) => {
                    redis_backoff = Duration::from_millis(100);
                    wait
                }
                Err(error) => {
                    tracing::warn!(error.message = %error, "rate limiter: Redis error, retrying");
                    redis_backoff = (redis_backoff * 2).min(Duration::from_secs(5));
                    redis_backoff
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Pauses every worker's authorizations for `pause` (after TOO_MANY_REQUESTS). A
    /// longer cool-down already running is never shortened.
    pub async fn cool_down(&self, pause: Duration) -> Result<(), RateLimitError> {
        let mut conn = self.conn.clone();
        let ms = pause.as_millis().max(1) as u64;
        let left: i64 = redis::cmd("PTTL")
            .arg(&self.cooldown_key)
            .query_async(&mut conn)
            .await?;
        if left < ms as i64 {
            let _: () = redis::cmd("SET")
                .arg(&self.cooldown_key)
                .arg(1)
                .arg("PX")
                .arg(ms)
                .query_async(&mut conn)
                .await?;
        }
        metrics::counter!(COOLDOWNS_TOTAL).increment(1);
        tracing::warn!(
            pause_ms = ms,
            "rate limiter: Flinks throttled us; all workers cool down"
        );
        Ok(())
    }

    /// Time left of a running cool-down, if any.
    pub async fn cooldown_remaining(&self) -> Result<Option<Duration>, RateLimitError> {
        let mut conn = self.conn.clone();
        let left: i64 = redis::cmd("PTTL")
            .arg(&self.cooldown_key)
            .query_async(&mut conn)
            .await?;
        Ok((left > 0).then(|| Duration::from_millis(left as u64)))
    }
}

/// Milliseconds between two permits at `per_minute`, margin included (zero when off). The
/// script computes the same spacing from the stored limit.
pub fn interval_at_rate(per_minute: f64) -> Duration {
    if per_minute <= 0.0 {
        return Duration::ZERO;
    }
    let ms = (60_000.0 / per_minute * (1.0 + SPACING_MARGIN)).ceil();
    Duration::from_millis(ms as u64)
}

/// Time to authorize `remaining` LoginIds at `per_minute` (`None` when the rate is 0).
pub fn eta_at_rate(per_minute: f64, remaining: u64) -> Option<Duration> {
    if per_minute <= 0.0 {
        return None;
    }
    let interval = 60.0 / per_minute * (1.0 + SPACING_MARGIN);
    Some(Duration::from_secs_f64(interval * remaining as f64))
}

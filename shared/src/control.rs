//! Operator control at run time: the global rate limit and a pause flag per queue, stored
//! in Redis as the one source of truth every worker obeys without a restart.
//!
//! - The rate limit (permits per minute, `0` = off) is stored at
//!   [`KeySpace::rate_limit_per_minute`], in the limiter's hash tag, because the limiter's
//!   script reads it on every permit request: a change reaches every worker at its next
//!   request. `RATE_LIMIT_PER_MINUTE` only seeds it when none is stored
//!   ([`Control::seed_rate_limit`]); a pod started with another value keeps the stored one
//!   and warns, so a rolling restart cannot undo an operator's change.
//! - A pause flag per queue ([`KeySpace::queue_paused`]) stops workers from *fetching* that
//!   queue; jobs already leased finish. [`PauseGate`] is the backend's [`FetchGate`] that
//!   enforces it, re-reading the flag at least every [`PAUSE_POLL`].
//!
//! - A deadline per routine date ([`KeySpace::routine_deadline`]), written by the run that
//!   starts the date (`routine run`, the schedule) before its jobs are queued. Past it, a
//!   worker calls Flinks for none of the date's jobs: it records them `superseded`, and
//!   never schedules a retry beyond it, because the next date's routine covers the login.
//!   Workers read it through [`RoutineDeadlines`], cached for [`DEADLINE_CACHE`].
//!
//! Auditing and printing are the callers' business (`producer ratelimit`, `producer queues
//! pause|resume`); this module validates and stores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::jobs::{AUTHORIZE_QUEUE, DEACTIVATION_QUEUE, DETAIL_QUEUE};
use crate::keys::KeySpace;
use crate::queue::FetchGate;

/// The queues an operator can pause.
pub const PAUSABLE_QUEUES: [&str; 3] = [AUTHORIZE_QUEUE, DETAIL_QUEUE, DEACTIVATION_QUEUE];

/// The highest settable limit: the limiter spaces permits in whole milliseconds.
pub const MAX_RATE_PER_MINUTE: f64 = 60_000.0;

/// How often a paused worker re-reads its queue's flag, so a resume applies within it.
pub const PAUSE_POLL: Duration = Duration::from_secs(1);

/// How long a worker trusts the deadline it read for a date: a re-run that moves the
/// deadline applies within it.
pub const DEADLINE_CACHE: Duration = Duration::from_secs(10);

/// How long a routine date's deadline is kept after it passed: longer than any job of the
/// date can wait, so a late job still finds it.
pub const DEADLINE_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Redis refused or did not answer; run the command again.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The rate limit given is not one the limiter can enforce.
    #[error("rate limit {0:?}: expected 0 (off) or a number of LoginIds per minute up to 60000")]
    InvalidRate(String),
    /// The queue named is not one that can be paused.
    #[error("queue {0:?}: expected one of authorize, detail, deactivation, or all")]
    UnknownQueue(String),
}

/// Parses and validates an operator's rate limit: a finite number from 0 (off) to
/// [`MAX_RATE_PER_MINUTE`].
pub fn parse_rate(raw: &str) -> Result<f64, ControlError> {
    let rate: f64 = raw
        .trim()
        .parse()
        .map_err(|_| ControlError::InvalidRate(raw.to_string()))?;
    if rate.is_finite() && (0.0..=MAX_RATE_PER_MINUTE).contains(&rate) {
        Ok(rate)
    } else {
        Err(ControlError::InvalidRate(raw.to_string()))
    }
}

/// Resolves a queue argument: one of [`PAUSABLE_QUEUES`], or `all`.
pub fn parse_queues(raw: &str) -> Result<Vec<&'static str>, ControlError> {
    let name = raw.trim();
    if name.eq_ignore_ascii_case("all") {
        return Ok(PAUSABLE_QUEUES.to_vec());
    }
    PAUSABLE_QUEUES
        .iter()
        .find(|q| q.eq_ignore_ascii_case(name))
        .map(|q| vec![*q])
        .ok_or_else(|| ControlError::UnknownQueue(raw.to_string()))
}

/// The queues a `queues pause|resume` argument names, parsed by [`parse_queues`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSelection(pub Vec<&'static str>);

impl std::str::FromStr for QueueSelection {
    type Err = ControlError;

    fn from_str(raw: &str) -> Result<Self, ControlError> {
        parse_queues(raw).map(Self)
    }
}

/// The rate limit as the workers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimitState {
    /// The limit in force, LoginIds per minute (0 = off): the stored one, or `configured`
    /// while none is stored.
    pub per_minute: f64,
    /// Whether an operator's (or the seeding worker's) value is stored.
    pub stored: bool,
    /// `RATE_LIMIT_PER_MINUTE` of the process asking.
    pub configured: f64,
}

/// One queue's pause flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseState {
    /// The queue.
    pub queue: String,
    /// True while workers do not fetch it.
    pub paused: bool,
    /// The operator's reason, if given.
    pub reason: Option<String>,
    /// Who paused it.
    pub actor: Option<String>,
    /// When it was paused.
    pub since: Option<DateTime<Utc>>,
}

impl RateLimitState {
    /// `120/min` or `off`, saying when no limit is stored.
    pub fn describe(&self) -> String {
        let limit = if self.per_minute > 0.0 {
            format!("{}/min", self.per_minute)
        } else {
            "off".to_string()
        };
        if self.stored {
            limit
        } else {
            format!("{limit} (none stored: RATE_LIMIT_PER_MINUTE of this process)")
        }
    }
}

impl PauseState {
    /// `<queue> since <time> by <actor>: <reason>`, the reason's control characters
    /// escaped.
    pub fn describe(&self) -> String {
        let since = self
            .since
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        let reason = self.reason.as_deref().map(crate::domain::escape_control);
        format!(
            "{} since {} by {}{}",
            self.queue,
            since.as_deref().unwrap_or("-"),
            self.actor.as_deref().unwrap_or("-"),
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        )
    }
}

/// The control state as `queues stats` and `report` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlView {
    /// The rate limit in force.
    pub rate_limit: RateLimitState,
    /// Every pausable queue's flag.
    pub pauses: Vec<PauseState>,
}

impl ControlView {
    /// Text lines: the limit, then each paused queue with its reason.
    pub fn render_text(&self) -> String {
        let mut out = format!("rate limit:      {}\n", self.rate_limit.describe());
        let paused: Vec<&PauseState> = self.pauses.iter().filter(|p| p.paused).collect();
        if paused.is_empty() {
            out.push_str("paused queues:   none\n");
        }
        for p in paused {
            out.push_str(&format!("paused queue:    {}\n", p.describe()));
        }
        out
    }
}

/// What `queues pause|resume` did to one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueChange {
    /// The queue.
    pub queue: &'static str,
    /// Whether it is paused now.
    pub paused: bool,
    /// False when the queue already was in that state.
    pub changed: bool,
}

/// What `ratelimit set` stored and the limit it replaced.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RateChange {
    /// The limit stored.
    pub per_minute: f64,
    /// The limit stored before, if any.
    pub previous: Option<f64>,
}

impl RateChange {
    /// The audit trail's summary.
    pub fn summary(&self) -> String {
        match self.previous {
            Some(p) => format!("per_minute={} (was {p})", self.per_minute),
            None => format!("per_minute={} (none stored)", self.per_minute),
        }
    }
}

/// The audit trail's summary of `queues pause`: the queues and the reason.
pub fn pause_summary(queues: &[&str], reason: Option<&str>) -> String {
    let reason = reason.map(|r| format!(" reason={r}")).unwrap_or_default();
    format!("{}{reason}", queues.join(","))
}

/// The control state of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    conn: RedisConn,
    keys: KeySpace,
}

impl Control {
    /// The control state of the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        Self {
            conn,
            keys: keys.clone(),
        }
    }

    /// The stored limit, if any. A value that does not parse reads as none stored.
    pub async fn stored_rate_limit(&self) -> Result<Option<f64>, ControlError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.keys.rate_limit_per_minute())
            .query_async(&mut conn)
            .await?;
        Ok(raw.and_then(|r| r.parse().ok()))
    }

    /// The limit in force, given the process' `RATE_LIMIT_PER_MINUTE` (`configured`).
    pub async fn rate_limit(&self, configured: f64) -> Result<RateLimitState, ControlError> {
        let stored = self.stored_rate_limit().await?;
        Ok(RateLimitState {
            per_minute: stored.unwrap_or(configured),
            stored: stored.is_some(),
            configured,
        })
    }

    /// Stores `configured` as the limit unless one is stored, and returns the limit in
    /// force. A stored limit that differs wins, with a warning naming both values.
    pub async fn seed_rate_limit(&self, configured: f64) -> Result<f64, ControlError> {
        let mut conn = self.conn.clone();
        let _: Option<String> = redis::cmd("SET")
            .arg(self.keys.rate_limit_per_minute())
            .arg(configured)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let live = self.stored_rate_limit().await?.unwrap_or(configured);
        if live != configured {
            tracing::warn!(
                rate_limit_per_minute = live,
                env_rate_limit_per_minute = configured,
                "RATE_LIMIT_PER_MINUTE differs from the stored rate limit; the stored one \
                 applies (change it with `producer ratelimit set`)"
            );
        }
        Ok(live)
    }

    /// Stores a validated limit (see [`parse_rate`]) and returns the one stored before.
    pub async fn set_rate_limit(&self, per_minute: f64) -> Result<Option<f64>, ControlError> {
        if !(per_minute.is_finite() && (0.0..=MAX_RATE_PER_MINUTE).contains(&per_minute)) {
            return Err(ControlError::InvalidRate(per_minute.to_string()));
        }
        let mut conn = self.conn.clone();
        let previous: Option<String> = redis::cmd("SET")
            .arg(self.keys.rate_limit_per_minute())
            .arg(per_minute)
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        Ok(previous.and_then(|p| p.parse().ok()))
    }

    /// Stores a validated limit and says what it replaced.
    pub async fn change_rate_limit(&self, per_minute: f64) -> Result<RateChange, ControlError> {
        let previous = self.set_rate_limit(per_minute).await?;
        Ok(RateChange {
            per_minute,
            previous,
        })
    }

    /// Stores `deadline` as `date`'s; a later run of the same date replaces it.
    pub async fn set_routine_deadline(
        &self,
        date: NaiveDate,
        deadline: DateTime<Utc>,
    ) -> Result<(), ControlError> {
        let mut conn = self.conn.clone();
        let expire_at = deadline.timestamp() + DEADLINE_KEPT.as_secs() as i64;
        let _: () = redis::cmd("SET")
            .arg(self.keys.routine_deadline(date))
            .arg(deadline.timestamp_millis())
            .arg("EXAT")
            .arg(expire_at)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// `date`'s deadline, or `None` when no run stored one (the date's jobs then have none).
    pub async fn routine_deadline(
        &self,
        date: NaiveDate,
    ) -> Result<Option<DateTime<Utc>>, ControlError> {
        let mut conn = self.conn.clone();
        let raw: Option<i64> = redis::cmd("GET")
            .arg(self.keys.routine_deadline(date))
            .query_async(&mut conn)
            .await?;
        Ok(raw.and_then(|ms| Utc.timestamp_millis_opt(ms).single()))
    }

    /// Pauses `queue`; returns false when it was paused already (the first reason stays).
    pub async fn pause(
        &self,
        queue: &str,
        reason: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ControlError> {
        let mut conn = self.conn.clone();
        let key = self.keys.queue_paused(queue);
        let fresh: bool = redis::cmd("HSETNX")
            .arg(&key)
            .arg("since")
            .arg(now.to_rfc3339())
            .query_async(&mut conn)
            .await?;
        if fresh {
            let _: () = redis::cmd("HSET")
                .arg(&key)
                .arg("actor")
                .arg(actor)
                .arg("reason")
                .arg(reason.unwrap_or_default())
                .query_async(&mut conn)
                .await?;
        }
        Ok(fresh)
    }

    /// Pauses each of `queues` in turn (see [`Self::pause`]).
    pub async fn pause_all(
        &self,
        queues: &[&'static str],
        reason: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<QueueChange>, ControlError> {
        let mut changes = Vec::new();
        for &queue in queues {
            let changed = self.pause(queue, reason, actor, now).await?;
            changes.push(QueueChange {
                queue,
                paused: true,
                changed,
            });
        }
        Ok(changes)
    }

    /// Resumes each of `queues` in turn (see [`Self::resume`]).
    pub async fn resume_all(
        &self,
        queues: &[&'static str],
    ) -> Result<Vec<QueueChange>, ControlError> {
        let mut changes = Vec::new();
        for &queue in queues {
            let changed = self.resume(queue).await?;
            changes.push(QueueChange {
                queue,
                paused: false,
                changed,
            });
        }
        Ok(changes)
    }

    /// Resumes `queue`; returns false when it was not paused.
    pub async fn resume(&self, queue: &str) -> Result<bool, ControlError> {
        let mut conn = self.conn.clone();
        let removed: u64 = redis::cmd("DEL")
            .arg(self.keys.queue_paused(queue))
            .query_async(&mut conn)
            .await?;
        Ok(removed > 0)
    }

    /// Whether `queue` is paused.
    pub async fn is_paused(&self, queue: &str) -> Result<bool, ControlError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("EXISTS")
            .arg(self.keys.queue_paused(queue))
            .query_async(&mut conn)
            .await?)
    }

    /// The rate limit in force (`configured` while none is stored) and every pause flag.
    pub async fn view(&self, configured: f64) -> Result<ControlView, ControlError> {
        Ok(ControlView {
            rate_limit: self.rate_limit(configured).await?,
            pauses: self.pauses().await?,
        })
    }

    /// The pause flag of every pausable queue, in [`PAUSABLE_QUEUES`] order.
    pub async fn pauses(&self) -> Result<Vec<PauseState>, ControlError> {
        let mut out = Vec::with_capacity(PAUSABLE_QUEUES.len());
        for queue in PAUSABLE_QUEUES {
            let mut conn = self.conn.clone();
            let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                .arg(self.keys.queue_paused(queue))
                .query_async(&mut conn)
                .await?;
            let get = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
            out.push(PauseState {
                queue: queue.to_string(),
                paused: !fields.is_empty(),
                reason: get("reason"),
                actor: get("actor"),
                since: get("since")
                    .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                    .map(|t| t.with_timezone(&Utc)),
            });
        }
        Ok(out)
    }
}

/// True when work that would start at `start` is past `deadline` (none: never).
pub fn past_deadline(start: DateTime<Utc>, deadline: Option<DateTime<Utc>>) -> bool {
    deadline.is_some_and(|d| start >= d)
}

/// Each date's deadline as read, and when it was read.
type DeadlineCache = HashMap<NaiveDate, (Option<DateTime<Utc>>, Instant)>;

/// The routine deadlines as a worker reads them: each date's, cached for
/// [`DEADLINE_CACHE`] so a worker does not ask Redis before every job. Cheap to clone.
#[derive(Clone)]
pub struct RoutineDeadlines {
    control: Control,
    cache: Arc<Mutex<DeadlineCache>>,
}

impl RoutineDeadlines {
    /// Deadlines read through `control`.
    pub fn new(control: Control) -> Self {
        Self {
            control,
            cache: Arc::default(),
        }
    }

    /// `date`'s deadline (see [`Control::routine_deadline`]).
    pub async fn get(&self, date: NaiveDate) -> Result<Option<DateTime<Utc>>, ControlError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&date)
            .filter(|(_, at)| at.elapsed() < DEADLINE_CACHE)
            .map(|(deadline, _)| *deadline);
        if let Some(deadline) = cached {
            return Ok(deadline);
        }
        let deadline = self.control.routine_deadline(date).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Dates only accumulate one a day; drop the stale ones so the map stays small.
        cache.retain(|_, (_, at)| at.elapsed() < DEADLINE_CACHE);
        cache.insert(date, (deadline, Instant::now()));
        Ok(deadline)
    }
}

/// A [`FetchGate`] that holds a queue's fetches while it is paused, then awaits `inner`
/// (e.g. the rate-limit gate) and checks the flag again when that wait outlasted the last
/// read, so a pause set during a long permit wait still stops the fetch. A read of the flag
/// is trusted for [`PAUSE_POLL`], so a pause applies within it. On shutdown it never
/// resolves (nothing is claimed while the worker drains). A Redis error reads as "not
/// paused": the fetch that follows fails the same way and backs off.
pub struct PauseGate {
    control: Control,
    queue: &'static str,
    inner: Option<Arc<dyn FetchGate>>,
    shutdown: CancellationToken,
    /// When `ready` last read the flag unpaused (for `open_now`).
    seen_open: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl PauseGate {
    /// Gates fetches of `queue` on its pause flag.
    pub fn new(control: Control, queue: &'static str, shutdown: CancellationToken) -> Self {
        Self {
            control,
            queue,
            inner: None,
            shutdown,
            seen_open: Arc::default(),
        }
    }

    /// Also awaits `inner` once the queue is not paused.
    pub fn then(mut self, inner: Arc<dyn FetchGate>) -> Self {
        self.inner = Some(inner);
        self
    }

    /// Reads the flag; a read that says open is trusted from when it was asked.
    async fn read_flag(
        control: &Control,
        queue: &str,
        seen_open: &std::sync::Mutex<Option<tokio::time::Instant>>,
    ) -> Flag {
        let asked = tokio::time::Instant::now();
        let flag = match control.is_paused(queue).await {
            Ok(false) => Flag::Open,
            Ok(true) => Flag::Paused,
            Err(error) => {
                tracing::warn!(queue, error.message = %error, "cannot read the pause flag");
                Flag::Unknown
            }
        };
        *seen_open.lock().expect("pause gate lock") = match flag {
            Flag::Open => Some(asked),
            // Not trusted: the next fetch reads the flag again.
            Flag::Paused | Flag::Unknown => None,
        };
        flag
    }
}

/// What one read of a queue's pause flag said.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flag {
    Open,
    Paused,
    /// Redis did not answer: taken as open, the fetch that follows fails the same way.
    Unknown,
}

impl FetchGate for PauseGate {
    /// Open while the flag was read unpaused less than [`PAUSE_POLL`] ago, the inner gate
    /// (if any) is open now too, and before shutdown: an ack-and-fetch chain then stops
    /// within `PAUSE_POLL` of a pause, as fetches do, and at once when the worker starts
    /// draining.
    fn open_now(&self) -> bool {
        !self.shutdown.is_cancelled()
            && read_open_recently(&self.seen_open)
            && self.inner.as_ref().is_none_or(|inner| inner.open_now())
    }

    fn ready(&self) -> BoxFuture<'static, ()> {
        let control = self.control.clone();
        let queue = self.queue;
        let inner = self.inner.clone();
        let shutdown = self.shutdown.clone();
        let seen_open = Arc::clone(&self.seen_open);
        Box::pin(async move {
            let mut logged = false;
            loop {
                if shutdown.is_cancelled() {
                    futures::future::pending::<()>().await;
                }
                if !read_open_recently(&seen_open)
                    && Self::read_flag(&control, queue, &seen_open).await == Flag::Paused
                {
                    if !logged {
                        tracing::info!(queue, "queue paused by an operator: not fetching");
                        logged = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => futures::future::pending::<()>().await,
                        _ = tokio::time::sleep(PAUSE_POLL) => {}
                    }
                    continue;
                }
                let Some(inner) = inner.as_ref() else { break };
                inner.ready().await;
                // A long permit wait outlives the last read: a pause set meanwhile must
                // still stop this fetch.
                if read_open_recently(&seen_open)
                    || Self::read_flag(&control, queue, &seen_open).await != Flag::Paused
                {
                    break;
                }
            }
            if logged {
                tracing::info!(queue, "queue resumed: fetching again");
            }
        })
    }
}

/// True when the flag was read unpaused less than [`PAUSE_POLL`] ago. Fetches trust such a
/// read instead of asking Redis before each one: a pause applies within `PAUSE_POLL`, and a
/// busy queue costs one read of its flag a second instead of one per fetch.
fn read_open_recently(seen_open: &std::sync::Mutex<Option<tokio::time::Instant>>) -> bool {
    seen_open
        .lock()
        .expect("pause gate lock")
        .is_some_and(|at| at.elapsed() < PAUSE_POLL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_summaries_name_the_old_limit_and_the_pause_reason() {
        let change = |previous| RateChange {
            per_minute: 5.0,
            previous,
        };
        assert_eq!(change(Some(20.0)).summary(), "per_minute=5 (was 20)");
        assert_eq!(change(None).summary(), "per_minute=5 (none stored)");
        assert_eq!(
            pause_summary(&["authorize", "detail"], Some("incident")),
            "authorize,detail reason=incident"
        );
        assert_eq!(pause_summary(&["detail"], None), "detail");
        let parsed: Result<QueueSelection, _> = "all".parse();
        assert_eq!(parsed.ok(), Some(QueueSelection(PAUSABLE_QUEUES.to_vec())));
    }

    #[test]
    fn a_rate_is_a_finite_number_from_zero_to_the_maximum() {
        assert_eq!(parse_rate("120").unwrap(), 120.0);
        assert_eq!(parse_rate(" 0 ").unwrap(), 0.0);
        assert_eq!(parse_rate("2.5").unwrap(), 2.5);
        assert_eq!(parse_rate("60000").unwrap(), MAX_RATE_PER_MINUTE);
        for bad in ["-1", "abc", "", "NaN", "inf", "60001"] {
            let err = parse_rate(bad).unwrap_err().to_string();
            assert!(
                err.contains("rate limit") && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn work_is_past_the_deadline_from_the_deadline_on_and_never_without_one() {
        let deadline = Utc.with_ymd_and_hms(2026, 11, 26, 15, 30, 0).unwrap();
        let second = chrono::Duration::seconds(1);
        assert!(!past_deadline(deadline - second, Some(deadline)));
        assert!(past_deadline(deadline, Some(deadline)));
        assert!(past_deadline(deadline + second, Some(deadline)));
        assert!(!past_deadline(deadline + second, None));
    }

    #[test]
    fn a_queue_argument_names_one_queue_or_all() {
        assert_eq!(parse_queues("authorize").unwrap(), vec!["authorize"]);
        assert_eq!(parse_queues("Detail").unwrap(), vec!["detail"]);
        assert_eq!(parse_queues("all").unwrap(), PAUSABLE_QUEUES.to_vec());
        let err = parse_queues("results").unwrap_err().to_string();
        assert!(err.contains("\"results\""), "{err}");
    }
}

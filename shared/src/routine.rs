//! Starting a routine: one authorize job per active LoginId for a routine date, and the
//! daily schedule that fires it once a day across every `producer schedule` replica.
//!
//! A login has at most one authorize waiting: the job of a later date replaces the login's
//! job of an earlier date while that one still waits (ready or delayed; one in flight
//! finishes), in the same atomic enqueue. The earlier date records the login as
//! `superseded` (drained from the queue's outbox while the batches are queued, so a crash
//! in between is made good by the next run), so its `pending` reaches 0 and the backlog
//! never holds a login twice when the registry outgrows a day's capacity (see
//! [`crate::forecast`]).
//!
//! Within a date, logins are enqueued by priority (the registry's `priority`, higher first),
//! then least recently refreshed first (never refreshed first), so when the registry
//! outgrows a day the chosen logins and then those that waited longest go first.
//!
//! Each run stores the date's deadline before queueing ([`start_routine`]): by default the
//! schedule's next firing after the run started (for a scheduled run, the next day's
//! firing), or `ROUTINE_DEADLINE` after the start. Past it, workers record the date's
//! remaining jobs `superseded` without calling Flinks (see [`crate::control`]).
//!
//! Idempotency lives in the queue's supersede record of the login (its latest date), atomic
//! with the enqueue: running the routine twice, from two producers at once, or again after a
//! crash half-way never yields two jobs for one login and date, and a crashed run is
//! resumed by simply running it again. The schedule adds a per-day claim (`SET NX`) so
//! replicas fire once between them, and a catch-up on start for a day whose run is due
//! and missing (or was claimed by a replica that died before finishing).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use futures::{StreamExt, TryStreamExt};
use redis::Script;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::control::{Control, ControlError};
use crate::domain::LoginId;
use crate::forecast::Forecast;
use crate::jobs::AuthorizeJob;
use crate::keys::KeySpace;
use crate::ledger::{Ledger, LedgerError, LedgerOutcome, Overwrite};
use crate::metrics::ROUTINE_SUPERSEDED_TOTAL;
use crate::queue::{EnqueueOptions, Enqueued, Queue, QueueError};
use crate::ratelimit::eta_at_rate;
use crate::registry::{RefreshOrderKey, Registry, RegistryError};

/// Active LoginIds read (and jobs enqueued) per batch.
const BATCH: usize = 1_000;
/// Pages of active logins whose eligibility and refresh order are read at once.
const PAGES_IN_FLIGHT: usize = 4;
/// A claimed day whose run did not complete within this long is run again on start.
const STALE_CLAIM: Duration = Duration::from_secs(15 * 60);
/// How long the per-day schedule keys live.
const CLAIM_TTL: Duration = Duration::from_secs(3 * 24 * 3600);

/// Takes over a stale enqueue claim only if it still holds the value seen.
static TAKE_OVER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/routine/take_over_claim.lua")));

/// Why a routine could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RoutineError {
    /// Reading the registry failed.
    #[error("routine: {0}")]
    Registry(#[from] RegistryError),
    /// Enqueueing failed (already enqueued jobs stay; run again to resume).
    #[error("routine: {0} (jobs enqueued so far are kept; run the routine again to resume)")]
    Queue(#[from] QueueError),
    /// Writing the ledger failed.
    #[error("routine: {0}")]
    Ledger(#[from] LedgerError),
    /// Redis refused a schedule command.
    #[error("routine: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The date's deadline could not be stored (nothing was enqueued).
    #[error("routine: storing the deadline: {0}")]
    Control(#[from] ControlError),
    /// A date started by hand lies more than [`MAX_DAYS_AHEAD`] after today (nothing was
    /// enqueued).
    #[error(
        "routine date {date} is {days} days after today ({today} in {tz}); a routine may \
         start at most {MAX_DAYS_AHEAD} day ahead: a later date's jobs replace every waiting \
         job of the dates before it, and those dates queue nothing until it comes"
    )]
    TooFarAhead {
        /// The date asked for.
        date: NaiveDate,
        /// Today in the routine's time zone.
        today: NaiveDate,
        /// The routine's time zone.
        tz: Tz,
        /// How many days after today `date` is.
        days: i64,
    },
}

impl RoutineError {
    /// True when the caller asked for something to fix (a date too far ahead), not when
    /// Redis failed.
    pub fn is_usage(&self) -> bool {
        matches!(self, RoutineError::TooFarAhead { .. })
    }
}

/// How many days after today (in the routine's time zone) a routine may be started by
/// hand: one, for a clock or an operator a little ahead of the zone. The routine of a date
/// supersedes every earlier date's waiting job, and an earlier date's job is superseded on
/// arrival once a later one exists, so one mistyped year would leave every daily run with
/// nothing to queue.
pub const MAX_DAYS_AHEAD: i64 = 1;

/// Refuses `date` when it lies more than [`MAX_DAYS_AHEAD`] days after today in `tz` at
/// `now`. Earlier dates are allowed: a backfill queues only what no later date covers.
pub fn check_not_ahead(date: NaiveDate, now: DateTime<Utc>, tz: Tz) -> Result<(), RoutineError> {
    let today = now.with_timezone(&tz).date_naive();
    let days = (date - today).num_days();
    if days > MAX_DAYS_AHEAD {
        return Err(RoutineError::TooFarAhead {
            date,
            today,
            tz,
            days,
        });
    }
    Ok(())
}

/// What one `routine run` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoutineRun {
    /// The routine date.
    pub date: NaiveDate,
    /// Active logins when the run started (the date's expected count).
    pub active: u64,
    /// Jobs newly enqueued by this run.
    pub enqueued: u64,
    /// Logins that already had a job for this date (earlier or concurrent run).
    pub already_queued: u64,
    /// Logins not enqueued because GetNightlyRefreshStatus listed them as ineligible for
    /// the date (`producer refresh-status`): they are recorded as needs re-auth already.
    pub skipped_ineligible: u64,
    /// Waiting jobs of earlier dates that this run's jobs replaced (recorded as
    /// `superseded` on their dates).
    pub superseded: u64,
    /// Logins not queued for this date because a later date already has their job (a
    /// backfill); counted in `already_queued` too, and recorded `superseded` on this date
    /// unless it has an outcome already.
    pub superseded_on_arrival: u64,
    /// Authorize jobs waiting or running after the run, every date included.
    pub backlog: u64,
    /// Time to authorize the whole backlog at the configured rate.
    pub eta_seconds: Option<u64>,
    /// Authorizes a day at the configured rate (`null`: the limiter is off).
    pub capacity_per_day: Option<u64>,
    /// More active logins than a day's capacity: logins are refreshed in rotation.
    pub over_capacity: bool,
    /// Days to authorize every active login once, `ceil(active ÷ capacity_per_day)`.
    pub coverage_days: Option<u64>,
    /// The date's deadline: past it no job of the date calls Flinks (`null`: none stored,
    /// when the jobs were queued without [`start_routine`]).
    pub deadline: Option<DateTime<Utc>>,
}

impl RoutineRun {
    /// Logs the run's counts under `message`, one structured field each, so the log
    /// reports what the caller gets.
    fn log(&self, message: &str) {
        tracing::info!(
            date = %self.date,
            active = self.active,
            enqueued = self.enqueued,
            already_queued = self.already_queued,
            skipped_ineligible = self.skipped_ineligible,
            superseded = self.superseded,
            superseded_on_arrival = self.superseded_on_arrival,
            backlog = self.backlog,
            capacity_per_day = self.capacity_per_day,
            over_capacity = self.over_capacity,
            coverage_days = self.coverage_days,
            "{message}"
        );
    }
}

/// The deadline of a routine run started at `started`: `configured` after it
/// (`ROUTINE_DEADLINE`), or when unset the schedule's next firing after it, when the next
/// date's routine takes the logins over.
pub fn routine_deadline(
    started: DateTime<Utc>,
    configured: Option<Duration>,
    at: NaiveTime,
    tz: Tz,
) -> DateTime<Utc> {
    match configured.and_then(|d| chrono::Duration::from_std(d).ok()) {
        Some(d) => started + d,
        None => next_fire(started, at, tz),
    }
}

/// Starts the routine of `date`: stores its `deadline` first, so every job the run queues
/// is bound by it, then enqueues (see [`enqueue_routine`]).
pub async fn start_routine(
    control: &Control,
    registry: &Registry,
    ledger: &Ledger,
    queue: &Queue<AuthorizeJob>,
    date: NaiveDate,
    rate_per_minute: f64,
    deadline: DateTime<Utc>,
) -> Result<RoutineRun, RoutineError> {
    control.set_routine_deadline(date, deadline).await?;
    let mut run = enqueue_routine(registry, ledger, queue, date, rate_per_minute).await?;
    run.deadline = Some(deadline);
    tracing::info!(%date, %deadline, "routine deadline stored");
    Ok(run)
}

/// Enqueues one authorize job per active LoginId for `date`, in batches.
pub async fn enqueue_routine(
    registry: &Registry,
    ledger: &Ledger,
    queue: &Queue<AuthorizeJob>,
    date: NaiveDate,
    rate_per_minute: f64,
) -> Result<RoutineRun, RoutineError> {
    let active = registry.count_active().await?;
    ledger.set_expected(date, active).await?;
    let mut enqueued = 0u64;
    let mut already_queued = 0u64;
    let mut skipped_ineligible = 0u64;
    // Every eligible login with its priority and last refresh first, so the whole date can
    // be enqueued in refresh order (a few tens of MB for a million logins).
    // Several pages are read at once, so decoding one page overlaps Redis serving the next.
    let mut eligible: Vec<(LoginId, RefreshOrderKey)> = Vec::new();
    let mut pages = registry
        .scan_active(BATCH)
        .map_err(RoutineError::from)
        .map_ok(|ids| eligible_page(registry, ledger, date, ids))
        .try_buffered(PAGES_IN_FLIGHT);
    while let Some((page, skipped)) = pages.try_next().await? {
        skipped_ineligible += skipped;
        eligible.extend(page);
    }
    tracing::debug!(%date, eligible = eligible.len(), "routine: active logins read");
    let ordered = refresh_order(eligible);
    tracing::debug!(%date, "routine: logins ordered");
    let legacy_dedupe = queue.legacy_dedupe_open().await?;
    // Batches are queued back to back while the superseded jobs they leave are recorded
    // beside them, so Redis always has the next batch in hand: each queued batch wakes the
    // recorder, which drains whatever the outbox holds by then. One wake-up waits at most,
    // so queueing never runs more than about two batches ahead of the recording and the
    // outbox stays a few batches long however many jobs a run replaces.
    let (queued_tx, mut queued_rx) = tokio::sync::mpsc::channel::<()>(1);
    let queueing = async {
        let queued_tx = queued_tx;
        let mut batches = futures::stream::iter((0..ordered.len()).step_by(BATCH))
            .map(|start| {
                let ids = &ordered[start..(start + BATCH).min(ordered.len())];
                enqueue_batch(queue, date, ids, legacy_dedupe)
            })
            .buffered(2);
        while let Some(results) = batches.try_next().await? {
            for result in results {
                if result.is_new() {
                    enqueued += 1;
                } else {
                    already_queued += 1;
                }
            }
            // The recorder only ends once this sender is dropped: it cannot be gone.
            let _ = queued_tx.send(()).await;
        }
        Ok::<_, RoutineError>(())
    };
    let recording = async {
        let mut recorded = Superseding::default();
        while queued_rx.recv().await.is_some() {
            recorded += record_superseded(ledger, queue, date).await?;
        }
        recorded += record_superseded(ledger, queue, date).await?;
        Ok::<_, RoutineError>(recorded)
    };
    let ((), recorded) = futures::try_join!(queueing, recording)?;
    let Superseding {
        replaced: superseded,
        on_arrival: superseded_on_arrival,
    } = recorded;
    let stats = queue.stats().await?;
    let backlog = stats.ready + stats.delayed + stats.in_flight;
    let done = ledger.counts(date).await?.done();
    let remaining = active.saturating_sub(done).max(backlog);
    let eta_seconds = eta_at_rate(rate_per_minute, remaining).map(|d| d.as_secs());
    let forecast = Forecast::new(rate_per_minute, active);
    let run = RoutineRun {
        date,
        active,
        enqueued,
        already_queued,
        skipped_ineligible,
        superseded,
        superseded_on_arrival,
        backlog,
        eta_seconds,
        capacity_per_day: forecast.capacity_per_day,
        over_capacity: forecast.over_capacity,
        coverage_days: forecast.coverage_days,
        deadline: None,
    };
    run.log("routine enqueued");
    if run.over_capacity {
        tracing::warn!(
            %date,
            active,
            capacity_per_day = run.capacity_per_day,
            coverage_days = run.coverage_days,
            "more active logins than the rate limit allows in a day: each login is refreshed once every coverage_days days"
        );
    }
    Ok(run)
}

/// Enqueues the authorize jobs of `ids` for `date`, superseding their earlier dates' jobs.
/// The supersede key and rank (login, date) are also the dedupe record; `legacy_dedupe`
/// adds the per-job dedupe key of earlier versions (see [`Queue::legacy_dedupe_open`]).
async fn enqueue_batch(
    queue: &Queue<AuthorizeJob>,
    date: NaiveDate,
    ids: &[LoginId],
    legacy_dedupe: bool,
) -> Result<Vec<Enqueued>, RoutineError> {
    let jobs: Vec<(AuthorizeJob, EnqueueOptions)> = ids
        .iter()
        .map(|login| {
            let job = AuthorizeJob::new(login.clone(), date);
            let supersede = job.supersede();
            let options = if legacy_dedupe {
                EnqueueOptions::dedupe(job.legacy_dedupe_key())
            } else {
                EnqueueOptions::default()
            };
            (job, options.superseding(supersede.key, supersede.rank))
        })
        .collect();
    Ok(queue.enqueue_many(jobs).await?)
}

/// The logins of `ids` not yet ineligible for `date` with their refresh-order keys, and
/// how many were ineligible.
async fn eligible_page(
    registry: &Registry,
    ledger: &Ledger,
    date: NaiveDate,
    ids: Vec<LoginId>,
) -> Result<(Vec<(LoginId, RefreshOrderKey)>, u64), RoutineError> {
    if ids.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let ineligible = ledger.ineligible_flags(date, &ids).await?;
    let before = ids.len();
    let ids: Vec<LoginId> = ids
        .into_iter()
        .zip(ineligible)
        .filter_map(|(login, skip)| (!skip).then_some(login))
        .collect();
    let skipped = (before - ids.len()) as u64;
    let order = registry.refresh_order_keys(&ids).await?;
    Ok((ids.into_iter().zip(order).collect(), skipped))
}

/// The routine's enqueue order: the highest priority first; within a priority, never
/// refreshed first, then the oldest last refresh first; ties by LoginId, so the order is
/// the same on every run. With more logins than a day holds, the chosen logins and then
/// the ones that waited longest go first.
pub fn refresh_order(mut logins: Vec<(LoginId, RefreshOrderKey)>) -> Vec<LoginId> {
    // `None` sorts before any `Some`: never refreshed comes first.
    logins.sort_unstable_by(|a, b| {
        b.1.priority
            .cmp(&a.1.priority)
            .then_with(|| a.1.last_success_at.cmp(&b.1.last_success_at))
            .then_with(|| a.0.cmp(&b.0))
    });
    logins.into_iter().map(|(login, _)| login).collect()
}

/// Jobs taken over by a later date, counted by [`record_superseded`].
#[derive(Debug, Default, Clone, Copy)]
struct Superseding {
    /// Waiting jobs replaced.
    replaced: u64,
    /// Jobs not queued: their login already had a later date's job.
    on_arrival: u64,
}

impl std::ops::AddAssign for Superseding {
    fn add_assign(&mut self, other: Self) {
        self.replaced += other.replaced;
        self.on_arrival += other.on_arrival;
    }
}

/// Records every job in the queue's superseded outbox as `superseded` on its own date, by
/// the date that took over (the job's supersede rank; `run_date` for an entry without one),
/// a page of one date per script call, then removes it from the outbox. A replaced job
/// replaces any outcome but `refreshed`; a job superseded on arrival (a backfill) only
/// fills a date that has no outcome for the login, so re-running an earlier date never
/// overwrites what its jobs recorded. Recording twice is harmless (the same outcome), so
/// a crash between the two steps loses nothing.
async fn record_superseded(
    ledger: &Ledger,
    queue: &Queue<AuthorizeJob>,
    run_date: NaiveDate,
) -> Result<Superseding, RoutineError> {
    let mut n = Superseding::default();
    loop {
        let page = queue.superseded(BATCH).await?;
        if page.is_empty() {
            return Ok(n);
        }
        let at = Utc::now();
        let mut by_dates: BTreeMap<(NaiveDate, NaiveDate, bool), Vec<LoginId>> = BTreeMap::new();
        for s in &page {
            let by_date = s
                .by_rank
                .and_then(AuthorizeJob::date_of_rank)
                .unwrap_or(run_date);
            // The entry's payload may be that of the job that took over: the same login, and
            // the job's own date is its rank.
            let date = match s.rank.map(AuthorizeJob::date_of_rank) {
                None => s.job.routine_date,
                Some(Some(date)) => date,
                Some(None) => {
                    tracing::warn!(rank = ?s.rank, "superseded job with a rank that is no date: not recorded");
                    continue;
                }
            };
            by_dates
                .entry((date, by_date, s.on_arrival))
                .or_default()
                .push(s.job.login_id.clone());
        }
        for ((date, by_date, on_arrival), logins) in &by_dates {
            let outcome = LedgerOutcome::Superseded {
                by_date: *by_date,
                at,
                deadline: None,
                deactivated: false,
            };
            let overwrite = if *on_arrival {
                Overwrite::Nothing
            } else {
                Overwrite::AllButRefreshed
            };
            ledger
                .record_many(*date, logins, &outcome, overwrite)
                .await?;
        }
        queue.forget_superseded(&page).await?;
        let on_arrival = page.iter().filter(|s| s.on_arrival).count() as u64;
        n += Superseding {
            replaced: page.len() as u64 - on_arrival,
            on_arrival,
        };
        metrics::counter!(ROUTINE_SUPERSEDED_TOTAL).increment(page.len() as u64);
    }
}

/// The local date whose routine is due at `now`: today's date in `tz` once `at` has passed
/// there, otherwise yesterday's (a run that is still "due" if it never happened).
pub fn due_date(now: DateTime<Utc>, at: NaiveTime, tz: Tz) -> NaiveDate {
    let local = now.with_timezone(&tz);
    let today = local.date_naive();
    if fire_time(today, at, tz) <= now {
        today
    } else {
        today.pred_opt().unwrap_or(today)
    }
}

/// When the routine of local date `date` fires, in UTC. On a DST gap the first valid
/// instant after `at` is used; on a fold, the earlier one.
pub fn fire_time(date: NaiveDate, at: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let mut naive = date.and_time(at);
    for _ in 0..4 {
        if let Some(local) = tz.from_local_datetime(&naive).earliest() {
            return local.with_timezone(&Utc);
        }
        naive += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&date.and_time(at))
}

/// The next firing strictly after `now`.
pub fn next_fire(now: DateTime<Utc>, at: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let mut date = today;
    loop {
        let fire = fire_time(date, at, tz);
        if fire > now {
            return fire;
        }
        date = date.succ_opt().unwrap_or(date);
    }
}

/// The per-day claim that makes replicas fire once between them.
#[derive(Clone)]
pub struct DayClaim {
    conn: RedisConn,
    keys: KeySpace,
    replica: String,
}

impl DayClaim {
    /// Claims for this `replica` (any unique string: host and pid).
    pub fn new(conn: RedisConn, keys: &KeySpace, replica: impl Into<String>) -> Self {
        Self {
            conn,
            keys: keys.clone(),
            replica: replica.into(),
        }
    }

    fn claim_key(&self, date: NaiveDate) -> String {
        self.keys.global(&format!("schedule:claimed:{date}"))
    }

    fn done_key(&self, date: NaiveDate) -> String {
        self.keys.global(&format!("schedule:completed:{date}"))
    }

    /// Tries to claim `date`'s run. True for exactly one replica, unless an earlier claim
    /// is older than [`STALE_CLAIM`] without completing (its replica died mid-run): then
    /// this replica takes it over. Re-entrant: the holder may claim again, so a run that
    /// failed half-way (Redis blip) is retried by its replica instead of abandoned.
    pub async fn try_claim(
        &self,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<bool, RoutineError> {
        let mut conn = self.conn.clone();
        let value = format!("{}|{}", self.replica, now.timestamp());
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.claim_key(date))
            .arg(&value)
            .arg("NX")
            .arg("EX")
            .arg(CLAIM_TTL.as_secs())
            .query_async(&mut conn)
            .await?;
        if claimed.is_some() {
            return Ok(true);
        }
        if self.is_completed(date).await? {
            return Ok(false);
        }
        let holder: Option<String> = redis::cmd("GET")
            .arg(self.claim_key(date))
            .query_async(&mut conn)
            .await?;
        // Our own claim (a run of ours that failed half-way, retried): carry on with it.
        if holder
            .as_deref()
            .and_then(|h| h.rsplit_once('|'))
            .is_some_and(|(replica, _)| replica == self.replica)
        {
            return Ok(true);
        }
        let claimed_at = holder
            .as_deref()
            .and_then(|h| h.rsplit_once('|'))
            .and_then(|(_, ts)| ts.parse::<i64>().ok())
            .unwrap_or(0);
        if now.timestamp() - claimed_at < STALE_CLAIM.as_secs() as i64 {
            return Ok(false);
        }
        // Take over atomically: only if the stale value is still there.
        let taken: i64 = TAKE_OVER
            .key(self.claim_key(date))
            .arg(holder.unwrap_or_default())
            .arg(&value)
            .arg(CLAIM_TTL.as_secs())
            .invoke_async(&mut conn)
            .await?;
        Ok(taken == 1)
    }

    /// Marks `date`'s run complete.
    pub async fn complete(&self, date: NaiveDate) -> Result<(), RoutineError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(self.done_key(date))
            .arg(&self.replica)
            .arg("EX")
            .arg(CLAIM_TTL.as_secs())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// True when `date`'s run completed.
    pub async fn is_completed(&self, date: NaiveDate) -> Result<bool, RoutineError> {
        let mut conn = self.conn.clone();
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.done_key(date))
            .query_async(&mut conn)
            .await?;
        Ok(exists)
    }
}

/// What the schedule needs.
pub struct Schedule {
    /// The per-day claim.
    pub claim: DayClaim,
    /// `ROUTINE_AT`.
    pub at: NaiveTime,
    /// `ROUTINE_TZ`.
    pub tz: Tz,
    /// `RATE_LIMIT_PER_MINUTE`, for the ETA.
    pub rate_per_minute: f64,
    /// `ROUTINE_DEADLINE` (`None`: the next firing).
    pub deadline: Option<Duration>,
    /// When set (a bearer secret is configured), GetNightlyRefreshStatus runs just before
    /// each firing, so the cards it lists are recorded as needs re-auth and not authorized.
    pub precheck: Option<RefreshStatusPrecheck>,
}

/// The GetNightlyRefreshStatus pre-check of a firing: the Flinks client that asks and the
/// operations that record the answer.
pub struct RefreshStatusPrecheck {
    /// Calls GetNightlyRefreshStatus (with the bearer secret).
    pub client: crate::flinks::FlinksClient,
    /// Records the listed cards.
    pub ops: crate::ops::logins::LoginOps,
}

impl RefreshStatusPrecheck {
    /// Runs the pre-check for `date`. A failure is logged and the routine fires anyway:
    /// without the list every login is authorized, which is what a missing pre-check means.
    async fn run(&self, date: NaiveDate) {
        let cards = match self.client.get_nightly_refresh_status().await {
            Ok(cards) => cards,
            Err(error) => {
                tracing::warn!(error.message = %error, %date, "GetNightlyRefreshStatus failed; firing without the pre-check");
                return;
            }
        };
        match self.ops.apply_refresh_status(&cards, date).await {
            Ok(report) => tracing::info!(
                %date,
                listed = report.listed,
                marked = report.marked.len(),
                "GetNightlyRefreshStatus pre-check recorded"
            ),
            Err(error) => {
                tracing::warn!(error.message = %error, %date, "could not record the GetNightlyRefreshStatus pre-check; firing without it")
            }
        }
    }
}

impl Schedule {
    /// Fires the routine of the due date if this replica wins its claim. Returns the run
    /// when it fired.
    pub async fn fire_if_due(
        &self,
        registry: &Registry,
        ledger: &Ledger,
        queue: &Queue<AuthorizeJob>,
        now: DateTime<Utc>,
    ) -> Result<Option<RoutineRun>, RoutineError> {
        let date = due_date(now, self.at, self.tz);
        if self.claim.is_completed(date).await? || !self.claim.try_claim(date, now).await? {
            return Ok(None);
        }
        if let Some(precheck) = &self.precheck {
            precheck.run(date).await;
        }
        let control = Control::new(self.claim.conn.clone(), &self.claim.keys);
        let deadline = routine_deadline(now, self.deadline, self.at, self.tz);
        let run = start_routine(
            &control,
            registry,
            ledger,
            queue,
            date,
            self.rate_per_minute,
            deadline,
        )
        .await?;
        self.claim.complete(date).await?;
        // The firing is a mutation like `routine run`; a lost audit entry must not make
        // the schedule fire again, so a failure is only logged.
        let audit = crate::ops::audit::AuditLog::new(self.claim.conn.clone(), &self.claim.keys);
        let actor = format!("schedule:{}", self.claim.replica);
        let args = format!("date {date}");
        if let Err(error) = audit
            .record(&actor, "schedule fire", args, run.enqueued, 0)
            .await
        {
            tracing::warn!(error.message = %error, %date, "could not write the audit trail");
        }
        metrics::gauge!(ROUTINE_LAST_FIRED_TIMESTAMP_SECONDS).set(now.timestamp() as f64);
        Ok(Some(run))
    }

    /// Runs until `shutdown`: fires on start when due (catch-up), then at every `at`.
    /// Redis errors are logged and retried a minute later; they never end the loop.
    pub async fn run(
        &self,
        registry: &Registry,
        ledger: &Ledger,
        queue: &Queue<AuthorizeJob>,
        shutdown: &CancellationToken,
    ) {
        loop {
            let now = Utc::now();
            let retry_in = match self.fire_if_due(registry, ledger, queue, now).await {
                Ok(Some(run)) => {
                    run.log("schedule fired the routine");
                    None
                }
                Ok(None) => None,
                Err(error) => {
                    tracing::error!(error.message = %error, "schedule: could not fire; retrying in 60 s");
                    Some(Duration::from_secs(60))
                }
            };
            let until_next = (next_fire(Utc::now(), self.at, self.tz) - Utc::now())
                .to_std()
                .unwrap_or(Duration::from_secs(1));
            let pause = retry_in.map_or(until_next, |r| r.min(until_next));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Metric: when `producer schedule` last fired the routine (Unix seconds).
pub const ROUTINE_LAST_FIRED_TIMESTAMP_SECONDS: &str =
    "nightly_refresh_routine_last_fired_timestamp_seconds";

/// Starts the routine of `date` by hand now, at `rate_per_minute` (the limit in force),
/// with the deadline `settings` give (see [`routine_deadline`]). A date more than
/// [`MAX_DAYS_AHEAD`] after today is refused before anything is written.
pub async fn start_now(
    stores: &crate::stores::Stores,
    settings: &crate::config::Settings,
    date: NaiveDate,
    rate_per_minute: f64,
) -> Result<RoutineRun, RoutineError> {
    let (at, tz) = (settings.routine_at, settings.routine_tz);
    check_not_ahead(date, Utc::now(), tz)?;
    let deadline = routine_deadline(Utc::now(), settings.routine_deadline, at, tz);
    let (registry, ledger) = (&stores.registry, &stores.ledger);
    start_routine(
        &stores.control,
        registry,
        ledger,
        &stores.authorize,
        date,
        rate_per_minute,
        deadline,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::Toronto;

    #[test]
    fn a_date_started_by_hand_may_be_at_most_one_day_after_today_in_the_zone() {
        // 03:00 UTC on the 25th is still the 24th in Toronto.
        let now = utc("2026-11-25T03:00:00Z");
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();

        for ok in [day(1), day(23), day(24), day(25)] {
            assert!(check_not_ahead(ok, now, Toronto).is_ok(), "{ok}");
        }
        let err = check_not_ahead(day(26), now, Toronto).unwrap_err();
        let far = check_not_ahead(NaiveDate::from_ymd_opt(2099, 1, 1).unwrap(), now, Toronto);

        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "routine date 2026-11-26 is 2 days after today (2026-11-24 in America/Toronto); \
             a routine may start at most 1 day ahead: a later date's jobs replace every \
             waiting job of the dates before it, and those dates queue nothing until it comes"
        );
        assert!(matches!(
            far,
            Err(RoutineError::TooFarAhead { days: 26_336, .. })
        ));
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn id(n: u8) -> LoginId {
        LoginId::parse(&format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
    }

    fn key(priority: u8, last: Option<&str>) -> RefreshOrderKey {
        RefreshOrderKey {
            priority,
            last_success_at: last.map(utc),
        }
    }

    #[test]
    fn never_refreshed_logins_go_first_then_the_oldest_refresh() {
        let order = refresh_order(vec![
            (id(1), key(0, Some("2026-11-20T00:00:00Z"))),
            (id(2), key(0, None)),
            (id(3), key(0, Some("2026-11-01T00:00:00Z"))),
            (id(4), key(0, Some("2026-11-25T00:00:00Z"))),
            (id(5), key(0, None)),
        ]);
        assert_eq!(order, [id(2), id(5), id(3), id(1), id(4)]);
    }

    #[test]
    fn a_higher_priority_goes_first_then_least_recently_refreshed_within_it() {
        let order = refresh_order(vec![
            (id(1), key(0, None)),
            (id(2), key(5, Some("2026-11-25T00:00:00Z"))),
            (id(3), key(100, Some("2026-11-29T00:00:00Z"))),
            (id(4), key(5, Some("2026-11-02T00:00:00Z"))),
            (id(5), key(0, Some("2026-11-01T00:00:00Z"))),
            (id(6), key(5, None)),
        ]);
        assert_eq!(order, [id(3), id(6), id(4), id(2), id(1), id(5)]);
    }

    #[test]
    fn the_deadline_is_the_next_firing_unless_configured() {
        let at = NaiveTime::from_hms_opt(10, 30, 0).unwrap();
        // The schedule fires the 25th at 10:30 EST (15:30 UTC): the 26th's firing.
        let fired = utc("2026-11-25T15:30:00Z");
        assert_eq!(
            routine_deadline(fired, None, at, Toronto),
            utc("2026-11-26T15:30:00Z")
        );
        // A run by hand before the day's firing: that firing takes the logins over.
        assert_eq!(
            routine_deadline(utc("2026-11-25T09:00:00Z"), None, at, Toronto),
            utc("2026-11-25T15:30:00Z")
        );
        assert_eq!(
            routine_deadline(fired, Some(Duration::from_secs(20 * 3600)), at, Toronto),
            utc("2026-11-26T11:30:00Z")
        );
    }

    #[test]
    fn the_due_date_is_today_once_the_local_time_has_passed() {
        let at = NaiveTime::from_hms_opt(10, 30, 0).unwrap();
        // 10:29 in Toronto (EST, UTC-5) on Nov 25: yesterday's run is the due one.
        assert_eq!(
            due_date(utc("2026-11-25T15:29:00Z"), at, Toronto).to_string(),
            "2026-11-24"
        );
        assert_eq!(
            due_date(utc("2026-11-25T15:30:00Z"), at, Toronto).to_string(),
            "2026-11-25"
        );
        // 01:00 UTC on the 26th is still the 25th in Toronto.
        assert_eq!(
            due_date(utc("2026-11-26T01:00:00Z"), at, Toronto).to_string(),
            "2026-11-25"
        );
    }

    #[test]
    fn next_fire_follows_daylight_saving_time() {
        let at = NaiveTime::from_hms_opt(10, 30, 0).unwrap();
        // Summer (EDT, UTC-4) then winter (EST, UTC-5).
        assert_eq!(
            next_fire(utc("2026-07-01T15:00:00Z"), at, Toronto),
            utc("2026-07-02T14:30:00Z")
        );
        assert_eq!(
            next_fire(utc("2026-11-25T12:00:00Z"), at, Toronto),
            utc("2026-11-25T15:30:00Z")
        );
        // A time inside the spring-forward gap (02:30 on 2026-03-08) fires at 03:00 EDT.
        let gap = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(
            next_fire(utc("2026-03-08T05:00:00Z"), gap, Toronto),
            utc("2026-03-08T07:00:00Z")
        );
    }
}

//! The `deactivation` queue's worker: sends each login's nightly-refresh change to Flinks
//! (`PATCH /SetScheduledRefresh`) until Flinks confirms, and the sweeper that re-enqueues
//! changes a crash left unqueued (see [`shared::scheduled_refresh`]).
//!
//! Per job: a change that is no longer the login's latest calls nothing → global rate-limit
//! permit → the call → 200 settles the login `on` / `off`; a retryable failure retries with
//! the queue's backoff (a throttled one after `RATE_LIMIT_COOLDOWN`), with no attempt cap
//! except the classification's own; a permanent refusal (an unknown LoginId, a retry cap
//! reached) marks the login `failed` with the error and stops.
//!
//! It runs on its own Monitor next to the routine's, so it adds nothing to the routine's
//! wiring and drains within the same `SHUTDOWN_GRACE`. Its fetches wait while an operator
//! has paused the queue (`producer queues pause deactivation`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::layers::WorkerBuilderExt;
use apalis_core::monitor::Monitor;
use apalis_core::task::attempt::Attempt;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use shared::config::Settings;
use shared::control::{Control, PauseGate};
use shared::flinks::{Classification, FlinksClient, FlinksConfig};
use shared::jobs::{ScheduledRefreshJob, DEACTIVATION_QUEUE};
use shared::keys::KeySpace;
use shared::queue::{JobFailure, Queue, RedisBackend, WorkerId};
use shared::ratelimit::RateLimiter;
use shared::scheduled_refresh::{Confirmed, ScheduledRefresh};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the sweeper re-enqueues pending changes whose job is missing.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// How often the sweeper also scans the whole registry for unindexed pending changes.
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(600);
/// Jobs in flight per process: these calls are rare, and one at a time keeps a login's
/// changes in order within a process.
const CONCURRENCY: usize = 1;

/// What the handler needs. Cheap to clone.
#[derive(Clone)]
pub struct DeactivationDeps {
    /// The Flinks client.
    pub flinks: FlinksClient,
    /// The global limiter: one permit right before every call.
    pub limiter: RateLimiter,
    /// The registry's scheduled-refresh state and the queue.
    pub scheduled: ScheduledRefresh,
    /// `RATE_LIMIT_COOLDOWN`: the delay after Flinks throttled a call.
    pub cooldown: Duration,
    /// Fires on shutdown (interrupts a permit wait).
    pub shutdown: CancellationToken,
}

/// What the handler did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The change is no longer the login's latest, or is settled: nothing called.
    Skipped,
    /// Flinks confirmed; see how the registry took it.
    Confirmed(Confirmed),
    /// Flinks refused permanently; recorded as `failed`.
    Failed,
}

/// Runs one delivery (`attempt`, 1-based) of `job`.
pub async fn handle(
    job: &ScheduledRefreshJob,
    attempt: u32,
    deps: &DeactivationDeps,
) -> Result<Sent, JobFailure> {
    let redis = |e: shared::scheduled_refresh::ScheduledRefreshError| JobFailure::retry(e);
    if !deps.scheduled.is_current(job).await.map_err(redis)? {
        return Ok(Sent::Skipped);
    }
    if deps.limiter.acquire(&deps.shutdown).await.is_none() {
        return Err(JobFailure::Defer {
            error: "shutting down before the rate-limit permit".into(),
            delay: Duration::from_secs(1),
        });
    }
    match deps
        .flinks
        .set_scheduled_refresh(&job.login_id, job.activate)
        .await
    {
        Ok(_) => Ok(Sent::Confirmed(
            deps.scheduled.confirm(job).await.map_err(redis)?,
        )),
        Err(error) => {
            let retry = match error.classification() {
                Some(Classification::Retryable(hint)) => {
                    hint.retry_cap.is_none_or(|cap| attempt <= cap)
                }
                _ => false,
            };
            if !retry {
                deps.scheduled
                    .record_failure(job, &error.to_string())
                    .await
                    .map_err(redis)?;
                tracing::warn!(
                    login = %job.login_id.fingerprint(),
                    activate = job.activate,
                    error.message = %error,
                    "SetScheduledRefresh refused; the login is marked failed"
                );
                return Ok(Sent::Failed);
            }
            let throttled = matches!(
                error.classification(),
                Some(Classification::Retryable(hint)) if hint.is_throttled()
            );
            Err(JobFailure::Retry {
                error: error.to_string(),
                delay: throttled.then_some(deps.cooldown),
            })
        }
    }
}

async fn run_job(
    job: ScheduledRefreshJob,
    attempt: Attempt,
    deps: Data<Arc<DeactivationDeps>>,
) -> Result<(), JobFailure> {
    let sent = handle(&job, attempt.current() as u32, &deps).await?;
    tracing::debug!(login = %job.login_id.fingerprint(), ?sent, "SetScheduledRefresh job settled");
    Ok(())
}

/// Starts the worker on `queue` (`Stores::deactivation`) and the sweeper; both stop when
/// `shutdown` fires (the worker drains within `SHUTDOWN_GRACE`).
pub fn spawn(
    settings: &Settings,
    conn: shared::redis_conn::RedisConn,
    keys: &KeySpace,
    queue: Queue<ScheduledRefreshJob>,
    worker_id: &WorkerId,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let flinks =
        FlinksClient::new(FlinksConfig::from_settings(settings)?).context("Flinks client")?;
    let gate: Arc<dyn shared::queue::FetchGate> = Arc::new(PauseGate::new(
        Control::new(conn.clone(), keys),
        DEACTIVATION_QUEUE,
        shutdown.clone(),
    ));
    let deps = Arc::new(DeactivationDeps {
        flinks,
        limiter: RateLimiter::new(conn.clone(), keys, settings.rate_limit_per_minute),
        scheduled: ScheduledRefresh::with_queue(conn, keys, queue.clone()),
        cooldown: settings.rate_limit_cooldown,
        shutdown: shutdown.clone(),
    });
    let sweeper = tokio::spawn(sweep_loop(deps.scheduled.clone(), shutdown.clone()));
    let worker_id = worker_id.clone();
    let grace = settings.shutdown_grace;
    Ok(tokio::spawn(async move {
        let held = Arc::new(std::sync::Mutex::new(None));
        let held_in = held.clone();
        let stopping = shutdown.clone();
        let monitor = Monitor::new()
            .register(move |restarts| {
                let backend = RedisBackend::new(queue.clone())
                    .with_worker_id(worker_id.clone())
                    .with_fetch_gate(gate.clone());
                *held_in.lock().expect("held lock") =
                    Some((queue.retyped::<()>(), backend.held().clone()));
                WorkerBuilder::new(format!(
                    "{DEACTIVATION_QUEUE}-{}-{restarts}",
                    worker_id.as_str()
                ))
                .backend(backend)
                .catch_panic()
                .concurrency(CONCURRENCY)
                .data(deps.clone())
                .build(run_job)
            })
            .should_restart(move |_ctx, error| {
                let restart = !stopping.is_cancelled();
                tracing::error!(error.message = %error, restart, "the deactivation worker stopped");
                restart
            })
            .shutdown_timeout(grace);
        let signal = shutdown.clone();
        if let Err(error) = monitor
            .run_with_signal(async move {
                signal.cancelled().await;
                Ok(())
            })
            .await
        {
            tracing::error!(error.message = %error, "deactivation worker monitor failed");
        }
        let leftover = held.lock().expect("held lock").take();
        if let Some((queue, jobs)) = leftover {
            let leases = jobs.snapshot();
            if !leases.is_empty() {
                if let Err(e) = queue.release(&leases).await {
                    tracing::warn!(error.message = %e, "could not return unfinished deactivation jobs");
                }
            }
        }
        let _ = sweeper.await;
    }))
}

/// Sweeps at start and every [`SWEEP_INTERVAL`]; repairs the index at start and every
/// [`REPAIR_INTERVAL`]. Errors are logged and retried next tick.
async fn sweep_loop(scheduled: ScheduledRefresh, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_repair: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if last_repair.is_none_or(|t| t.elapsed() >= REPAIR_INTERVAL) {
            match scheduled.repair_index().await {
                Ok(n) => {
                    last_repair = Some(tokio::time::Instant::now());
                    if n > 0 {
                        tracing::warn!(indexed = n, "pending nightly-refresh changes re-indexed");
                    }
                }
                Err(e) => tracing::warn!(error.message = %e, "scheduled-refresh repair failed"),
            }
        }
        match scheduled.sweep().await {
            Ok(report) if report.requeued > 0 => {
                tracing::warn!(
                    requeued = report.requeued,
                    "pending nightly-refresh changes re-enqueued"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error.message = %e, "scheduled-refresh sweep failed"),
        }
    }
}

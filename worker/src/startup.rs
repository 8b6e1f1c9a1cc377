//! Wiring: settings → dependencies → two apalis workers (authorize, detail) on the
//! project's Redis backend → Monitor with graceful drain, plus the ops HTTP port.
//!
//! The authorize worker's backend awaits a [`PermitGate`] before every fetch: it claims a
//! job only once the global limiter would grant a permit, so jobs do not sit leased while
//! the budget is spent, and a shutdown interrupts the wait instead of being held up by it.
//! The permit itself is taken by the handler right before `/Authorize` goes out
//! (`handlers::Permits`). Concurrency (`WORKER_CONCURRENCY`) and the limiter
//! (`RATE_LIMIT_PER_MINUTE`) are independent knobs.
//!
//! Both backends also await a [`PauseGate`], so an operator's `producer queues pause`
//! stops their fetches within a second; jobs already leased finish. The limit itself is
//! read from Redis by the limiter on every request; startup only seeds it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use apalis::layers::WorkerBuilderExt;
use apalis_core::monitor::Monitor;
use apalis_core::task::attempt::Attempt;
use apalis_core::task::data::Data;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::builder::WorkerBuilder;
use futures::future::BoxFuture;
use shared::config::Settings;
use shared::control::{Control, PauseGate};
use shared::flinks::{FlinksClient, FlinksConfig};
use shared::jobs::{AuthorizeJob, DetailJob, AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::keys::KeySpace;
use shared::outcomes::Outcomes;
use shared::queue::{
    AckWith, FetchGate, HeldJobs, JobFailure, LeaseFacts, Queue, RedisBackend, WorkerId,
};
use shared::ratelimit::RateLimiter;
use shared::stores::Stores;
use tokio_util::sync::CancellationToken;

use crate::handlers::{self, Delivery, Deps, Handled, Permits, Policy};
use crate::slots::Slots;

pub use shared::metrics::ROUTINE_OUTCOMES_TOTAL;

/// Detail jobs claimed per fetch.
const DETAIL_BATCH: usize = 8;

/// How often buried jobs are turned into `failed` outcomes (see `dead_letters`).
const DEAD_LETTER_SCAN: std::time::Duration = std::time::Duration::from_secs(5);

/// Per-run options from the command line.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Overrides `WORKER_CONCURRENCY`.
    pub concurrency: Option<u32>,
}

/// Runs a worker process until `shutdown` fires, then drains within `SHUTDOWN_GRACE`.
pub async fn run(
    settings: Settings,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let concurrency = options
        .concurrency
        .unwrap_or(settings.worker_concurrency)
        .max(1) as usize;
    let conn = shared::redis_conn::connect(&settings.redis).await?;
    let keys = settings.key_space();
    shared::layout::prepare(&conn, &keys).await?;
    let metrics = shared::metrics::install().context("metrics recorder")?;
    let ops_addr = shared::ops_http::serve(
        settings.metrics_addr,
        shared::ops_http::OpsLimits::from_settings(&settings),
        metrics,
        conn.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "cannot serve the ops port on METRICS_ADDR={}",
            settings.metrics_addr
        )
    })?;

    let _reconciler = crate::dead_letters::spawn(
        crate::dead_letters::DeadLetterReconciler::new(conn.clone(), &keys),
        DEAD_LETTER_SCAN,
        shutdown.clone(),
    );
    let _outbox = shared::outcomes::spawn_drain(
        Outcomes::new(conn.clone(), &keys),
        shared::outcomes::DRAIN_INTERVAL,
        shutdown.clone(),
    );
    let _sampler = shared::gauges::spawn_sampler(
        conn.clone(),
        keys.clone(),
        shared::gauges::SamplerConfig::from_settings(&settings),
        shutdown.clone(),
    );
    // Checked before anything is opened: a worker must not store account data in clear
    // when encryption is required.
    settings.require_results_encryption()?;
    let mut stores = Stores::open(conn.clone(), &keys, &settings);
    let (outcomes, outbox_clears) = stores
        .outcomes
        .clone()
        .with_batched_clears(shutdown.clone());
    stores.outcomes = outcomes;
    stores
        .migrate_queues()
        .await
        .context("moving queued jobs to the current storage layout")?;
    let deps = Arc::new(build_deps(
        &settings,
        &stores,
        conn.clone(),
        &keys,
        shutdown.clone(),
    )?);
    let control = Control::new(conn.clone(), &keys);
    let rate_limit = control
        .seed_rate_limit(settings.rate_limit_per_minute)
        .await
        .context("seeding the stored rate limit")?;
    if rate_limit <= 0.0 {
        tracing::warn!("the global rate limit is OFF (0 per minute; benchmarks only)");
    }
    let worker_id = WorkerId::generate();
    tracing::info!(
        worker_id = %worker_id.as_str(),
        concurrency,
        rate_limit_per_minute = rate_limit,
        ops = %ops_addr,
        "worker starting"
    );

    let deactivation = crate::deactivation::spawn(
        &settings,
        conn.clone(),
        &keys,
        stores.deactivation.clone(),
        &worker_id,
        shutdown.clone(),
    )?;
    let events =
        crate::events::spawn(&settings, conn.clone(), &keys, &worker_id, shutdown.clone())?;

    let permit_gate: Arc<dyn FetchGate> = Arc::new(PermitGate {
        limiter: deps.limiter.clone(),
        shutdown: shutdown.clone(),
    });
    let gate: Arc<dyn FetchGate> = Arc::new(
        PauseGate::new(control.clone(), AUTHORIZE_QUEUE, shutdown.clone()).then(permit_gate),
    );
    let detail_gate: Arc<dyn FetchGate> =
        Arc::new(PauseGate::new(control, DETAIL_QUEUE, shutdown.clone()));
    let authorize_deps = deps.clone();
    let authorize_queue = deps.authorize_queue.clone();
    let authorize_id = worker_id.clone();
    let detail_deps = deps.clone();
    let detail_queue = deps.detail_queue.clone();
    let detail_id = worker_id.clone();

    let unfinished = Unfinished::default();
    let authorize_unfinished = unfinished.clone();
    let detail_unfinished = unfinished.clone();

    let authorize_slots = crate::slots::Slots::new(AUTHORIZE_QUEUE, concurrency);
    let detail_slots = crate::slots::Slots::new(DETAIL_QUEUE, concurrency);

    let stopping = shutdown.clone();
    let monitor = Monitor::new()
        .register(move |restarts| {
            let backend = RedisBackend::new(authorize_queue.clone())
                .with_worker_id(authorize_id.clone())
                .with_ack_fetch()
                .with_fetch_gate(gate.clone());
            authorize_unfinished.track(&authorize_queue, &backend);
            WorkerBuilder::new(format!(
                "{AUTHORIZE_QUEUE}-{}-{restarts}",
                authorize_id.as_str()
            ))
            .backend(backend)
            .catch_panic()
            .concurrency(concurrency)
            .data(authorize_deps.clone())
            .data(authorize_slots.clone())
            .build(run_authorize)
        })
        .register(move |restarts| {
            // Detail jobs take no rate-limit permit, so claiming a few at a time is safe
            // (their leases are renewed while they wait in the buffer) and saves round trips,
            // and each ack may lease the next job in the same script call. The authorize
            // queue does neither: each claim there waits for a rate-limit permit.
            let backend = RedisBackend::new(detail_queue.clone())
                .with_worker_id(detail_id.clone())
                .with_batch(DETAIL_BATCH)
                .with_ack_fetch()
                .with_fetch_gate(detail_gate.clone());
            detail_unfinished.track(&detail_queue, &backend);
            WorkerBuilder::new(format!("{DETAIL_QUEUE}-{}-{restarts}", detail_id.as_str()))
                .backend(backend)
                .catch_panic()
                .concurrency(concurrency)
                .data(detail_deps.clone())
                .data(detail_slots.clone())
                .build(run_detail)
        })
        .should_restart(move |_ctx, error| {
            let restart = !stopping.is_cancelled();
            tracing::error!(error.message = %error, restart, "a worker stopped");
            restart
        })
        .shutdown_timeout(settings.shutdown_grace);

    let signal = shutdown.clone();
    // On a runtime worker thread rather than main's: job futures then run next to the
    // Redis and HTTP connections they wait on, instead of being woken across threads
    // (BENCHMARKS.md, "Whole pipeline").
    let result = tokio::spawn(monitor.run_with_signal(async move {
        signal.cancelled().await;
        Ok(())
    }))
    .await
    .context("worker monitor task")?;
    // The Monitor gives up on jobs still running after SHUTDOWN_GRACE without settling
    // them: hand them back now, or they would sit leased until WORKER_LEASE runs out.
    unfinished.release().await;
    let _ = deactivation.await;
    let _ = events.await;
    let _ = outbox_clears.await;
    result.context("worker monitor")?;
    tracing::info!("worker drained and stopped");
    Ok(())
}

/// The leases every backend of this process holds, so the jobs the Monitor abandoned at
/// the end of `SHUTDOWN_GRACE` can be returned to the front of their queue.
#[derive(Clone, Default)]
struct Unfinished(Arc<std::sync::Mutex<Vec<Leases>>>);

/// One backend's leases: its queue and held jobs.
type Leases = (Queue<()>, HeldJobs);

impl Unfinished {
    fn track<T>(&self, queue: &Queue<T>, backend: &RedisBackend<T>) {
        self.0
            .lock()
            .expect("unfinished lock")
            .push((queue.retyped(), backend.held().clone()));
    }

    /// Releases every job still held (its attempt is not counted). A handler cut off
    /// after calling Flinks may call it again on redelivery; the ledger still stores once.
    async fn release(&self) {
        let held: Vec<_> = self.0.lock().expect("unfinished lock").drain(..).collect();
        for (queue, jobs) in held {
            let leases = jobs.snapshot();
            if leases.is_empty() {
                continue;
            }
            match queue.release(&leases).await {
                Ok(n) => tracing::warn!(
                    queue = %queue.name(),
                    released = n,
                    "jobs not finished within SHUTDOWN_GRACE returned to the queue"
                ),
                Err(e) => tracing::warn!(
                    queue = %queue.name(),
                    error.message = %e,
                    "could not return unfinished jobs; they return after WORKER_LEASE"
                ),
            }
        }
    }
}

fn build_deps(
    settings: &Settings,
    stores: &Stores,
    conn: shared::redis_conn::RedisConn,
    keys: &KeySpace,
    shutdown: CancellationToken,
) -> anyhow::Result<Deps> {
    let flinks =
        FlinksClient::new(FlinksConfig::from_settings(settings)?).context("Flinks client")?;
    let stores = stores.clone();
    // The authorize step's checks ride each job's lease where one script can see their keys
    // (one Redis; the ledger's with one ledger bucket); elsewhere the handler reads itself.
    let authorize_reads = crate::handlers::authorize::AuthorizeReads::of(
        &stores.ledger,
        &stores.registry,
        &stores.limiter,
    );
    Ok(Deps {
        flinks,
        ledger: stores.ledger,
        registry: stores.registry,
        outcomes: stores.outcomes,
        authorize_queue: stores
            .authorize
            .with_lease_reads(authorize_reads.reads.clone()),
        authorize_reads,
        detail_queue: stores.detail,
        results: stores.results,
        permits: Permits::new(stores.limiter.clone(), shutdown),
        deadlines: shared::control::RoutineDeadlines::new(shared::control::Control::new(
            conn, keys,
        )),
        limiter: stores.limiter,
        policy: Policy {
            stale_after: settings.stale_after,
            poll_interval: settings.poll_interval,
            poll_timeout: settings.poll_timeout,
            max_attempts: settings.max_attempts,
            max_throttle_defers: settings.max_throttle_defers,
            cooldown: settings.rate_limit_cooldown,
        },
    })
}

/// Lets the authorize backend claim a job only once the global limiter would grant a
/// permit (taking none: the handler takes it right before `/Authorize`). On shutdown it
/// never resolves, so no job is claimed while the worker drains.
struct PermitGate {
    limiter: RateLimiter,
    shutdown: CancellationToken,
}

impl FetchGate for PermitGate {
    /// Open while the limiter heard less than a second ago that the limit is off: an ack
    /// may then lease the next job, which still asks Redis for its permit before calling.
    /// With a limit on, never: every claim waits here for a likely permit.
    fn open_now(&self) -> bool {
        !self.shutdown.is_cancelled() && self.limiter.off_recently()
    }

    fn ready(&self) -> BoxFuture<'static, ()> {
        let limiter = self.limiter.clone();
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            if !limiter.wait_until_likely(&shutdown).await {
                futures::future::pending::<()>().await;
            }
        })
    }
}

/// The apalis handler of one routine queue: takes a concurrency slot, runs the queue's
/// handler, then [`finish`]es. A macro, since apalis needs a plain `async fn` per job type
/// and the handlers' futures borrow their arguments.
macro_rules! routine_job {
    ($name:ident, $job:ty, $queue:expr, $handle:path) => {
        async fn $name(
            job: $job,
            id: TaskId,
            attempt: Attempt,
            leased: Data<LeaseFacts>,
            ack_with: Data<AckWith>,
            deps: Data<Arc<Deps>>,
            slots: Data<Arc<Slots>>,
        ) -> Result<(), JobFailure> {
            let _slot = slots.enter();
            let started = Instant::now();
            let delivery = delivery(&id, &attempt, &leased, &ack_with);
            let result = $handle(&job, &delivery, &deps).await;
            finish($queue, result, started)
        }
    };
}

routine_job!(
    run_authorize,
    AuthorizeJob,
    AUTHORIZE_QUEUE,
    handlers::authorize::handle
);
routine_job!(
    run_detail,
    DetailJob,
    DETAIL_QUEUE,
    handlers::detail::handle
);

fn delivery(id: &TaskId, attempt: &Attempt, leased: &LeaseFacts, ack_with: &AckWith) -> Delivery {
    Delivery {
        job_id: id.to_string(),
        attempt: attempt.current() as u32,
        first: leased.first_delivery,
        reads: leased.reads.clone(),
        leased_at: leased.leased_at,
        ack_with: ack_with.clone(),
    }
}

fn finish(
    queue: &'static str,
    result: Result<Handled, JobFailure>,
    started: Instant,
) -> Result<(), JobFailure> {
    let label = match &result {
        Ok(handled) => handled.as_label(),
        Err(JobFailure::Retry { .. }) => "retried",
        Err(JobFailure::Permanent { .. }) => "dead",
        Err(JobFailure::Defer { .. }) => "deferred",
    };
    metrics::counter!(ROUTINE_OUTCOMES_TOTAL, "queue" => queue, "outcome" => label).increment(1);
    tracing::debug!(
        queue,
        outcome = label,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "job settled"
    );
    result.map(|_| ())
}

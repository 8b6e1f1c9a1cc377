//! apalis-core 1.0 integration: [`RedisBackend`] implements `Backend` + `BackendConfig`, so
//! `WorkerBuilder::new(name).backend(backend).build(handler)` runs jobs from a [`Queue`].
//!
//! How apalis-core delivers results: `Worker::stream` wraps the handler as
//! `Data(WorkerContext) → backend layer → user layers → LifecycleLayer → handler`, so the
//! backend's layer ([`QueueLayer`]) sees the final result of every attempt, after the user's
//! retry/timeout/catch-panic layers. It acks or fails the job in Redis before its future
//! completes, so the decision is never lost in an in-process channel (apalis-redis acks
//! asynchronously on a later poll).
//!
//! The handler says what happens next through its error: [`JobFailure::Retry`] (optional
//! delay), [`JobFailure::Permanent`] (dead-letter now; apalis' `AbortError`, e.g. from
//! `catch_panic`, means the same), [`JobFailure::Defer`] (again after a delay, the attempt
//! given back), apalis' `RetryAfterError` (retry after its duration), any other error: retry
//! with the queue's backoff. `Ok` acks.
//!
//! Guarantees kept outside apalis' control flow:
//! - leases are renewed by the [`Heartbeat`] tasks, not by polls of the worker stream, so a
//!   worker whose slots are all busy keeps its leases (and jobs it buffered) alive;
//! - a delivery whose lease is lost (see [`Heartbeat`]'s watchdog) has its handler future
//!   dropped at its next await point and is not settled: another worker may own the job, and
//!   each delivery settles only under its own [`DeliveryToken`];
//! - `poll_next` never returns an error: Redis errors are logged and the fetch is retried
//!   with backoff (an error from `poll_next` would end `Worker::run`).
//! - a [`FetchGate`] is awaited before every fetch, so a worker claims a job only when it
//!   is likely to be able to run it (e.g. when a rate-limit permit would be granted).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::{AbortError, BoxDynError, RetryAfterError};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use super::config::QueueConfig;
use super::core::Queue;
use super::error::QueueError;
use super::handoff::{AckFetch, Acker, Handoff, Held, ACK_CLAIMS_BUFFERED};
use super::lease::{Heartbeat, HeldJobs};
use super::metrics_names as m;
use super::types::{
    AckAttached, AckWith, DeliveryToken, FailOutcome, JobFailure, JobId, LeaseFacts, WorkerId,
};

/// Maps a handler's error to what the queue does with the job: a [`JobFailure`] is taken
/// as is; apalis' own errors are mapped; anything else retries with the backoff.
fn classify(error: &BoxDynError) -> JobFailure {
    if let Some(failure) = error.downcast_ref::<JobFailure>() {
        return failure.clone();
    }
    if error.downcast_ref::<AbortError>().is_some() {
        return JobFailure::permanent(error_chain(error.as_ref()));
    }
    if let Some(e) = error.downcast_ref::<RetryAfterError>() {
        return JobFailure::retry_after(error_chain(error.as_ref()), e.get_duration());
    }
    JobFailure::retry(error_chain(error.as_ref()))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A gate awaited before every fetch: the extension point for claiming a job only when it
/// can run soon (e.g. once a rate-limit permit would be granted), so jobs are not held
/// leased while they wait.
pub trait FetchGate: Send + Sync + 'static {
    /// Resolves when the worker may claim the next batch.
    fn ready(&self) -> BoxFuture<'static, ()>;

    /// True when the worker may claim a job right now without awaiting
    /// [`FetchGate::ready`], so an ack may lease the next job
    /// ([`RedisBackend::with_ack_fetch`]). The default, false, keeps every claim behind
    /// `ready`: a gate that waits for permits must say true only while none is needed.
    fn open_now(&self) -> bool {
        false
    }
}

/// Which delivery a task is: stored in the task's data for [`QueueService`].
#[derive(Clone, Debug)]
struct Delivery {
    id: JobId,
    attempt: u32,
    token: DeliveryToken,
    /// Cancelled when this delivery's lease is lost.
    lost: CancellationToken,
    /// The job the handler asks its ack to queue, if any.
    ack_with: AckWith,
}

/// Returned in place of the handler's result when its lease was lost mid-run: the handler
/// was stopped and the job left unsettled for whichever delivery holds it now.
#[derive(Debug, thiserror::Error)]
#[error("job {0}: lease lost while running; the handler was cancelled")]
pub struct LeaseLost(JobId);

type FetchFuture<T> = BoxFuture<'static, Result<Vec<Held<T>>, QueueError>>;

/// An apalis-core `Backend` over a [`Queue`]: one per worker (one `WorkerId`, one
/// [`Heartbeat`]).
pub struct RedisBackend<T> {
    queue: Queue<T>,
    worker: WorkerId,
    batch: usize,
    gate: Option<Arc<dyn FetchGate>>,
    held: HeldJobs,
    /// Leased jobs not yet handed out: from fetches, and from acks with ack-and-fetch.
    buffer: Arc<Handoff<T>>,
    ack_fetch: bool,
    /// Jobs a fetch leased after the buffer closed, for `poll_close` to release.
    unreleased: Vec<Held<T>>,
    fetching: Option<FetchFuture<T>>,
    /// Set by the fetch future once it passed the gate (and so may lease jobs).
    fetch_claiming: Arc<AtomicBool>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    errors_in_a_row: u32,
    heartbeat: Option<Heartbeat>,
    releasing: Option<BoxFuture<'static, ()>>,
}

impl<T> std::fmt::Debug for RedisBackend<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("queue", &self.queue.name())
            .field("worker", &self.worker)
            .field("batch", &self.batch)
            .field("held", &self.held.len())
            .finish()
    }
}

impl<T> RedisBackend<T> {
    /// A backend fetching one job at a time, under a fresh [`WorkerId`].
    pub fn new(queue: Queue<T>) -> Self {
        Self {
            queue,
            worker: WorkerId::generate(),
            batch: 1,
            gate: None,
            held: HeldJobs::default(),
            buffer: Arc::new(Handoff::default()),
            ack_fetch: false,
            unreleased: Vec::new(),
            fetching: None,
            fetch_claiming: Arc::new(AtomicBool::new(false)),
            sleep: None,
            errors_in_a_row: 0,
            heartbeat: None,
            releasing: None,
        }
    }

    /// Claim up to `batch` jobs per fetch (default 1). Jobs buffered while all handler slots
    /// are busy keep their leases (the heartbeat renews them) but no other worker can take
    /// them meanwhile: keep 1 for slow or rate-limited jobs.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Each ack also leases the next job, for the handler slot it frees (one script call per
    /// job instead of two), while fewer than `batch` jobs, and at least 8, are buffered and
    /// the fetch gate, if any, is [open now](FetchGate::open_now); see `handoff.rs`.
    pub fn with_ack_fetch(mut self) -> Self {
        self.ack_fetch = true;
        self
    }

    /// Await `gate` before every fetch.
    pub fn with_fetch_gate(mut self, gate: Arc<dyn FetchGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Use this worker id (must be unique per process; default [`WorkerId::generate`]).
    pub fn with_worker_id(mut self, worker: WorkerId) -> Self {
        self.worker = worker;
        self
    }

    /// The worker id leases are taken under.
    pub fn worker_id(&self) -> &WorkerId {
        &self.worker
    }

    /// The jobs this backend holds leases for (running or buffered).
    pub fn held(&self) -> &HeldJobs {
        &self.held
    }

    fn start_heartbeat(&mut self)
    where
        T: 'static,
    {
        if self.heartbeat.is_none() {
            self.heartbeat = Some(Heartbeat::spawn(
                self.queue.clone(),
                self.worker.clone(),
                self.held.clone(),
            ));
        }
    }

    fn to_task(&self, (job, lost): Held<T>) -> Task<T> {
        let delivery = Delivery {
            id: job.id.clone(),
            attempt: job.attempt,
            token: job.token,
            lost,
            ack_with: AckWith::default(),
        };
        TaskBuilder::new(job.job)
            .task_id(TaskId::from_string(job.id.to_string()))
            // apalis' lifecycle adds one before the handler runs.
            .attempt(job.attempt.saturating_sub(1) as usize)
            .max_attempts(self.queue.config().max_attempts as usize)
            .data(LeaseFacts {
                first_delivery: job.first_delivery,
                reads: job.reads,
                leased_at: job.leased_at,
            })
            .data(delivery.ack_with.clone())
            .data(delivery)
            .build()
    }
}

impl<T: DeserializeOwned + Send + 'static> RedisBackend<T> {
    fn start_fetch(&mut self) {
        let queue = self.queue.clone();
        let worker = self.worker.clone();
        let held = self.held.clone();
        let gate = self.gate.clone();
        let batch = self.batch;
        let claiming = Arc::new(AtomicBool::new(false));
        self.fetch_claiming = Arc::clone(&claiming);
        self.fetching = Some(
            async move {
                if let Some(gate) = gate {
                    gate.ready().await;
                }
                claiming.store(true, Ordering::SeqCst);
                // The lease runs from about when Redis took it, never earlier than this.
                let deadline = tokio::time::Instant::now() + queue.config().lease;
                let jobs = queue.fetch(&worker, batch).await?;
                Ok(jobs
                    .into_iter()
                    .map(|j| {
                        let lost = held.insert(j.id.clone(), j.token.clone(), deadline);
                        (j, lost)
                    })
                    .collect())
            }
            .boxed(),
        );
    }
}

impl<T: DeserializeOwned + Send + 'static> Backend for RedisBackend<T> {
    type Task = Task<T>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        self.start_heartbeat();
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<T>, QueueError>>> {
        self.start_heartbeat();
        loop {
            // Registered before the buffer is read, so an ack that buffers a job after the
            // read wakes this task.
            self.buffer.register(cx.waker());
            if let Some(job) = self.buffer.pop() {
                if self.errors_in_a_row == 0 {
                    // Jobs are flowing again: no empty-queue pause before the next fetch.
                    self.sleep = None;
                }
                return Poll::Ready(Some(Ok(self.to_task(job))));
            }
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            if self.fetching.is_none() {
                self.start_fetch();
            }
            let fetching = self.fetching.as_mut().expect("fetch started");
            let result = match fetching.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            self.fetching = None;
            match result {
                Ok(jobs) if jobs.is_empty() => {
                    self.errors_in_a_row = 0;
                    self.sleep = Some(Box::pin(tokio::time::sleep(
                        self.queue.config().poll_interval,
                    )));
                }
                Ok(jobs) => {
                    self.errors_in_a_row = 0;
                    if let Err(jobs) = self.buffer.push(jobs) {
                        // Closed meanwhile: poll_close releases what it drains.
                        self.unreleased.extend(jobs);
                    }
                }
                Err(e) => {
                    self.errors_in_a_row += 1;
                    let wait = Duration::from_millis(100)
                        .saturating_mul(1 << self.errors_in_a_row.min(6))
                        .min(Duration::from_secs(5));
                    tracing::warn!(queue = %self.queue.name(), error.message = %e,
                        error.cause_chain = ?e, retry_in = ?wait, "fetch failed; retrying");
                    self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        // A fetch still waiting at the gate has claimed nothing: drop it. One already sent
        // may have leased jobs: wait for it (bounded by the response timeout) to release them.
        if !self.fetch_claiming.load(Ordering::SeqCst) {
            self.fetching = None;
        }
        if let Some(fetching) = self.fetching.as_mut() {
            match fetching.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(jobs)) => self.unreleased.extend(jobs),
                Poll::Ready(Err(_)) => {}
            }
            self.fetching = None;
        }
        if self.releasing.is_none() && self.heartbeat.is_some() {
            // From now on acks are plain acks (see `handoff.rs`).
            let mut leftover = self.buffer.close();
            leftover.append(&mut self.unreleased);
            let leases: Vec<(JobId, DeliveryToken)> =
                leftover.into_iter().map(|(j, _)| (j.id, j.token)).collect();
            let (queue, worker, held) =
                (self.queue.clone(), self.worker.clone(), self.held.clone());
            self.releasing = Some(
                async move {
                    // On failure the leases expire and the reaper returns the jobs.
                    if let Err(e) = queue.release(&leases).await {
                        tracing::warn!(queue = %queue.name(), error.message = %e,
                            "could not release buffered jobs; they return after their lease");
                    }
                    for (id, token) in &leases {
                        held.remove(id, token);
                    }
                    if let Err(e) = queue.deregister(&worker).await {
                        tracing::warn!(queue = %queue.name(), error.message = %e, "could not deregister the worker");
                    }
                }
                .boxed(),
            );
        }
        if let Some(releasing) = self.releasing.as_mut() {
            if releasing.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.releasing = None;
        }
        if let Some(hb) = self.heartbeat.take() {
            hb.stop();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: DeserializeOwned + Send + 'static> BackendConfig for RedisBackend<T> {
    type Args = T;
    type Id = JobId;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = QueueLayer;

    fn config(&self) -> &QueueConfig {
        self.queue.config()
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> QueueLayer {
        let acker: Option<Arc<dyn Acker>> = self.ack_fetch.then(|| {
            Arc::new(AckFetch {
                queue: self.queue.clone(),
                worker: self.worker.clone(),
                held: self.held.clone(),
                handoff: Arc::clone(&self.buffer),
                buffer: self.batch.max(ACK_CLAIMS_BUFFERED),
                gate: self.gate.clone(),
            }) as Arc<dyn Acker>
        });
        QueueLayer {
            queue: self.queue.retyped(),
            worker: self.worker.clone(),
            held: self.held.clone(),
            acker,
        }
    }
}

/// The backend's tower layer: settles every attempt in Redis (ack, retry, dead-letter) from
/// the handler's result, records the duration, and stops renewing the job. A handler whose
/// lease is lost is dropped mid-run and its delivery left unsettled ([`LeaseLost`]).
#[derive(Clone)]
pub struct QueueLayer {
    queue: Queue<()>,
    worker: WorkerId,
    held: HeldJobs,
    /// Set with ack-and-fetch: acks go through it.
    acker: Option<Arc<dyn Acker>>,
}

impl std::fmt::Debug for QueueLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueLayer")
            .field("queue", &self.queue.name())
            .field("worker", &self.worker)
            .field("ack_fetch", &self.acker.is_some())
            .finish()
    }
}

impl<S> Layer<S> for QueueLayer {
    type Service = QueueService<S>;

    fn layer(&self, inner: S) -> QueueService<S> {
        QueueService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`QueueLayer`].
#[derive(Clone, Debug)]
pub struct QueueService<S> {
    inner: S,
    layer: QueueLayer,
}

impl<S, Args> Service<Task<Args>> for QueueService<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let delivery = task.data().get::<Delivery>().cloned();
        let fut = self.inner.call(task);
        let layer = self.layer.clone();
        async move {
            let started = Instant::now();
            let lost = delivery.as_ref().map(|d| d.lost.clone());
            let result = match lost {
                Some(lost) => tokio::select! {
                    biased;
                    _ = lost.cancelled() => None,
                    r = fut => Some(r.map_err(Into::into)),
                },
                None => Some(fut.await.map_err(Into::into)),
            };
            let Some(result) = result else {
                let d = delivery.expect("only a delivery can lose its lease");
                tracing::warn!(queue = %layer.queue.name(), job_id = %d.id, token = %d.token,
                    "lease lost: handler cancelled, the job is left to its current holder");
                layer.held.remove(&d.id, &d.token);
                layer.ack_attached_after_loss(&d).await;
                return Err(Box::new(LeaseLost(d.id)) as BoxDynError);
            };
            metrics::histogram!(m::JOB_DURATION_SECONDS, "queue" => layer.queue.name().to_string())
                .record(started.elapsed().as_secs_f64());
            if let Some(d) = delivery {
                let outcome = match &result {
                    Ok(_) => None,
                    Err(e) => Some(classify(e)),
                };
                layer.settle(&d, outcome).await;
            }
            result
        }
        .boxed()
    }
}

impl QueueLayer {
    /// Runs `op` until Redis answers, retrying errors with backoff for up to one lease (the
    /// heartbeat keeps a held lease alive meanwhile); the last error once it gave up.
    async fn retry_for_a_lease<R, F, Fut>(
        &self,
        job_id: &JobId,
        what: &str,
        mut op: F,
    ) -> Result<R, QueueError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, QueueError>>,
    {
        let give_up = Instant::now() + self.queue.config().lease;
        let mut wait = Duration::from_millis(50);
        loop {
            match op().await {
                Err(e) if Instant::now() < give_up => {
                    tracing::warn!(queue = %self.queue.name(), job_id = %job_id, error.message = %e,
                        retry_in = ?wait, "{what} failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                res => return res,
            }
        }
    }

    /// Queues and writes what a handler attached to its ack when it finished just as its
    /// lease was lost: its work was done. The job itself is left to its holder (the ack
    /// goes out under a token that holds no lease).
    async fn ack_attached_after_loss(&self, d: &Delivery) {
        let attached = d.ack_with.take();
        if attached.is_empty() {
            return;
        }
        let no_lease = DeliveryToken::generate(&self.worker);
        let queued = self
            .retry_for_a_lease(&d.id, "queueing what a handler attached to its ack", || {
                self.queue.ack_attached(&no_lease, &d.id, &attached, None)
            })
            .await;
        if let Err(e) = queued {
            tracing::error!(queue = %self.queue.name(), job_id = %d.id, error.message = %e,
                "giving up queueing what a handler attached to its ack before its lease was lost");
        }
    }

    /// Acks (`None`) or fails the delivery, retrying Redis errors for up to one lease while
    /// the heartbeat keeps the lease alive; then stops renewing it. An ack carries what the
    /// handler attached ([`AckWith`]) in the same script call.
    async fn settle(&self, d: &Delivery, failure: Option<JobFailure>) {
        // Only a success carries what the handler attached.
        let attached = d.ack_with.take();
        let attached = if failure.is_none() {
            attached
        } else {
            AckAttached::default()
        };
        // Ok(true): settled; Ok(false): the lease was lost (reaped) before we settled.
        let mut settled = self
            .retry_for_a_lease(&d.id, "settling the job", || async {
                let answer = match &failure {
                    None => match &self.acker {
                        Some(acker) => acker.ack(&d.token, &d.id, &attached).await,
                        None if attached.is_empty() => self.queue.ack(&d.token, &d.id).await,
                        None => self
                            .queue
                            .ack_attached(&d.token, &d.id, &attached, None)
                            .await
                            .map(|(acked, _)| acked),
                    },
                    Some(f) => self
                        .queue
                        .fail(&d.token, &d.id, d.attempt, f.clone())
                        .await
                        .map(|o| o != FailOutcome::LeaseLost),
                };
                // A refusal (an attached write's error reply) would come back the same:
                // out of the retries, as an answer.
                match answer {
                    Err(e) if e.is_refused() => Ok(Err(e)),
                    answer => answer.map(Ok),
                }
            })
            .await
            .and_then(|answer| answer);
        if let (None, Err(refused)) = (&failure, &settled) {
            if refused.is_refused() {
                // The ack was refused: the attempt fails with the reason, and runs again
                // after its backoff (or is dead-lettered with it), as a failed handler's.
                let reason =
                    JobFailure::retry(format!("settling the job: {}", error_chain(refused)));
                settled = self
                    .retry_for_a_lease(&d.id, "failing the job its ack refused", || {
                        self.queue.fail(&d.token, &d.id, d.attempt, reason.clone())
                    })
                    .await
                    .map(|o| o != FailOutcome::LeaseLost);
            }
        }
        match settled {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(queue = %self.queue.name(), job_id = %d.id, worker = %self.worker,
                    "lease lost before the job was settled: it will run again");
            }
            Err(e) => {
                tracing::error!(queue = %self.queue.name(), job_id = %d.id, error.message = %e,
                    error.cause_chain = ?e, "giving up settling the job: it returns after its lease");
            }
        }
        self.held.remove(&d.id, &d.token);
    }
}

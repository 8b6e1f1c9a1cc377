//! Ack-and-fetch for [`RedisBackend`](super::RedisBackend): a job's ack also leases the
//! next job (`lua/queue/ack_fetch.lua`, as BullMQ's `moveToFinished`), so a busy worker
//! pays one script call per job instead of two. The jobs an ack leased are handed to the
//! backend's stream through [`Handoff`], the backend's buffer of leased jobs.
//!
//! An ack claims only when the backend's [`FetchGate`] says it is
//! [open now](FetchGate::open_now) (or there is none): the authorize queue's rate-limit
//! gate is open only while the limit is off, so with a limit on those acks stay plain acks
//! and every claim waits for a likely permit; the pause gate is open while it read the
//! flag unpaused recently.
//!
//! Shutdown: the backend closes the handoff when it stops; from then on acks are plain acks,
//! and jobs an ack leased while the backend closed are released at once (their attempt
//! given back), so a graceful stop neither strands a job until its lease expires nor spends
//! one of its attempts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::backend::FetchGate;
use super::core::Queue;
use super::error::QueueError;
use super::lease::HeldJobs;
use super::types::{AckAttached, DeliveryToken, JobId, LeasedJob, WorkerId};

/// A leased job and the token cancelled when its lease is lost.
pub(crate) type Held<T> = (LeasedJob<T>, CancellationToken);

/// The backend's buffer of leased jobs not yet handed to a handler, shared with the acks
/// that fill it.
pub(crate) struct Handoff<T> {
    inner: Mutex<Inner<T>>,
    waker: AtomicWaker,
}

struct Inner<T> {
    jobs: VecDeque<Held<T>>,
    closed: bool,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                closed: false,
            }),
            waker: AtomicWaker::new(),
        }
    }
}

impl<T> Handoff<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().expect("handoff lock")
    }

    /// The next buffered job.
    pub(crate) fn pop(&self) -> Option<Held<T>> {
        self.lock().jobs.pop_front()
    }

    /// How many jobs wait.
    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Buffers `jobs` and wakes the backend; gives them back when the handoff is closed.
    pub(crate) fn push(&self, jobs: Vec<Held<T>>) -> Result<(), Vec<Held<T>>> {
        if jobs.is_empty() {
            return Ok(());
        }
        {
            let mut inner = self.lock();
            if inner.closed {
                return Err(jobs);
            }
            inner.jobs.extend(jobs);
        }
        self.waker.wake();
        Ok(())
    }

    /// Wakes the backend's task when jobs arrive.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Closes the handoff and returns the jobs still buffered.
    pub(crate) fn close(&self) -> Vec<Held<T>> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.jobs.drain(..).collect()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// Settles a successful attempt for [`QueueLayer`](super::QueueLayer), which does not know
/// the job type.
pub(crate) trait Acker: Send + Sync {
    /// Acks the delivery with what its handler `attached`, in the same call; true when it
    /// still held the lease.
    fn ack<'a>(
        &'a self,
        token: &'a DeliveryToken,
        id: &'a JobId,
        attached: &'a AckAttached,
    ) -> BoxFuture<'a, Result<bool, QueueError>>;
}

/// The handoff's size below which an ack still leases a job, when the backend's fetch batch
/// is smaller. An ack frees its handler's slot and leases one job for it, so the handoff
/// holds more than a job or two only when many acks come back together (one read of Redis'
/// replies completes them all) before the worker takes the jobs out. A bound of the fetch
/// batch (1 for the authorize queue) would leave every ack sent while an earlier ack's job
/// still waits without a claim, and its slot to a separate, gated fetch of one job: with
/// eight slots, about one fetch for every three jobs.
pub(crate) const ACK_CLAIMS_BUFFERED: usize = 8;

/// Acks that lease the next job into the backend's handoff while it holds fewer than
/// `buffer` jobs and `gate` is open now.
pub(crate) struct AckFetch<T> {
    pub(crate) queue: Queue<T>,
    pub(crate) worker: WorkerId,
    pub(crate) held: HeldJobs,
    pub(crate) handoff: Arc<Handoff<T>>,
    pub(crate) buffer: usize,
    pub(crate) gate: Option<Arc<dyn FetchGate>>,
}

impl<T: DeserializeOwned + Send + 'static> Acker for AckFetch<T> {
    fn ack<'a>(
        &'a self,
        token: &'a DeliveryToken,
        id: &'a JobId,
        attached: &'a AckAttached,
    ) -> BoxFuture<'a, Result<bool, QueueError>> {
        async move {
            let claim = !self.handoff.is_closed()
                && self.handoff.len() < self.buffer
                && self.gate.as_ref().is_none_or(|g| g.open_now());
            let next = claim.then_some((&self.worker, 1));
            // The lease runs from about when Redis took it, never earlier than this.
            let deadline = tokio::time::Instant::now() + self.queue.config().lease;
            let (acked, jobs) = match (attached.is_empty(), next) {
                (false, next) => self.queue.ack_attached(token, id, attached, next).await?,
                (true, Some((worker, max))) => {
                    self.queue.ack_and_fetch(token, id, worker, max).await?
                }
                (true, None) => (self.queue.ack(token, id).await?, Vec::new()),
            };
            let held = jobs
                .into_iter()
                .map(|j| {
                    let lost = self.held.insert(j.id.clone(), j.token.clone(), deadline);
                    (j, lost)
                })
                .collect();
            if let Err(back) = self.handoff.push(held) {
                self.release(back).await;
            }
            Ok(acked)
        }
        .boxed()
    }
}

impl<T> AckFetch<T> {
    /// Gives back jobs leased after the backend closed (their attempt undone).
    async fn release(&self, jobs: Vec<Held<T>>) {
        let leases: Vec<(JobId, DeliveryToken)> =
            jobs.into_iter().map(|(j, _)| (j.id, j.token)).collect();
        // On failure the leases expire and the reaper returns the jobs.
        if let Err(e) = self.queue.release(&leases).await {
            tracing::warn!(queue = %self.queue.name(), error.message = %e,
                "could not release jobs leased while stopping; they return after their lease");
        }
        for (id, token) in &leases {
            self.held.remove(id, token);
        }
    }
}

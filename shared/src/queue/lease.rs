//! Keeping leases alive and rescuing expired ones, from tasks of their own.
//!
//! [`Heartbeat::spawn`] starts two tokio tasks per worker process and queue:
//! - the *renewer*: every `lease / 3` it renews the leases of every job in the process's
//!   [`HeldJobs`] registry (jobs buffered or running) and marks the worker alive. It never
//!   waits on a handler, so busy handlers cannot starve it (apalis-redis' risk 2).
//! - the *maintainer*: every `lease / 3` it runs the reaper (expired leases back to ready,
//!   counted as rescued) and promotes due delayed jobs in bounded chunks.
//!
//! Redis errors are logged and retried on the next tick; with ticks at a third of the lease,
//! a blip of up to two ticks costs nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::core::Queue;
use super::types::{JobId, WorkerId};

/// Most promotion chunks per maintenance tick (the fetch script promotes too).
const PROMOTE_CHUNKS_PER_TICK: usize = 100;

/// The jobs one process holds leases for. Shared by the fetcher (adds), the ack layer
/// (removes) and the renewer (reads).
#[derive(Clone, Debug, Default)]
pub struct HeldJobs(Arc<Mutex<HashSet<JobId>>>);

impl HeldJobs {
    /// Adds jobs to renew.
    pub fn insert_all(&self, ids: impl IntoIterator<Item = JobId>) {
        self.0.lock().expect("held jobs lock").extend(ids);
    }

    /// Stops renewing a job.
    pub fn remove(&self, id: &JobId) {
        self.0.lock().expect("held jobs lock").remove(id);
    }

    /// The jobs held now.
    pub fn snapshot(&self) -> Vec<JobId> {
        self.0
            .lock()
            .expect("held jobs lock")
            .iter()
            .cloned()
            .collect()
    }

    /// How many jobs are held.
    pub fn len(&self) -> usize {
        self.0.lock().expect("held jobs lock").len()
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The renewer and maintainer tasks of one worker; dropping it (or [`Heartbeat::stop`])
/// stops both.
#[derive(Debug)]
pub struct Heartbeat {
    cancel: CancellationToken,
}

impl Heartbeat {
    /// Starts the renewer and maintainer for `worker` on `queue` (needs a tokio runtime).
    pub fn spawn<T: 'static>(queue: Queue<T>, worker: WorkerId, held: HeldJobs) -> Self {
        let cancel = CancellationToken::new();
        let every = queue.config().heartbeat_interval();

        let (q, c) = (queue.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = c.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let ids = held.snapshot();
                match q.renew(&worker, &ids).await {
                    Ok(lost) => {
                        for id in lost {
                            tracing::warn!(queue = %q.name(), job_id = %id, worker = %worker,
                                "lease lost (expired and reaped): the job may run again");
                            held.remove(&id);
                        }
                    }
                    Err(e) => tracing::warn!(queue = %q.name(), error.message = %e,
                        error.cause_chain = ?e, "lease renewal failed; retrying next tick"),
                }
            }
        });

        let (q, c) = (queue, cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = c.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match q.reap_expired().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(queue = %q.name(), rescued = n, "rescued jobs with expired leases")
                    }
                    Err(e) => {
                        tracing::warn!(queue = %q.name(), error.message = %e, "reaper failed; retrying next tick")
                    }
                }
                if let Err(e) = q.promote_all_due(PROMOTE_CHUNKS_PER_TICK).await {
                    tracing::warn!(queue = %q.name(), error.message = %e, "promotion failed; retrying next tick");
                }
            }
        });

        Self { cancel }
    }

    /// Stops both tasks.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

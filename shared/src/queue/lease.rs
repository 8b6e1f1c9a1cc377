//! Keeping leases alive and rescuing expired ones, from tasks of their own.
//!
//! [`Heartbeat::spawn`] starts three tokio tasks per worker process and queue:
//! - the *renewer*: every `lease / 3` it renews the leases of every job in the process's
//!   [`HeldJobs`] registry (jobs buffered or running) and marks the worker alive. It never
//!   waits on a handler, so busy handlers cannot starve it (apalis-redis' risk 2).
//! - the *maintainer*: every `lease / 3` it runs the reaper (expired leases back to ready,
//!   counted as rescued) and promotes due delayed jobs in bounded chunks.
//! - the *watchdog*: cancels a delivery whose lease may be gone, so its handler stops at its
//!   next await point instead of racing the worker that now owns the job: when a renewal
//!   reports the lease lost (expired and reaped, maybe fetched again), and when the lease's
//!   deadline, counted from the moment the last successful fetch or renewal was *sent*,
//!   passes without a renewal (Redis unreachable, renewer stalled). That local deadline is
//!   never later than the one Redis holds, so the handler is stopped before the reaper can
//!   hand the job to anyone else (up to clock-rate drift).
//!
//! Every held lease is keyed by job id *and* [`DeliveryToken`]: a stale delivery of a job
//! that this process fetched again can neither renew, settle nor forget the newer lease.
//!
//! Redis errors are logged and retried on the next tick; with ticks at a third of the lease,
//! a blip of up to two ticks costs nothing (a longer one cancels the jobs whose leases it
//! may have cost).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::core::Queue;
use super::types::{DeliveryToken, JobId, WorkerId};

/// Most promotion chunks per maintenance tick (the fetch script promotes too).
const PROMOTE_CHUNKS_PER_TICK: usize = 100;

#[derive(Debug)]
struct HeldLease {
    token: DeliveryToken,
    /// Cancelled when the lease is lost: the handler of this delivery stops.
    lost: CancellationToken,
    /// When the lease may lapse in Redis unless renewed (local clock, conservative).
    deadline: Instant,
}

/// The leases one process holds, by job. Shared by the fetcher (adds), the ack layer
/// (removes), the renewer (reads, extends) and the watchdog (cancels).
#[derive(Clone, Debug, Default)]
pub struct HeldJobs(Arc<Mutex<HashMap<JobId, HeldLease>>>);

impl HeldJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, HeldLease>> {
        self.0.lock().expect("held jobs lock")
    }

    /// Starts renewing the lease `token` holds on `id` until `deadline`; returns the token
    /// that is cancelled when the lease is lost. An older delivery of the same job still
    /// held here is cancelled: the job being fetched again proves its lease is gone.
    pub fn insert(&self, id: JobId, token: DeliveryToken, deadline: Instant) -> CancellationToken {
        let lost = CancellationToken::new();
        let held = HeldLease {
            token,
            lost: lost.clone(),
            deadline,
        };
        if let Some(stale) = self.lock().insert(id, held) {
            stale.lost.cancel();
        }
        lost
    }

    /// Stops renewing a lease (settled or released). Does nothing if `id` is held by
    /// another delivery.
    pub fn remove(&self, id: &JobId, token: &DeliveryToken) {
        let mut held = self.lock();
        if held.get(id).is_some_and(|h| &h.token == token) {
            held.remove(id);
        }
    }

    /// Forgets a lease that is gone and cancels its delivery. Returns false if `id` is
    /// held by another delivery (nothing changes then).
    pub fn lose(&self, id: &JobId, token: &DeliveryToken) -> bool {
        let mut held = self.lock();
        if held.get(id).is_some_and(|h| &h.token == token) {
            if let Some(h) = held.remove(id) {
                h.lost.cancel();
            }
            return true;
        }
        false
    }

    /// Moves the deadline of the leases that were renewed (and are still held by the same
    /// delivery) to `deadline`.
    fn renewed(&self, leases: &[(JobId, DeliveryToken)], deadline: Instant) {
        let mut held = self.lock();
        for (id, token) in leases {
            if let Some(h) = held.get_mut(id).filter(|h| &h.token == token) {
                h.deadline = h.deadline.max(deadline);
            }
        }
    }

    /// Forgets and cancels every lease whose deadline is not after `now`; returns their ids.
    fn expire(&self, now: Instant) -> Vec<JobId> {
        let mut held = self.lock();
        let expired: Vec<JobId> = held
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(h) = held.remove(id) {
                h.lost.cancel();
            }
        }
        expired
    }

    fn earliest_deadline(&self) -> Option<Instant> {
        self.lock().values().map(|h| h.deadline).min()
    }

    /// The leases held now.
    pub fn snapshot(&self) -> Vec<(JobId, DeliveryToken)> {
        self.lock()
            .iter()
            .map(|(id, h)| (id.clone(), h.token.clone()))
            .collect()
    }

    /// How many jobs are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The renewer, watchdog and maintainer tasks of one worker; dropping it (or
/// [`Heartbeat::stop`]) stops them.
#[derive(Debug)]
pub struct Heartbeat {
    cancel: CancellationToken,
}

impl Heartbeat {
    /// Starts the renewer, watchdog and maintainer for `worker` on `queue` (needs a tokio
    /// runtime).
    pub fn spawn<T: 'static>(queue: Queue<T>, worker: WorkerId, held: HeldJobs) -> Self {
        let cancel = CancellationToken::new();
        let every = queue.config().heartbeat_interval();
        let lease = queue.config().lease;
        let held_watch = held.clone();

        let (q, c) = (queue.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut tick = ticker(every);
            while next_tick(&mut tick, &c).await {
                let leases = held.snapshot();
                let sent = Instant::now();
                match q.renew(&worker, &leases).await {
                    Ok(lost) => {
                        let (gone, renewed): (Vec<_>, Vec<_>) =
                            leases.into_iter().partition(|(id, _)| lost.contains(id));
                        held.renewed(&renewed, sent + lease);
                        for (id, token) in gone {
                            if held.lose(&id, &token) {
                                tracing::warn!(queue = %q.name(), job_id = %id, worker = %worker,
                                    "lease lost (expired and reaped): its handler is cancelled and the job may run again");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(queue = %q.name(), error.message = %e,
                        error.cause_chain = ?e, "lease renewal failed; retrying next tick"),
                }
            }
        });

        let (q, c, held) = (queue.clone(), cancel.clone(), held_watch);
        tokio::spawn(async move {
            loop {
                let now = Instant::now();
                let wake = held
                    .earliest_deadline()
                    .map_or(now + every, |d| d.min(now + every));
                tokio::select! {
                    _ = c.cancelled() => return,
                    _ = tokio::time::sleep_until(wake) => {}
                }
                for id in held.expire(Instant::now()) {
                    tracing::warn!(queue = %q.name(), job_id = %id,
                        "lease not renewed before its deadline: its handler is cancelled and the job may run again");
                }
            }
        });

        let (q, c) = (queue, cancel.clone());
        tokio::spawn(async move {
            let mut tick = ticker(every);
            while next_tick(&mut tick, &c).await {
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

    /// Stops the tasks.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// A tick every `every`; a late tick is delayed rather than bunched with the next.
fn ticker(every: std::time::Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Waits for the next tick; false once `cancel` fires, and the task ends.
async fn next_tick(tick: &mut tokio::time::Interval, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tick.tick() => true,
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_newer_delivery_of_a_held_job_cancels_the_stale_one_which_cannot_forget_it() {
        let held = HeldJobs::default();
        let worker = WorkerId::from("w".to_string());
        let id = JobId::from("job");
        let (old, new) = (
            DeliveryToken::generate(&worker),
            DeliveryToken::generate(&worker),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let old_lost = held.insert(id.clone(), old.clone(), deadline);
        let new_lost = held.insert(id.clone(), new.clone(), deadline);

        assert!(old_lost.is_cancelled(), "the stale delivery is stopped");
        held.remove(&id, &old);
        assert!(!held.lose(&id, &old));
        assert_eq!(held.snapshot(), vec![(id.clone(), new.clone())]);
        assert!(!new_lost.is_cancelled());
        assert!(held.lose(&id, &new));
        assert!(new_lost.is_cancelled() && held.is_empty());
    }

    #[test]
    fn only_leases_past_their_deadline_expire_and_a_renewal_moves_the_deadline() {
        let held = HeldJobs::default();
        let worker = WorkerId::from("w".to_string());
        let now = Instant::now();
        let (a, b) = (JobId::from("a"), JobId::from("b"));
        let (ta, tb) = (
            DeliveryToken::generate(&worker),
            DeliveryToken::generate(&worker),
        );
        let a_lost = held.insert(a.clone(), ta.clone(), now + Duration::from_secs(1));
        let b_lost = held.insert(b.clone(), tb.clone(), now + Duration::from_secs(1));
        held.renewed(&[(b.clone(), tb)], now + Duration::from_secs(10));

        assert_eq!(held.expire(now + Duration::from_secs(2)), vec![a]);
        assert!(a_lost.is_cancelled());
        assert!(!b_lost.is_cancelled());
        assert_eq!(
            held.earliest_deadline(),
            Some(now + Duration::from_secs(10))
        );
    }
}

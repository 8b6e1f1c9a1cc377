//! The routine's job handlers: plain `async fn(job, &Delivery, &Deps) -> Result<Handled,
//! JobFailure>`, so the logic is testable without a queue; `startup` wires them into
//! apalis workers on the project's Redis backend.
//!
//! - [`authorize`]: ledger check → `/Authorize` → chain a detail job, park a re-auth,
//!   retry, or fail.
//! - [`detail`]: `/GetAccountsDetail` (202 → delayed polls of the async endpoint) → results
//!   stream and ledger, atomically, once per (LoginId, date).
//!
//! What a handler does NOT do: sleep (a wait is a delayed job) or decide backoff (the queue
//! does). It takes the rate-limit permit itself, through [`Permits::take`] (or
//! [`Permits::take_after_read`], on its lease's read of the limit), immediately before the
//! limited request and after everything else that request needs.

pub mod authorize;
pub mod detail;
mod failure;
mod settle;

use std::time::{Duration, Instant};

use shared::control::RoutineDeadlines;
use shared::flinks::FlinksClient;
use shared::jobs::{AuthorizeJob, DetailJob};
use shared::ledger::Ledger;
use shared::outcomes::Outcomes;
use shared::queue::{AckWith, JobFailure, LeaseReadValues, Queue};
use shared::ratelimit::RateLimiter;
use shared::registry::Registry;
use shared::results::ResultsSink;
use tokio_util::sync::CancellationToken;

pub use failure::{decide, Decision};
pub use settle::REDELIVERIES_SKIPPED_TOTAL;

/// Everything a handler needs, built once per process. Cheap to clone.
#[derive(Clone)]
pub struct Deps {
    /// The Flinks client.
    pub flinks: FlinksClient,
    /// The per-(LoginId, date) ledger: the effectively-once guard.
    pub ledger: Ledger,
    /// The login registry (last outcome, history).
    pub registry: Registry,
    /// Records outcomes in the ledger and the registry.
    pub outcomes: Outcomes,
    /// Where a lapsed session restarts the authorize.
    pub authorize_queue: Queue<AuthorizeJob>,
    /// The authorize queue's lease reads, where its handler finds their answers.
    pub authorize_reads: authorize::AuthorizeReads,
    /// Where a successful authorize chains its detail fetch (and polls go).
    pub detail_queue: Queue<DetailJob>,
    /// The results stream (written atomically with the ledger).
    pub results: ResultsSink,
    /// The global limiter (for cool-downs after TOO_MANY_REQUESTS).
    pub limiter: RateLimiter,
    /// Rate-limit permits for rate-limited calls (`/Authorize`, `/SetScheduledRefresh`).
    pub permits: Permits,
    /// The routine dates' deadlines (no Flinks call, and no retry, past them).
    pub deadlines: RoutineDeadlines,
    /// The routine's policy knobs.
    pub policy: Policy,
}

/// Takes one global rate-limit permit for a handler, right before its rate-limited request
/// goes out (after tokens are minted and checks are done), so nothing slow sits between
/// the permit and the request. Shutdown interrupts the wait.
#[derive(Clone)]
pub struct Permits {
    limiter: RateLimiter,
    shutdown: CancellationToken,
}

impl Permits {
    /// Permits from `limiter`; the wait ends without one when `shutdown` fires.
    pub fn new(limiter: RateLimiter, shutdown: CancellationToken) -> Self {
        Self { limiter, shutdown }
    }

    /// [`Permits::take`], unless the job's lease read the stored limit (`stored`, at
    /// `read_at`) and found it off a moment ago: then the permit is granted on that read
    /// without asking Redis ([`RateLimiter::granted_by_read`]).
    pub async fn take_after_read(
        &self,
        stored: Option<&str>,
        read_at: Instant,
    ) -> Result<(), JobFailure> {
        if self
            .limiter
            .granted_by_read(stored, read_at, Instant::now())
            .is_some()
        {
            return Ok(());
        }
        self.take().await
    }

    /// Waits for a permit; call it as the last step before the request. On shutdown the
    /// job is handed back without spending an attempt (no request was sent).
    pub async fn take(&self) -> Result<(), JobFailure> {
        match self.limiter.acquire(&self.shutdown).await {
            Some(_) => Ok(()),
            None => Err(JobFailure::Defer {
                error: "shutting down before a rate-limit permit was granted".into(),
                delay: Duration::ZERO,
            }),
        }
    }
}

/// The routine's policy knobs, from `Settings`.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `STALE_AFTER`.
    pub stale_after: Duration,
    /// `POLL_INTERVAL`.
    pub poll_interval: Duration,
    /// `POLL_TIMEOUT`.
    pub poll_timeout: Duration,
    /// `MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `MAX_THROTTLE_DEFERS`.
    pub max_throttle_defers: u32,
    /// `RATE_LIMIT_COOLDOWN`.
    pub cooldown: Duration,
}

/// Which delivery of which job a handler is running.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The queue's job id: stable across redeliveries of the same job.
    pub job_id: String,
    /// Delivery number, 1-based (retries and lease expiries count).
    pub attempt: u32,
    /// No handler held this job before (see `LeasedJob::first_delivery`): nothing it
    /// does can have happened yet.
    pub first: bool,
    /// What the queue's lease reads answered for this job (`LeasedJob::reads`), if any.
    pub reads: Option<LeaseReadValues>,
    /// When the lease (and its reads' answers) reached this worker.
    pub leased_at: Instant,
    /// A job left here is queued by this delivery's ack, in the same step.
    pub ack_with: AckWith,
}

/// What a handler did, as a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Authorize succeeded; the detail job is queued (on one Redis, by the job's ack).
    Chained,
    /// Accounts fetched and stored; LastRefresh recent.
    Refreshed,
    /// Accounts fetched and stored; LastRefresh older than `STALE_AFTER`.
    Stale,
    /// The user must reconnect; recorded, not retried.
    NeedsReauth,
    /// Recorded as failed (permanent, or attempts exhausted).
    Failed,
    /// Flinks answered 202; a delayed poll is queued.
    PendingPoll,
    /// The RequestId lapsed; a fresh authorize is queued.
    SessionRestarted,
    /// A redelivery found the (LoginId, date) already done in the ledger; nothing called.
    AlreadyDone,
    /// The date's deadline passed (or its retry would have run past it): recorded as
    /// superseded without calling Flinks; the next date's routine covers the login.
    PastDeadline,
    /// The login was deactivated after the routine queued it: recorded as superseded
    /// without calling Flinks.
    Deactivated,
}

impl Handled {
    /// The metric label.
    pub fn as_label(self) -> &'static str {
        match self {
            Handled::Chained => "chained",
            Handled::Refreshed => "refreshed",
            Handled::Stale => "stale",
            Handled::NeedsReauth => "reauth",
            Handled::Failed => "failed",
            Handled::PendingPoll => "pending_poll",
            Handled::SessionRestarted => "session_restarted",
            Handled::AlreadyDone => "already_done",
            Handled::PastDeadline => "past_deadline",
            Handled::Deactivated => "deactivated",
        }
    }

    /// Every variant, for tests and zeroed series.
    pub const ALL: [Handled; 10] = [
        Handled::Chained,
        Handled::Refreshed,
        Handled::Stale,
        Handled::NeedsReauth,
        Handled::Failed,
        Handled::PendingPoll,
        Handled::SessionRestarted,
        Handled::AlreadyDone,
        Handled::PastDeadline,
        Handled::Deactivated,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_label_is_a_zeroed_series_of_the_metrics_module() {
        for handled in Handled::ALL {
            assert!(
                shared::metrics::ROUTINE_OUTCOME_LABELS.contains(&handled.as_label()),
                "{handled:?}"
            );
        }
        for settled in ["retried", "deferred", "dead"] {
            assert!(shared::metrics::ROUTINE_OUTCOME_LABELS.contains(&settled));
        }
    }
}

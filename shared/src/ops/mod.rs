//! Operator functions behind `producer queues ...`, `producer logins deactivate|activate|
//! reconnected`, `producer refresh-status` and `producer audit`. The binary only
//! parses, prints and maps to exit codes; everything that touches Redis or Flinks is here so
//! tests drive the code that ships.
//!
//! - [`stats`]: one snapshot of both queues, the ledger indexes and the workers.
//! - [`requeue`]: crash-safe, concurrency-safe requeue of failed / re-auth entries and dead
//!   letters; purge of old entries.
//! - [`logins`]: SetScheduledRefresh then registry (deactivate / activate), "user
//!   reconnected", and GetNightlyRefreshStatus → re-auth.
//! - [`audit`]: the capped audit stream of every mutating command.
//! - [`list`]: a page of a queue's jobs (typed filters, a cursor) or the failed / re-auth
//!   records; [`job`]: show, delete or promote one job by id.
//! - [`results`]: a page of the results stream under the read policy the settings give.
//! - [`session`]: one command's settings, stores and connection; [`exit`]: how a command
//!   ends (usage error, partial failure, exit code); [`input`]: operator input as text;
//!   [`watch`]: the live view's update loop.
//!
//! This module prints only where a caller hands it a writer ([`watch`]); the exit code an
//! error maps to is decided in [`exit`].

pub mod audit;
pub mod exit;
pub mod input;
pub mod job;
pub mod list;
pub mod logins;
pub mod requeue;
pub mod results;
pub mod session;
pub mod stats;
pub mod watch;

use crate::flinks;
use crate::ledger::LedgerError;
use crate::outcomes::OutcomeError;
use crate::queue::QueueError;
use crate::registry::RegistryError;

/// Why an ops function failed as a whole (per-item failures are reported in its result).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Redis could not be reached; check REDIS_URL and run the command again.
    #[error(transparent)]
    Connect(#[from] crate::redis_conn::RedisConnError),
    /// The namespace's key layout does not match the settings, or could not be upgraded.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// The audit trail could not be written; the command itself was done.
    #[error("writing the audit trail")]
    Audit(#[source] redis::RedisError),
    /// The control state could not be read or written; run the command again.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// The report could not be built; run the command again.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// The results stream could not be read; run the command again.
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    /// The scheduler could not start.
    #[error(transparent)]
    Daemon(#[from] crate::schedule_daemon::DaemonError),
    /// The operator's input names nothing that exists, or combines what cannot be.
    #[error("{0}")]
    Usage(String),
    /// Redis refused or did not answer; run the command again.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The ledger could not be read or written; run the command again.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A queue could not be read or written; run the command again.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The registry could not be read or written; run the command again.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An outcome could not be recorded; run the command again.
    #[error(transparent)]
    Outcome(#[from] OutcomeError),
    /// A Flinks call that the whole command depends on failed.
    #[error(transparent)]
    Flinks(#[from] flinks::Error),
    /// The events stream could not be written; run the command again.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// The routine date's ledger may have expired (see [`crate::ledger::ledger_expired`]):
    /// a requeue could not tell its refreshed logins from the others.
    #[error("--date {0}: the ledger of that date may have expired (it is kept about 35 days), so a requeue could re-run logins already refreshed")]
    LedgerExpired(chrono::NaiveDate),
    /// The failure-injection hook of a test stopped the operation between two steps.
    #[error("injected crash after step {0}")]
    InjectedCrash(&'static str),
    /// A `--cursor` that no page of this listing printed.
    #[error("--cursor {0}: {1}")]
    InvalidCursor(String, String),
    /// A job id that no queue could hold.
    #[error("job id \"{0}\" is not a job id (letters, digits and '-', at most 64)")]
    InvalidJobId(String),
    /// No queue holds a job with this id (finished jobs are forgotten).
    #[error(
        "no job {0} in the authorize, detail or deactivation queue (a finished job is not kept)"
    )]
    JobNotFound(String),
    /// The job is leased to a worker, which would settle a job that no longer exists.
    #[error("job {id} is in flight on {worker}; it can be deleted once it retries or dies")]
    JobInFlight {
        /// The job.
        id: String,
        /// The delivery holding it.
        worker: String,
    },
    /// Only a delayed job can be promoted.
    #[error("job {id} is {state}, not delayed: only a delayed job can be promoted")]
    JobNotDelayed {
        /// The job.
        id: String,
        /// Its state.
        state: &'static str,
    },
}

impl OpsError {
    /// True when the operator's input is what is wrong (a bad id, cursor or date), so a
    /// command line exits 2 rather than 1.
    pub fn is_usage(&self) -> bool {
        match self {
            // Transparent: the layout error is not in the chain of causes.
            Self::Layout(layout) => layout.is_usage(),
            _ => matches!(
                self,
                Self::Usage(_)
                    | Self::LedgerExpired(_)
                    | Self::InvalidCursor(..)
                    | Self::InvalidJobId(_)
                    | Self::JobNotFound(_)
                    | Self::JobInFlight { .. }
                    | Self::JobNotDelayed { .. }
            ),
        }
    }
}

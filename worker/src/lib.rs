//! What a worker pod does: run apalis workers for the `authorize` and `detail` queues on
//! the project's own durable Redis backend, with the global rate-limit permit taken before
//! an authorize job is claimed, plus the ops port (/metrics, /healthz, /readyz), until the
//! shutdown token fires; then drain in-flight jobs within `SHUTDOWN_GRACE`.
//!
//! - [`handlers`]: the routine's logic as plain async functions.
//! - [`startup`]: dependencies, apalis workers and the Monitor.
//! - [`dead_letters`]: gives every buried routine job a `failed` outcome.
//! - [`slots`]: how many of the process' handler slots are busy (saturation gauge).
//! - Outcomes are recorded through `shared::outcomes`; every worker also drains its outbox
//!   at startup and every few seconds, so a crash never leaves the registry stale.
//! - [`deactivation`]: sends registry activate / deactivate changes to Flinks
//!   (SetScheduledRefresh) until confirmed.

pub mod deactivation;
pub mod dead_letters;
pub mod handlers;
pub mod slots;
pub mod startup;

use std::path::PathBuf;

use clap::Parser;

pub use startup::{run, WorkerOptions};

/// `worker`: consumes the routine's queues until SIGTERM.
#[derive(Debug, Parser)]
#[command(
    name = "worker",
    version,
    about = "Consumes the nightly-refresh queues (authorize, detail) until SIGTERM",
    long_about = "Consumes the nightly-refresh queues until SIGTERM or ctrl-c.\n\n\
        Per authorize job: global rate-limit permit (Redis, shared by every pod) -> \
        /Authorize (cached) -> chain /GetAccountsDetail (202: delayed polls of the async \
        endpoint), park logins that need re-auth, retry what is retryable with backoff, \
        record failures. Results go to the results stream and the (LoginId, date) ledger.\n\n\
        Every setting comes from the environment (see the README's table) or --config. \
        Serves /metrics, /healthz and /readyz on METRICS_ADDR.\n\n\
        Exit codes: 0 drained cleanly, 1 runtime failure, 2 bad configuration."
)]
pub struct Cli {
    /// TOML settings file (same names as the environment variables, lower case).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Jobs in flight per queue in this process (default: WORKER_CONCURRENCY).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
}

impl Cli {
    /// The run options the flags ask for.
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions {
            concurrency: self.concurrency,
        }
    }
}

/// Checks at boot what `run` would only find out later (the Flinks client's invariants,
/// `RESULTS_ENCRYPTION_REQUIRED` without a key), so a bad value exits 2 instead of failing
/// as a runtime error. The settings loader already checked each variable on its own and
/// named it.
pub fn validate(settings: &shared::config::Settings) -> Result<(), String> {
    settings
        .require_results_encryption()
        .map_err(|e| e.to_string())?;
    let flinks =
        shared::flinks::FlinksConfig::from_settings(settings).map_err(|e| e.to_string())?;
    flinks.validate()
}

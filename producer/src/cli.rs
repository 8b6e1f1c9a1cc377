//! The command line, with clap's derive API. Subcommands are grouped by what they act on
//! (`logins`, `report`, and later `routine`, `schedule`, `queues`); [`dispatch`] routes each
//! to its handler in `commands/`. Global flags (`--config`, `--json`) work in any position.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use shared::config::Settings;

use crate::commands::{self, Ctx};

const LONG_ABOUT: &str = "\
Operates the Flinks Nightly Refresh Routine: imports and inspects LoginIds, and reports on a \
routine date.

Settings come from defaults < the --config TOML file < environment variables (REDIS_URL, \
REFRESH_NAMESPACE, ROUTINE_TZ, RATE_LIMIT_PER_MINUTE, ...).

Exit codes:
  0  success
  1  runtime failure (e.g. Redis unreachable)
  2  usage or validation error (bad arguments, bad configuration, invalid CSV rows, invalid LoginId)";

/// `producer`: the Nightly Refresh command line.
#[derive(Debug, Parser)]
#[command(name = "producer", version, about = "Operates the Flinks Nightly Refresh Routine", long_about = LONG_ABOUT)]
pub struct Cli {
    /// A TOML settings file (same names as the environment variables, lower case).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. New groups (`routine run`, `schedule`, `queues ...`) are added here
/// and routed in [`dispatch`].
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import, add, list and inspect LoginIds.
    #[command(subcommand)]
    Logins(LoginsCommand),
    /// Report on a routine date: refreshed, stale, re-auth, failed, pending, ETA.
    Report(ReportArgs),
    /// Start a routine date by hand.
    #[command(subcommand)]
    Routine(RoutineCommand),
    /// Run the daily scheduler: fires the routine once a day at ROUTINE_AT in ROUTINE_TZ
    /// (several replicas fire it once between them; a due and missing run fires on start).
    /// Serves /metrics, /healthz and /readyz on METRICS_ADDR. Stops on SIGTERM.
    Schedule(ScheduleArgs),
}

/// `producer routine ...`
#[derive(Debug, Subcommand)]
pub enum RoutineCommand {
    /// Enqueue one authorize job per active LoginId for a date. Idempotent: running it
    /// again, or from two producers at once, never enqueues a login twice for one date,
    /// and resumes a run that crashed half-way. Prints how many were enqueued and the ETA.
    Run(RoutineRunArgs),
}

/// `producer routine run`
#[derive(Debug, Args)]
pub struct RoutineRunArgs {
    /// The routine date (default: today in ROUTINE_TZ).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
}

/// `producer schedule`
#[derive(Debug, Args)]
pub struct ScheduleArgs {}

/// `producer logins ...`
#[derive(Debug, Subcommand)]
pub enum LoginsCommand {
    /// Import LoginIds from a CSV file (header `LoginId`, optional `Active`, `Tag`).
    /// Re-importing updates existing logins. Any invalid row fails the whole import
    /// (nothing is written) unless --skip-invalid.
    Import(ImportArgs),
    /// Add or update one LoginId.
    Add(AddArgs),
    /// List LoginIds.
    List(ListArgs),
    /// Show one LoginId: status, last outcome, last success, LastRefresh, history.
    Show(ShowArgs),
}

/// `producer logins import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file.
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
    /// Import the valid rows and list the invalid ones instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// `producer logins add`
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The LoginId (a UUID).
    pub login_id: String,
    /// Register it as inactive (not refreshed).
    #[arg(long)]
    pub inactive: bool,
    /// A free-form tag.
    #[arg(long)]
    pub tag: Option<String>,
}

/// `producer logins list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only active logins.
    #[arg(long, conflicts_with = "inactive")]
    pub active: bool,
    /// Only inactive logins.
    #[arg(long)]
    pub inactive: bool,
    /// At most this many logins.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// `producer logins show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The LoginId (a UUID).
    pub login_id: String,
}

/// `producer report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The routine date (default: today in ROUTINE_TZ).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
}

/// Routes a parsed command line to its handler.
pub async fn dispatch(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let ctx = Ctx::new(settings, cli.json);
    match cli.command {
        Command::Logins(LoginsCommand::Import(args)) => commands::logins::import(&ctx, args).await,
        Command::Logins(LoginsCommand::Add(args)) => commands::logins::add(&ctx, args).await,
        Command::Logins(LoginsCommand::List(args)) => commands::logins::list(&ctx, args).await,
        Command::Logins(LoginsCommand::Show(args)) => commands::logins::show(&ctx, args).await,
        Command::Report(args) => commands::report::run(&ctx, args).await,
        Command::Routine(RoutineCommand::Run(args)) => commands::routine::run(&ctx, args).await,
        Command::Schedule(args) => commands::routine::schedule(&ctx, args).await,
    }
}

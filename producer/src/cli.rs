//! The command line, with clap's derive API: the global flags (`--config`, `--json`,
//! `--actor`, in any position) and the top-level commands. Each command's arguments and
//! handler live in its module under `commands/`; [`dispatch`] only routes.

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use shared::config::Settings;
use shared::ops::session::Session;

use crate::commands::{self, Ctx};

const LONG_ABOUT: &str = "\
Operates the Flinks Nightly Refresh Routine: imports and manages LoginIds, starts the routine \
by hand or on a daily schedule, reports on a routine date, and gives operators the queues, the \
re-auth and failed records, single jobs, the results stream and an audit trail.

Settings come from defaults < the --config TOML file < environment variables (REDIS_URL, \
REFRESH_NAMESPACE, ROUTINE_TZ, RATE_LIMIT_PER_MINUTE, ...). Dates (--date) are YYYY-MM-DD, \
today or yesterday, counted in ROUTINE_TZ; `routine run` refuses a date more than one day ahead.

Exit codes:
  0  success
  1  runtime failure (e.g. Redis unreachable)
  2  usage or validation error (bad arguments, bad configuration, invalid CSV rows, invalid LoginId)
  3  partial failure of a bulk operation (some items failed; each result is printed)

With --json, an error is printed as JSON on stdout too, with the same exit code.
Every mutating command is recorded in the audit trail: `producer audit`.";

pub use shared::ops::input::{parse_age, MAX_AGE};

/// `producer`: the Nightly Refresh command line.
#[derive(Debug, Parser)]
#[command(name = "producer", version, about = "Operates the Flinks Nightly Refresh Routine", long_about = LONG_ABOUT)]
pub struct Cli {
    /// A TOML settings file (same names as the environment variables, lower case).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text (errors too).
    #[arg(long, global = true)]
    pub json: bool,
    /// Who runs the command, for the audit trail (default: the USER environment variable).
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import, add, list and inspect LoginIds.
    #[command(subcommand)]
    Logins(commands::logins::LoginsCommand),
    /// Report on a routine date: refreshed, stale, re-auth, failed, pending, ETA.
    Report(commands::report::ReportArgs),
    /// Start a routine date by hand.
    #[command(subcommand)]
    Routine(commands::routine::RoutineCommand),
    /// Run the daily scheduler: fires the routine once a day at ROUTINE_AT in ROUTINE_TZ
    /// (several replicas fire it once between them; a due and missing run fires on start).
    /// Serves /metrics, /healthz and /readyz on METRICS_ADDR. Stops on SIGTERM.
    Schedule,
    /// Inspect, list, requeue and purge the queues and the failed / re-auth records;
    /// show, delete or promote one job.
    #[command(subcommand)]
    Queues(commands::queues::QueuesCommand),
    /// Call GetNightlyRefreshStatus and mark every listed LoginId as needing re-auth for
    /// today (ROUTINE_TZ) with its LastRefreshErrorCode; unknown LoginIds are warnings.
    RefreshStatus,
    /// Print the audit trail of mutating commands, newest first.
    Audit(commands::audit::AuditArgs),
    /// Read the results stream, decrypting entries stored encrypted.
    #[command(subcommand)]
    Results(commands::results::ResultsCommand),
    /// Read the outcome events stream; resend the webhook's parked batches.
    #[command(subcommand)]
    Events(commands::events::EventsCommand),
    /// Show or change the global rate limit at run time. The limit is stored in Redis;
    /// every worker applies a change at its next permit, without a restart.
    #[command(subcommand)]
    Ratelimit(commands::control::RatelimitCommand),
    /// Serve the operators' web console: the routine, the re-auth and failed lists, the
    /// queues with pause / resume, workers, the rate limit, a login's history and the audit
    /// trail, behind a login (users in CONSOLE_USERS_FILE). Stops on SIGTERM.
    Console(commands::console::ConsoleArgs),
    /// Print a shell completion script, e.g. `producer completions bash >
    /// /etc/bash_completion.d/producer`. Needs neither Redis nor Flinks.
    Completions(CompletionsArgs),
    /// Print the man page, or with --out write one page per command into a directory
    /// (e.g. /usr/local/share/man/man1). Needs neither Redis nor Flinks.
    Man(ManArgs),
}

/// `producer completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// `producer man`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `producer.1` and one `producer-<command>.1` per command into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs a command that needs no settings (completions, man pages).
pub fn run_offline(command: Command) -> anyhow::Result<()> {
    let mut cli = Cli::command();
    match command {
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut cli, "producer", &mut std::io::stdout());
        }
        Command::Man(ManArgs { out: Some(dir) }) => {
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(cli, &dir))
                .map_err(|e| anyhow::anyhow!("cannot write man pages to {}: {e}", dir.display()))?;
        }
        _ => clap_mangen::Man::new(cli).render(&mut std::io::stdout())?,
    }
    Ok(())
}

/// Routes a parsed command line to its handler.
pub async fn dispatch(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let actor = cli.actor.or_else(|| std::env::var("USER").ok());
    let session = Session::new(settings, &actor.unwrap_or_default());
    let ctx = &Ctx {
        session,
        json: cli.json,
    };
    match cli.command {
        Command::Logins(cmd) => commands::logins::run(ctx, cmd).await,
        Command::Report(args) => commands::report::run(ctx, args).await,
        Command::Routine(cmd) => commands::routine::run(ctx, cmd).await,
        Command::Schedule => commands::routine::schedule(ctx).await,
        Command::Queues(cmd) => commands::queues::run(ctx, cmd).await,
        Command::RefreshStatus => commands::logins::refresh_status(ctx).await,
        Command::Audit(args) => commands::audit::run(ctx, args).await,
        Command::Results(cmd) => commands::results::run(ctx, cmd).await,
        Command::Events(cmd) => commands::events::run(ctx, cmd).await,
        Command::Ratelimit(cmd) => commands::control::run(ctx, cmd).await,
        Command::Console(args) => commands::console::serve(ctx, args).await,
        offline_command => run_offline(offline_command),
    }
}

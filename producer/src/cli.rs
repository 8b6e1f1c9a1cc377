//! The command line, with clap's derive API. Subcommands are grouped by what they act on
//! (`logins`, `report`, `routine`, `schedule`, `queues`, `ratelimit`, `refresh-status`,
//! `audit`);
//! [`dispatch`] routes each to its handler in `commands/`. Global flags (`--config`,
//! `--json`, `--actor`) work in any position.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::config::Settings;

use crate::commands::{self, Ctx};

const LONG_ABOUT: &str = "\
Operates the Flinks Nightly Refresh Routine: imports and manages LoginIds, starts the routine \
by hand or on a daily schedule, reports on a routine date, and gives operators the queues, the \
re-auth and failed records, the results stream and an audit trail.

Settings come from defaults < the --config TOML file < environment variables (REDIS_URL, \
REFRESH_NAMESPACE, ROUTINE_TZ, RATE_LIMIT_PER_MINUTE, ...).

Exit codes:
  0  success
  1  runtime failure (e.g. Redis unreachable)
  2  usage or validation error (bad arguments, bad configuration, invalid CSV rows, invalid LoginId)
  3  partial failure of a bulk operation (some items failed; each result is printed)

Every mutating command (import excepted) is recorded in the audit trail: `producer audit`.";

/// The longest age a duration flag accepts. Every duration flag is an age subtracted from
/// now; anything longer than a century means "everything" and is a typo, and larger values
/// would overflow the millisecond arithmetic downstream and wrap to a cutoff in the future.
pub const MAX_AGE: Duration = Duration::from_secs(100 * 31_557_600); // humantime's "100y"

/// Parses a duration flag (`7d`, `36h`, `90m`): a positive humantime duration of at most
/// [`MAX_AGE`]. Clap reports an error with the flag's name and exits with code 2.
pub fn parse_age(raw: &str) -> Result<Duration, String> {
    let trimmed = raw.trim();
    if trimmed.starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let age = humantime::parse_duration(trimmed)
        .map_err(|e| format!("expected a duration like 7d, 36h or 90m ({e})"))?;
    if age > MAX_AGE {
        return Err(format!(
            "at most {} is accepted",
            humantime::format_duration(MAX_AGE)
        ));
    }
    Ok(age)
}

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
    /// Who runs the command, for the audit trail (default: the USER environment variable).
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
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
    /// Inspect, list, requeue and purge the queues and the failed / re-auth records.
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// Call GetNightlyRefreshStatus and mark every listed LoginId as needing re-auth for
    /// today (ROUTINE_TZ) with its LastRefreshErrorCode; unknown LoginIds are warnings.
    RefreshStatus(RefreshStatusArgs),
    /// Print the audit trail of mutating commands, newest first.
    Audit(AuditArgs),
    /// Read the results stream, decrypting entries stored encrypted.
    #[command(subcommand)]
    Results(ResultsCommand),
    /// Show or change the global rate limit at run time. The limit is stored in Redis;
    /// every worker applies a change at its next permit, without a restart.
    #[command(subcommand)]
    Ratelimit(RatelimitCommand),
    /// Print a shell completion script, e.g. `producer completions bash >
    /// /etc/bash_completion.d/producer`. Needs neither Redis nor Flinks.
    Completions(CompletionsArgs),
}

/// `producer completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// `producer ratelimit ...`
#[derive(Debug, Subcommand)]
pub enum RatelimitCommand {
    /// The limit in force, whether it is stored, and this process' RATE_LIMIT_PER_MINUTE.
    Show(RatelimitShowArgs),
    /// Store a new limit (LoginIds per minute across every worker; 0 turns it off). It
    /// survives restarts: RATE_LIMIT_PER_MINUTE only seeds it when none is stored.
    Set(RatelimitSetArgs),
}

/// `producer ratelimit show`
#[derive(Debug, Args)]
pub struct RatelimitShowArgs {}

/// `producer ratelimit set`
#[derive(Debug, Args)]
pub struct RatelimitSetArgs {
    /// LoginIds per minute, 0 (off) to 60000.
    #[arg(value_name = "PER_MINUTE", value_parser = parse_rate_arg, allow_hyphen_values = true)]
    pub per_minute: f64,
}

fn parse_rate_arg(raw: &str) -> Result<f64, String> {
    shared::control::parse_rate(raw).map_err(|e| e.to_string())
}

/// The queues a `queues pause|resume` argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSelection(pub Vec<&'static str>);

fn parse_queue_arg(raw: &str) -> Result<QueueSelection, String> {
    shared::control::parse_queues(raw)
        .map(QueueSelection)
        .map_err(|e| e.to_string())
}

/// `producer queues pause`
#[derive(Debug, Args)]
pub struct QueuesPauseArgs {
    /// authorize, detail, deactivation, or all.
    #[arg(value_name = "QUEUE|all", value_parser = parse_queue_arg)]
    pub queues: QueueSelection,
    /// Why (shown by `queues stats` and `report`, kept in the audit trail).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `producer queues resume`
#[derive(Debug, Args)]
pub struct QueuesResumeArgs {
    /// authorize, detail, deactivation, or all.
    #[arg(value_name = "QUEUE|all", value_parser = parse_queue_arg)]
    pub queues: QueueSelection,
}

/// `producer results ...`
#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Print results stream entries oldest first (XRANGE), one JSON object per line
    /// (`--json`: one document with `entries` and `next`). Entries stored encrypted are
    /// decrypted with RESULTS_ENCRYPTION_KEY (any key id listed there); with a key set (or
    /// RESULTS_ENCRYPTION_REQUIRED=true), entries stored in clear are refused unless
    /// --allow-plaintext. An entry that cannot be read is reported on stderr (`--json`: in
    /// `errors`) with its id and skipped; the exit code is then 3. Reads only: nothing is
    /// acknowledged or trimmed.
    Read(ResultsReadArgs),
}

/// `producer results read`
#[derive(Debug, Args)]
pub struct ResultsReadArgs {
    /// At most this many entries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub count: usize,
    /// First entry id (`-` = the oldest; `(ID` = after ID, as printed for the next page).
    #[arg(long, value_name = "ID", default_value = "-")]
    pub from: String,
    /// Read entries stored in clear even though RESULTS_ENCRYPTION_KEY is set (e.g. those
    /// written before encryption was turned on).
    #[arg(long)]
    pub allow_plaintext: bool,
}

/// `producer queues ...`
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Per queue: ready, delayed, in flight (per worker), dead letters; re-auth and failed
    /// record counts; worker processes with their last heartbeat.
    Stats(QueuesStatsArgs),
    /// List failed / re-auth records, a queue's jobs, or the dead letters.
    List(QueuesListArgs),
    /// Move failed / re-auth records (or dead letters) back to the authorize queue, with
    /// fresh attempts. Crash-safe and safe to run from two terminals at once: nothing is
    /// lost or enqueued twice; a crashed run is finished by the next one. A login already
    /// refreshed for that date is never requeued; nor is a dead authorize job whose detail
    /// fetch is still running, nor a dead letter of a date whose ledger expired (a --date
    /// like that exits 2). A dead detail job restarts from a fresh authorize. Without a
    /// filter, --all is required. Requeued work still goes through the global rate limit.
    Requeue(RequeueArgs),
    /// Delete failed / re-auth records (the index; the ledger keeps its entries until
    /// they expire) or dead letters older than a duration.
    Purge(PurgeArgs),
    /// Stop workers from fetching a queue (within a second; jobs already running finish).
    /// Enqueueing goes on; the jobs wait until `queues resume`.
    Pause(QueuesPauseArgs),
    /// Let workers fetch a paused queue again.
    Resume(QueuesResumeArgs),
}

/// `producer queues stats`
#[derive(Debug, Args)]
pub struct QueuesStatsArgs {}

/// What `queues list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListTarget {
    /// The authorize queue's jobs.
    Authorize,
    /// The detail queue's jobs.
    Detail,
    /// Failed records (all dates).
    Failed,
    /// Records needing re-authentication (all dates).
    Reauth,
    /// Dead letters of both queues, with their last error.
    Dead,
}

/// A job state for `queues list --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Ready to run.
    Ready,
    /// Waiting for a retry or a poll.
    Delayed,
    /// Leased to a worker.
    InFlight,
    /// Dead letters.
    Dead,
}

/// `producer queues list`
#[derive(Debug, Args)]
pub struct QueuesListArgs {
    /// What to list.
    pub target: ListTarget,
    /// Only this FlinksCode (queues: the last error contains it).
    #[arg(long, value_name = "FLINKSCODE")]
    pub code: Option<String>,
    /// Only this routine date.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// Only this LoginId.
    #[arg(long, value_name = "ID")]
    pub login: Option<String>,
    /// Only jobs in this state (queues only; default: every state).
    #[arg(long)]
    pub state: Option<StateArg>,
    /// At most this many entries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

/// What `queues requeue|purge` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordSource {
    /// Failed records.
    Failed,
    /// Records needing re-authentication.
    Reauth,
    /// Dead letters of the authorize and detail queues.
    Dead,
}

/// `producer queues requeue`
#[derive(Debug, Args)]
pub struct RequeueArgs {
    /// What to requeue.
    pub source: RecordSource,
    /// Only this LoginId (repeatable).
    #[arg(long = "login", value_name = "ID")]
    pub logins: Vec<String>,
    /// Only records with this FlinksCode (dead: the last error contains it).
    #[arg(long, value_name = "FLINKSCODE")]
    pub code: Option<String>,
    /// Only this routine date.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// Requeue everything of the source (required when no filter is given).
    #[arg(long)]
    pub all: bool,
    /// Print what would move; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Dead letters only: also requeue poison letters (payloads the workers could not
    /// decode, e.g. before an upgrade).
    #[arg(long)]
    pub force: bool,
}

/// `producer queues purge`
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// What to purge.
    pub source: RecordSource,
    /// Only entries older than this (e.g. 7d, 36h).
    #[arg(long, value_name = "DURATION", value_parser = parse_age, allow_hyphen_values = true)]
    pub older_than: Duration,
    /// Print how many would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `producer refresh-status`
#[derive(Debug, Args)]
pub struct RefreshStatusArgs {}

/// `producer audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// At most this many entries.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
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
    /// Resolve a LoginId fingerprint from a log line or trace (`lid:…`) to the LoginId,
    /// e.g. to open a Flinks support ticket. Exit 2 when no login or several match.
    Lookup(LookupArgs),
    /// Mark LoginIds inactive; the same registry step queues SetScheduledRefresh
    /// IsActivated=false, which the worker sends (retrying until Flinks confirms). With
    /// --wait, wait for the confirmation; exit 3 if some are unknown, refused or unconfirmed.
    Deactivate(DeactivateArgs),
    /// Mark LoginIds active; queues SetScheduledRefresh IsActivated=true like deactivate.
    Activate(ActivateArgs),
    /// The user reconnected these LoginIds: clear their re-auth state (every date) and
    /// enqueue an authorize job for today (ROUTINE_TZ). Exit 3 if some are unknown.
    Reconnected(ReconnectedArgs),
}

/// `producer logins deactivate`
#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// The LoginIds.
    #[arg(
        value_name = "ID",
        required_unless_present = "idle_since",
        conflicts_with = "idle_since"
    )]
    pub login_ids: Vec<String>,
    /// Instead: every active LoginId without a successful refresh for this long (e.g.
    /// 30d); never-refreshed logins count from when they were added.
    #[arg(long, value_name = "DURATION", value_parser = parse_age, allow_hyphen_values = true)]
    pub idle_since: Option<Duration>,
    /// Print which LoginIds would be deactivated; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait up to this long (e.g. 30s) for Flinks to confirm each change.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// `producer logins activate`
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The LoginIds.
    #[arg(value_name = "ID", required = true)]
    pub login_ids: Vec<String>,
    /// Wait up to this long (e.g. 30s) for Flinks to confirm each change.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// `producer logins reconnected`
#[derive(Debug, Args)]
pub struct ReconnectedArgs {
    /// The LoginIds.
    #[arg(value_name = "ID", required = true)]
    pub login_ids: Vec<String>,
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
    /// Refresh priority, 0 to 100: when a day's budget cannot cover every login, higher
    /// priorities are authorized first. Omitted: keep the current one (0 for a new login).
    #[arg(long, value_parser = priority_arg)]
    pub priority: Option<u8>,
}

fn priority_arg(raw: &str) -> Result<u8, String> {
    shared::import::parse_priority(raw)
}

/// `producer logins list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only active logins.
    #[arg(long, conflicts_with = "inactive")]
    pub active: bool,
    /// Only inactive logins.
    #[arg(long, conflicts_with = "flinks_pending")]
    pub inactive: bool,
    /// Only logins whose nightly-refresh change Flinks has not confirmed yet
    /// (flinks_scheduled_refresh pending or failed).
    #[arg(long, conflicts_with = "active")]
    pub flinks_pending: bool,
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

/// `producer logins lookup`
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The fingerprint as logged (`lid:` and 16 hex characters), or a leading part of at
    /// least 8 hex characters.
    pub fingerprint: String,
}

/// `producer report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The routine date (default: today in ROUTINE_TZ).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// At most this many LoginIds per list in the text report ("… and N more" after);
    /// `--json` always lists them all.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

/// Routes a parsed command line to its handler.
pub async fn dispatch(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    let ctx = Ctx::new(settings, cli.json);
    let actor = cli
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "unknown".into());
    match cli.command {
        Command::Completions(args) => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "producer",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Logins(LoginsCommand::Import(args)) => commands::logins::import(&ctx, args).await,
        Command::Logins(LoginsCommand::Add(args)) => commands::logins::add(&ctx, args).await,
        Command::Logins(LoginsCommand::List(args)) => commands::logins::list(&ctx, args).await,
        Command::Logins(LoginsCommand::Show(args)) => commands::logins::show(&ctx, args).await,
        Command::Logins(LoginsCommand::Lookup(args)) => commands::logins::lookup(&ctx, args).await,
        Command::Report(args) => commands::report::run(&ctx, args).await,
        Command::Routine(RoutineCommand::Run(args)) => commands::routine::run(&ctx, args).await,
        Command::Schedule(args) => commands::routine::schedule(&ctx, args).await,
        Command::Logins(LoginsCommand::Deactivate(args)) => {
            commands::ops_logins::deactivate(&ctx, &actor, args).await
        }
        Command::Logins(LoginsCommand::Activate(args)) => {
            commands::ops_logins::activate(&ctx, &actor, args).await
        }
        Command::Logins(LoginsCommand::Reconnected(args)) => {
            commands::ops_logins::reconnected(&ctx, &actor, args).await
        }
        Command::Queues(QueuesCommand::Stats(args)) => commands::queues::stats(&ctx, args).await,
        Command::Queues(QueuesCommand::List(args)) => commands::queues::list(&ctx, args).await,
        Command::Queues(QueuesCommand::Requeue(args)) => {
            commands::queues::requeue(&ctx, &actor, args).await
        }
        Command::Queues(QueuesCommand::Purge(args)) => {
            commands::queues::purge(&ctx, &actor, args).await
        }
        Command::Queues(QueuesCommand::Pause(args)) => {
            commands::control::pause(&ctx, &actor, args).await
        }
        Command::Queues(QueuesCommand::Resume(args)) => {
            commands::control::resume(&ctx, &actor, args).await
        }
        Command::Ratelimit(RatelimitCommand::Show(_)) => commands::control::show(&ctx).await,
        Command::Ratelimit(RatelimitCommand::Set(args)) => {
            commands::control::set(&ctx, &actor, args).await
        }
        Command::RefreshStatus(args) => {
            commands::ops_logins::refresh_status(&ctx, &actor, args).await
        }
        Command::Audit(args) => commands::audit::list(&ctx, args).await,
        Command::Results(ResultsCommand::Read(args)) => commands::results::read(&ctx, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_parses_humantime_durations() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age(" 36h "), Ok(Duration::from_secs(36 * 3_600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age("100y").map(|d| d <= MAX_AGE), Ok(true));
    }

    #[test]
    fn an_age_rejects_negative_overflowing_and_huge_values() {
        for raw in ["-7d", "-1s", " -0s"] {
            let err = parse_age(raw).unwrap_err();
            assert!(err.contains("negative"), "{raw}: {err}");
        }
        for raw in ["300000000y", "101y", "99999999999999999999999s"] {
            assert!(parse_age(raw).is_err(), "{raw} was accepted");
        }
        assert!(parse_age("soon")
            .unwrap_err()
            .contains("expected a duration"));
    }

    #[test]
    fn ratelimit_set_and_queues_pause_validate_their_arguments() {
        for bad in ["-5", "fast", "1e9"] {
            let err = Cli::try_parse_from(["producer", "ratelimit", "set", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("PER_MINUTE"), "{err}");
        }
        let err = Cli::try_parse_from(["producer", "queues", "pause", "results"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("authorize, detail, deactivation"),
            "{err}"
        );
        let cli =
            Cli::try_parse_from(["producer", "queues", "pause", "all", "--reason", "x"]).unwrap();
        let Command::Queues(QueuesCommand::Pause(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(args.queues.0, shared::control::PAUSABLE_QUEUES.to_vec());
    }

    #[test]
    fn the_duration_flags_name_themselves_in_the_error() {
        let err = Cli::try_parse_from([
            "producer",
            "queues",
            "purge",
            "dead",
            "--older-than",
            "300000000y",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--older-than"), "{err}");
        let err = Cli::try_parse_from(["producer", "logins", "deactivate", "--idle-since", "-1d"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--idle-since"), "{err}");
    }
}

//! The `producer` command line: importing and managing logins, the routine and its
//! schedule, reports, queue and job operations, run-time control and the audit trail. Each
//! command is a thin layer over `shared`; this crate only parses arguments, prints and maps
//! errors to exit codes (decided by `shared::ops::exit`).

pub mod cli;
mod commands;

use std::process::ExitCode;

use anyhow::Context as _;
use cli::Command;
use shared::config::Settings;
use shared::ops::exit;

pub use exit::{exit_quietly_on_closed_pipe, PartialFailure, UsageError};

/// Runs the parsed command line: the offline commands at once, the others with settings
/// loaded and logging started. The commands' futures are boxed: nested inline, their
/// layouts are deeper than the compiler's query limit.
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let level = match cli.command {
        Command::Completions(_) | Command::Man(_) => return cli::run_offline(cli.command),
        Command::Console(ref args) if args.command.is_some() => {
            return commands::console::hash_password();
        }
        ref command => default_log_filter(command),
    };
    let settings = Settings::load(cli.config.as_deref()).context("invalid configuration")?;
    shared::telemetry::init_at(settings.log_format, level);
    Box::pin(cli::dispatch(cli, settings)).await
}

/// The log filter of `command` when `RUST_LOG` sets none. One-shot commands log warnings
/// only, so nothing precedes their output, except the trace of every Flinks call they make
/// (`refresh-status` calls GetNightlyRefreshStatus): every call is traced, whoever makes it.
/// The scheduler's and the console's log lines are their output.
fn default_log_filter(command: &Command) -> &'static str {
    match command {
        Command::Schedule | Command::Console(_) => "info",
        _ => API_CALL_FILTER,
    }
}

/// Warnings, and the Flinks call trace (and the answers traced beside it) at `info`, a
/// successful call's level.
const API_CALL_FILTER: &str = "warn,flinks.api_call=info,flinks.answer=info";

/// The exit code of a command's result, its error printed by [`fail`].
pub fn finish(result: anyhow::Result<()>, json: bool) -> ExitCode {
    result.map_or_else(|e| fail(&e, json), |()| ExitCode::SUCCESS)
}

/// Prints `error` once, as text on stderr or (`json`) as a JSON object on stdout
/// (`{"error", "causes", "exit_code"}`), and returns the exit code. A partial failure
/// (3) has already printed its JSON result, which names each failed item, so stdout stays
/// one document and the summary goes to stderr.
pub fn fail(error: &anyhow::Error, json: bool) -> ExitCode {
    let code = exit::exit_code(error.chain());
    let chain = error.chain().map(|c| c.to_string());
    if json && code != 3 {
        println!("{}", exit::error_json(chain, code));
    } else {
        eprintln!("{}", exit::render_error(chain));
    }
    ExitCode::from(code)
}

/// Parses the command line; with `--json` among the arguments a usage error is printed as
/// JSON on stdout (exit 2) like every other error, otherwise clap prints it.
pub fn parse_args() -> Result<cli::Cli, ExitCode> {
    use clap::Parser as _;
    cli::Cli::try_parse().map_err(|e| {
        let json = std::env::args_os().any(|a| a == "--json");
        if !json || !e.use_stderr() {
            e.exit();
        }
        let kind = e.kind().as_str().map(str::to_string);
        let message = kind.unwrap_or_else(|| e.to_string());
        let detail = UsageError(e.render().to_string());
        fail(&anyhow::Error::new(detail).context(message), true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn filter_of(args: &[&str]) -> &'static str {
        let cli = cli::Cli::try_parse_from(["producer"].iter().chain(args)).unwrap();
        default_log_filter(&cli.command)
    }

    #[test]
    fn one_shot_commands_log_warnings_and_every_flinks_call() {
        use shared::flinks::call_log::{ANSWER_TARGET, API_CALL_TARGET};
        let trace = format!("{API_CALL_TARGET}=info,{ANSWER_TARGET}=info");

        let refresh_status = filter_of(&["refresh-status"]);
        let report = filter_of(&["report"]);
        let schedule = filter_of(&["schedule"]);

        assert_eq!(refresh_status, format!("warn,{trace}"));
        assert_eq!(report, refresh_status);
        assert_eq!(schedule, "info");
    }
}

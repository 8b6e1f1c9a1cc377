//! The `producer` command line: importing and managing logins, the routine and its
//! schedule, reports, queue and job operations, run-time control and the audit trail. Each
//! command is a thin layer over `shared`; this crate only parses arguments, prints and maps
//! errors to exit codes.
//!
//! Exit codes: 0 success, 2 usage or validation error (bad arguments, bad configuration,
//! invalid CSV, invalid LoginId, unknown job), 1 runtime failure (Redis unreachable, ...),
//! 3 partial failure of a bulk operation (some items failed).

pub mod cli;
mod commands;
mod table;

use std::process::ExitCode;

use shared::config::Settings;

pub use commands::{PartialFailure, UsageError};

/// Makes a closed standard output (`producer logins list | head`) end the process quietly
/// with exit code 0, as Unix tools do, instead of a panic and a backtrace: `println!`
/// panics on a broken pipe, and the panic hook is the one safe place to catch every one.
pub fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Runs the parsed command line with loaded settings.
pub async fn run(cli: cli::Cli, settings: Settings) -> anyhow::Result<()> {
    cli::dispatch(cli, settings).await
}

/// The exit code of a command's result, its error printed by [`fail`].
pub fn finish(result: anyhow::Result<()>, json: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, json),
    }
}

/// The exit code of `error`: 3 partial failure, 2 the user's to fix, 1 anything else.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let usage = |cause: &(dyn std::error::Error + 'static)| {
        cause.is::<UsageError>()
            || cause.is::<shared::config::ConfigError>()
            || cause.is::<shared::import::ImportError>()
            || cause.is::<shared::domain::LoginIdError>()
            || cause
                .downcast_ref::<shared::ops::OpsError>()
                .is_some_and(shared::ops::OpsError::is_usage)
    };
    if error.chain().any(|c| c.is::<PartialFailure>()) {
        3
    } else if error.chain().any(usage) {
        2
    } else {
        1
    }
}

/// Prints `error` once, as text on stderr or (`json`) as a JSON object on stdout
/// (`{"error", "causes", "exit_code"}`), and returns the exit code. A partial failure
/// (3) has already printed its JSON result, which names each failed item, so stdout stays
/// one document and the summary goes to stderr.
pub fn fail(error: &anyhow::Error, json: bool) -> ExitCode {
    let code = exit_code(error);
    if json && code != 3 {
        let causes: Vec<String> = error.chain().skip(1).map(|c| c.to_string()).collect();
        let body =
            serde_json::json!({ "error": error.to_string(), "causes": causes, "exit_code": code });
        println!("{body}");
    } else {
        eprintln!("{}", render_error(error));
    }
    ExitCode::from(code)
}

/// `error: <message>` followed by one `  caused by: <cause>` line per cause, skipping causes
/// whose text the line above already contains.
pub fn render_error(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}");
    let mut previous = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        previous = text;
    }
    out
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
        let message = e
            .kind()
            .as_str()
            .map_or_else(|| e.to_string(), str::to_string);
        let detail = e.render().to_string();
        fail(
            &anyhow::Error::new(UsageError(detail)).context(message),
            true,
        )
    })
}

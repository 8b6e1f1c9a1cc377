//! The `producer` command line: importing and inspecting logins, reports, and (later) the
//! routine, its schedule and queue operations. Each subcommand is a thin layer over
//! `shared`; this crate only parses arguments, prints and maps errors to exit codes.
//!
//! Exit codes: 0 success, 2 usage or validation error (bad arguments, bad configuration,
//! invalid CSV, invalid LoginId), 1 runtime failure (Redis unreachable, ...), 3 partial
//! failure of a bulk operation (some items failed).

pub mod cli;
mod commands;

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

/// True when `error` is the user's to fix (exit code 2) rather than a runtime failure.
pub fn is_usage_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<shared::config::ConfigError>()
            || cause.is::<shared::import::ImportError>()
            || cause.is::<shared::domain::LoginIdError>()
    })
}

/// Prints `error: <message>` and its causes once, on stderr, and returns the exit code.
pub fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("{}", render_error(error));
    if error.chain().any(|cause| cause.is::<PartialFailure>()) {
        ExitCode::from(3)
    } else if is_usage_error(error) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
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

//! `producer`: parse the command line, load settings, start logging, run, map to an exit
//! code. Everything else lives in the library (`producer::run`).

use std::process::ExitCode;

use anyhow::Context as _;
use producer::cli::run_offline;
use shared::config::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    producer::exit_quietly_on_closed_pipe();
    let cli = match producer::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let json = cli.json;
    if cli.command.is_offline() {
        return producer::finish(run_offline(cli.command), json);
    }
    let settings = match Settings::load(cli.config.as_deref()).context("invalid configuration") {
        Ok(settings) => settings,
        Err(e) => return producer::fail(&e, json),
    };
    // One-shot commands log warnings only, so nothing precedes their output; the
    // scheduler's log lines are its output. RUST_LOG overrides both.
    let level = if cli.command.is_daemon() {
        "info"
    } else {
        "warn"
    };
    shared::telemetry::init_at(settings.log_format, level);
    producer::finish(producer::run(cli, settings).await, json)
}

//! `producer`: parse the command line, load settings, start logging, run, map to an exit
//! code. Everything else lives in the library (`producer::run`).

use std::process::ExitCode;

use clap::Parser;
use producer::cli::Cli;
use shared::config::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    producer::exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return producer::fail(&anyhow::Error::new(e).context("invalid configuration")),
    };
    shared::telemetry::init(settings.log_format);
    match producer::run(cli, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => producer::fail(&e),
    }
}

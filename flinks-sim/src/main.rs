//! The `flinks-sim` binary for the demo, compose and benchmarks: parse flags, init logs to
//! stderr, run. All logic is in the library (`flinks_sim::run`).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = flinks_sim::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match flinks_sim::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = anyhow::Error::from(e);
            tracing::error!(error.message = %e, error.cause_chain = ?e, "flinks-sim failed");
            eprintln!("flinks-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

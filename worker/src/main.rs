//! `worker`: consumes the routine's queues until SIGTERM. Thin: parse, load settings,
//! start the runtime with the threads the settings ask for, start telemetry, run, map the
//! result to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = worker::Cli::parse();
    let settings = match shared::config::Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = worker::validate(&settings) {
        eprintln!("error: invalid configuration: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.worker_threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "error: could not start {} worker thread(s) (WORKER_THREADS): {error}",
                settings.worker_threads
            );
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli, settings))
}

async fn run(cli: worker::Cli, settings: shared::config::Settings) -> ExitCode {
    shared::telemetry::init(settings.log_format);
    match worker::run(settings, cli.options(), shared::shutdown::on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error.message = %error, error.cause_chain = ?error, "worker stopped");
            eprintln!("error: {error:#}");
            // 2 when the error is the operator's to fix (a setting), as for one found at start.
            ExitCode::from(shared::ops::exit::exit_code(error.chain()))
        }
    }
}

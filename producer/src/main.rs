//! `producer`: parse the command line, run it, map the result to an exit code. Everything
//! else lives in the library (`producer::run`).

use std::process::ExitCode;

// A routine run decodes a reply per login and an import a record per CSV row: glibc's
// malloc and free were a fifth of the producer's CPU while it read a million logins.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    producer::exit_quietly_on_closed_pipe();
    match producer::parse_args() {
        Ok(cli) => {
            let json = cli.json;
            producer::finish(producer::run(cli).await, json)
        }
        Err(code) => code,
    }
}

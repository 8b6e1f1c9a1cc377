//! `producer`: parse the command line, run it, map the result to an exit code. Everything
//! else lives in the library (`producer::run`).

use std::process::ExitCode;

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

//! `producer console`: serves the operators' web console (`shared::console`) until ctrl-c
//! or SIGTERM; `producer console hash-password`: prints the argon2 hash of a password read
//! on stdin, for the users file.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use shared::console::proxy::TrustedProxy;
use shared::console::{ConsoleError, ConsoleOptions};

use super::Ctx;
use crate::UsageError;

/// `producer console`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsoleArgs {
    /// Print a password hash instead of serving.
    #[command(subcommand)]
    pub command: Option<ConsoleCommand>,
    /// Where to listen. Cookies are marked Secure unless this is a loopback address (see
    /// --secure-cookies): put a TLS-terminating proxy in front of any other.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8088")]
    pub listen: SocketAddr,
    /// The path prefix a reverse proxy serves the console under, e.g. /console.
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub base_path: String,
    /// Leave Secure off the cookies although --listen is not loopback: only for a container
    /// whose port is published on the host's loopback alone (docker-compose's console).
    #[arg(long, conflicts_with = "secure_cookies")]
    pub insecure_cookies: bool,
    /// Mark cookies Secure (and send Strict-Transport-Security) although --listen is
    /// loopback: for a TLS-terminating proxy on the same host (e.g. nginx with TLS in front
    /// of 127.0.0.1:8088).
    #[arg(long)]
    pub secure_cookies: bool,
    /// A reverse proxy (an IP address or a CIDR block; repeat for several) whose
    /// X-Forwarded-For names the client, so the per-address login limit counts each client
    /// behind it rather than the proxy. Set it to exactly the proxies in front of the console.
    #[arg(long = "trusted-proxy", value_name = "CIDR or IP")]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The users: one `name:argon2 hash` a line (see `producer console hash-password`).
    #[arg(long, env = "CONSOLE_USERS_FILE", value_name = "FILE")]
    pub users_file: Option<PathBuf>,
}

/// `producer console ...`
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Read a password on stdin (its first line) and print its argon2 hash, to put after
    /// `name:` in CONSOLE_USERS_FILE. Needs neither Redis nor Flinks.
    HashPassword,
}

/// `producer console hash-password`.
pub(crate) fn hash_password() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password on stdin")?;
    let password = shared::console::users::password_from_line(&input);
    let hash = shared::console::users::hash_password(password)
        .map_err(|e| UsageError(format!("stdin: {e}")))?;
    println!("{hash}");
    Ok(())
}

/// `producer console`: prints the URL once listening, serves until a signal.
pub(crate) async fn serve(ctx: &Ctx, args: ConsoleArgs) -> anyhow::Result<()> {
    let Some(users_file) = args.users_file else {
        let why = "CONSOLE_USERS_FILE is not set (nor --users-file): the console needs its users";
        return Err(UsageError(why.into()).into());
    };
    let options = ConsoleOptions {
        listen: args.listen,
        base_path: args.base_path,
        users_file,
        insecure_cookies: args.insecure_cookies,
        secure_cookies: args.secure_cookies,
        trusted_proxies: args.trusted_proxies,
    };
    let shutdown = shared::shutdown::on_signal();
    let running = shared::console::start(ctx.settings().clone(), &options, shutdown)
        .await
        .map_err(|e| match e {
            ConsoleError::Users(_) | ConsoleError::BasePath(_) | ConsoleError::CookieFlags => {
                UsageError(e.to_string()).into()
            }
            other => anyhow::Error::new(other),
        })?;
    let base = shared::console::parse_base_path(&options.base_path)?;
    println!("console listening on http://{}{base}/", running.addr);
    std::io::stdout().flush().ok();
    running
        .task
        .await
        .context("the console's server task")?
        .context("serving the console")?;
    Ok(())
}

//! A Flinks BankingServices simulator for tests, the demo and benchmarks.
//!
//! It exists so that the worker and producer can be exercised end to end, fast and
//! deterministically, without the Flinks sandbox (which cannot run nightly refreshes and has
//! no failure knobs). It serves, under `/v3/{customerId}/BankingServices`:
//!
//! | Endpoint | Auth (only when configured) |
//! |---|---|
//! | `POST /GenerateAuthorizeToken` | `flinks-auth-key: <secret_key>` |
//! | `POST /Authorize` `{LoginId, MostRecentCached}` | `flinks-auth-key: <single-use token>` if `secret_key` is set |
//! | `POST /GetAccountsDetail` `{RequestId}` | `x-api-key` |
//! | `GET /GetAccountsDetailAsync/{requestId}` | `x-api-key` |
//! | `PATCH /SetScheduledRefresh` `{LoginId, IsActivated}` | none |
//! | `GET /GetNightlyRefreshStatus` | `Authorization: Bearer <bearer_secret>` |
//!
//! plus `GET /_sim/stats` ([`Stats`] as JSON) and `POST /_sim/reset` (clears stats, tokens,
//! sessions, per-LoginId state and the throttle, and reseeds the fault RNG).
//!
//! Bodies follow the shapes `docs/design-notes.md` summarises. Never answered: 203 (MFA); cached mode is assumed.
//! Authorize tokens are single-use and expire after `token_ttl`; a RequestId not used by
//! GetAccountsDetail within `request_id_ttl` gives 400 `SESSION_EXPIRED`, an unknown one
//! 400 `SESSION_NONEXISTENT`.
//!
//! # Scenarios and the rule file
//!
//! Each LoginId gets a [`Scenario`] from [`Rules`] (see [`Rules::scenario_for`]). Rule file
//! (TOML; the same keys in JSON if the file name ends in `.json`):
//!
//! ```toml
//! # Scenario for LoginIds no other rule matches (default "healthy").
//! default = "healthy"
//! # LoginIds starting with one of these are unknown: 401 INVALID_LOGIN.
//! unknown_prefixes = ["unknown-"]
//! # Exact LoginIds (highest priority). Values: a name, "name:N", or the tagged table form.
//! [logins]
//! "2c5e0f64-0000-0000-0000-000000000001" = "question_not_found"
//! "2c5e0f64-0000-0000-0000-000000000002" = { pending = { polls = 3 } }
//! # LoginId prefixes (longest wins).
//! [prefixes]
//! "slow-" = "pending:5"
//! "flaky-" = "aggregation_error:2"
//! # Weighted mix for everything else, chosen by a stable FNV-1a hash of the LoginId.
//! [mix]
//! healthy = 90
//! "stale:30" = 5
//! retry_later = 5
//! ```
//!
//! Order: `logins` > `unknown_prefixes` > `prefixes` > `mix` > `default`. Scenario names:
//! `healthy`, `question_not_found`, `invalid_password`, `disabled_login`, `pending[:polls]`,
//! `retry_later`, `aggregation_error[:failures]`, `stale[:hours]`, `session_expired_once`,
//! `invalid_login`. See `rules/demo.toml` for a realistic mix.
//!
//! # Use from tests
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use flinks_sim::{spawn, SimConfig, endpoint};
//! let sim = spawn(SimConfig::default()).await?;
//! // point the client at sim.base_url, run, then:
//! let stats = sim.stats().await;
//! assert_eq!(stats.calls(endpoint::AUTHORIZE, 200), 0);
//! sim.shutdown();
//! # Ok(()) }
//! ```

mod config;
mod faults;
mod model;
mod routes;
mod scenario;
mod stats;
mod throttle;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Cli, Error, Faults, SimConfig, Throttle, DEFAULT_CUSTOMER_ID};
pub use scenario::{stable_hash, Rules, Scenario};
pub use stats::{endpoint, FaultCounts, Stats};
pub use throttle::busiest_window_ms;

use routes::Sim;

/// The router for `config`, without a socket (for `tower::ServiceExt::oneshot` tests).
pub fn app(config: SimConfig) -> axum::Router {
    routes::router(Arc::new(Sim::new(config)))
}

/// Serves on `listener` until `shutdown` resolves; in-flight hung calls are released then.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_sim(listener, Arc::new(Sim::new(config)), shutdown).await
}

async fn serve_sim(
    listener: TcpListener,
    sim: Arc<Sim>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = sim.cancel_token();
    axum::serve(listener, routes::router(sim))
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await
}

fn base_url(addr: SocketAddr, customer_id: &str) -> String {
    format!("http://{addr}/v3/{customer_id}/BankingServices")
}

/// Starts a simulator on `127.0.0.1:0` in a background task.
pub async fn spawn(config: SimConfig) -> std::io::Result<SimHandle> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base_url = base_url(addr, &config.customer_id);
    let sim = Arc::new(Sim::new(config));
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task_sim = Arc::clone(&sim);
    tokio::spawn(async move {
        if let Err(e) = serve_sim(listener, task_sim, stopped.cancelled_owned()).await {
            tracing::error!(error.message = %e, "flinks-sim server failed");
        }
    });
    Ok(SimHandle {
        addr,
        base_url,
        sim,
        stop,
    })
}

/// A running simulator started by [`spawn`]. Dropping it leaves the server running until
/// the runtime ends; call [`SimHandle::shutdown`] to stop it earlier.
pub struct SimHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/v3/{customerId}/BankingServices`
    pub base_url: String,
    sim: Arc<Sim>,
    stop: CancellationToken,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (where `/_sim/stats` lives).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        self.sim.config()
    }

    /// The scenario `login_id` gets (same as `config().rules.scenario_for`).
    pub fn scenario_for(&self, login_id: &str) -> Scenario {
        self.sim.config().rules.scenario_for(login_id)
    }

    /// A snapshot of the counters, read in process (no HTTP).
    pub async fn stats(&self) -> Stats {
        self.sim.stats()
    }

    /// Same as `POST /_sim/reset`.
    pub async fn reset(&self) {
        self.sim.reset();
    }

    /// Stops accepting connections, releases hung calls and lets in-flight calls finish.
    pub fn shutdown(self) {
        self.stop.cancel();
    }
}

/// Runs the binary: validates `cli`, binds, prints `flinks-sim listening on <base URL>` as
/// the first stdout line, and serves until ctrl-c or SIGTERM.
pub async fn run(cli: Cli) -> Result<(), Error> {
    use std::io::Write as _;

    let listen = cli.listen;
    let config = cli.into_config()?;
    let listener = TcpListener::bind(listen).await?;
    let url = base_url(listener.local_addr()?, &config.customer_id);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "flinks-sim listening on {url}")?;
        out.flush()?;
    }
    tracing::info!(
        %url,
        throttle = ?config.throttle,
        faults = config.faults.is_active(),
        "flinks-sim started"
    );
    serve(listener, config, shutdown_signal()).await?;
    tracing::info!("flinks-sim stopped");
    Ok(())
}

/// Resolves on ctrl-c or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

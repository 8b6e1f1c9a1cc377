//! Simulator settings: the typed [`SimConfig`] used by tests, and the [`Cli`] the binary
//! parses into it.
//!
//! Raw input (`Cli`, the rule file) and validated input (`SimConfig`, `Rules`) are separate
//! types; a bad flag or rule file fails at start-up, naming the flag or file. This file does
//! not start anything; see `lib.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::scenario::Rules;

/// The sandbox customer id from the Flinks docs.
pub const DEFAULT_CUSTOMER_ID: &str = "43387ca6-0391-4c82-857d-70d95f087ecb";

/// Errors from configuration and rule files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario name or shorthand could not be parsed.
    #[error(
        "unknown scenario `{0}` (expected e.g. healthy, pending:3, stale:30, aggregation_error:2)"
    )]
    Scenario(String),
    /// The rule file is not valid TOML/JSON or has unknown keys.
    #[error("invalid rule file: {0}")]
    Rules(String),
    /// The rule file could not be read.
    #[error("cannot read rule file {path}")]
    ReadRules {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A flag value is invalid.
    #[error("invalid value for --{flag}: {message}")]
    Flag {
        /// The flag, without dashes.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Binding or serving failed.
    #[error("server I/O error")]
    Io(#[from] std::io::Error),
}

/// Everything the simulator needs. `SimConfig::default()`: sandbox customer id, every
/// LoginId healthy, no throttle, no faults, no auth headers required.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The `{customerId}` path segment.
    pub customer_id: String,
    /// Which scenario each LoginId gets.
    pub rules: Rules,
    /// Sliding-window limit on `/Authorize`; `None` = unlimited.
    pub throttle: Option<Throttle>,
    /// Seeded latency and failure injection.
    pub faults: Faults,
    /// If set, `/GenerateAuthorizeToken` requires `flinks-auth-key: <secret>` and
    /// `/Authorize` requires a single-use token from it.
    pub secret_key: Option<String>,
    /// If set, GetAccountsDetail(+Async) require `x-api-key: <key>`.
    pub api_key: Option<String>,
    /// If set, `/GetNightlyRefreshStatus` requires `Authorization: Bearer <secret>`.
    pub bearer_secret: Option<String>,
    /// Lifetime of an unused authorize token (Flinks: 30 min).
    pub token_ttl: Duration,
    /// Added latency of `/GenerateAuthorizeToken` in ms, uniform in `min..=max` (drawn from
    /// its own RNG seeded with [`Faults::seed`], so it leaves the fault draws unchanged).
    /// `(0, 0)` adds none.
    pub token_latency_ms: (u64, u64),
    /// Time allowed between Authorize and the first GetAccountsDetail (Flinks: 8 min).
    pub request_id_ttl: Duration,
    /// Maximum request body size (bytes).
    pub max_body_bytes: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            customer_id: DEFAULT_CUSTOMER_ID.to_owned(),
            rules: Rules::default(),
            throttle: None,
            faults: Faults::default(),
            secret_key: None,
            api_key: None,
            bearer_secret: None,
            token_ttl: Duration::from_secs(30 * 60),
            token_latency_ms: (0, 0),
            request_id_ttl: Duration::from_secs(8 * 60),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// At most `max_calls` accepted `/Authorize` calls in any trailing `window`; calls over it
/// get FlinksCode `TOO_MANY_REQUESTS` with HTTP `status` (Flinks docs: 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Calls accepted per window.
    pub max_calls: u32,
    /// Window length (default 60 s).
    pub window: Duration,
    /// HTTP status of the rejection (default 401).
    pub status: u16,
}

impl Throttle {
    /// `max_calls` per minute, answered with 401.
    pub fn per_minute(max_calls: u32) -> Self {
        Throttle {
            max_calls,
            window: Duration::from_secs(60),
            status: 401,
        }
    }
}

/// Seeded fault injection for Authorize and GetAccountsDetail(+Async).
///
/// Each faultable call draws, in arrival order, a latency uniform in
/// `latency_min_ms..=latency_max_ms` and one outcome: 5xx with probability `error_rate`
/// (half of them an HTML body), hang for `hang_for` with probability `hang_rate`, a truncated
/// JSON body with probability `malformed_rate`, otherwise the normal answer.
/// `Faults::default()` injects nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// RNG seed (`StdRng::seed_from_u64`).
    pub seed: u64,
    /// Minimum added latency.
    pub latency_min_ms: u64,
    /// Maximum added latency.
    pub latency_max_ms: u64,
    /// Share of calls answered with a 500.
    pub error_rate: f64,
    /// Share of calls that hang.
    pub hang_rate: f64,
    /// How long a hung call sleeps before answering 504.
    pub hang_for: Duration,
    /// Share of calls whose body is truncated JSON.
    pub malformed_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            latency_min_ms: 0,
            latency_max_ms: 0,
            error_rate: 0.0,
            hang_rate: 0.0,
            hang_for: Duration::from_secs(600),
            malformed_rate: 0.0,
        }
    }
}

impl Faults {
    /// Whether any fault or latency is configured.
    pub fn is_active(&self) -> bool {
        self.latency_max_ms > 0
            || self.error_rate > 0.0
            || self.hang_rate > 0.0
            || self.malformed_rate > 0.0
    }
}

fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// `MIN..MAX` or a single `N` (milliseconds).
fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let parse = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("`{v}`: {e}"));
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (parse(a)?, parse(b.trim_start_matches('='))?),
        None => {
            let v = parse(s)?;
            (v, v)
        }
    };
    if min > max {
        return Err(format!("min {min} > max {max}"));
    }
    Ok((min, max))
}

/// Command line of the `flinks-sim` binary. Every flag also reads an env var.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "flinks-sim",
    version,
    about = "Flinks BankingServices simulator: scripted per-LoginId scenarios, throttle and seeded faults.",
    long_about = "Flinks BankingServices simulator: scripted per-LoginId scenarios, throttle and seeded faults.\n\n\
        Serves /v3/{customerId}/BankingServices/{GenerateAuthorizeToken,Authorize,GetAccountsDetail,\
        GetAccountsDetailAsync/{id},SetScheduledRefresh,GetNightlyRefreshStatus} plus GET /_sim/stats \
        and POST /_sim/reset. Prints `flinks-sim listening on <base URL>` as its first stdout line."
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The {customerId} path segment.
    #[arg(long, env = "SIM_CUSTOMER_ID", default_value = DEFAULT_CUSTOMER_ID)]
    pub customer_id: String,
    /// Scenario rule file (TOML; JSON if it ends in .json). Default: every LoginId healthy.
    #[arg(long, env = "SIM_RULES", value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Enable the Authorize throttle: at most N accepted calls per window.
    #[arg(long, env = "SIM_THROTTLE_PER_WINDOW", value_name = "N")]
    pub throttle_per_window: Option<u32>,
    /// Throttle window length (humantime, e.g. 60s, 1m).
    #[arg(long, env = "SIM_THROTTLE_WINDOW", default_value = "60s", value_parser = parse_duration)]
    pub throttle_window: Duration,
    /// HTTP status of TOO_MANY_REQUESTS answers (Flinks docs: 401; Ruby gem: 403).
    #[arg(long, env = "SIM_THROTTLE_STATUS", default_value_t = 401)]
    pub throttle_status: u16,
    /// Fault RNG seed.
    #[arg(long, env = "SIM_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Added latency in ms, uniform in MIN..MAX (or a single value) for Authorize and GetAccountsDetail*.
    #[arg(long, env = "SIM_LATENCY_MS", value_name = "MIN..MAX", value_parser = parse_latency)]
    pub latency_ms: Option<(u64, u64)>,
    /// Share (0..1) of faultable calls answered 500 (half with an HTML body).
    #[arg(long, env = "SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share (0..1) of faultable calls that hang for --hang-for.
    #[arg(long, env = "SIM_HANG_RATE", default_value_t = 0.0)]
    pub hang_rate: f64,
    /// How long a hung call sleeps before answering 504 (humantime).
    #[arg(long, env = "SIM_HANG_FOR", default_value = "10m", value_parser = parse_duration)]
    pub hang_for: Duration,
    /// Share (0..1) of faultable calls whose JSON body is truncated.
    #[arg(long, env = "SIM_MALFORMED_RATE", default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Require this secret as flinks-auth-key on /GenerateAuthorizeToken, and tokens on /Authorize.
    #[arg(long, env = "SIM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Require this x-api-key on GetAccountsDetail and GetAccountsDetailAsync.
    #[arg(long, env = "SIM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Require `Authorization: Bearer <secret>` on /GetNightlyRefreshStatus.
    #[arg(long, env = "SIM_BEARER_SECRET", hide_env_values = true)]
    pub bearer_secret: Option<String>,
    /// Lifetime of an unused authorize token (humantime).
    #[arg(long, env = "SIM_TOKEN_TTL", default_value = "30m", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Added latency in ms of /GenerateAuthorizeToken, uniform in MIN..MAX (or a single value).
    #[arg(long, env = "SIM_TOKEN_LATENCY_MS", value_name = "MIN..MAX", value_parser = parse_latency)]
    pub token_latency_ms: Option<(u64, u64)>,
    /// Time allowed between Authorize and GetAccountsDetail before SESSION_EXPIRED (humantime).
    #[arg(long, env = "SIM_REQUEST_ID_TTL", default_value = "8m", value_parser = parse_duration)]
    pub request_id_ttl: Duration,
    /// Maximum request body size in bytes.
    #[arg(long, env = "SIM_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

impl Cli {
    /// Validates the flags and loads the rule file.
    pub fn into_config(self) -> Result<SimConfig, Error> {
        for (flag, rate) in [
            ("error-rate", self.error_rate),
            ("hang-rate", self.hang_rate),
            ("malformed-rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(Error::Flag {
                    flag,
                    message: format!("{rate} is not in 0..=1"),
                });
            }
        }
        if self.error_rate + self.hang_rate + self.malformed_rate > 1.0 {
            return Err(Error::Flag {
                flag: "error-rate",
                message: "error, hang and malformed rates add up to more than 1".into(),
            });
        }
        if self.throttle_window.is_zero() {
            return Err(Error::Flag {
                flag: "throttle-window",
                message: "must be positive".into(),
            });
        }
        if !(100..=599).contains(&self.throttle_status) {
            return Err(Error::Flag {
                flag: "throttle-status",
                message: format!("{} is not an HTTP status", self.throttle_status),
            });
        }
        let rules = match &self.rules {
            Some(path) => Rules::load(path)?,
            None => Rules::default(),
        };
        let (latency_min_ms, latency_max_ms) = self.latency_ms.unwrap_or((0, 0));
        Ok(SimConfig {
            customer_id: self.customer_id,
            rules,
            throttle: self.throttle_per_window.map(|max_calls| Throttle {
                max_calls,
                window: self.throttle_window,
                status: self.throttle_status,
            }),
            faults: Faults {
                seed: self.seed,
                latency_min_ms,
                latency_max_ms,
                error_rate: self.error_rate,
                hang_rate: self.hang_rate,
                hang_for: self.hang_for,
                malformed_rate: self.malformed_rate,
            },
            secret_key: self.secret_key,
            api_key: self.api_key,
            bearer_secret: self.bearer_secret,
            token_ttl: self.token_ttl,
            token_latency_ms: self.token_latency_ms.unwrap_or((0, 0)),
            request_id_ttl: self.request_id_ttl,
            max_body_bytes: self.max_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_accepts_a_range_or_a_single_value() {
        assert_eq!(parse_latency("10..50").unwrap(), (10, 50));
        assert_eq!(parse_latency("10..=50").unwrap(), (10, 50));
        assert_eq!(parse_latency("7").unwrap(), (7, 7));
        assert!(parse_latency("50..10").is_err());
    }
}

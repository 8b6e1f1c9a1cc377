//! `Settings`: every knob of the system in one typed, validated struct.
//!
//! Sources, lowest to highest: built-in defaults < an optional TOML file (`--config`) <
//! environment variables. The TOML file uses the same names as the environment, in lower
//! case (`rate_limit_per_minute = 20`). Everything is validated at load, so bad
//! configuration fails at boot with an error that names the variable and where it came
//! from — never later, in the middle of a routine. Secrets are wrapped in `SecretString`
//! and can also come from `<NAME>_FILE` (a mounted file), so they never need to sit in the
//! environment. A secret must be one non-empty line, and no error quotes it (nor the TOML
//! line holding it, nor a URL's credentials). Durations are written in human form (`10s`,
//! `30m`, `36h`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use secrecy::SecretString;
use url::Url;

use crate::results_crypto::ResultsCipher;

/// Why the settings could not be loaded. Every variant names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has a value that does not parse or is out of range.
    #[error("{key} (from {source_name}) is invalid: {reason} (got {value:?})")]
    Invalid {
        /// The variable, e.g. `RATE_LIMIT_PER_MINUTE`.
        key: &'static str,
        /// Where the value came from: `environment`, the TOML file's path, or `default`.
        source_name: String,
        /// What is wrong and what is expected.
        reason: String,
        /// The offending value (never for secrets).
        value: String,
    },
    /// A variable that this command needs is not set.
    #[error("{key} is required{why}")]
    Missing {
        /// The variable.
        key: &'static str,
        /// Extra context, starting with ": " when present.
        why: String,
    },
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file's path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A `<NAME>_FILE` secret file could not be read.
    #[error("{key}: cannot read secret file {path}: {reason}")]
    SecretFile {
        /// The variable, e.g. `FLINKS_SECRET_KEY_FILE`.
        key: String,
        /// The file's path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The validated settings of a producer or worker process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `REDIS_MODE`, `REDIS_URL` (one URL, or a comma-separated list of cluster seed nodes
    /// or sentinels), `REDIS_SENTINEL_MASTER`, `REDIS_SENTINEL_PASSWORD`: where Redis is.
    pub redis: RedisTarget,
    /// `REFRESH_NAMESPACE`: key prefix for every Redis key.
    pub namespace: String,
    /// `KEY_BUCKETS`: how many buckets (each its own Redis Cluster hash tag) the keys that
    /// grow with the number of logins are spread over; fixed per deployment
    /// (see [`crate::layout`]).
    pub key_buckets: std::num::NonZeroU16,
    /// `LEDGER_BUCKETS`: how many buckets (each its own Redis Cluster hash tag) the ledger,
    /// its indexes, the outbox and the events and results streams are spread over; 1 keeps
    /// them under one tag. Unset: [`crate::keys::DEFAULT_CLUSTER_LEDGER_BUCKETS`] with
    /// `REDIS_MODE=cluster`, else 1. Fixed per deployment (see [`crate::layout`]).
    pub ledger_buckets: std::num::NonZeroU16,
    /// `FLINKS_BASE_URL`: `.../v3/{customerId}/BankingServices`; required by commands that
    /// call Flinks (see [`Settings::require_flinks_base_url`]).
    pub flinks_base_url: Option<Url>,
    /// `FLINKS_ALLOW_INSECURE`: accept a plain-http `FLINKS_BASE_URL` to a host that is not
    /// loopback (a simulator on another host); off by default.
    pub flinks_allow_insecure: bool,
    /// `FLINKS_SECRET_KEY`: flinks-auth-key used to mint authorize tokens.
    pub flinks_secret_key: Option<SecretString>,
    /// `FLINKS_API_KEY`: x-api-key on data endpoints.
    pub flinks_api_key: Option<SecretString>,
    /// `FLINKS_BEARER_SECRET`: bearer for GetNightlyRefreshStatus.
    pub flinks_bearer_secret: Option<SecretString>,
    /// `AUTHORIZE_TIMEOUT`: HTTP timeout of Authorize and token calls.
    pub authorize_timeout: Duration,
    /// `DETAIL_TIMEOUT`: HTTP timeout of GetAccountsDetail (must exceed Flinks' 210 s).
    pub detail_timeout: Duration,
    /// `MAX_BODY_BYTES`: largest API response body accepted.
    pub max_body_bytes: usize,
    /// `RATE_LIMIT_PER_MINUTE`: LoginIds authorized per minute, all workers together;
    /// `0` turns the limiter off (benchmarks only).
    pub rate_limit_per_minute: f64,
    /// `RATE_LIMIT_COOLDOWN`: how long every worker pauses after TOO_MANY_REQUESTS.
    pub rate_limit_cooldown: Duration,
    /// `ROUTINE_AT`: local time of day `producer schedule` fires the routine.
    pub routine_at: NaiveTime,
    /// `ROUTINE_TZ`: the time zone of `ROUTINE_AT`.
    pub routine_tz: Tz,
    /// `ROUTINE_DEADLINE`: how long after its start a routine date's jobs may still call
    /// Flinks; `None` (unset): until the schedule's next firing after the start.
    pub routine_deadline: Option<Duration>,
    /// `POLL_INTERVAL`: delay between GetAccountsDetailAsync polls.
    pub poll_interval: Duration,
    /// `POLL_TIMEOUT`: give up polling after this long.
    pub poll_timeout: Duration,
    /// `MAX_ATTEMPTS`: attempts of a retryable outcome before the failed queue.
    pub max_attempts: u32,
    /// `TRACE_LOGIN_IDS`: how the Flinks call trace names a login (fingerprint | full).
    pub trace_login_ids: crate::flinks::config::TraceLoginIds,
    /// `MAX_THROTTLE_DEFERS`: TOO_MANY_REQUESTS answers one login may get on one routine
    /// date (each costs no attempt) before it is recorded as failed.
    pub max_throttle_defers: u32,
    /// `RETRY_BASE_DELAY`: first retry delay; doubles per attempt, jittered.
    pub retry_base_delay: Duration,
    /// `RETRY_MAX_DELAY`: cap of the retry delay.
    pub retry_max_delay: Duration,
    /// `STALE_AFTER`: a LastRefresh older than this marks a refresh stale.
    pub stale_after: Duration,
    /// `WORKER_CONCURRENCY`: jobs in flight per worker process.
    pub worker_concurrency: u32,
    /// `WORKER_THREADS`: threads that run a worker's jobs. A job mostly waits on Flinks and
    /// Redis, so one thread keeps up with any rate Flinks allows; measured on two cores
    /// shared with Redis, a second thread drained no faster and held more memory.
    pub worker_threads: usize,
    /// `WORKER_LEASE`: how long a fetched job stays leased without a heartbeat.
    pub worker_lease: Duration,
    /// `SHUTDOWN_GRACE`: how long in-flight jobs may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// `METRICS_ADDR`: where /metrics, /healthz and /readyz are served.
    pub metrics_addr: SocketAddr,
    /// `METRICS_READ_TIMEOUT`: an ops-port connection must send its request head within this.
    pub metrics_read_timeout: Duration,
    /// `METRICS_MAX_CONNECTIONS`: ops-port connections served at once.
    pub metrics_max_connections: usize,
    /// `RESULTS_STREAM_MAXLEN`: approximate cap of the results stream.
    pub results_stream_maxlen: u64,
    /// `LOG_FORMAT`: `json`, `pretty`, or `auto` (the default: decided by
    /// [`LogFormat::resolve`] when telemetry starts).
    pub log_format: LogFormat,
    /// `RESULTS_ENCRYPTION_KEY`: `id:key[,id:key...]` (32-byte keys, base64 or hex); when
    /// set, account data in the results stream is encrypted with the first key and read
    /// with any. Off (`None`) by default. `Debug` shows key ids only.
    pub results_cipher: Option<ResultsCipher>,
    /// `RESULTS_ENCRYPTION_REQUIRED`: a worker refuses to start without
    /// `RESULTS_ENCRYPTION_KEY` (it would store account data in clear), and readers refuse
    /// entries stored in clear.
    pub results_encryption_required: bool,
    /// `EVENTS_STREAM_MAXLEN`: the events stream's cap; entries a consumer group or the
    /// webhook has not acknowledged are kept beyond it.
    pub events_stream_maxlen: u64,
    /// `WEBHOOK_URL`: where the worker posts events (https, or http to a loopback host);
    /// no delivery when unset.
    pub webhook_url: Option<Url>,
    /// `WEBHOOK_SECRET`: the HMAC-SHA256 key of the signature; required with `WEBHOOK_URL`.
    pub webhook_secret: Option<SecretString>,
    /// `WEBHOOK_MAX_AGE`: how long a batch is retried before it is parked.
    pub webhook_max_age: Duration,
    /// `WEBHOOK_TIMEOUT`: one delivery attempt's limit.
    pub webhook_timeout: Duration,
    /// `WEBHOOK_RETRY_BASE_DELAY`: the first retry's delay, doubled after each failure.
    pub webhook_retry_base_delay: Duration,
    /// `WEBHOOK_RETRY_MAX_DELAY`: the longest delay between attempts.
    pub webhook_retry_max_delay: Duration,
}

/// How the processes reach Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// One server (`REDIS_URL` is its URL).
    Standalone,
    /// Redis Cluster (`REDIS_URL` lists seed nodes; the rest is discovered).
    Cluster,
    /// Redis Sentinel (`REDIS_URL` lists the sentinels; they name the master).
    Sentinel,
}

impl std::str::FromStr for RedisMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standalone" => Ok(RedisMode::Standalone),
            "cluster" => Ok(RedisMode::Cluster),
            "sentinel" => Ok(RedisMode::Sentinel),
            _ => Err("expected standalone, cluster or sentinel".to_string()),
        }
    }
}

impl std::fmt::Display for RedisMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisMode::Standalone => "standalone",
            RedisMode::Cluster => "cluster",
            RedisMode::Sentinel => "sentinel",
        })
    }
}

/// Where Redis is: the mode and its URLs. In Sentinel mode the URLs' host and port are the
/// sentinels', their credentials and scheme (TLS) are the master's, and
/// `sentinel_password` authenticates to the sentinels themselves.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// Standalone, cluster or sentinel.
    pub mode: RedisMode,
    /// One URL (standalone), seed nodes (cluster) or sentinels; never empty.
    pub urls: Vec<SecretUrl>,
    /// The master's name the sentinels know (Sentinel mode only).
    pub sentinel_master: Option<String>,
    /// The sentinels' own password, when they require one.
    pub sentinel_password: Option<SecretString>,
}

impl RedisTarget {
    /// One standalone server.
    pub fn standalone(url: SecretUrl) -> Self {
        Self {
            mode: RedisMode::Standalone,
            urls: vec![url],
            sentinel_master: None,
            sentinel_password: None,
        }
    }

    /// The URLs without credentials, comma-separated, safe for logs and errors.
    pub fn redacted(&self) -> String {
        self.urls
            .iter()
            .map(SecretUrl::redacted)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A URL that may hold a password: `Debug` and [`SecretUrl::redacted`] hide it.
#[derive(Clone)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// The full URL, to connect with. Never log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The URL without its credentials (see [`redact_url`]), safe for logs and errors.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

/// `url` safe for logs and errors: a password becomes `***`, and so does a user name that
/// has no password beside it (`redis://PASSWORD@host` puts the password in the user-name
/// position); a user name next to a password is kept, it names an ACL user.
pub fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    } else if !url.username().is_empty() {
        let _ = url.set_username("***");
    }
    url.to_string()
}

/// [`redact_url`] of a string that may not parse: an unparsable value is shown only when it
/// cannot hold credentials (no `@`).
pub fn redact_url_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => redact_url(&url),
        Err(_) if url.contains('@') => "<redacted: not a URL>".to_string(),
        Err(_) => url.to_string(),
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (containers).
    Json,
    /// Human-readable lines (terminals).
    Pretty,
    /// `Pretty` when stderr (where logs go) is a terminal, `Json` otherwise, so a container
    /// or a redirected log file gets JSON without anyone setting `LOG_FORMAT`.
    Auto,
}

impl LogFormat {
    /// The concrete format: `Auto` becomes `Pretty` on a terminal and `Json` elsewhere; an
    /// explicit `Json` or `Pretty` always wins.
    pub fn resolve(self, stderr_is_terminal: bool) -> LogFormat {
        match self {
            LogFormat::Auto if stderr_is_terminal => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            explicit => explicit,
        }
    }
}

/// Every variable `Settings` reads, with its default (`None` = unset by default). The
/// README's configuration table is checked against this list by a test.
pub const VARIABLES: &[(&str, Option<&str>)] = &[
    ("REDIS_URL", Some("redis://127.0.0.1:6379")),
    ("REDIS_MODE", Some("standalone")),
    ("REDIS_SENTINEL_MASTER", None),
    ("REDIS_SENTINEL_PASSWORD", None),
    ("REFRESH_NAMESPACE", Some("nightly-refresh")),
    ("FLINKS_BASE_URL", None),
    ("FLINKS_ALLOW_INSECURE", Some("false")),
    ("FLINKS_SECRET_KEY", None),
    ("FLINKS_API_KEY", None),
    ("FLINKS_BEARER_SECRET", None),
    ("AUTHORIZE_TIMEOUT", Some("60s")),
    ("DETAIL_TIMEOUT", Some("240s")),
    ("MAX_BODY_BYTES", Some("16777216")),
    ("RATE_LIMIT_PER_MINUTE", Some("20")),
    ("RATE_LIMIT_COOLDOWN", Some("60s")),
    ("ROUTINE_AT", Some("10:30")),
    ("ROUTINE_TZ", Some("America/Toronto")),
    ("ROUTINE_DEADLINE", None),
    ("POLL_INTERVAL", Some("10s")),
    ("POLL_TIMEOUT", Some("30m")),
    ("MAX_ATTEMPTS", Some("5")),
    ("MAX_THROTTLE_DEFERS", Some("10")),
    ("TRACE_LOGIN_IDS", Some("fingerprint")),
    ("RETRY_BASE_DELAY", Some("30s")),
    ("RETRY_MAX_DELAY", Some("30m")),
    ("STALE_AFTER", Some("36h")),
    ("WORKER_CONCURRENCY", Some("16")),
    ("WORKER_THREADS", Some("1")),
    ("WORKER_LEASE", Some("60s")),
    ("SHUTDOWN_GRACE", Some("25s")),
    ("METRICS_ADDR", Some("0.0.0.0:9464")),
    ("METRICS_READ_TIMEOUT", Some("10s")),
    ("METRICS_MAX_CONNECTIONS", Some("64")),
    ("RESULTS_STREAM_MAXLEN", Some("1000000")),
    ("KEY_BUCKETS", Some("64")),
    ("LEDGER_BUCKETS", None),
    ("LOG_FORMAT", Some("auto")),
    ("RESULTS_ENCRYPTION_KEY", None),
    ("RESULTS_ENCRYPTION_REQUIRED", Some("false")),
    ("EVENTS_STREAM_MAXLEN", Some("100000")),
    ("WEBHOOK_URL", None),
    ("WEBHOOK_SECRET", None),
    ("WEBHOOK_MAX_AGE", Some("3d")),
    ("WEBHOOK_TIMEOUT", Some("10s")),
    ("WEBHOOK_RETRY_BASE_DELAY", Some("1s")),
    ("WEBHOOK_RETRY_MAX_DELAY", Some("5m")),
];

/// The longest `ROUTINE_DEADLINE` accepted.
pub const MAX_ROUTINE_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most `WORKER_THREADS` accepted: far more than a job that waits on I/O can use, and
/// few enough that a typo does not ask the system for thousands of threads.
pub const MAX_WORKER_THREADS: usize = 64;

/// Defaults by another name, for the loader below.
const DEFAULTS: &[(&str, Option<&str>)] = VARIABLES;

/// Variables that hold secrets: their values are never echoed in errors, and they can be
/// read from `<NAME>_FILE`.
pub const SECRETS: &[&str] = &[
    "FLINKS_SECRET_KEY",
    "FLINKS_API_KEY",
    "FLINKS_BEARER_SECRET",
    "REDIS_URL",
    "REDIS_SENTINEL_PASSWORD",
    "RESULTS_ENCRYPTION_KEY",
    "WEBHOOK_SECRET",
];

/// One raw value and where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    source_name: String,
}

/// The key space a process started with this process's environment would use for
/// `namespace` (its `KEY_BUCKETS`, `LEDGER_BUCKETS` and the `REDIS_MODE` default): how tests
/// and fixtures build the keys of the processes they start. Settings it cannot read leave
/// the defaults of one Redis.
pub fn key_space_in_env(namespace: &str) -> crate::keys::KeySpace {
    let wanted = [
        "KEY_BUCKETS",
        "LEDGER_BUCKETS",
        "REDIS_MODE",
        "REDIS_SENTINEL_MASTER",
    ];
    let env = std::env::vars()
        .filter(|(k, _)| wanted.contains(&k.as_str()))
        .chain([("REFRESH_NAMESPACE".to_string(), namespace.to_string())]);
    match Settings::load_from(None, env) {
        Ok(settings) => settings.key_space(),
        Err(_) => crate::keys::KeySpace::new(namespace),
    }
}

impl Settings {
    /// The deployment's key space: its namespace laid out in its key and ledger buckets.
    pub fn key_space(&self) -> crate::keys::KeySpace {
        crate::keys::KeySpace::new(self.namespace.clone())
            .with_buckets(self.key_buckets)
            .with_ledger_buckets(self.ledger_buckets)
    }

    /// Loads settings from the process environment and an optional TOML file.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(config_file, std::env::vars())
    }

    /// Loads settings from an explicit environment (tests inject one).
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&'static str, Raw> = BTreeMap::new();
        for (key, default) in DEFAULTS {
            if let Some(value) = default {
                raw.insert(
                    key,
                    Raw {
                        value: (*value).to_string(),
                        source_name: "default".into(),
                    },
                );
            }
        }
        if let Some(path) = config_file {
            for (key, value) in read_toml(path)? {
                raw.insert(key, value);
            }
        }
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for (key, _) in DEFAULTS {
            if env.get(*key).is_some_and(String::is_empty) {
                check_empty_variable(key, raw.get(key), &env)?;
            }
            if let Some(value) = env.get(*key).filter(|v| !v.is_empty()) {
                raw.insert(
                    key,
                    Raw {
                        value: value.clone(),
                        source_name: "environment".into(),
                    },
                );
            }
        }
        for key in SECRETS {
            let file_key = format!("{key}_FILE");
            if let Some(path) = env.get(&file_key).filter(|v| !v.is_empty()) {
                let secret_file_error = |reason: String| ConfigError::SecretFile {
                    key: file_key.clone(),
                    path: PathBuf::from(path),
                    reason,
                };
                let value =
                    std::fs::read_to_string(path).map_err(|e| secret_file_error(e.to_string()))?;
                // One trailing newline is how editors and `echo` end a file; anything more
                // would end up inside a header or a password.
                let value = value
                    .strip_suffix("\r\n")
                    .or_else(|| value.strip_suffix('\n'))
                    .unwrap_or(&value);
                if value.trim().is_empty() {
                    return Err(secret_file_error("the file is empty".into()));
                }
                raw.insert(
                    key,
                    Raw {
                        value: value.to_string(),
                        source_name: file_key,
                    },
                );
            }
        }
        for key in SECRETS {
            if let Some(raw) = raw.get(key) {
                check_secret_value(key, raw)?;
            }
        }
        Parser { raw }.settings()
    }

    /// The Flinks base URL, or an error naming `FLINKS_BASE_URL` for commands that call Flinks.
    pub fn require_flinks_base_url(&self) -> Result<&Url, ConfigError> {
        self.flinks_base_url.as_ref().ok_or(ConfigError::Missing {
            key: "FLINKS_BASE_URL",
            why:
                ": set it to https://{instance}-api.private.fin.ag/v3/{customerId}/BankingServices \
                  (or the simulator's URL)"
                    .into(),
        })
    }

    /// The results cipher, or an error naming `RESULTS_ENCRYPTION_REQUIRED` when it is
    /// `true` and no key is set, for a process that would otherwise write account data in
    /// clear.
    pub fn require_results_encryption(&self) -> Result<Option<&ResultsCipher>, ConfigError> {
        match (&self.results_cipher, self.results_encryption_required) {
            (None, true) => Err(ConfigError::Missing {
                key: "RESULTS_ENCRYPTION_KEY",
                why: ": RESULTS_ENCRYPTION_REQUIRED=true and this worker would store account \
                      data in clear; set RESULTS_ENCRYPTION_KEY (or RESULTS_ENCRYPTION_KEY_FILE) \
                      or unset RESULTS_ENCRYPTION_REQUIRED"
                    .into(),
            }),
            (cipher, _) => Ok(cipher.as_ref()),
        }
    }

    /// True when the global rate limiter is turned off (`RATE_LIMIT_PER_MINUTE=0`).
    pub fn rate_limit_disabled(&self) -> bool {
        self.rate_limit_per_minute == 0.0
    }
}

/// Settings whose default is worked out from others when unset (`ROUTINE_DEADLINE`: the
/// next firing; `LEDGER_BUCKETS`: 64 on a Cluster, else 1).
const COMPUTED_DEFAULTS: [&str; 2] = ["ROUTINE_DEADLINE", "LEDGER_BUCKETS"];

/// An environment variable set to the empty string (`REFRESH_NAMESPACE=$NS` with `NS`
/// unset) reads as unset only where that changes nothing: a setting with no default and no
/// value in the config file. Where it would quietly put another value in its place (the
/// production namespace, the default Redis, the file's value) it is an error naming the
/// variable and what unsetting it would give, and so is an empty secret (unless its
/// `_FILE`, which wins, is set). `fallback` is what the defaults and the config file hold.
fn check_empty_variable(
    key: &'static str,
    fallback: Option<&Raw>,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let secret = SECRETS.contains(&key);
    let file_set = || {
        env.get(&format!("{key}_FILE"))
            .is_some_and(|v| !v.is_empty())
    };
    let reason = match fallback {
        _ if secret && file_set() => return Ok(()),
        _ if secret => "must not be empty".to_string(),
        Some(raw) if raw.source_name == "default" => format!(
            "empty; unset it to use the default ({:?}) or give a value",
            raw.value
        ),
        Some(raw) => format!(
            "empty; unset it to use the value from {} ({:?}) or give a value",
            raw.source_name, raw.value
        ),
        None if COMPUTED_DEFAULTS.contains(&key) => {
            "empty; unset it to use the default or give a value".to_string()
        }
        None => return Ok(()),
    };
    Err(ConfigError::Invalid {
        key,
        source_name: "environment".into(),
        reason,
        value: String::new(),
    })
}

/// A secret must be one non-empty line: a line break would be sent inside a header or
/// password (or silently dropped by the URL parser), and an empty one as an empty header.
fn check_secret_value(key: &'static str, raw: &Raw) -> Result<(), ConfigError> {
    let reason = if raw.value.contains(['\n', '\r']) {
        "must be a single line, but it contains a line break"
    } else if raw.value.trim().is_empty() {
        "must not be empty"
    } else {
        return Ok(());
    };
    Err(ConfigError::Invalid {
        key,
        source_name: raw.source_name.clone(),
        reason: reason.into(),
        value: "<redacted>".into(),
    })
}

fn read_toml(path: &Path) -> Result<Vec<(&'static str, Raw)>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    // Not `e.to_string()`: it quotes the offending line, which may hold a secret.
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().trim();
        file_error(match line {
            Some(line) => format!("line {line}: {message}"),
            None => message.to_string(),
        })
    })?;
    let mut out = Vec::new();
    for (name, value) in table {
        let upper = name.to_ascii_uppercase();
        let Some((key, _)) = DEFAULTS.iter().find(|(k, _)| *k == upper) else {
            return Err(file_error(format!("unknown setting {name:?}")));
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(file_error(format!(
                    "{name}: expected a string, number or boolean, got {}",
                    other.type_str()
                )))
            }
        };
        out.push((
            *key,
            Raw {
                value,
                source_name: path.display().to_string(),
            },
        ));
    }
    Ok(out)
}

struct Parser {
    raw: BTreeMap<&'static str, Raw>,
}

impl Parser {
    fn settings(&self) -> Result<Settings, ConfigError> {
        let flinks_allow_insecure = self.boolean("FLINKS_ALLOW_INSECURE")?;
        let flinks_base_url = match self.raw.get("FLINKS_BASE_URL") {
            None => None,
            Some(_) => Some(self.parse("FLINKS_BASE_URL", |v| {
                let url = Url::parse(v).map_err(|e| e.to_string())?;
                match url.scheme() {
                    "http" | "https" => {}
                    other => return Err(format!("scheme must be http or https, not {other}")),
                }
                crate::flinks::config::check_transport(&url, flinks_allow_insecure)?;
                Ok(url)
            })?),
        };
        let redis = self.redis_target()?;
        let namespace = self.parse("REFRESH_NAMESPACE", |v| {
            if v.is_empty() || v.contains(['{', '}', ' ', '*']) {
                Err("must be non-empty without spaces, braces or '*'".to_string())
            } else {
                Ok(v.to_string())
            }
        })?;
        let bucket_count = |key| {
            let n = self.whole_in(key, 1..=usize::from(crate::keys::MAX_KEY_BUCKETS))?;
            // In range, so it fits a u16 and is not zero.
            Ok::<_, ConfigError>(
                u16::try_from(n)
                    .ok()
                    .and_then(std::num::NonZeroU16::new)
                    .unwrap_or(std::num::NonZeroU16::MIN),
            )
        };
        let key_buckets = bucket_count("KEY_BUCKETS")?;
        // A cluster shares the ledger out unless told otherwise; one server has no use for it.
        let ledger_buckets = if self.raw.contains_key("LEDGER_BUCKETS") {
            bucket_count("LEDGER_BUCKETS")?
        } else if redis.mode == RedisMode::Cluster {
            std::num::NonZeroU16::new(crate::keys::DEFAULT_CLUSTER_LEDGER_BUCKETS)
                .unwrap_or(std::num::NonZeroU16::MIN)
        } else {
            std::num::NonZeroU16::MIN
        };
        let settings = Settings {
            redis,
            namespace,
            key_buckets,
            ledger_buckets,
            flinks_base_url,
            flinks_allow_insecure,
            flinks_secret_key: self.secret("FLINKS_SECRET_KEY"),
            flinks_api_key: self.secret("FLINKS_API_KEY"),
            flinks_bearer_secret: self.secret("FLINKS_BEARER_SECRET"),
            authorize_timeout: self.duration("AUTHORIZE_TIMEOUT", Duration::from_millis(1))?,
            detail_timeout: self.detail_timeout()?,
            max_body_bytes: self.number("MAX_BODY_BYTES", 1024usize)?,
            rate_limit_per_minute: self.parse("RATE_LIMIT_PER_MINUTE", |v| {
                let rate: f64 = v.parse().map_err(|_| "expected a number".to_string())?;
                if rate.is_finite() && rate >= 0.0 {
                    Ok(rate)
                } else {
                    Err("must be 0 (off) or a positive number of LoginIds per minute".into())
                }
            })?,
            rate_limit_cooldown: self.duration("RATE_LIMIT_COOLDOWN", Duration::ZERO)?,
            routine_at: self.parse("ROUTINE_AT", |v| {
                NaiveTime::parse_from_str(v, "%H:%M")
                    .map_err(|_| "expected HH:MM, e.g. 10:30".into())
            })?,
            routine_tz: self.parse("ROUTINE_TZ", |v| {
                v.parse::<Tz>()
                    .map_err(|_| "expected an IANA time zone, e.g. America/Toronto".into())
            })?,
            routine_deadline: self.routine_deadline()?,
            poll_interval: self.duration("POLL_INTERVAL", Duration::from_millis(1))?,
            poll_timeout: self.duration("POLL_TIMEOUT", Duration::from_millis(1))?,
            max_attempts: self.number("MAX_ATTEMPTS", 1u32)?,
            max_throttle_defers: self.number("MAX_THROTTLE_DEFERS", 1u32)?,
            trace_login_ids: self.parse("TRACE_LOGIN_IDS", |v| v.parse())?,
            retry_base_delay: self.duration("RETRY_BASE_DELAY", Duration::ZERO)?,
            retry_max_delay: self.duration("RETRY_MAX_DELAY", Duration::ZERO)?,
            stale_after: self.duration("STALE_AFTER", Duration::from_secs(1))?,
            worker_concurrency: self.number("WORKER_CONCURRENCY", 1u32)?,
            worker_threads: self.whole_in("WORKER_THREADS", 1..=MAX_WORKER_THREADS)?,
            worker_lease: self.duration("WORKER_LEASE", Duration::from_millis(300))?,
            shutdown_grace: self.duration("SHUTDOWN_GRACE", Duration::ZERO)?,
            metrics_addr: self.parse("METRICS_ADDR", |v| {
                v.parse::<SocketAddr>()
                    .map_err(|_| "expected host:port, e.g. 0.0.0.0:9464".into())
            })?,
            metrics_read_timeout: self
                .duration("METRICS_READ_TIMEOUT", Duration::from_millis(1))?,
            metrics_max_connections: self.number("METRICS_MAX_CONNECTIONS", 1usize)?,
            results_stream_maxlen: self.number("RESULTS_STREAM_MAXLEN", 1u64)?,
            log_format: self.parse("LOG_FORMAT", |v| match v {
                "json" => Ok(LogFormat::Json),
                "pretty" => Ok(LogFormat::Pretty),
                "auto" => Ok(LogFormat::Auto),
                _ => Err("expected json, pretty or auto".into()),
            })?,
            results_cipher: match self.raw.get("RESULTS_ENCRYPTION_KEY") {
                None => None,
                Some(_) => Some(self.parse("RESULTS_ENCRYPTION_KEY", |v| {
                    ResultsCipher::parse(v).map_err(|e| e.to_string())
                })?),
            },
            results_encryption_required: self.boolean("RESULTS_ENCRYPTION_REQUIRED")?,
            events_stream_maxlen: self.number("EVENTS_STREAM_MAXLEN", 1u64)?,
            webhook_url: self.webhook_url()?,
            webhook_secret: self.secret("WEBHOOK_SECRET"),
            webhook_max_age: self.duration("WEBHOOK_MAX_AGE", Duration::from_secs(1))?,
            webhook_timeout: self.duration("WEBHOOK_TIMEOUT", Duration::from_millis(100))?,
            webhook_retry_base_delay: self
                .duration("WEBHOOK_RETRY_BASE_DELAY", Duration::from_millis(1))?,
            webhook_retry_max_delay: self
                .duration("WEBHOOK_RETRY_MAX_DELAY", Duration::from_millis(1))?,
        };
        self.check_pairs(&settings)?;
        Ok(settings)
    }

    /// Settings that bound one another: a first delay over its cap, or a poll timeout
    /// shorter than one poll interval, would be silently cut (every retry waiting the cap;
    /// a 202 given up before its first poll).
    fn check_pairs(&self, s: &Settings) -> Result<(), ConfigError> {
        let pairs = [
            (
                "RETRY_BASE_DELAY",
                s.retry_base_delay > s.retry_max_delay,
                "RETRY_MAX_DELAY",
                s.retry_max_delay,
                "must not exceed",
            ),
            (
                "WEBHOOK_RETRY_BASE_DELAY",
                s.webhook_retry_base_delay > s.webhook_retry_max_delay,
                "WEBHOOK_RETRY_MAX_DELAY",
                s.webhook_retry_max_delay,
                "must not exceed",
            ),
            (
                "POLL_TIMEOUT",
                s.poll_timeout < s.poll_interval,
                "POLL_INTERVAL",
                s.poll_interval,
                "must be at least",
            ),
        ];
        for (key, wrong, other, bound, rule) in pairs {
            if wrong {
                let bound = humantime::format_duration(bound);
                return self.parse(key, |_| -> Result<(), String> {
                    Err(format!("{rule} {other} ({bound})"))
                });
            }
        }
        Ok(())
    }

    /// `WEBHOOK_URL`: https, or plain http only to a loopback host (the batches name
    /// LoginIds, and the signature does not hide them); it needs `WEBHOOK_SECRET`.
    fn webhook_url(&self) -> Result<Option<Url>, ConfigError> {
        if !self.raw.contains_key("WEBHOOK_URL") {
            return Ok(None);
        }
        let url = self.parse("WEBHOOK_URL", |v| {
            let url = Url::parse(v).map_err(|e| format!("not a URL ({e})"))?;
            match url.scheme() {
                "https" => Ok(url),
                "http" if crate::flinks::config::is_loopback(&url) => Ok(url),
                "http" => Err(format!(
                    "must be https: plain http is only accepted to a loopback host \
                     (localhost, 127.0.0.0/8, ::1), not to {}",
                    url.host_str().unwrap_or("<no host>")
                )),
                other => Err(format!("scheme must be https, not {other}")),
            }
        })?;
        if !self.raw.contains_key("WEBHOOK_SECRET") {
            return Err(ConfigError::Missing {
                key: "WEBHOOK_SECRET",
                why: ": WEBHOOK_URL is set and every batch is signed; set WEBHOOK_SECRET \
                      (or WEBHOOK_SECRET_FILE)"
                    .into(),
            });
        }
        Ok(Some(url))
    }

    fn parse<T>(
        &self,
        key: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let raw = self.raw.get(key).ok_or(ConfigError::Missing {
            key,
            why: String::new(),
        })?;
        f(raw.value.trim()).map_err(|reason| ConfigError::Invalid {
            key,
            source_name: raw.source_name.clone(),
            reason,
            value: if SECRETS.contains(&key) {
                "<redacted>".into()
            } else if key == "FLINKS_BASE_URL" || key == "WEBHOOK_URL" {
                redact_url_str(&raw.value)
            } else {
                raw.value.clone()
            },
        })
    }

    fn duration(&self, key: &'static str, min: Duration) -> Result<Duration, ConfigError> {
        self.parse(key, |v| {
            let d = humantime::parse_duration(v)
                .map_err(|e| format!("expected a duration like 10s, 30m or 36h ({e})"))?;
            if d < min {
                Err(format!(
                    "must be at least {}",
                    humantime::format_duration(min)
                ))
            } else {
                Ok(d)
            }
        })
    }

    /// `ROUTINE_DEADLINE`, when set: a duration from 1 s to [`MAX_ROUTINE_DEADLINE`]. Longer
    /// would let a date's retries run for days after later dates took its logins over.
    fn routine_deadline(&self) -> Result<Option<Duration>, ConfigError> {
        if !self.raw.contains_key("ROUTINE_DEADLINE") {
            return Ok(None);
        }
        self.parse("ROUTINE_DEADLINE", |v| {
            let d = humantime::parse_duration(v)
                .map_err(|e| format!("expected a duration like 20h or 90m ({e})"))?;
            if d < Duration::from_secs(1) || d > MAX_ROUTINE_DEADLINE {
                Err(format!(
                    "must be from 1s to {} (unset: until the schedule's next firing)",
                    humantime::format_duration(MAX_ROUTINE_DEADLINE)
                ))
            } else {
                Ok(Some(d))
            }
        })
    }

    /// `DETAIL_TIMEOUT` must be longer than the 210 s within which Flinks answers a
    /// synchronous call (or switches to 202): a shorter one would cut answers off.
    fn detail_timeout(&self) -> Result<Duration, ConfigError> {
        let limit = crate::flinks::config::FLINKS_SYNC_LIMIT;
        self.parse("DETAIL_TIMEOUT", |v| {
            let d = humantime::parse_duration(v)
                .map_err(|e| format!("expected a duration like 240s ({e})"))?;
            if d <= limit {
                Err(format!(
                    "must be longer than {} (Flinks answers a synchronous call within 210 s or switches to 202)",
                    humantime::format_duration(limit)
                ))
            } else {
                Ok(d)
            }
        })
    }

    fn number<T>(&self, key: &'static str, min: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        self.parse(key, |v| {
            let n: T = v
                .parse()
                .map_err(|_| "expected a whole number".to_string())?;
            if n < min {
                Err(format!("must be at least {min}"))
            } else {
                Ok(n)
            }
        })
    }

    /// A whole number within `range`; anything else is refused naming the range.
    fn whole_in(
        &self,
        key: &'static str,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        self.parse(key, |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    format!(
                        "expected a whole number from {} to {}",
                        range.start(),
                        range.end()
                    )
                })
        })
    }

    fn boolean(&self, key: &'static str) -> Result<bool, ConfigError> {
        self.parse(key, |v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false".into()),
        })
    }

    /// `REDIS_MODE` with the `REDIS_URL` list it needs: exactly one URL standalone, one or
    /// more seed nodes or sentinels otherwise, and a master name for Sentinel.
    fn redis_target(&self) -> Result<RedisTarget, ConfigError> {
        let mode: RedisMode = self.parse("REDIS_MODE", |v| v.parse())?;
        let urls = self.parse("REDIS_URL", |v| {
            let urls = v
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| {
                    let url = Url::parse(u).map_err(|_| "not a URL".to_string())?;
                    match url.scheme() {
                        "redis" | "rediss" => Ok(SecretUrl(url)),
                        other => Err(format!("scheme must be redis or rediss, not {other}")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            match (mode, urls.len()) {
                (_, 0) => Err("expected at least one redis:// or rediss:// URL".to_string()),
                (RedisMode::Standalone, 1) => Ok(urls),
                (RedisMode::Standalone, _) => Err(
                    "a list of URLs needs REDIS_MODE=cluster (seed nodes) or sentinel".to_string(),
                ),
                _ if urls.iter().any(|u| u.0.scheme() != urls[0].0.scheme()) => {
                    Err("every URL of the list must use the same scheme".to_string())
                }
                _ => Ok(urls),
            }
        })?;
        let sentinel_master = match (mode, self.raw.get("REDIS_SENTINEL_MASTER")) {
            (RedisMode::Sentinel, None) => {
                return Err(ConfigError::Missing {
                    key: "REDIS_SENTINEL_MASTER",
                    why: ": REDIS_MODE=sentinel asks the sentinels for this master".into(),
                });
            }
            (RedisMode::Sentinel, Some(_)) => Some(self.parse("REDIS_SENTINEL_MASTER", |v| {
                if v.is_empty() || v.contains(char::is_whitespace) {
                    Err("must be a master name without spaces".to_string())
                } else {
                    Ok(v.to_string())
                }
            })?),
            _ => None,
        };
        Ok(RedisTarget {
            mode,
            urls,
            sentinel_master,
            sentinel_password: self.secret("REDIS_SENTINEL_PASSWORD"),
        })
    }

    fn secret(&self, key: &'static str) -> Option<SecretString> {
        self.raw
            .get(key)
            .map(|raw| SecretString::from(raw.value.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_detail_timeout_not_above_flinks_sync_limit_names_the_variable() {
        let error = Settings::load_from(None, env(&[("DETAIL_TIMEOUT", "210s")])).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("DETAIL_TIMEOUT") && text.contains("longer than 3m 30s"),
            "{text}"
        );
        assert!(Settings::load_from(None, env(&[("DETAIL_TIMEOUT", "211s")])).is_ok());
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.redis.urls[0].expose(), "redis://127.0.0.1:6379");
        assert_eq!(s.namespace, "nightly-refresh");
        assert!(s.flinks_base_url.is_none());
        assert_eq!(s.rate_limit_per_minute, 20.0);
        assert_eq!(s.routine_at, NaiveTime::from_hms_opt(10, 30, 0).unwrap());
        assert_eq!(s.routine_tz, chrono_tz::America::Toronto);
        assert_eq!(s.poll_interval, Duration::from_secs(10));
        assert_eq!(s.poll_timeout, Duration::from_secs(30 * 60));
        assert_eq!(s.max_attempts, 5);
        assert_eq!(s.retry_base_delay, Duration::from_secs(30));
        assert_eq!(s.stale_after, Duration::from_secs(36 * 3600));
        assert_eq!(s.worker_concurrency, 16);
        assert_eq!(s.worker_threads, 1);
        assert_eq!(s.worker_lease, Duration::from_secs(60));
        assert_eq!(s.shutdown_grace, Duration::from_secs(25));
        assert_eq!(s.key_buckets.get(), crate::keys::DEFAULT_KEY_BUCKETS);
    }

    /// Each of `bad` as `key` is refused with a message naming `key` and `range`.
    fn assert_refused_naming_the_range(key: &str, bad: &[&str], range: &str) {
        for value in bad {
            let text = load_error(&[(key, value)]);
            assert!(
                text.contains(key) && text.contains(range),
                "{key}={value}: {text}"
            );
        }
    }

    #[test]
    fn worker_threads_outside_1_to_64_names_the_variable_and_the_range() {
        assert_refused_naming_the_range(
            "WORKER_THREADS",
            &["0", "65", "two", "-1", "1.5"],
            "from 1 to 64",
        );
        let s = Settings::load_from(None, env(&[("WORKER_THREADS", "4")])).unwrap();
        assert_eq!(s.worker_threads, 4);
    }

    #[test]
    fn key_buckets_outside_1_to_1024_names_the_variable_and_the_range() {
        assert_refused_naming_the_range(
            "KEY_BUCKETS",
            &["0", "1025", "many", "-3"],
            "from 1 to 1024",
        );
        let s = Settings::load_from(None, env(&[("KEY_BUCKETS", "1024")])).unwrap();
        assert_eq!(s.key_buckets.get(), 1024);
    }

    #[test]
    fn the_ledger_has_one_bucket_on_one_redis_and_64_on_a_cluster_unless_ledger_buckets_says_otherwise(
    ) {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.ledger_buckets.get(), 1);
        assert_eq!(s.key_space().ledger_buckets(), 1);
        let cluster = [("REDIS_MODE", "cluster")];
        let s = Settings::load_from(None, env(&cluster)).unwrap();
        assert_eq!(s.ledger_buckets.get(), 64);
        let s = Settings::load_from(
            None,
            env(&[("REDIS_MODE", "cluster"), ("LEDGER_BUCKETS", "1")]),
        )
        .unwrap();
        assert_eq!(s.ledger_buckets.get(), 1);
        let s = Settings::load_from(None, env(&[("LEDGER_BUCKETS", "32")])).unwrap();
        assert_eq!(s.key_space().ledger_buckets(), 32);
        assert_eq!(s.key_space().buckets(), crate::keys::DEFAULT_KEY_BUCKETS);
        let text = Settings::load_from(None, env(&[("LEDGER_BUCKETS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("LEDGER_BUCKETS") && text.contains("from 1 to 1024"),
            "{text}"
        );
    }

    #[test]
    fn log_format_defaults_to_auto_which_is_json_unless_stderr_is_a_terminal() {
        let auto = Settings::load_from(None, env(&[])).unwrap().log_format;
        assert_eq!(auto, LogFormat::Auto);
        assert_eq!(auto.resolve(false), LogFormat::Json);
        assert_eq!(auto.resolve(true), LogFormat::Pretty);
        for (value, want) in [("json", LogFormat::Json), ("pretty", LogFormat::Pretty)] {
            let explicit = Settings::load_from(None, env(&[("LOG_FORMAT", value)]))
                .unwrap()
                .log_format;
            assert_eq!(
                explicit.resolve(true),
                want,
                "LOG_FORMAT={value} on a terminal"
            );
            assert_eq!(
                explicit.resolve(false),
                want,
                "LOG_FORMAT={value} in a pipe"
            );
        }
        let err = Settings::load_from(None, env(&[("LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("LOG_FORMAT"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("nr-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "rate_limit_per_minute = 30\nmax_attempts = 3\n").unwrap();
        let s = Settings::load_from(Some(&file), env(&[("MAX_ATTEMPTS", "7")])).unwrap();
        assert_eq!(s.rate_limit_per_minute, 30.0);
        assert_eq!(s.max_attempts, 7);
    }

    #[test]
    fn a_bad_value_names_the_variable_its_source_and_the_expected_form() {
        let err = Settings::load_from(None, env(&[("POLL_INTERVAL", "soon")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("POLL_INTERVAL"), "{msg}");
        assert!(msg.contains("environment"), "{msg}");
        assert!(msg.contains("\"soon\""), "{msg}");
        let err = Settings::load_from(None, env(&[("RATE_LIMIT_PER_MINUTE", "-1")])).unwrap_err();
        assert!(err.to_string().contains("RATE_LIMIT_PER_MINUTE"), "{err}");
        let err = Settings::load_from(None, env(&[("ROUTINE_TZ", "Mars/Base")])).unwrap_err();
        assert!(err.to_string().contains("ROUTINE_TZ"), "{err}");
    }

    #[test]
    fn routine_deadline_is_unset_by_default_and_a_bounded_duration_when_set() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.routine_deadline, None);
        let s = Settings::load_from(None, env(&[("ROUTINE_DEADLINE", "20h")])).unwrap();
        assert_eq!(s.routine_deadline, Some(Duration::from_secs(20 * 3600)));
        for bad in ["0s", "8days", "tomorrow"] {
            let err = Settings::load_from(None, env(&[("ROUTINE_DEADLINE", bad)])).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("ROUTINE_DEADLINE") && text.contains(bad),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("nr-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "rate_limit = 30\n").unwrap();
        let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("c.toml"), "{err}");
        assert!(err.to_string().contains("rate_limit"), "{err}");
    }

    #[test]
    fn secrets_come_from_files_and_never_appear_in_debug_or_errors() {
        let dir = std::env::temp_dir().join(format!("nr-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "s3cr3t-from-file\n").unwrap();
        let s = Settings::load_from(
            None,
            env(&[
                ("FLINKS_SECRET_KEY_FILE", file.to_str().unwrap()),
                ("FLINKS_API_KEY", "api-s3cr3t"),
                ("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0"),
            ]),
        )
        .unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(
            s.flinks_secret_key.as_ref().unwrap().expose_secret(),
            "s3cr3t-from-file"
        );
        let debug = format!("{s:?}");
        for secret in ["s3cr3t-from-file", "api-s3cr3t", "hunter2"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        let err =
            Settings::load_from(None, env(&[("REDIS_URL", "http://:hunter2@x")])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
    }

    #[test]
    fn flinks_base_url_is_required_only_when_asked_for() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        let err = s.require_flinks_base_url().unwrap_err();
        assert!(err.to_string().contains("FLINKS_BASE_URL"), "{err}");
        let s = Settings::load_from(
            None,
            env(&[(
                "FLINKS_BASE_URL",
                "http://127.0.0.1:8080/v3/c/BankingServices",
            )]),
        )
        .unwrap();
        assert_eq!(
            s.require_flinks_base_url().unwrap().path(),
            "/v3/c/BankingServices"
        );
    }

    #[test]
    fn the_results_encryption_key_comes_from_a_file_and_debug_shows_only_its_id() {
        let dir = std::env::temp_dir().join(format!("nr-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("results-key");
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        std::fs::write(&file, format!("k7:{key}\n")).unwrap();
        let s = Settings::load_from(
            None,
            env(&[
                ("RESULTS_ENCRYPTION_KEY_FILE", file.to_str().unwrap()),
                ("FLINKS_BEARER_SECRET", "bearer-s3cr3t"),
                ("REDIS_URL", "rediss://app:hunter2@redis:6380"),
            ]),
        )
        .unwrap();
        assert_eq!(s.results_cipher.as_ref().unwrap().key_ids(), ["k7"]);
        let debug = format!("{s:?}");
        for secret in [key, "AAECAwQF", "bearer-s3cr3t", "hunter2"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(debug.contains("k7"), "{debug}");
        assert!(Settings::load_from(None, env(&[]))
            .unwrap()
            .results_cipher
            .is_none());
    }

    #[test]
    fn results_encryption_required_without_a_key_is_an_error_naming_both_variables() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(!s.results_encryption_required);
        assert!(s.require_results_encryption().unwrap().is_none());

        let s = Settings::load_from(None, env(&[("RESULTS_ENCRYPTION_REQUIRED", "true")])).unwrap();
        let err = s.require_results_encryption().unwrap_err().to_string();
        assert!(
            err.contains("RESULTS_ENCRYPTION_REQUIRED") && err.contains("RESULTS_ENCRYPTION_KEY"),
            "{err}"
        );

        let s = Settings::load_from(
            None,
            env(&[
                ("RESULTS_ENCRYPTION_REQUIRED", "true"),
                (
                    "RESULTS_ENCRYPTION_KEY",
                    "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.require_results_encryption().unwrap().unwrap().key_ids(),
            ["k1"]
        );

        let err = Settings::load_from(None, env(&[("RESULTS_ENCRYPTION_REQUIRED", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RESULTS_ENCRYPTION_REQUIRED"), "{err}");
    }

    #[test]
    fn a_bad_results_encryption_key_names_the_variable_but_not_the_key() {
        let err = Settings::load_from(
            None,
            env(&[("RESULTS_ENCRYPTION_KEY", "k1:c2hvcnQtc2VjcmV0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("RESULTS_ENCRYPTION_KEY"), "{err}");
        assert!(err.contains("32 bytes"), "{err}");
        assert!(!err.contains("c2hvcnQtc2VjcmV0"), "{err}");
    }

    fn temp_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nr-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, content).unwrap();
        file
    }

    #[test]
    fn plain_http_to_flinks_is_refused_unless_loopback_or_explicitly_allowed() {
        for url in [
            "http://127.0.0.1:8080/v3/c/BankingServices",
            "http://127.8.9.10/v3/c/BankingServices",
            "http://localhost:8080/v3/c/BankingServices",
            "http://[::1]:8080/v3/c/BankingServices",
            "https://x-api.private.fin.ag/v3/c/BankingServices",
        ] {
            let s = Settings::load_from(None, env(&[("FLINKS_BASE_URL", url)]));
            assert!(s.is_ok(), "{url}: {s:?}");
        }
        let remote = "http://flinks-sim:8080/v3/c/BankingServices";
        let err = Settings::load_from(None, env(&[("FLINKS_BASE_URL", remote)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("FLINKS_BASE_URL"), "{err}");
        assert!(err.contains("https"), "{err}");
        assert!(err.contains("FLINKS_ALLOW_INSECURE"), "{err}");
        let s = Settings::load_from(
            None,
            env(&[
                ("FLINKS_BASE_URL", remote),
                ("FLINKS_ALLOW_INSECURE", "true"),
            ]),
        )
        .unwrap();
        assert!(s.flinks_allow_insecure);
        let err = Settings::load_from(None, env(&[("FLINKS_ALLOW_INSECURE", "yes")])).unwrap_err();
        assert!(err.to_string().contains("FLINKS_ALLOW_INSECURE"), "{err}");
    }

    #[test]
    fn credentials_in_urls_never_reach_errors_or_debug() {
        let err = Settings::load_from(
            None,
            env(&[(
                "FLINKS_BASE_URL",
                "http://user:fl1nkspw@flinks.example/v3/c/B",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("FLINKS_BASE_URL"), "{err}");
        assert!(!err.contains("fl1nkspw"), "{err}");
        let s =
            Settings::load_from(None, env(&[("REDIS_URL", "redis://hunter2@redis:6379")])).unwrap();
        assert_eq!(s.redis.redacted(), "redis://***@redis:6379");
        assert!(!format!("{s:?}").contains("hunter2"));
        let url = Url::parse("https://u:p4ss@h/x").unwrap();
        assert_eq!(redact_url(&url), "https://u:***@h/x");
        assert_eq!(
            redact_url_str("not a url but p4ss@h"),
            "<redacted: not a URL>"
        );
    }

    #[test]
    fn a_toml_error_never_quotes_the_line_holding_a_secret() {
        for text in [
            "flinks_api_key = \"t0ml-s3cret\n",
            "flinks_api_key = t0ml-s3cret\n",
            "flinks_api_key = [\"t0ml-s3cret\"]\n",
            "flinks_api_key = \"t0ml-s3cret\"\nflinks_api_key = \"t0ml-s3cret\"\n",
        ] {
            let file = temp_file("c.toml", text);
            let err = Settings::load_from(Some(&file), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(!err.contains("t0ml-s3cret"), "{text:?} printed {err}");
            assert!(err.contains("c.toml"), "{err}");
        }
        let file = temp_file("c.toml", "max_attempts = 3\nflinks_api_key = \"x\n");
        let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn an_empty_secret_file_is_an_error_naming_the_variable() {
        for content in ["", "\n", "  \n"] {
            let file = temp_file("key", content);
            let err = Settings::load_from(
                None,
                env(&[("FLINKS_API_KEY_FILE", file.to_str().unwrap())]),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("FLINKS_API_KEY_FILE"), "{err}");
            assert!(err.contains("empty"), "{err}");
        }
        let file = temp_file("c.toml", "flinks_api_key = \"\"\n");
        let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("FLINKS_API_KEY"), "{err}");
    }

    /// The error of loading settings from `vars` alone, as text.
    fn load_error(vars: &[(&str, &str)]) -> String {
        Settings::load_from(None, env(vars))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_empty_variable_is_an_error_where_it_would_quietly_become_the_default() {
        let key_file = temp_file("key", "k3y\n");

        let namespace = load_error(&[("REFRESH_NAMESPACE", "")]);
        let secret = load_error(&[("FLINKS_SECRET_KEY", "")]);
        let with_file = Settings::load_from(
            None,
            env(&[
                ("FLINKS_SECRET_KEY", ""),
                ("FLINKS_SECRET_KEY_FILE", key_file.to_str().unwrap()),
            ]),
        );
        let optional = Settings::load_from(None, env(&[("WEBHOOK_URL", "")]));
        let computed = load_error(&[("LEDGER_BUCKETS", "")]);
        let file = temp_file("c.toml", "refresh_namespace = \"staging\"\n");
        let over_file = Settings::load_from(Some(&file), env(&[("REFRESH_NAMESPACE", "")]))
            .unwrap_err()
            .to_string();

        assert_eq!(
            namespace,
            "REFRESH_NAMESPACE (from environment) is invalid: empty; unset it to use the \
             default (\"nightly-refresh\") or give a value (got \"\")"
        );
        assert!(
            secret
                .starts_with("FLINKS_SECRET_KEY (from environment) is invalid: must not be empty"),
            "{secret}"
        );
        assert!(with_file.is_ok(), "the file wins: {with_file:?}");
        assert!(optional.is_ok(), "no default to fall back to: {optional:?}");
        assert!(
            computed.starts_with("LEDGER_BUCKETS (from environment) is invalid: empty"),
            "{computed}"
        );
        assert!(
            over_file.contains("unset it to use the value from") && over_file.contains("staging"),
            "{over_file}"
        );
    }

    #[test]
    fn a_first_delay_over_its_cap_or_a_poll_timeout_under_one_interval_is_an_error() {
        let retry = load_error(&[("RETRY_BASE_DELAY", "1h")]);
        let webhook = load_error(&[("WEBHOOK_RETRY_BASE_DELAY", "10m")]);
        let poll = load_error(&[("POLL_TIMEOUT", "1s")]);
        let equal = Settings::load_from(None, env(&[("RETRY_BASE_DELAY", "30m")]));

        assert_eq!(
            retry,
            "RETRY_BASE_DELAY (from environment) is invalid: must not exceed RETRY_MAX_DELAY \
             (30m) (got \"1h\")"
        );
        assert!(
            webhook.contains("must not exceed WEBHOOK_RETRY_MAX_DELAY (5m)"),
            "{webhook}"
        );
        assert!(
            poll.starts_with(
                "POLL_TIMEOUT (from environment) is invalid: must be at least POLL_INTERVAL (10s)"
            ),
            "{poll}"
        );
        assert!(equal.is_ok(), "{equal:?}");
    }

    #[test]
    fn a_secret_with_a_line_break_is_an_error_but_one_trailing_newline_in_a_file_is_dropped() {
        use secrecy::ExposeSecret;
        for (content, want) in [("k3y\n", "k3y"), ("k3y\r\n", "k3y"), ("k3y", "k3y")] {
            let file = temp_file("key", content);
            let s = Settings::load_from(
                None,
                env(&[("FLINKS_API_KEY_FILE", file.to_str().unwrap())]),
            )
            .unwrap();
            assert_eq!(s.flinks_api_key.unwrap().expose_secret(), want);
        }
        for content in ["k3y\n\n", "k3y\nm0re\n", "k3y\rm0re"] {
            let file = temp_file("key", content);
            let err = Settings::load_from(
                None,
                env(&[("FLINKS_API_KEY_FILE", file.to_str().unwrap())]),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("FLINKS_API_KEY_FILE"), "{content:?}: {err}");
            assert!(err.contains("line break"), "{err}");
            assert!(!err.contains("k3y") && !err.contains("m0re"), "{err}");
        }
        for (key, value) in [
            ("FLINKS_BEARER_SECRET", "b3arer\nX-Injected: 1"),
            ("REDIS_URL", "redis://:pa\nss@127.0.0.1:6379"),
        ] {
            let err = Settings::load_from(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
            assert!(!err.contains("b3arer") && !err.contains("pa\nss"), "{err}");
        }
    }

    #[test]
    fn ops_port_limits_have_defaults_and_are_validated() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.metrics_read_timeout, Duration::from_secs(10));
        assert_eq!(s.metrics_max_connections, 64);
        let err = Settings::load_from(None, env(&[("METRICS_MAX_CONNECTIONS", "0")])).unwrap_err();
        assert!(err.to_string().contains("METRICS_MAX_CONNECTIONS"), "{err}");
    }

    #[test]
    fn a_webhook_needs_https_or_loopback_and_a_secret_that_never_shows() {
        let ok = Settings::load_from(
            None,
            env(&[
                ("WEBHOOK_URL", "https://hooks.example.com/nr"),
                ("WEBHOOK_SECRET", "whsec-top-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.webhook_max_age, Duration::from_secs(3 * 86_400));
        assert!(!format!("{ok:?}").contains("whsec-top-secret"));
        let local = Settings::load_from(
            None,
            env(&[
                ("WEBHOOK_URL", "http://127.0.0.1:8080/nr"),
                ("WEBHOOK_SECRET", "s"),
            ]),
        );
        assert!(local.is_ok());
        let err = Settings::load_from(
            None,
            env(&[
                ("WEBHOOK_URL", "http://hooks.example.com/nr"),
                ("WEBHOOK_SECRET", "s"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("WEBHOOK_URL") && err.contains("https"),
            "{err}"
        );
        let err = Settings::load_from(None, env(&[("WEBHOOK_URL", "https://h/nr")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("WEBHOOK_SECRET"), "{err}");
    }

    /// The README's configuration table lists exactly the variables `Settings` reads, with
    /// their defaults, so the documentation cannot drift from the code.
    #[test]
    fn the_readme_configuration_table_matches_the_variables_settings_reads() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let section = readme
            .split("\n## Configuration")
            .nth(1)
            .expect("README has a ## Configuration section");
        let section = section.split("\n## ").next().unwrap();
        let mut documented: BTreeMap<String, String> = BTreeMap::new();
        for line in section.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() < 3 || cells[0] == "variable" || cells[0].starts_with("--") {
                continue;
            }
            let names: Vec<&str> = cells[0].split(',').map(str::trim).collect();
            let defaults: Vec<&str> = cells[1].split(", ").map(str::trim).collect();
            for (i, name) in names.iter().enumerate() {
                let default = if defaults.len() == names.len() {
                    defaults[i]
                } else {
                    cells[1]
                };
                let name = name.trim_matches('`').to_string();
                assert!(
                    documented
                        .insert(name.clone(), default.to_string())
                        .is_none(),
                    "{name} is listed twice in README.md"
                );
            }
        }
        let read: BTreeMap<String, Option<&str>> =
            VARIABLES.iter().map(|(k, d)| (k.to_string(), *d)).collect();
        let missing: Vec<_> = read
            .keys()
            .filter(|k| !documented.contains_key(*k))
            .collect();
        let extra: Vec<_> = documented
            .keys()
            .filter(|k| !read.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "README.md's configuration table drifted: not documented {missing:?}, \
             documented but not read {extra:?}"
        );
        for (name, default) in &read {
            let shown = documented[name].trim_matches('`');
            match default {
                Some(d) => assert_eq!(shown, *d, "README.md's default of {name}"),
                None => assert!(
                    shown.starts_with("unset") || shown.starts_with("required"),
                    "README.md shows a default {shown:?} for {name}, which has none"
                ),
            }
        }
    }
}

//! The operators' web console (`producer console`): today's routine, the re-auth and failed
//! lists, the queues, the workers, the rate limit, one login's history and the audit trail,
//! in a browser, beside the command line and over the same library calls (a requeue here is
//! [`crate::ops::requeue::Requeuer::requeue`], a pause [`crate::control::Control::pause_all`],
//! each audited like the command's).
//!
//! Server-rendered HTML from compile-time-checked templates (askama, under
//! `shared/templates/console/`), one small script for progressive enhancement (the routine
//! page's refresh), no inline script or style, so the content security policy can forbid
//! both. Every page needs a login; the security rules live in one module each:
//!
//! - [`users`]: `CONSOLE_USERS_FILE` (`name:argon2 hash` per line) and password hashing.
//! - [`auth`]: server-side sessions in Redis (so replicas share them), the session cookie,
//!   the login rate limit, and the gate that sends anyone without a session to the login.
//! - [`proxy`]: which address a login comes from behind trusted proxies.
//! - [`csrf`]: the token every mutating form carries.
//! - [`headers`]: the security headers on every response (HSTS when cookies are `Secure`).
//! - [`pages`]: the templates and the view data they show; [`routes`]: the handlers.
//!
//! What it does not do: it shows no account data (LoginIds, FlinksCodes and messages
//! only), serves no TLS (run it on loopback, or behind a TLS-terminating proxy or ingress),
//! and keeps no state of its own outside Redis.

pub mod auth;
pub mod csrf;
pub mod headers;
pub mod pages;
pub mod proxy;
pub mod routes;
pub mod users;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::ops::session::Session;
use crate::ops::OpsError;
use crate::report::Reading;

/// How `producer console` was asked to run.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Where to listen (`--listen`).
    pub listen: SocketAddr,
    /// The path prefix a reverse proxy serves the console under (`--base-path`), as given.
    pub base_path: String,
    /// `CONSOLE_USERS_FILE`.
    pub users_file: PathBuf,
    /// Cookies without `Secure` although the console does not listen on loopback
    /// (`--insecure-cookies`): only for a container whose port is published on the host's
    /// loopback alone, where the browser talks plain HTTP to it.
    pub insecure_cookies: bool,
    /// Cookies with `Secure` although the console listens on loopback
    /// (`--secure-cookies`): for a TLS-terminating proxy on the same host, which forwards to
    /// the loopback address while the browser talks HTTPS to the proxy.
    pub secure_cookies: bool,
    /// The proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`), for the
    /// per-address login limit; see [`proxy`].
    pub trusted_proxies: Vec<proxy::TrustedProxy>,
}

/// Whether cookies are `Secure` (and `Strict-Transport-Security` is sent): off loopback
/// unless `--insecure-cookies`, on loopback only with `--secure-cookies`. The listen address
/// alone cannot tell: a same-host TLS proxy forwards to loopback, a compose port published
/// on the host's loopback listens on all of the container's addresses.
pub fn cookies_secure(
    listen: SocketAddr,
    secure_cookies: bool,
    insecure_cookies: bool,
) -> Result<bool, ConsoleError> {
    match (secure_cookies, insecure_cookies) {
        (true, true) => Err(ConsoleError::CookieFlags),
        (true, false) => Ok(true),
        (false, true) => Ok(false),
        (false, false) => Ok(!listen.ip().is_loopback()),
    }
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The users file is missing, unreadable or has a bad line.
    #[error(transparent)]
    Users(#[from] users::UsersError),
    /// `--base-path` is not a path prefix.
    #[error("--base-path {0:?}: expected a path like /console (letters, digits, '-', '_', '.', '/'), or empty")]
    BasePath(String),
    /// `--secure-cookies` and `--insecure-cookies` were both given.
    #[error("--secure-cookies and --insecure-cookies cannot be used together: choose whether the browser reaches the console over HTTPS (--secure-cookies) or plain HTTP on loopback (--insecure-cookies)")]
    CookieFlags,
    /// Redis could not be reached, or its layout is not this version's.
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// `--listen`.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `--base-path` normalised: empty, or `/a/b` without a trailing slash.
pub fn parse_base_path(raw: &str) -> Result<String, ConsoleError> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = trimmed.starts_with('/')
        && !trimmed.contains("//")
        && !trimmed.split('/').any(|part| part == "." || part == "..")
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(trimmed.to_string())
    } else {
        Err(ConsoleError::BasePath(raw.to_string()))
    }
}

/// What every handler shares: the deployment's session (its connection, opened once), the
/// users, the URL prefix and the cookie policy.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    users: users::Users,
    base: String,
    secure_cookies: bool,
    limits: auth::LoginLimits,
    trusted_proxies: Vec<proxy::TrustedProxy>,
    verifications: tokio::sync::Semaphore,
    readings: Mutex<HashMap<NaiveDate, (Instant, Arc<Reading>)>>,
}

/// How long a report reading serves the routine, re-auth and failed pages. A reading scans
/// the date's ledger and every active login (as `producer report` does), so several
/// browsers refreshing the routine page, or an operator paging a list, share one; a change
/// made through this console drops it at once.
pub const READING_TTL: Duration = Duration::from_secs(5);

impl Console {
    /// A console over `session`'s deployment for `users`, served under `base` (normalised by
    /// [`parse_base_path`]), refusing logins past `limits` (a client behind one of
    /// `trusted_proxies` counted by its forwarded address); cookies are `Secure` unless
    /// `secure_cookies` is false (the browser talks plain HTTP to it on loopback).
    pub fn new(
        session: Session,
        users: users::Users,
        base: String,
        secure_cookies: bool,
        limits: auth::LoginLimits,
        trusted_proxies: Vec<proxy::TrustedProxy>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                session,
                users,
                base,
                secure_cookies,
                limits,
                trusted_proxies,
                verifications: tokio::sync::Semaphore::new(auth::VERIFY_PERMITS),
                readings: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The deployment's session, run by `user` (for the audit trail).
    pub fn session_for(&self, user: &str) -> Session {
        self.inner.session.for_actor(user)
    }

    /// The URL prefix (`""` or `/console`).
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// `path` (starting with `/`) under the prefix.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The report reading of `date`, at most [`READING_TTL`] old.
    async fn reading(&self, date: NaiveDate) -> Result<Arc<Reading>, OpsError> {
        let now = Instant::now();
        let cached = self.readings().get(&date).cloned();
        if let Some((at, reading)) = cached {
            if now.duration_since(at) < READING_TTL {
                return Ok(reading);
            }
        }
        let reading = Arc::new(self.session().reading(date).await?);
        let mut readings = self.readings();
        readings.retain(|_, (at, _)| now.duration_since(*at) < READING_TTL);
        readings.insert(date, (now, Arc::clone(&reading)));
        Ok(reading)
    }

    /// Forgets the cached readings, after a change that they would not show.
    fn forget_readings(&self) {
        self.readings().clear();
    }

    fn readings(&self) -> std::sync::MutexGuard<'_, HashMap<NaiveDate, (Instant, Arc<Reading>)>> {
        self.inner
            .readings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running console: where it listens, and its task.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The server; it ends when the shutdown token fires.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Loads the users, connects to Redis (failing fast, naming the URL), binds `--listen` and
/// serves the console until `shutdown` fires.
pub async fn start(
    settings: Settings,
    options: &ConsoleOptions,
    shutdown: CancellationToken,
) -> Result<Running, ConsoleError> {
    let base = parse_base_path(&options.base_path)?;
    let secure = cookies_secure(
        options.listen,
        options.secure_cookies,
        options.insecure_cookies,
    )?;
    let users = users::Users::load(&options.users_file)?;
    let session = Session::new(settings, "console");
    session.connection().await?;
    let console = Console::new(
        session,
        users,
        base,
        secure,
        auth::LoginLimits::default(),
        options.trusted_proxies.clone(),
    );
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| ConsoleError::Listen {
                addr: options.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ConsoleError::Listen {
            addr: options.listen,
            source,
        })?;
    let app = routes::app(console).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    });
    Ok(Running { addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_path_is_normalised_and_a_bad_one_is_named() {
        assert_eq!(parse_base_path("").unwrap(), "");
        assert_eq!(parse_base_path("/").unwrap(), "");
        assert_eq!(parse_base_path("/ops/console/").unwrap(), "/ops/console");
        for bad in ["console", "/a//b", "/a/../b", "/a b", "/a?x"] {
            let err = parse_base_path(bad).unwrap_err().to_string();
            assert!(err.contains("--base-path") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn cookies_are_secure_off_loopback_or_when_asked_and_both_flags_are_refused() {
        let loopback: SocketAddr = "127.0.0.1:8088".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8088".parse().unwrap();

        assert!(!cookies_secure(loopback, false, false).unwrap());
        assert!(cookies_secure(loopback, true, false).unwrap());
        assert!(cookies_secure(any, false, false).unwrap());
        assert!(!cookies_secure(any, false, true).unwrap());
        let err = cookies_secure(any, true, true).unwrap_err().to_string();
        assert!(
            err.contains("--secure-cookies") && err.contains("--insecure-cookies"),
            "{err}"
        );
    }
}

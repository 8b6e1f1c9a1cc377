//! `FlinksConfig`: where the Flinks API is, which credentials to send, and how long to wait.
//!
//! Every credential is optional because Flinks instances differ (contract §1: old toolbox
//! instances take no headers at all, `x-api-key` is a per-instance feature): a header is
//! sent exactly when its secret is configured. Secrets are `SecretString`s and `Debug`
//! prints only whether each one is set. This file does not read files or env vars; the
//! settings loader builds a `FlinksConfig` from them.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Flinks answers a synchronous call within 210 s or switches to 202 `OPERATION_DISPATCHED`
/// (contract §3 "Timeouts to configure"), so the detail timeout must be longer than this.
pub const FLINKS_SYNC_LIMIT: Duration = Duration::from_secs(210);

/// How the call trace names a login (`TRACE_LOGIN_IDS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceLoginIds {
    /// Its fingerprint (`lid:` + 16 hex): correlatable, resolvable with
    /// `producer logins lookup`, useless to whoever reads the logs.
    #[default]
    Fingerprint,
    /// The LoginId itself, for customers whose logs are as protected as the LoginIds.
    Full,
}

impl std::str::FromStr for TraceLoginIds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fingerprint" => Ok(Self::Fingerprint),
            "full" => Ok(Self::Full),
            _ => Err("expected fingerprint or full".into()),
        }
    }
}

/// How to reach one Flinks instance.
#[derive(Clone)]
pub struct FlinksConfig {
    /// The `https://{instance}-api.private.fin.ag/v3/{customerId}/BankingServices` prefix;
    /// endpoint names are appended as path segments.
    pub base_url: Url,
    /// Accept a plain-http `base_url` whose host is not loopback (see [`check_transport`]).
    /// Off by default: credentials and account data must not cross a network in clear.
    pub allow_insecure: bool,
    /// Secret key sent as `flinks-auth-key` to `/GenerateAuthorizeToken`. When set, every
    /// `authorize` first mints a fresh single-use token; when unset, `/Authorize` is called
    /// without any auth header.
    pub secret_key: Option<SecretString>,
    /// Sent as `x-api-key` on the data endpoints (GetAccountsDetail, its Async variant,
    /// SetScheduledRefresh).
    pub api_key: Option<SecretString>,
    /// Sent as `Authorization: Bearer …` to `/GetNightlyRefreshStatus`.
    pub bearer_secret: Option<SecretString>,
    /// Timeout of `/GenerateAuthorizeToken` and `/Authorize` (cached Authorize is "nearly
    /// instant"). Default 60 s.
    pub authorize_timeout: Duration,
    /// Timeout of the synchronous `/GetAccountsDetail` POST. Must exceed 210 s. Default 240 s.
    pub detail_timeout: Duration,
    /// Timeout of every other call (Async poll, SetScheduledRefresh, status). Default 30 s.
    pub default_timeout: Duration,
    /// Largest response body read; a longer body is abandoned at the cap (classified
    /// retryable, `body_too_large`). Default 16 MiB.
    pub max_body_bytes: usize,
    /// How the call trace names the login a call is about. Default: its fingerprint.
    pub trace_login_ids: TraceLoginIds,
}

impl FlinksConfig {
    /// Default `authorize_timeout`.
    pub const DEFAULT_AUTHORIZE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default `detail_timeout`.
    pub const DEFAULT_DETAIL_TIMEOUT: Duration = Duration::from_secs(240);
    /// Default `default_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default `max_body_bytes` (16 MiB).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

    /// A config for `base_url` with no credentials and the default timeouts and cap.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            allow_insecure: false,
            secret_key: None,
            api_key: None,
            bearer_secret: None,
            authorize_timeout: Self::DEFAULT_AUTHORIZE_TIMEOUT,
            detail_timeout: Self::DEFAULT_DETAIL_TIMEOUT,
            default_timeout: Self::DEFAULT_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            trace_login_ids: TraceLoginIds::Fingerprint,
        }
    }

    /// The config the settings describe (`FLINKS_BASE_URL`, the three secrets, the
    /// timeouts and body cap): one place, used by the worker and the producer's ops
    /// commands alike. Fails, naming `FLINKS_BASE_URL`, when it is unset.
    pub fn from_settings(
        settings: &crate::config::Settings,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut config = Self::new(settings.require_flinks_base_url()?.clone());
        config.allow_insecure = settings.flinks_allow_insecure;
        config.secret_key = settings.flinks_secret_key.clone();
        config.api_key = settings.flinks_api_key.clone();
        config.bearer_secret = settings.flinks_bearer_secret.clone();
        config.authorize_timeout = settings.authorize_timeout;
        config.detail_timeout = settings.detail_timeout;
        config.max_body_bytes = settings.max_body_bytes;
        config.trace_login_ids = settings.trace_login_ids;
        Ok(config)
    }

    /// Checks the invariants the client relies on, naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.base_url.scheme(), "http" | "https") {
            return Err(format!(
                "flinks base_url must be http(s), got scheme {:?}",
                self.base_url.scheme()
            ));
        }
        check_transport(&self.base_url, self.allow_insecure)
            .map_err(|reason| format!("flinks base_url {reason}"))?;
        if self.base_url.cannot_be_a_base() {
            return Err("flinks base_url cannot be used as a base URL".into());
        }
        if self.detail_timeout <= FLINKS_SYNC_LIMIT {
            return Err(format!(
                "flinks detail_timeout must be > 210s (Flinks answers within 210s or dispatches), got {:?}",
                self.detail_timeout
            ));
        }
        for (name, timeout) in [
            ("authorize_timeout", self.authorize_timeout),
            ("default_timeout", self.default_timeout),
        ] {
            if timeout.is_zero() {
                return Err(format!("flinks {name} must be > 0"));
            }
        }
        if self.max_body_bytes == 0 {
            return Err("flinks max_body_bytes must be > 0".into());
        }
        Ok(())
    }
}

/// Refuses plain http to Flinks unless the host is loopback (`localhost`, 127.0.0.0/8,
/// `::1`: a simulator on the same machine) or `allow_insecure` says so: the keys, tokens
/// and account data in these calls must not cross a network in clear.
pub fn check_transport(url: &Url, allow_insecure: bool) -> Result<(), String> {
    if url.scheme() != "http" || allow_insecure || is_loopback(url) {
        return Ok(());
    }
    Err(format!(
        "must be https: plain http is only accepted to a loopback host (localhost, \
         127.0.0.0/8, ::1) or with FLINKS_ALLOW_INSECURE=true, not to {}",
        url.host_str().unwrap_or("<no host>")
    ))
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl fmt::Debug for FlinksConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn set(secret: &Option<SecretString>) -> &'static str {
            if secret.is_some() {
                "<set>"
            } else {
                "<unset>"
            }
        }
        f.debug_struct("FlinksConfig")
            .field("base_url", &crate::config::redact_url(&self.base_url))
            .field("allow_insecure", &self.allow_insecure)
            .field("secret_key", &set(&self.secret_key))
            .field("api_key", &set(&self.api_key))
            .field("bearer_secret", &set(&self.bearer_secret))
            .field("authorize_timeout", &self.authorize_timeout)
            .field("detail_timeout", &self.detail_timeout)
            .field("default_timeout", &self.default_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:1/v3/cust/BankingServices").unwrap()
    }

    #[test]
    fn new_uses_the_documented_defaults() {
        let config = FlinksConfig::new(base());
        assert_eq!(config.authorize_timeout, Duration::from_secs(60));
        assert_eq!(config.detail_timeout, Duration::from_secs(240));
        assert_eq!(config.default_timeout, Duration::from_secs(30));
        assert_eq!(config.max_body_bytes, 16 * 1024 * 1024);
        assert!(config.secret_key.is_none() && config.api_key.is_none());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let mut config = FlinksConfig::new(base());
        config.secret_key = Some(SecretString::from("sk-very-secret"));
        config.api_key = Some(SecretString::from("api-very-secret"));
        config.bearer_secret = Some(SecretString::from("bearer-very-secret"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("<set>"), "{debug}");
    }

    #[test]
    fn a_detail_timeout_not_above_210_seconds_is_rejected() {
        let mut config = FlinksConfig::new(base());
        config.detail_timeout = Duration::from_secs(210);
        let err = config.validate().unwrap_err();
        assert!(err.contains("detail_timeout"), "{err}");
    }
}

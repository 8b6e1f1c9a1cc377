//! Which scripted outcome a LoginId gets.
//!
//! The simulator has no database of cards: every LoginId is mapped to a [`Scenario`] by
//! [`Rules`], in this order (first match wins):
//!
//! 1. `logins`: an exact LoginId;
//! 2. `unknown_prefixes`: a LoginId starting with one of them is unknown (`INVALID_LOGIN`);
//! 3. `prefixes`: the longest matching LoginId prefix;
//! 4. `mix`: a weighted choice made by a stable hash of the LoginId (FNV-1a 64 plus a
//!    finaliser), so the same LoginId always gets the same scenario, in every process and
//!    on every run (std's `DefaultHasher` is randomised per process and is not used);
//! 5. `default` (healthy unless set).
//!
//! This file only decides *which* scenario applies; what a scenario answers lives in
//! `routes.rs`. The rule file format is documented in the crate docs and in
//! `rules/demo.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::Error;

/// A scripted outcome for one LoginId.
///
/// Serialised externally tagged in snake_case (`"healthy"`, `{"pending":{"polls":3}}`).
/// Rule files also accept the shorthand strings of [`FromStr`]: `"pending:3"`,
/// `"aggregation_error:2"`, `"stale:30"`, or the bare name with default parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Authorize 200 with a fresh `LastRefresh`, then GetAccountsDetail 200.
    #[default]
    Healthy,
    /// Authorize 401 `QUESTION_NOT_FOUND` (the nightly refresh hit MFA). The error carries a
    /// RequestId whose GetAccountsDetail returns stale data (72 h old). Ineligible for nightly refresh.
    QuestionNotFound,
    /// Authorize 401 `INVALID_PASSWORD`. Ineligible for nightly refresh.
    InvalidPassword,
    /// Authorize 401 `DISABLED_LOGIN`. Ineligible for nightly refresh.
    DisabledLogin,
    /// Authorize 200, GetAccountsDetail 202 `OPERATION_PENDING`, then the Async endpoint
    /// answers 202 for `polls` polls and 200 afterwards.
    Pending {
        /// Number of 202 answers from `GetAccountsDetailAsync` before the 200.
        polls: u32,
    },
    /// Authorize 401 `RETRY_LATER`, always.
    RetryLater,
    /// Authorize 500 `AGGREGATION_ERROR` for the first `failures` Authorize calls of the
    /// LoginId (counted since start or the last reset), healthy afterwards. Its first
    /// `failures` SetScheduledRefresh calls fail the same way (counted separately).
    AggregationError {
        /// Number of failing Authorize calls.
        failures: u32,
    },
    /// Healthy, but `Login.LastRefresh` is `hours` hours old.
    Stale {
        /// Age of `LastRefresh`, in hours.
        hours: u32,
    },
    /// The first GetAccountsDetail of the LoginId answers 400 `SESSION_NONEXISTENT`
    /// (and drops that RequestId); healthy on a fresh Authorize.
    SessionExpiredOnce,
    /// Unknown LoginId: Authorize 401 `INVALID_LOGIN`.
    InvalidLogin,
    /// Authorize 400 `INVALID_LOGIN` ("LoginId is not valid"): the LoginId itself is rejected.
    InvalidLogin400,
    /// Authorize 401 `INVALID_LOGIN` whose message blames the stored credentials.
    InvalidLoginCredentials,
    /// Authorize 401 with a FlinksCode no version of the contract lists.
    UnknownReauthCode,
    /// Authorize HTTP 200 whose body says `HttpStatusCode: 401` `QUESTION_NOT_FOUND`.
    BodySays401,
    /// Authorize HTTP 200 whose body says `HttpStatusCode: 401` with no FlinksCode.
    BodySays401NoCode,
    /// Authorize 203 with an empty body (no JSON, no FlinksCode).
    Bare203,
    /// Authorize 401 `TOO_MANY_REQUESTS` on every call, whatever the throttle.
    Throttled,
    /// Authorize 202 `OPERATION_PENDING` with a RequestId; `GetAccountsDetailAsync` answers
    /// 202 for `polls` polls and 200 afterwards.
    AuthorizePending {
        /// Number of 202 answers from `GetAccountsDetailAsync` before the 200.
        polls: u32,
    },
}

/// Default number of 202 polls for `"pending"` without a parameter.
const DEFAULT_POLLS: u32 = 2;
/// Default number of failures for `"aggregation_error"` without a parameter.
const DEFAULT_FAILURES: u32 = 1;
/// Default age for `"stale"` without a parameter.
const DEFAULT_STALE_HOURS: u32 = 48;

impl Scenario {
    /// Whether `/GetNightlyRefreshStatus` lists a card with this scenario in `IneligibleCards`
    /// (the errors that need the user to relink; see the contract §4 eligibility rules).
    pub fn is_ineligible(&self) -> bool {
        matches!(
            self,
            Scenario::QuestionNotFound | Scenario::InvalidPassword | Scenario::DisabledLogin
        )
    }

    /// The snake_case name, without parameters.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::QuestionNotFound => "question_not_found",
            Scenario::InvalidPassword => "invalid_password",
            Scenario::DisabledLogin => "disabled_login",
            Scenario::Pending { .. } => "pending",
            Scenario::RetryLater => "retry_later",
            Scenario::AggregationError { .. } => "aggregation_error",
            Scenario::Stale { .. } => "stale",
            Scenario::SessionExpiredOnce => "session_expired_once",
            Scenario::InvalidLogin => "invalid_login",
            Scenario::InvalidLogin400 => "invalid_login_400",
            Scenario::InvalidLoginCredentials => "invalid_login_credentials",
            Scenario::UnknownReauthCode => "unknown_reauth_code",
            Scenario::BodySays401 => "body_says_401",
            Scenario::BodySays401NoCode => "body_says_401_no_code",
            Scenario::Bare203 => "bare_203",
            Scenario::Throttled => "throttled",
            Scenario::AuthorizePending { .. } => "authorize_pending",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Pending { polls } => write!(f, "pending:{polls}"),
            Scenario::AuthorizePending { polls } => write!(f, "authorize_pending:{polls}"),
            Scenario::AggregationError { failures } => write!(f, "aggregation_error:{failures}"),
            Scenario::Stale { hours } => write!(f, "stale:{hours}"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Scenario {
    type Err = Error;

    /// Parses `name` or `name:N` (N only for `pending`, `authorize_pending`,
    /// `aggregation_error`, `stale`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::Scenario(s.to_owned());
        let (name, param) = match s.trim().split_once(':') {
            Some((name, n)) => (
                name.trim(),
                Some(n.trim().parse::<u32>().map_err(|_| bad())?),
            ),
            None => (s.trim(), None),
        };
        let no_param = |scenario: Scenario| param.is_none().then_some(scenario).ok_or_else(bad);
        match name {
            "healthy" => no_param(Scenario::Healthy),
            "question_not_found" => no_param(Scenario::QuestionNotFound),
            "invalid_password" => no_param(Scenario::InvalidPassword),
            "disabled_login" => no_param(Scenario::DisabledLogin),
            "retry_later" => no_param(Scenario::RetryLater),
            "session_expired_once" => no_param(Scenario::SessionExpiredOnce),
            "invalid_login" => no_param(Scenario::InvalidLogin),
            "invalid_login_400" => no_param(Scenario::InvalidLogin400),
            "invalid_login_credentials" => no_param(Scenario::InvalidLoginCredentials),
            "unknown_reauth_code" => no_param(Scenario::UnknownReauthCode),
            "body_says_401" => no_param(Scenario::BodySays401),
            "body_says_401_no_code" => no_param(Scenario::BodySays401NoCode),
            "bare_203" => no_param(Scenario::Bare203),
            "throttled" => no_param(Scenario::Throttled),
            "authorize_pending" => Ok(Scenario::AuthorizePending {
                polls: param.unwrap_or(DEFAULT_POLLS),
            }),
            "pending" => Ok(Scenario::Pending {
                polls: param.unwrap_or(DEFAULT_POLLS),
            }),
            "aggregation_error" => Ok(Scenario::AggregationError {
                failures: param.unwrap_or(DEFAULT_FAILURES),
            }),
            "stale" => Ok(Scenario::Stale {
                hours: param.unwrap_or(DEFAULT_STALE_HOURS),
            }),
            _ => Err(bad()),
        }
    }
}

/// A scenario as written in a rule file: shorthand string or the tagged form.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScenarioSpec {
    Short(String),
    Full(Scenario),
}

impl ScenarioSpec {
    fn resolve(self) -> Result<Scenario, Error> {
        match self {
            ScenarioSpec::Short(s) => s.parse(),
            ScenarioSpec::Full(s) => Ok(s),
        }
    }
}

/// The raw rule file, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    default: Option<ScenarioSpec>,
    #[serde(default)]
    logins: BTreeMap<String, ScenarioSpec>,
    #[serde(default)]
    prefixes: BTreeMap<String, ScenarioSpec>,
    #[serde(default)]
    unknown_prefixes: Vec<String>,
    #[serde(default)]
    mix: BTreeMap<String, u32>,
}

/// Validated scenario rules; see the module docs for the matching order.
///
/// `Rules::default()` makes every LoginId healthy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    default: Scenario,
    logins: BTreeMap<String, Scenario>,
    /// Sorted longest first, so the longest prefix wins.
    prefixes: Vec<(String, Scenario)>,
    unknown_prefixes: Vec<String>,
    /// Weighted entries in a stable order (the rule file's keys, sorted).
    mix: Vec<(Scenario, u32)>,
    mix_total: u64,
}

impl Rules {
    /// Every LoginId gets `scenario` (unless more rules are added).
    pub fn all(scenario: Scenario) -> Self {
        Rules {
            default: scenario,
            ..Rules::default()
        }
    }

    /// Adds an exact LoginId rule.
    pub fn with_login(mut self, login_id: impl Into<String>, scenario: Scenario) -> Self {
        self.logins.insert(login_id.into(), scenario);
        self
    }

    /// Adds a prefix rule (the longest matching prefix wins).
    pub fn with_prefix(mut self, prefix: impl Into<String>, scenario: Scenario) -> Self {
        let prefix = prefix.into();
        self.prefixes.retain(|(p, _)| *p != prefix);
        self.prefixes.push((prefix, scenario));
        self.prefixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        self
    }

    /// LoginIds starting with `prefix` are unknown to the simulator (401 `INVALID_LOGIN`).
    pub fn with_unknown_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.unknown_prefixes.push(prefix.into());
        self
    }

    /// Replaces the weighted mix used for LoginIds no other rule matches.
    /// Entries with weight 0 never match; an empty or all-zero mix falls back to the default.
    pub fn with_mix(mut self, mix: impl IntoIterator<Item = (Scenario, u32)>) -> Self {
        self.mix = mix.into_iter().filter(|(_, w)| *w > 0).collect();
        self.mix_total = self.mix.iter().map(|(_, w)| u64::from(*w)).sum();
        self
    }

    /// Parses a TOML rule file.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        let raw: RulesFile = toml::from_str(text).map_err(|e| Error::Rules(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Parses a JSON rule file (same keys as the TOML format).
    pub fn from_json_str(text: &str) -> Result<Self, Error> {
        let raw: RulesFile = serde_json::from_str(text).map_err(|e| Error::Rules(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Loads a rule file: JSON if the name ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadRules {
            path: path.to_owned(),
            source,
        })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        parsed.map_err(|e| Error::Rules(format!("{}: {e}", path.display())))
    }

    fn from_raw(raw: RulesFile) -> Result<Self, Error> {
        let mut rules = match raw.default {
            Some(spec) => Rules::all(spec.resolve()?),
            None => Rules::default(),
        };
        for (login, spec) in raw.logins {
            rules = rules.with_login(login, spec.resolve()?);
        }
        for (prefix, spec) in raw.prefixes {
            rules = rules.with_prefix(prefix, spec.resolve()?);
        }
        for prefix in raw.unknown_prefixes {
            rules = rules.with_unknown_prefix(prefix);
        }
        let mix = raw
            .mix
            .into_iter()
            .map(|(name, weight)| Ok((name.parse::<Scenario>()?, weight)))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(rules.with_mix(mix))
    }

    /// The scenario `login_id` gets. Pure and deterministic: tests use it to predict answers.
    pub fn scenario_for(&self, login_id: &str) -> Scenario {
        if let Some(s) = self.logins.get(login_id) {
            return *s;
        }
        if self
            .unknown_prefixes
            .iter()
            .any(|p| login_id.starts_with(p.as_str()))
        {
            return Scenario::InvalidLogin;
        }
        if let Some((_, s)) = self
            .prefixes
            .iter()
            .find(|(p, _)| login_id.starts_with(p.as_str()))
        {
            return *s;
        }
        if self.mix_total > 0 {
            // Map the hash onto [0, total) with a multiply-shift, which uses the high bits.
            let point =
                ((u128::from(stable_hash(login_id)) * u128::from(self.mix_total)) >> 64) as u64;
            let mut acc = 0u64;
            for (scenario, weight) in &self.mix {
                acc += u64::from(*weight);
                if point < acc {
                    return *scenario;
                }
            }
        }
        self.default
    }

    /// LoginIds named explicitly in `logins` (used for `/GetNightlyRefreshStatus`).
    pub fn explicit_logins(&self) -> impl Iterator<Item = (&str, Scenario)> {
        self.logins.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// FNV-1a 64 of `s`, followed by the murmur3 64-bit finaliser so that similar LoginIds
/// (`login-0001`, `login-0002`) spread over all bits. Stable across processes and versions.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_round_trips_through_display() {
        for s in [
            "healthy",
            "pending:3",
            "aggregation_error:2",
            "stale:30",
            "invalid_login",
        ] {
            assert_eq!(s.parse::<Scenario>().unwrap().to_string(), s);
        }
        assert_eq!(
            "pending".parse::<Scenario>().unwrap(),
            Scenario::Pending { polls: 2 }
        );
        assert!("healthy:2".parse::<Scenario>().is_err());
        assert!("nope".parse::<Scenario>().is_err());
    }

    #[test]
    fn stable_hash_is_fixed_across_runs() {
        assert_eq!(stable_hash("abc"), stable_hash("abc"));
        assert_ne!(stable_hash("login-1"), stable_hash("login-2"));
    }
}

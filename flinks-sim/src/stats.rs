//! What the simulator saw, for assertions in tests and benchmark reports.
//!
//! [`Stats`] is both the in-process snapshot (`SimHandle::stats`) and the JSON of
//! `GET /_sim/stats`. Endpoint names are the [`endpoint`] constants. The recorder here is
//! updated by `routes.rs` under the simulator's single lock; it never logs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::throttle::max_in_window;

/// Stable endpoint names used as keys in [`Stats`].
pub mod endpoint {
    /// `POST /GenerateAuthorizeToken`
    pub const GENERATE_AUTHORIZE_TOKEN: &str = "generate_authorize_token";
    /// `POST /Authorize`
    pub const AUTHORIZE: &str = "authorize";
    /// `POST /GetAccountsDetail`
    pub const GET_ACCOUNTS_DETAIL: &str = "get_accounts_detail";
    /// `GET /GetAccountsDetailAsync/{requestId}`
    pub const GET_ACCOUNTS_DETAIL_ASYNC: &str = "get_accounts_detail_async";
    /// `PATCH /SetScheduledRefresh`
    pub const SET_SCHEDULED_REFRESH: &str = "set_scheduled_refresh";
    /// `GET /GetNightlyRefreshStatus`
    pub const GET_NIGHTLY_REFRESH_STATUS: &str = "get_nightly_refresh_status";
}

/// Counts of injected faults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// 500 answers (JSON or HTML).
    pub errors: u64,
    /// Calls that hung.
    pub hangs: u64,
    /// Truncated bodies.
    pub malformed: u64,
}

/// A snapshot of the simulator's counters. Same shape as `GET /_sim/stats`:
///
/// ```json
/// {
///   "calls": {"authorize": {"200": 5, "401": 2}, "get_accounts_detail": {"200": 5}},
///   "calls_by_login": {"login-1": {"authorize": 1, "get_accounts_detail": 1}},
///   "accounts_delivered_by_login": {"login-1": 1},
///   "scheduled_refresh_by_login": {"login-2": [false, true]},
///   "throttle_violations": 0,
///   "throttle_window_ms": 60000,
///   "max_authorize_in_any_60s_window": 7,
///   "max_authorize_in_any_1s_window": 3,
///   "authorize_timestamps_ms": [1764048967612, 1764048967630],
///   "faults": {"errors": 0, "hangs": 0, "malformed": 0}
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// endpoint -> HTTP status (as a string) -> calls. Hung calls count as 504 when they start.
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// LoginId -> endpoint -> calls (GetAccountsDetail* are attributed via their RequestId).
    pub calls_by_login: BTreeMap<String, BTreeMap<String, u64>>,
    /// LoginId -> GetAccountsDetail(+Async) 200 answers that carried its accounts intact
    /// (a truncated body is not counted): how often its data was actually handed out.
    #[serde(default)]
    pub accounts_delivered_by_login: BTreeMap<String, u64>,
    /// LoginId -> the `IsActivated` value of every SetScheduledRefresh call it received, in
    /// arrival order (failed calls included), so a test can assert one call per change.
    #[serde(default)]
    pub scheduled_refresh_by_login: BTreeMap<String, Vec<bool>>,
    /// Authorize calls that arrived when `max_calls` calls had already been accepted in the
    /// trailing throttle window.
    pub throttle_violations: u64,
    /// The window used for `max_authorize_in_any_60s_window`: the throttle window if a
    /// throttle is configured, else 60 s.
    pub throttle_window_ms: u64,
    /// The largest number of Authorize calls (accepted and rejected alike) received within any
    /// sliding window of `throttle_window_ms` (60 s by default, hence the name).
    pub max_authorize_in_any_60s_window: u64,
    /// The largest number of Authorize calls received within any sliding 1 s window.
    pub max_authorize_in_any_1s_window: u64,
    /// Arrival time of every Authorize call, in ms since the Unix epoch, in arrival order.
    pub authorize_timestamps_ms: Vec<u64>,
    /// The LoginId of every Authorize call that named one, in arrival order.
    #[serde(default)]
    pub authorize_logins: Vec<String>,
    /// Injected faults.
    pub faults: FaultCounts,
}

impl Stats {
    /// Calls to `endpoint` (see [`endpoint`]) answered with `status`.
    pub fn calls(&self, endpoint: &str, status: u16) -> u64 {
        self.calls
            .get(endpoint)
            .and_then(|m| m.get(&status.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// All calls to `endpoint`, whatever the status.
    pub fn total_calls(&self, endpoint: &str) -> u64 {
        self.calls
            .get(endpoint)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// The `IsActivated` values SetScheduledRefresh received for `login`, in order.
    pub fn scheduled_refresh_calls(&self, login: &str) -> &[bool] {
        self.scheduled_refresh_by_login
            .get(login)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Calls to `endpoint` for `login`.
    pub fn calls_for_login(&self, login: &str, endpoint: &str) -> u64 {
        self.calls_by_login
            .get(login)
            .and_then(|m| m.get(endpoint))
            .copied()
            .unwrap_or(0)
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug)]
pub(crate) struct Recorder {
    calls: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    calls_by_login: BTreeMap<String, BTreeMap<&'static str, u64>>,
    accounts_delivered_by_login: BTreeMap<String, u64>,
    scheduled_refresh_by_login: BTreeMap<String, Vec<bool>>,
    throttle_violations: u64,
    window: Duration,
    /// Monotonic arrival offsets since `start`, for the window maths.
    authorize_offsets: Vec<Duration>,
    authorize_unix_ms: Vec<u64>,
    authorize_logins: Vec<String>,
    faults: FaultCounts,
    start: Instant,
}

impl Recorder {
    pub(crate) fn new(window: Duration) -> Self {
        Recorder {
            calls: BTreeMap::new(),
            calls_by_login: BTreeMap::new(),
            accounts_delivered_by_login: BTreeMap::new(),
            scheduled_refresh_by_login: BTreeMap::new(),
            throttle_violations: 0,
            window,
            authorize_offsets: Vec::new(),
            authorize_unix_ms: Vec::new(),
            authorize_logins: Vec::new(),
            faults: FaultCounts::default(),
            start: Instant::now(),
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = Recorder::new(self.window);
    }

    pub(crate) fn call(&mut self, endpoint: &'static str, status: u16) {
        *self
            .calls
            .entry(endpoint)
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    pub(crate) fn login_call(&mut self, login: &str, endpoint: &'static str) {
        if endpoint == endpoint::AUTHORIZE {
            self.authorize_logins.push(login.to_owned());
        }
        if let Some(m) = self.calls_by_login.get_mut(login) {
            *m.entry(endpoint).or_default() += 1;
        } else {
            self.calls_by_login
                .insert(login.to_owned(), BTreeMap::from([(endpoint, 1)]));
        }
    }

    pub(crate) fn accounts_delivered(&mut self, login: &str) {
        *self
            .accounts_delivered_by_login
            .entry(login.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn scheduled_refresh(&mut self, login: &str, activated: bool) {
        self.scheduled_refresh_by_login
            .entry(login.to_owned())
            .or_default()
            .push(activated);
    }

    pub(crate) fn authorize_arrival(&mut self, now: Instant) {
        self.authorize_offsets
            .push(now.saturating_duration_since(self.start));
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.authorize_unix_ms.push(unix_ms);
    }

    pub(crate) fn violation(&mut self) {
        self.throttle_violations += 1;
    }

    pub(crate) fn faults(&mut self) -> &mut FaultCounts {
        &mut self.faults
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            calls: self
                .calls
                .iter()
                .map(|(e, m)| {
                    let by_status = m.iter().map(|(s, n)| (s.to_string(), *n)).collect();
                    ((*e).to_owned(), by_status)
                })
                .collect(),
            calls_by_login: self
                .calls_by_login
                .iter()
                .map(|(l, m)| {
                    let by_ep = m.iter().map(|(e, n)| ((*e).to_owned(), *n)).collect();
                    (l.clone(), by_ep)
                })
                .collect(),
            accounts_delivered_by_login: self.accounts_delivered_by_login.clone(),
            scheduled_refresh_by_login: self.scheduled_refresh_by_login.clone(),
            throttle_violations: self.throttle_violations,
            throttle_window_ms: self.window.as_millis() as u64,
            max_authorize_in_any_60s_window: max_in_window(&self.authorize_offsets, self.window),
            max_authorize_in_any_1s_window: max_in_window(
                &self.authorize_offsets,
                Duration::from_secs(1),
            ),
            authorize_timestamps_ms: self.authorize_unix_ms.clone(),
            authorize_logins: self.authorize_logins.clone(),
            faults: self.faults.clone(),
        }
    }
}

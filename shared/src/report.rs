//! The report of one routine date: how many logins are done, refreshed, stale, waiting for
//! re-authentication or failed, how many are pending, how fast it goes and when it will
//! end, and which logins newly need re-authentication since the day before.
//!
//! It reads the ledger and the registry only; it changes nothing. Lists are sorted by
//! LoginId so two reports of the same state are identical, and so [`Report::page`] can cut
//! them into pages by LoginId (a keyset cursor: a page never repeats or skips a login that
//! was listed when the first page was read). The JSON field names are a contract with ops
//! tooling: rename nothing without a note in the README.
//!
//! `refreshed` counts every login whose accounts were fetched and stored (one results
//! stream entry each), stale ones included; `stale` is the subset whose Flinks
//! `LastRefresh` is older than `STALE_AFTER`. The sampler's
//! `routine_done_logins{outcome}` gauges count the same way.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::{FlinksCode, LoginId};
use crate::ledger::{FailureReason, Ledger, LedgerError, LedgerOutcome};
use crate::ratelimit::eta_at_rate;
use crate::registry::{Registry, RegistryError};

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A login in the re-auth or failed list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportItem {
    /// The login.
    pub login_id: LoginId,
    /// The FlinksCode given, if any.
    pub flinks_code: Option<FlinksCode>,
    /// Flinks' message, or the failure's reason.
    pub message: Option<String>,
    /// A re-auth on a 401 whose FlinksCode this version does not know (or that had none).
    pub unrecognised_code: bool,
    /// Why a failure calls for a particular action (`invalid_login`, `throttled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
}

/// The report of one routine date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The routine date.
    pub date: NaiveDate,
    /// When the report was built.
    pub generated_at: DateTime<Utc>,
    /// Active logins in the registry now.
    pub active: u64,
    /// Logins enqueued for the date by `routine run` (0 before it ran).
    pub expected: u64,
    /// Logins with an outcome (refreshed + re-auth + failed + superseded).
    pub done: u64,
    /// `expected - done`, never negative.
    pub pending: u64,
    /// Logins refreshed (stale ones included).
    pub refreshed: u64,
    /// Refreshed logins whose Flinks `LastRefresh` is stale.
    pub stale: Vec<LoginId>,
    /// Logins that need re-authentication.
    pub reauth: Vec<ReportItem>,
    /// Logins that failed.
    pub failed: Vec<ReportItem>,
    /// Logins whose job still waited when a later date's routine started (that date's job
    /// replaced it: one pending authorize per login), whose job came after the date's
    /// deadline, or whose login was deactivated before its job ran: no longer pending here.
    pub superseded: u64,
    /// The failed logins whose LoginId Flinks rejected (reason `invalid_login`): remove or
    /// fix them; asking the user to reconnect would not help.
    pub invalid_login: Vec<LoginId>,
    /// Logins that need re-authentication on this date but did not the day before.
    pub new_reauth: Vec<LoginId>,
    /// Retries spent on the date.
    pub retries: u64,
    /// When the routine of the date started, if it did.
    pub started_at: Option<DateTime<Utc>>,
    /// Logins done per minute since the start.
    pub throughput_per_minute: Option<f64>,
    /// Logins done per minute over the last [`RECENT_WINDOW_MINUTES`] minutes (since the
    /// start when it is more recent; superseded logins excluded: they called nothing).
    pub recent_per_minute: Option<f64>,
    /// Authorize jobs waiting or running in the queue, every routine date included.
    pub backlog: u64,
    /// Seconds until the whole backlog is authorized (this date's pending logins at least):
    /// at the configured rate, or at the observed throughput when the limiter is off;
    /// `null` when unknown.
    pub eta_seconds: Option<u64>,
    /// The date's deadline: past it no job of the date calls Flinks (`null`: none stored).
    pub deadline: Option<DateTime<Utc>>,
    /// The oldest last successful refresh among active logins (never refreshed ones are
    /// counted in `never_refreshed` instead); `null` when none was ever refreshed.
    pub oldest_refresh_at: Option<DateTime<Utc>>,
    /// Age of that refresh at `generated_at`, in seconds: how stale the stalest data is.
    pub oldest_data_age_seconds: Option<u64>,
    /// Active logins never refreshed.
    pub never_refreshed: u64,
}

/// The window of [`Report::recent_per_minute`], minutes.
pub const RECENT_WINDOW_MINUTES: i64 = 5;

/// Logins done per minute over the last [`RECENT_WINDOW_MINUTES`] before `now` (or since
/// `started_at` when later); `None` before the routine started.
fn recent_per_minute(
    entries: &[(LoginId, LedgerOutcome)],
    started_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<f64> {
    let start = started_at?;
    let from = (now - Duration::minutes(RECENT_WINDOW_MINUTES)).max(start);
    let minutes = (now - from).num_milliseconds() as f64 / 60_000.0;
    if minutes <= 0.0 {
        return None;
    }
    let n = entries
        .iter()
        .filter(|(_, o)| !matches!(o, LedgerOutcome::Superseded { .. }))
        .filter(|(_, o)| o.at() > from && o.at() <= now)
        .count();
    Some(n as f64 / minutes)
}

fn item(login_id: &LoginId, outcome: &LedgerOutcome) -> ReportItem {
    ReportItem {
        login_id: login_id.clone(),
        flinks_code: outcome.flinks_code().cloned(),
        message: outcome.message().map(str::to_string),
        unrecognised_code: outcome.has_unrecognised_code(),
        reason: outcome.failure_reason(),
    }
}

/// Builds the report of `date` as of `now`, with the configured `rate_per_minute`
/// (`0` = limiter off) and the authorize jobs waiting or running (`backlog`, every date).
pub async fn build(
    ledger: &Ledger,
    registry: &Registry,
    date: NaiveDate,
    rate_per_minute: f64,
    backlog: u64,
    now: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let mut entries = ledger.entries(date).await?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut refreshed = 0u64;
    let mut superseded = 0u64;
    let (mut stale, mut reauth, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (login, outcome) in &entries {
        match outcome {
            LedgerOutcome::Refreshed {
                stale: is_stale, ..
            } => {
                refreshed += 1;
                if *is_stale {
                    stale.push(login.clone());
                }
            }
            LedgerOutcome::NeedsReauth { .. } => reauth.push(item(login, outcome)),
            LedgerOutcome::Failed { .. } => failed.push(item(login, outcome)),
            LedgerOutcome::Superseded { .. } => superseded += 1,
        }
    }
    let previous: HashSet<LoginId> = match date.pred_opt() {
        Some(day_before) => ledger
            .entries(day_before)
            .await?
            .into_iter()
            .filter(|(_, o)| matches!(o, LedgerOutcome::NeedsReauth { .. }))
            .map(|(login, _)| login)
            .collect(),
        None => HashSet::new(),
    };
    let invalid_login = failed
        .iter()
        .filter(|f: &&ReportItem| f.reason == Some(FailureReason::InvalidLogin))
        .map(|f| f.login_id.clone())
        .collect();
    let new_reauth = reauth
        .iter()
        .filter(|r| !previous.contains(&r.login_id))
        .map(|r| r.login_id.clone())
        .collect();

    let done = entries.len() as u64;
    let expected = ledger.expected(date).await?;
    let pending = expected.saturating_sub(done);
    let started_at = ledger.started_at(date).await?;
    let throughput_per_minute = started_at.and_then(|start| {
        let minutes = (now - start).num_milliseconds() as f64 / 60_000.0;
        (minutes > 0.0).then(|| done as f64 / minutes)
    });
    let recent_per_minute = recent_per_minute(&entries, started_at, now);
    // Jobs run in queue order, whatever their date: the whole backlog is what stands
    // between now and the end of the routine.
    let work = pending.max(backlog);
    let eta_seconds = if work == 0 {
        Some(0)
    } else if let Some(eta) = eta_at_rate(rate_per_minute, work) {
        Some(eta.as_secs())
    } else {
        throughput_per_minute
            .filter(|t| *t > 0.0)
            .map(|t| (work as f64 / t * 60.0).ceil() as u64)
    };
    let age = registry.data_age().await?;
    Ok(Report {
        date,
        generated_at: now,
        active: registry.count_active().await?,
        expected,
        done,
        pending,
        refreshed,
        stale,
        reauth,
        failed,
        superseded,
        invalid_login,
        new_reauth,
        retries: ledger.retries(date).await?,
        started_at,
        throughput_per_minute,
        recent_per_minute,
        backlog,
        eta_seconds,
        deadline: None,
        oldest_refresh_at: age.oldest_refresh_at,
        oldest_data_age_seconds: age
            .oldest_refresh_at
            .map(|at| (now - at).num_seconds().max(0) as u64),
        never_refreshed: age.never_refreshed,
    })
}

/// Where a page of the report's lists starts: [`Cursor::Start`] (`start`), or after the
/// LoginId a previous page gave as its `next_cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The first page.
    Start,
    /// The page after this LoginId.
    After(LoginId),
}

/// A `--cursor` value that is neither `start` nor a `next_cursor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor {0:?}: expected `start` or the next_cursor of the previous page (a LoginId)")]
pub struct CursorError(String);

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("start") {
            return Ok(Self::Start);
        }
        LoginId::parse(raw)
            .map(Self::After)
            .map_err(|_| CursorError(raw.chars().take(64).collect()))
    }
}

/// How many logins each list holds in the whole report (a page's lists hold fewer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListTotals {
    /// Refreshed logins with stale data.
    pub stale: u64,
    /// Logins that need re-authentication.
    pub reauth: u64,
    /// Logins that failed.
    pub failed: u64,
    /// Failed logins whose LoginId Flinks rejected.
    pub invalid_login: u64,
    /// Logins newly needing re-authentication.
    pub new_reauth: u64,
}

/// One page of a report: every count, and the lists cut to one LoginId range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportPage {
    /// The report, its lists holding only this page's logins.
    #[serde(flatten)]
    pub report: Report,
    /// The lists' full lengths.
    pub totals: ListTotals,
    /// Pass as `--cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

impl Report {
    /// The page of the lists that starts at `cursor` and covers the next `limit` listed
    /// logins (a login in several lists, e.g. failed and invalid, counts once): each list
    /// keeps its logins in that LoginId range.
    pub fn page(&self, cursor: &Cursor, limit: usize) -> ReportPage {
        let after = |login: &LoginId| match cursor {
            Cursor::Start => true,
            Cursor::After(c) => login > c,
        };
        let mut listed: Vec<&LoginId> = self
            .stale
            .iter()
            .chain(self.reauth.iter().map(|i| &i.login_id))
            .chain(self.failed.iter().map(|i| &i.login_id))
            .filter(|l| after(l))
            .collect();
        listed.sort();
        listed.dedup();
        let limit = limit.max(1);
        let (last, next_cursor) = match (listed.get(limit - 1), listed.len() > limit) {
            (Some(last), true) => (Some((*last).clone()), Some(last.as_str().to_string())),
            _ => (None, None),
        };
        let within = |login: &LoginId| after(login) && last.as_ref().is_none_or(|l| login <= l);
        let mut report = self.clone();
        report.stale.retain(|l| within(l));
        report.reauth.retain(|i| within(&i.login_id));
        report.failed.retain(|i| within(&i.login_id));
        report.invalid_login.retain(|l| within(l));
        report.new_reauth.retain(|l| within(l));
        ReportPage {
            report,
            totals: ListTotals {
                stale: self.stale.len() as u64,
                reauth: self.reauth.len() as u64,
                failed: self.failed.len() as u64,
                invalid_login: self.invalid_login.len() as u64,
                new_reauth: self.new_reauth.len() as u64,
            },
            next_cursor,
        }
    }
}

impl Report {
    /// A plain-text rendering for terminals: the counts, the re-auth and failed logins per
    /// FlinksCode, and at most `limit` LoginIds per list, each cut list ending with how many
    /// more there are (the JSON report keeps every list whole).
    pub fn render_text(&self, limit: usize) -> String {
        let mut out = String::new();
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let rows: [(&str, String); 14] = [
            ("date", self.date.to_string()),
            ("active logins", self.active.to_string()),
            ("expected", self.expected.to_string()),
            ("done", self.done.to_string()),
            ("pending", self.pending.to_string()),
            ("refreshed", self.refreshed.to_string()),
            ("stale", self.stale.len().to_string()),
            (
                "needs re-auth",
                format!("{} ({} new)", self.reauth.len(), self.new_reauth.len()),
            ),
            ("failed", self.failed.len().to_string()),
            ("superseded", self.superseded.to_string()),
            ("retries", self.retries.to_string()),
            (
                "backlog",
                format!("{} authorize jobs (all dates)", self.backlog),
            ),
            (
                "throughput",
                dash(self.throughput_per_minute.map(|t| format!("{t:.1}/min"))),
            ),
            (
                "last 5 min",
                dash(self.recent_per_minute.map(|t| format!("{t:.1}/min"))),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "{name:<16}{value}");
        }
        let _ = writeln!(
            out,
            "{:<16}{}",
            "eta",
            dash(self.eta_seconds.map(|s| {
                humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
            }))
        );
        let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        let deadline = match self.deadline {
            None => "- (none stored)".to_string(),
            Some(d) if d <= self.generated_at => format!("{} (passed)", when(d)),
            Some(d) => format!(
                "{} (in {})",
                when(d),
                humantime::format_duration(std::time::Duration::from_secs(
                    (d - self.generated_at).num_seconds().max(0) as u64
                ))
            ),
        };
        let _ = writeln!(out, "{:<16}{}", "deadline", deadline);
        let oldest = match (self.oldest_refresh_at, self.oldest_data_age_seconds) {
            (Some(at), Some(age)) => format!(
                "{} old (refreshed {})",
                humantime::format_duration(std::time::Duration::from_secs(age)),
                when(at)
            ),
            _ => "- (no active login refreshed yet)".to_string(),
        };
        let _ = writeln!(out, "{:<16}{}", "oldest data", oldest);
        let _ = writeln!(
            out,
            "{:<16}{} active logins",
            "never refreshed", self.never_refreshed
        );
        let more = |out: &mut String, total: usize| {
            if total > limit {
                let _ = writeln!(
                    out,
                    "  … and {} more (--limit N shows more; --json lists them all)",
                    total - limit
                );
            }
        };
        let mut by_code: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
        for (kind, items) in [("needs re-auth", &self.reauth), ("failed", &self.failed)] {
            for i in items {
                let code = i.flinks_code.as_ref().map_or("-", |c| c.as_str());
                *by_code.entry((kind, code)).or_default() += 1;
            }
        }
        if !by_code.is_empty() {
            let _ = writeln!(
                out,
                "
{:<16}{:<36}LOGINS",
                "OUTCOME", "FLINKS CODE"
            );
            for ((kind, code), n) in &by_code {
                let _ = writeln!(out, "{kind:<16}{code:<36}{n}");
            }
        }
        let list = |out: &mut String, title: &str, items: &[ReportItem]| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title}:");
            let _ = writeln!(
                out,
                "  {:<38}{:<36}{:<15}MESSAGE",
                "LOGIN ID", "FLINKS CODE", "NOTE"
            );
            for i in items.iter().take(limit) {
                let note = match (i.unrecognised_code, i.reason) {
                    (true, _) => "unrecognised",
                    (false, Some(reason)) => reason.as_str(),
                    (false, None) => "-",
                };
                let _ = writeln!(
                    out,
                    "  {:<38}{:<36}{:<15}{}",
                    i.login_id.as_str(),
                    i.flinks_code.as_ref().map(|c| c.as_str()).unwrap_or("-"),
                    note,
                    i.message.as_deref().unwrap_or("-")
                );
            }
            more(out, items.len());
        };
        list(&mut out, "needs re-auth", &self.reauth);
        list(&mut out, "failed", &self.failed);
        if !self.invalid_login.is_empty() {
            let _ = writeln!(
                out,
                "\ninvalid LoginIds (Flinks rejected the LoginId itself: remove or fix it, do not ask the user):"
            );
            for login in self.invalid_login.iter().take(limit) {
                let _ = writeln!(out, "  {}", login.as_str());
            }
            more(&mut out, self.invalid_login.len());
        }
        if !self.stale.is_empty() {
            let _ = writeln!(out, "\nstale:");
            for login in self.stale.iter().take(limit) {
                let _ = writeln!(out, "  {}", login.as_str());
            }
            more(&mut out, self.stale.len());
        }
        if !self.new_reauth.is_empty() {
            let _ = writeln!(out, "\nnewly needing re-auth since the day before:");
            for login in self.new_reauth.iter().take(limit) {
                let _ = writeln!(out, "  {}", login.as_str());
            }
            more(&mut out, self.new_reauth.len());
        }
        out
    }
}

/// One reading of everything `report` and its live view show: the report, the control
/// state and the stats snapshot, read together.
#[derive(Debug, Clone)]
pub struct Reading {
    /// The report of the date asked for.
    pub report: Report,
    /// The rate limit in force and the paused queues.
    pub control: crate::control::ControlView,
    /// The queues and workers.
    pub snapshot: crate::ops::stats::Snapshot,
}

/// The report or one page of it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ReportBody<'a> {
    /// The whole report.
    Full(&'a Report),
    /// One page of its lists.
    Page(Box<ReportPage>),
}

/// `report --json`: the report (or a page of it) with the control state.
#[derive(Debug, Serialize)]
pub struct ReportJson<'a> {
    /// The report's fields.
    #[serde(flatten)]
    pub report: ReportBody<'a>,
    /// The control state.
    pub control: &'a crate::control::ControlView,
}

impl Reading {
    /// The JSON report: the page at `cursor` with `limit` listed logins, or everything.
    pub fn json(&self, cursor: Option<&Cursor>, limit: usize) -> ReportJson<'_> {
        let report = match cursor {
            Some(cursor) => ReportBody::Page(Box::new(self.report.page(cursor, limit))),
            None => ReportBody::Full(&self.report),
        };
        ReportJson {
            report,
            control: &self.control,
        }
    }

    /// The text report (at most `limit` LoginIds per list), then the control state, with
    /// control characters escaped.
    pub fn render_text(&self, limit: usize) -> String {
        let report = crate::text::escape_lines(&self.report.render_text(limit));
        let control = crate::text::escape_lines(&self.control.render_text());
        format!("{report}\n{control}")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 10, 3, minute, second)
            .unwrap()
    }

    fn done_at(n: u32, when: DateTime<Utc>) -> (LoginId, LedgerOutcome) {
        let login = LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap();
        let outcome = LedgerOutcome::Failed {
            flinks_code: None,
            http_status: None,
            message: "x".into(),
            attempts: 1,
            at: when,
            reason: None,
        };
        (login, outcome)
    }

    #[test]
    fn the_recent_rate_counts_the_last_five_minutes_or_since_the_start() {
        // 20 outcomes in 03:10..03:20, one every 30 s; now is 03:20.
        let entries: Vec<_> = (0..20)
            .map(|i| done_at(i, at(10 + i / 2, (i % 2) * 30)))
            .collect();
        let now = at(20, 0);

        // Started long before: the last 5 minutes hold 03:15:30 .. 03:19:30, 9 outcomes.
        let long_ago = recent_per_minute(&entries, Some(at(0, 0)), now).unwrap();
        // Started 2 minutes ago: 3 outcomes (03:18:30 .. 03:19:30) in 2 minutes.
        let lately = recent_per_minute(&entries, Some(at(18, 0)), now).unwrap();

        assert!((long_ago - 9.0 / 5.0).abs() < 1e-9, "{long_ago}");
        assert!((lately - 3.0 / 2.0).abs() < 1e-9, "{lately}");
        assert_eq!(recent_per_minute(&entries, None, now), None);
    }
}

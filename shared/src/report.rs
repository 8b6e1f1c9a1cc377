//! The report of one routine date: how many logins are done, refreshed, stale, waiting for
//! re-authentication or failed, how many are pending, how fast it goes and when it will
//! end, and which logins newly need re-authentication since the day before.
//!
//! It reads the ledger and the registry only; it changes nothing. Lists are sorted by
//! LoginId so two reports of the same state are identical. The JSON field names are a
//! contract with ops tooling: rename nothing without a note in the README.

use std::collections::HashSet;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
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
    /// Logins whose job still waited when a later date's routine started: that date's job
    /// replaced it (one pending authorize per login), so they are no longer pending here.
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

impl Report {
    /// A plain-text rendering for terminals: the counts, the re-auth and failed logins per
    /// FlinksCode, and at most `limit` LoginIds per list, each cut list ending with how many
    /// more there are (the JSON report keeps every list whole).
    pub fn render_text(&self, limit: usize) -> String {
        let mut out = String::new();
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let rows: [(&str, String); 13] = [
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

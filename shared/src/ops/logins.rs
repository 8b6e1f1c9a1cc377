//! Login operations: `producer logins add|list|show|lookup`, the lifecycle commands
//! `producer logins deactivate|activate|reconnected`, and `producer refresh-status`.
//!
//! Deactivate / activate change the registry's active flag; the same registry step queues
//! the login's `SetScheduledRefresh` durably ([`crate::scheduled_refresh`]) and the worker
//! sends it, retrying until Flinks confirms. The command can wait for that confirmation;
//! the queue, not the command, is what makes the change happen.
//!
//! "Reconnected" is what the customer's app calls after a user relinked a login through
//! Flinks Connect: the re-auth state is cleared (every date of the `reauth` index, the
//! registry's re-auth fields) and an authorize job for today is enqueued under a fresh
//! dedupe key; the worker's outcome then replaces today's `NeedsReauth` ledger entry. The
//! re-auth index entries are cleared in one step with the login's `reauth_resolved` event
//! ([`crate::events`]).

use std::time::Duration;

use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::OpsError;
use crate::config::Settings;
use crate::domain::{Fingerprint, LoginId};
use crate::events::Events;
use crate::flinks::IneligibleCard;
use crate::jobs::AuthorizeJob;
use crate::keys::KeySpace;
use crate::ledger::{IndexFilter, Ledger, LedgerOutcome, Overwrite};
use crate::outcomes::Outcomes;
use crate::queue::{EnqueueOptions, Queue};
use crate::registry::{LoginFilter, LoginRecordInput, LoginStatus, LoginSummary, Registry};
use crate::scheduled_refresh::ScheduledRefreshState;
use crate::stores::Stores;

/// Logins read per registry page while looking for idle ones.
const PAGE: usize = 1_000;
/// How often a waiting command re-reads a login's state.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// The result of one activate / deactivate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleChange {
    /// The login.
    pub login_id: String,
    /// The registry was updated (and, when waiting, Flinks confirmed).
    pub ok: bool,
    /// The login's nightly-refresh state at Flinks after the command.
    pub flinks_scheduled_refresh: Option<ScheduledRefreshState>,
    /// What happened, or the error.
    pub message: String,
}

/// The result of one "user reconnected".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconnected {
    /// The login.
    pub login_id: String,
    /// Re-auth index entries removed (one per date).
    pub reauth_cleared: usize,
    /// The routine date the new authorize job is for.
    pub date: NaiveDate,
    /// The new job's id; `None` for an inactive login, which is not refreshed (activate it
    /// first).
    pub job_id: Option<String>,
}

/// What `logins reconnected` did: the logins reconnected and those not registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconnectReport {
    /// The logins reconnected.
    pub reconnected: Vec<Reconnected>,
    /// The LoginIds given that are not registered.
    pub unknown: Vec<String>,
}

/// One login as `logins show` prints it: its status and its outcome history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginDetail {
    /// The registry's record.
    #[serde(flatten)]
    pub status: LoginStatus,
    /// The latest outcomes, newest first.
    pub history: Vec<LedgerOutcome>,
}

/// What `refresh-status` did with GetNightlyRefreshStatus' list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshStatusReport {
    /// The date the re-auth outcomes were recorded for.
    pub date: NaiveDate,
    /// Cards Flinks listed as no longer eligible.
    pub listed: usize,
    /// LoginIds marked as needing re-auth.
    pub marked: Vec<String>,
    /// LoginIds already refreshed on `date` (the ledger keeps a refresh; registry unchanged).
    pub already_refreshed: Vec<String>,
    /// LoginIds not in the registry, or inactive (warnings; nothing recorded).
    pub unknown: Vec<String>,
    /// Cards whose LoginId was missing or not a UUID.
    pub invalid: usize,
}

/// The login lifecycle operations of one namespace.
#[derive(Clone)]
pub struct LoginOps {
    conn: RedisConn,
    keys: KeySpace,
    registry: Registry,
    ledger: Ledger,
    outcomes: Outcomes,
    events: Events,
    authorize: Queue<AuthorizeJob>,
}

impl LoginOps {
    /// The operations of the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace, settings: &Settings) -> Self {
        let stores = Stores::open(conn.clone(), keys, settings);
        Self {
            registry: stores.registry,
            ledger: stores.ledger,
            outcomes: stores.outcomes,
            events: stores.events,
            authorize: stores.authorize,
            keys: keys.clone(),
            conn,
        }
    }

    /// For each login: sets the registry's active flag to `activate`, which queues the
    /// SetScheduledRefresh when Flinks' state must change. With `wait`, then waits up to
    /// that long (or until `cancel`) for every login to be confirmed; a login still pending
    /// then is reported not ok, though its change stays queued. Unknown logins are skipped.
    pub async fn set_scheduled_refresh(
        &self,
        logins: &[LoginId],
        activate: bool,
        wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Result<Vec<ScheduleChange>, OpsError> {
        let mut out = Vec::with_capacity(logins.len());
        for login in logins {
            let id = login.as_str().to_string();
            if !self.registry.set_active(login, activate).await? {
                out.push(ScheduleChange {
                    login_id: id,
                    ok: false,
                    flinks_scheduled_refresh: None,
                    message: "not registered".into(),
                });
                continue;
            }
            let state = self
                .registry
                .get(login)
                .await?
                .and_then(|s| s.flinks_scheduled_refresh);
            out.push(ScheduleChange {
                login_id: id,
                ok: true,
                flinks_scheduled_refresh: state,
                message: match state {
                    Some(ScheduledRefreshState::Pending) => "SetScheduledRefresh queued".into(),
                    _ => "no change at Flinks needed".into(),
                },
            });
        }
        let Some(wait) = wait else {
            return Ok(out);
        };
        let deadline = tokio::time::Instant::now() + wait;
        for (change, login) in out.iter_mut().zip(logins) {
            if change.flinks_scheduled_refresh != Some(ScheduledRefreshState::Pending) {
                continue;
            }
            loop {
                let status = self.registry.get(login).await?;
                let state = status.as_ref().and_then(|s| s.flinks_scheduled_refresh);
                change.flinks_scheduled_refresh = state;
                match state {
                    Some(ScheduledRefreshState::Pending) => {}
                    Some(ScheduledRefreshState::Failed) => {
                        change.ok = false;
                        change.message = status
                            .and_then(|s| s.flinks_error)
                            .unwrap_or_else(|| "Flinks refused the change".into());
                        break;
                    }
                    _ => {
                        change.message = "Flinks confirmed".into();
                        break;
                    }
                }
                if tokio::time::Instant::now() >= deadline || cancel.is_cancelled() {
                    change.ok = false;
                    change.message = format!(
                        "not confirmed by Flinks within {}; still queued, the worker keeps retrying",
                        humantime::format_duration(wait)
                    );
                    break;
                }
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(WAIT_POLL) => {}
                }
            }
        }
        Ok(out)
    }

    /// Adds or updates one login; returns it as stored and whether it is new.
    pub async fn add(&self, record: &LoginRecordInput) -> Result<(LoginSummary, bool), OpsError> {
        let new = self.registry.add(record).await?.new > 0;
        let status = self.registry.get(&record.login_id).await?;
        let summary = LoginSummary {
            login_id: record.login_id.clone(),
            active: record.active,
            tag: record.tag.clone(),
            priority: status.as_ref().map_or(0, |s| s.priority),
            flinks_scheduled_refresh: status.and_then(|s| s.flinks_scheduled_refresh),
        };
        Ok((summary, new))
    }

    /// Up to `limit` logins that pass `filter`, page after registry page.
    pub async fn list(
        &self,
        filter: LoginFilter,
        limit: usize,
    ) -> Result<Vec<LoginSummary>, OpsError> {
        let mut logins = Vec::new();
        let mut cursor = 0;
        while logins.len() < limit {
            let page = self.registry.list(filter, cursor, PAGE.min(limit)).await?;
            logins.extend(page.logins);
            match page.next_cursor {
                Some(next) => cursor = next,
                None => break,
            }
        }
        logins.truncate(limit);
        Ok(logins)
    }

    /// The one registered LoginId whose fingerprint `raw` gives (`lid:` and 16 hex
    /// characters, or a leading part of at least 8); none or several is a usage error.
    pub async fn lookup(&self, raw: &str) -> Result<LoginId, OpsError> {
        let fingerprint = Fingerprint::parse(raw).map_err(OpsError::Usage)?;
        let mut found = self.registry.find_by_fingerprint(&fingerprint).await?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(OpsError::Usage(format!(
                "no registered LoginId has the fingerprint {}",
                raw.trim()
            ))),
            n => Err(OpsError::Usage(format!(
                "{n} registered LoginIds match the fingerprint {}; give more of it",
                raw.trim()
            ))),
        }
    }

    /// `login`'s record and history; an unregistered login is a usage error.
    pub async fn show(&self, login: &LoginId) -> Result<LoginDetail, OpsError> {
        let Some(status) = self.registry.get(login).await? else {
            let why = format!("LoginId {} is not registered", login.as_str());
            return Err(OpsError::Usage(why));
        };
        let history = self.registry.history(login).await?;
        Ok(LoginDetail { status, history })
    }

    /// [`Self::reconnected`] for each of `logins`, in order.
    pub async fn reconnect_all(
        &self,
        logins: &[LoginId],
        today: NaiveDate,
    ) -> Result<ReconnectReport, OpsError> {
        let mut report = ReconnectReport {
            reconnected: Vec::new(),
            unknown: Vec::new(),
        };
        for login in logins {
            match self.reconnected(login, today).await? {
                Some(done) => report.reconnected.push(done),
                None => report.unknown.push(login.as_str().to_string()),
            }
        }
        Ok(report)
    }

    /// Active logins with no successful refresh since `cutoff` (never refreshed: added
    /// before `cutoff`).
    pub async fn idle_since(&self, cutoff: DateTime<Utc>) -> Result<Vec<LoginId>, OpsError> {
        let mut idle = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            let page = self
                .registry
                .list(LoginFilter::Active, cursor, PAGE)
                .await?;
            for login in page.logins {
                if !seen.insert(login.login_id.as_str().to_string()) {
                    continue;
                }
                let Some(status) = self.registry.get(&login.login_id).await? else {
                    continue;
                };
                let last = status.last_success_at.or(status.added_at);
                if last.is_none_or(|t| t < cutoff) {
                    idle.push(login.login_id);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(idle)
    }

    /// The user reconnected `login`: clears its re-auth state and enqueues an authorize job
    /// for `today` under a fresh dedupe key. `None` when the login is not registered.
    pub async fn reconnected(
        &self,
        login: &LoginId,
        today: NaiveDate,
    ) -> Result<Option<Reconnected>, OpsError> {
        let Some(status) = self.registry.get(login).await? else {
            return Ok(None);
        };
        let filter = IndexFilter {
            login: Some(login.clone()),
            ..IndexFilter::default()
        };
        let members: Vec<String> = self
            .ledger
            .list_reauth(&filter)
            .await?
            .iter()
            .map(|entry| format!("{}|{}", entry.date, login.as_str()))
            .collect();
        // The index entries go in the same step as the `reauth_resolved` event.
        let (cleared, _event) = self
            .events
            .reconnected(login, today, &members, Utc::now())
            .await?;
        let cleared = cleared as usize;
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("HDEL")
            .arg(self.keys.login(login.as_str()))
            .arg("reauth_code")
            .arg("reauth_message")
            .query_async(&mut conn)
            .await?;
        // An inactive login is not part of the routine: no Authorize (billed, and an
        // outcome no date expects).
        if !status.active {
            return Ok(Some(Reconnected {
                login_id: login.as_str().to_string(),
                reauth_cleared: cleared,
                date: today,
                job_id: None,
            }));
        }
        let dedupe = format!(
            "authorize:{}:{}:reconnected:{}",
            login.as_str(),
            today,
            uuid::Uuid::new_v4().simple()
        );
        self.ledger.clear_ineligible(today, login).await?;
        let job = AuthorizeJob::new(login.clone(), today);
        let enqueued = self
            .authorize
            .enqueue(&job, EnqueueOptions::dedupe(dedupe))
            .await?;
        Ok(Some(Reconnected {
            login_id: login.as_str().to_string(),
            reauth_cleared: cleared,
            date: today,
            job_id: Some(enqueued.id().as_str().to_string()),
        }))
    }

    /// Records every card of GetNightlyRefreshStatus as needing re-auth on `date`, with its
    /// `LastRefreshErrorCode`, in the ledger and the registry.
    pub async fn apply_refresh_status(
        &self,
        cards: &[IneligibleCard],
        date: NaiveDate,
    ) -> Result<RefreshStatusReport, OpsError> {
        let mut report = RefreshStatusReport {
            date,
            listed: cards.len(),
            marked: Vec::new(),
            already_refreshed: Vec::new(),
            unknown: Vec::new(),
            invalid: 0,
        };
        for card in cards {
            let Some(login) = &card.login_id else {
                report.invalid += 1;
                continue;
            };
            // Unregistered and inactive logins are not part of the routine: marking them
            // would count them as done in a date whose expected count excludes them.
            if !self.registry.get(login).await?.is_some_and(|s| s.active) {
                report.unknown.push(login.as_str().to_string());
                continue;
            }
            // A re-auth the routine already recorded for the date says more (its own
            // Authorize's FlinksCode, Message and the RequestId for stale data): it stays,
            // and the listing only marks the login ineligible.
            if matches!(
                self.ledger.get(date, login).await?,
                Some(LedgerOutcome::NeedsReauth { .. })
            ) {
                self.ledger.mark_ineligible(date, login).await?;
                report.marked.push(login.as_str().to_string());
                continue;
            }
            let outcome = LedgerOutcome::NeedsReauth {
                flinks_code: card.last_refresh_error_code.clone(),
                message: Some(format!(
                    "GetNightlyRefreshStatus: no longer eligible for nightly refresh{}",
                    card.last_refresh_state
                        .as_deref()
                        .map(|s| format!(" (LastRefreshState {s})"))
                        .unwrap_or_default()
                )),
                request_id: None,
                at: Utc::now(),
                unrecognised_code: false,
            };
            if self
                .outcomes
                .record(date, login, &outcome, Overwrite::AllButRefreshed)
                .await?
            {
                self.ledger.mark_ineligible(date, login).await?;
                report.marked.push(login.as_str().to_string());
            } else {
                report.already_refreshed.push(login.as_str().to_string());
            }
        }
        Ok(report)
    }
}

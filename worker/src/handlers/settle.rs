//! What the handlers share: the effectively-once ledger check, the routine date's deadline
//! (no call past it, no retry scheduled beyond it: the job is recorded `superseded`), the
//! settling of a failed call (re-auth, retry with cool-down, session restart, failure) and
//! `persist`, which retries Redis writes that follow a Flinks call so a Redis blip does not
//! turn into a second API call.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use shared::control::past_deadline;
use shared::flinks::{is_unrecognised_reauth, Error as FlinksError};
use shared::jobs::{AuthorizeJob, MAX_SESSION_RESTARTS};
use shared::ledger::{FailureReason, LedgerError, LedgerOutcome, Overwrite};
use shared::queue::{EnqueueOptions, JobFailure};
use shared::{FlinksCode, LoginId};

use super::failure::{decide, Decision};
use super::{Deps, Handled};

pub use shared::metrics::REDELIVERIES_SKIPPED_TOTAL;

/// How long `persist` keeps retrying a Redis write before giving the job back to the queue.
const PERSIST_BUDGET: Duration = Duration::from_secs(20);

/// The job a failure belongs to.
pub(crate) struct Step<'a> {
    pub(crate) login: &'a LoginId,
    pub(crate) date: NaiveDate,
    pub(crate) session_restarts: u32,
    pub(crate) attempt: u32,
    /// The queue's id of the failing job (stable across its redeliveries).
    pub(crate) job_id: &'a str,
}

impl<'a> Step<'a> {
    /// The step of `delivery` of a job about `login` on `date`.
    pub(crate) fn new(
        login: &'a LoginId,
        date: NaiveDate,
        session_restarts: u32,
        delivery: &'a super::Delivery,
    ) -> Self {
        Self {
            login,
            date,
            session_restarts,
            attempt: delivery.attempt,
            job_id: &delivery.job_id,
        }
    }
}

/// Counts a redelivery that the ledger made a no-op.
pub(crate) fn count_skipped_redelivery() {
    metrics::counter!(REDELIVERIES_SKIPPED_TOTAL).increment(1);
}

/// True when (login, date) already has a final outcome: the job must call nothing.
pub(crate) async fn already_done(
    deps: &Deps,
    login: &LoginId,
    date: NaiveDate,
) -> Result<bool, JobFailure> {
    let done = deps
        .ledger
        .is_done(date, login)
        .await
        .map_err(ledger_check_failed)?;
    Ok(skip_if_done(done))
}

/// A ledger read before any call failed: nothing was done, try again shortly.
pub(crate) fn ledger_check_failed(error: LedgerError) -> JobFailure {
    JobFailure::Retry {
        error: format!("ledger check: {error}"),
        delay: Some(Duration::from_secs(5)),
    }
}

/// Counts and logs a redelivery the ledger says is done; returns `done`.
pub(crate) fn skip_if_done(done: bool) -> bool {
    if done {
        count_skipped_redelivery();
        tracing::info!("already done for this date; redelivery skipped");
    }
    done
}

/// `date`'s deadline when work starting at `start` would be past it, else `None`.
pub(crate) async fn deadline_passed(
    deps: &Deps,
    date: NaiveDate,
    start: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, JobFailure> {
    Ok(passed(routine_deadline(deps, date).await?, start))
}

/// `deadline` when work starting at `start` would be past it, else `None`.
pub(crate) fn passed(
    deadline: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    deadline.filter(|_| past_deadline(start, deadline))
}

/// `date`'s deadline (`None`: none stored), as this worker's cache has it.
pub(crate) async fn routine_deadline(
    deps: &Deps,
    date: NaiveDate,
) -> Result<Option<DateTime<Utc>>, JobFailure> {
    deps.deadlines
        .get(date)
        .await
        .map_err(|e| JobFailure::Retry {
            error: format!("reading the routine deadline: {e}"),
            delay: Some(Duration::from_secs(5)),
        })
}

/// Records `login` as superseded on `date` because the date's `deadline` passed: the next
/// date's routine covers it. Nothing is called.
pub(crate) async fn record_past_deadline(
    deps: &Deps,
    login: &LoginId,
    date: NaiveDate,
    deadline: DateTime<Utc>,
) -> Result<Handled, JobFailure> {
    let outcome = LedgerOutcome::Superseded {
        by_date: date.succ_opt().unwrap_or(date),
        at: Utc::now(),
        deadline: Some(deadline),
        deactivated: false,
    };
    record_superseded(deps, login, date, &outcome).await?;
    tracing::info!(%deadline, "the routine date's deadline passed; superseded, Flinks not called");
    Ok(Handled::PastDeadline)
}

/// Records `login` as superseded on `date` because it was deactivated after the routine
/// queued its job: the routine calls Flinks for active logins only. Nothing is called.
pub(crate) async fn record_deactivated(
    deps: &Deps,
    login: &LoginId,
    date: NaiveDate,
) -> Result<Handled, JobFailure> {
    let outcome = LedgerOutcome::Superseded {
        by_date: date,
        at: Utc::now(),
        deadline: None,
        deactivated: true,
    };
    record_superseded(deps, login, date, &outcome).await?;
    tracing::info!("the login is inactive in the registry; superseded, Flinks not called");
    Ok(Handled::Deactivated)
}

/// Writes a `superseded` outcome (no registry change: Flinks was not called) and counts it.
async fn record_superseded(
    deps: &Deps,
    login: &LoginId,
    date: NaiveDate,
    outcome: &LedgerOutcome,
) -> Result<(), JobFailure> {
    persist("record superseded", || {
        deps.ledger
            .record(date, login, outcome, Overwrite::AllButRefreshed)
    })
    .await?;
    metrics::counter!(shared::metrics::ROUTINE_SUPERSEDED_TOTAL).increment(1);
    Ok(())
}

/// Runs a Redis write, retrying with backoff for up to [`PERSIST_BUDGET`]; after that the
/// job is retried by the queue (the write is idempotent, so that is safe).
pub(crate) async fn persist<F, Fut, T, E>(what: &str, mut op: F) -> Result<T, JobFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if started.elapsed() + pause < PERSIST_BUDGET => {
                tracing::warn!(error.message = %error, what, "Redis write failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                return Err(JobFailure::Retry {
                    error: format!("{what}: {error}"),
                    delay: None,
                })
            }
        }
    }
}

/// Records a final outcome in the ledger and the registry (see `shared::outcomes`).
pub(crate) async fn record_final(
    deps: &Deps,
    login: &LoginId,
    date: NaiveDate,
    outcome: &LedgerOutcome,
) -> Result<(), JobFailure> {
    persist("record outcome", || {
        deps.outcomes
            .record(date, login, outcome, Overwrite::AllButRefreshed)
    })
    .await?;
    Ok(())
}

/// Settles a failed Flinks call according to [`decide`].
pub(crate) async fn settle_failure(
    deps: &Deps,
    step: Step<'_>,
    error: FlinksError,
) -> Result<Handled, JobFailure> {
    let failure = error.failure().cloned();
    let code = failure.as_ref().and_then(|f| f.code.clone());
    let message = failure.as_ref().and_then(|f| f.message.clone());
    let status = failure.as_ref().and_then(|f| f.status);
    let failed = |reason: Option<FailureReason>| LedgerOutcome::Failed {
        flinks_code: code.clone(),
        http_status: status,
        message: message.clone().unwrap_or_else(|| error.to_string()),
        attempts: step.attempt,
        at: Utc::now(),
        reason,
    };
    match decide(&error, step.attempt, deps.policy.max_attempts) {
        Decision::NeedsReauth
            if code == Some(FlinksCode::InvalidLogin)
                && never_refreshed(deps, step.login).await? =>
        {
            // A credential-type INVALID_LOGIN on a LoginId that never worked is far more
            // likely a wrong LoginId than a user to ask: ops fix or remove it.
            record_final(
                deps,
                step.login,
                step.date,
                &failed(Some(FailureReason::InvalidLogin)),
            )
            .await?;
            tracing::warn!(error.message = %error, "INVALID_LOGIN on a login that never refreshed; recorded as invalid_login");
            Ok(Handled::Failed)
        }
        Decision::NeedsReauth => {
            let unrecognised_code = is_unrecognised_reauth(status, code.as_ref());
            if unrecognised_code {
                metrics::counter!(
                    shared::metrics::FLINKS_UNRECOGNISED_REAUTH_TOTAL,
                    "flinks_code" => code.as_ref().map_or("none", |_| "other")
                )
                .increment(1);
                tracing::warn!(error.message = %error, "a 401 without a known FlinksCode; recorded as needs re-auth");
            }
            let outcome = LedgerOutcome::NeedsReauth {
                flinks_code: code,
                message,
                request_id: failure.and_then(|f| f.request_id),
                at: Utc::now(),
                unrecognised_code,
            };
            record_final(deps, step.login, step.date, &outcome).await?;
            Ok(Handled::NeedsReauth)
        }
        Decision::Retry => {
            // Both queues take their backoff from the same settings.
            let delay = deps.authorize_queue.config().backoff.delay(step.attempt);
            if let Some(deadline) = deadline_passed(deps, step.date, retry_at(delay)).await? {
                return record_past_deadline(deps, step.login, step.date, deadline).await;
            }
            if let Err(e) = deps.ledger.incr_retries(step.date).await {
                tracing::warn!(error.message = %e, "could not count the retry");
            }
            tracing::info!(error.message = %error, "retryable; the queue retries with backoff");
            Err(JobFailure::Retry {
                error: error.to_string(),
                delay: Some(delay),
            })
        }
        Decision::CoolDown => {
            if let Err(e) = deps.limiter.cool_down(deps.policy.cooldown).await {
                tracing::warn!(error.message = %e, "could not start the global cool-down");
            }
            let throttled = persist("count the throttle", || {
                deps.ledger.count_throttle(step.date, step.login)
            })
            .await?;
            if throttled >= u64::from(deps.policy.max_throttle_defers) {
                record_final(
                    deps,
                    step.login,
                    step.date,
                    &failed(Some(FailureReason::Throttled)),
                )
                .await?;
                tracing::warn!(
                    throttled,
                    "throttled on every try today; recorded as failed"
                );
                return Ok(Handled::Failed);
            }
            let resume = retry_at(deps.policy.cooldown);
            if let Some(deadline) = deadline_passed(deps, step.date, resume).await? {
                return record_past_deadline(deps, step.login, step.date, deadline).await;
            }
            Err(JobFailure::Defer {
                error: error.to_string(),
                delay: deps.policy.cooldown,
            })
        }
        Decision::RestartSession if step.session_restarts < MAX_SESSION_RESTARTS => {
            let job = AuthorizeJob {
                login_id: step.login.clone(),
                routine_date: step.date,
                session_restarts: step.session_restarts + 1,
            };
            let options = EnqueueOptions::dedupe(job.restart_dedupe_key(step.job_id));
            persist("restart authorize", || {
                deps.authorize_queue.enqueue(&job, options.clone())
            })
            .await?;
            tracing::info!(error.message = %error, "RequestId lapsed; a fresh authorize is queued");
            Ok(Handled::SessionRestarted)
        }
        Decision::RestartSession | Decision::Fail => {
            let reason =
                (code == Some(FlinksCode::InvalidLogin)).then_some(FailureReason::InvalidLogin);
            record_final(deps, step.login, step.date, &failed(reason)).await?;
            tracing::warn!(error.message = %error, "failed; recorded in the failed queue");
            Ok(Handled::Failed)
        }
    }
}

/// When a job handed back now with `delay` runs again.
fn retry_at(delay: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}

/// True when the registry has never seen `login` refreshed.
async fn never_refreshed(deps: &Deps, login: &LoginId) -> Result<bool, JobFailure> {
    let status = deps
        .registry
        .get(login)
        .await
        .map_err(|e| JobFailure::Retry {
            error: format!("registry read: {e}"),
            delay: Some(Duration::from_secs(5)),
        })?;
    Ok(status.is_none_or(|s| s.last_success_at.is_none()))
}

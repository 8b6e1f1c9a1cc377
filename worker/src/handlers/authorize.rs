//! The authorize step: ledger check (done? listed ineligible? read with the lease on one
//! Redis, else one round trip) → routine
//! deadline → authorize token → rate-limit permit → `/Authorize` (cached) → chain the
//! detail fetch (queued by the job's ack on one Redis), or settle the failure (re-auth,
//! retry, restart, fail).
//!
//! The global permit is taken last, immediately before `/Authorize` is sent: a slow token
//! call or check between the permit and the request would let another worker's request
//! overtake it and put more calls into one window than the limit allows. First attempts
//! and retries draw from one budget. The worker claims this job only once a permit is
//! likely (`RateLimiter::wait_until_likely`), so jobs do not sit leased for long.

use chrono::Utc;
use shared::flinks::AuthorizeOutcome;
use shared::jobs::{AuthorizeJob, DetailJob};
use shared::metrics::AUTHORIZE_CHECKS_TOTAL;
use shared::queue::{EnqueueOptions, JobFailure};

use super::settle::{
    count_skipped_redelivery, deadline_passed, ledger_check_failed, persist, record_past_deadline,
    settle_failure, skip_if_done, Step,
};
use super::{Delivery, Deps, Handled};

/// Runs one delivery of an authorize job.
#[tracing::instrument(
    name = "job.authorize",
    skip_all,
    fields(job_id = %delivery.job_id, login = %job.login_id.fingerprint(), date = %job.routine_date, attempt = delivery.attempt)
)]
pub async fn handle(
    job: &AuthorizeJob,
    delivery: &Delivery,
    deps: &Deps,
) -> Result<Handled, JobFailure> {
    let leased_check = delivery.reads.as_ref().and_then(|reads| {
        deps.ledger.authorize_check_from(
            AuthorizeJob::LAYOUT,
            &job.login_id,
            job.routine_date,
            reads,
        )
    });
    let read = if leased_check.is_some() {
        "lease"
    } else {
        "round_trip"
    };
    metrics::counter!(AUTHORIZE_CHECKS_TOTAL, "read" => read).increment(1);
    let check = match leased_check {
        Some(check) => check,
        None => deps
            .ledger
            .authorize_check(job.routine_date, &job.login_id)
            .await
            .map_err(ledger_check_failed)?,
    };
    if skip_if_done(check.done) {
        return Ok(Handled::AlreadyDone);
    }
    // Past the date's deadline the next date's routine covers the login: no permit spent.
    if let Some(deadline) = deadline_passed(deps, job.routine_date, Utc::now()).await? {
        return record_past_deadline(deps, &job.login_id, job.routine_date, deadline).await;
    }
    // GetNightlyRefreshStatus listed the login for this date: it is recorded as needs
    // re-auth already, and an Authorize would only spend a permit (or overwrite it).
    if check.ineligible {
        tracing::info!("listed by GetNightlyRefreshStatus for this date; not authorized");
        return Ok(Handled::AlreadyDone);
    }
    // A redelivery of a job whose detail job exists already (on a Cluster, a crash between
    // chaining it and the ack; on one Redis, a lease lost as the handler finished):
    // authorizing again would only open a second session for nothing.
    let chained_key = DetailJob::chained_dedupe_key(&delivery.job_id);
    let chained = delivery.attempt > 1
        && deps
            .detail_queue
            .has_dedupe(&chained_key)
            .await
            .map_err(|e| JobFailure::Retry {
                error: format!("checking for a chained detail job: {e}"),
                delay: None,
            })?;
    if chained {
        count_skipped_redelivery();
        tracing::info!("detail job already chained; redelivery skipped");
        return Ok(Handled::AlreadyDone);
    }
    let step = Step::new(
        &job.login_id,
        job.routine_date,
        job.session_restarts,
        delivery,
    );
    let token = match deps.flinks.prepare_authorize().await {
        Ok(token) => token,
        Err(error) => return settle_failure(deps, step, error).await,
    };
    deps.permits.take().await?;
    match deps.flinks.authorize_with(&job.login_id, token).await {
        Ok(AuthorizeOutcome::Authorized(ok)) => {
            let detail = DetailJob {
                login_id: job.login_id.clone(),
                routine_date: job.routine_date,
                request_id: ok.request_id,
                last_refresh: ok.login.last_refresh_known(),
                session_restarts: job.session_restarts,
                polling_since: None,
                polls: 0,
            };
            let options = EnqueueOptions::dedupe(chained_key.clone());
            chain(deps, delivery, &detail, options, "chain detail job").await?;
            tracing::debug!(at = %Utc::now(), "authorized; detail job chained");
            Ok(Handled::Chained)
        }
        Ok(AuthorizeOutcome::Pending { request_id, .. }) => {
            // Flinks is still refreshing the card: poll the async endpoint with this
            // RequestId (bounded by POLL_TIMEOUT) instead of authorizing again.
            let poll = DetailJob {
                login_id: job.login_id.clone(),
                routine_date: job.routine_date,
                request_id,
                last_refresh: None,
                session_restarts: job.session_restarts,
                polling_since: Some(Utc::now()),
                polls: 0,
            };
            let options =
                EnqueueOptions::dedupe(chained_key.clone()).delayed(deps.policy.poll_interval);
            chain(deps, delivery, &poll, options, "queue async poll").await?;
            tracing::info!("Authorize answered 202; polling the async endpoint");
            Ok(Handled::PendingPoll)
        }
        Err(error) => settle_failure(deps, step, error).await,
    }
}

/// Queues `job` in the detail queue: with this delivery's ack, in the same step, where one
/// Redis holds both queues; on a Cluster now, before the ack (a crash in between leaves
/// both, and the redelivery finds the job by its dedupe key).
async fn chain(
    deps: &Deps,
    delivery: &Delivery,
    job: &DetailJob,
    options: EnqueueOptions,
    what: &str,
) -> Result<(), JobFailure> {
    // An encoding error surfaces from the enqueue below.
    if let Ok(Some(chained)) = deps.detail_queue.chained(job, &options) {
        delivery.ack_with.chain(chained);
        return Ok(());
    }
    persist(what, || deps.detail_queue.enqueue(job, options.clone())).await?;
    Ok(())
}

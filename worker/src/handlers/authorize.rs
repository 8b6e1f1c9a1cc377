//! The authorize step: ledger check (done? listed ineligible? read with the lease on one
//! Redis, else one round trip) → a redelivery's chained detail job → routine deadline →
//! still active in the registry? (read with the lease too) → authorize token → rate-limit
//! permit (none asked of Redis while the lease read the limit as off) → `/Authorize`
//! (cached) → chain the detail fetch (queued by the job's ack on one Redis), or settle the
//! failure (re-auth, retry, restart, fail).
//!
//! The global permit is taken last, immediately before `/Authorize` is sent: a slow token
//! call or check between the permit and the request would let another worker's request
//! overtake it and put more calls into one window than the limit allows. First attempts
//! and retries draw from one budget. The worker claims this job only once a permit is
//! likely (`RateLimiter::wait_until_likely`), so jobs do not sit leased for long.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::flinks::AuthorizeOutcome;
use shared::jobs::{AuthorizeJob, DetailJob};
use shared::ledger::Ledger;
use shared::metrics::AUTHORIZE_CHECKS_TOTAL;
use shared::queue::{EnqueueOptions, JobFailure, LeaseRead};
use shared::ratelimit::RateLimiter;
use shared::registry::Registry;

use super::settle::{
    count_skipped_redelivery, ledger_check_failed, passed, persist, record_deactivated,
    record_past_deadline, routine_deadline, settle_failure, skip_if_done, Step,
};
use super::{Delivery, Deps, Handled};

/// The authorize queue's lease reads ([`AuthorizeReads::of`]) and where each answer is.
#[derive(Clone, Debug)]
pub struct AuthorizeReads {
    /// The reads, in order.
    pub reads: Vec<LeaseRead>,
    /// Whether the ledger's check ([`Ledger::authorize_check_reads`]) leads them: only
    /// where one script sees the ledger.
    ledger: bool,
    /// The login's active flag.
    inactive_at: usize,
    /// The stored rate limit.
    limit_at: usize,
}

impl AuthorizeReads {
    /// The ledger's check where one script sees the ledger, then the login's active flag,
    /// then the stored rate limit.
    pub fn of(ledger: &Ledger, registry: &Registry, limiter: &RateLimiter) -> Self {
        let mut reads = ledger
            .authorize_check_reads(AuthorizeJob::LAYOUT)
            .unwrap_or_default();
        let ledger = !reads.is_empty();
        reads.push(registry.inactive_read(AuthorizeJob::LAYOUT.login));
        reads.push(limiter.limit_read());
        Self {
            ledger,
            inactive_at: reads.len() - 2,
            limit_at: reads.len() - 1,
            reads,
        }
    }
}

/// Whether the job's login is inactive in the registry: from its lease's read
/// ([`AuthorizeReads`]) when there is one for this login, else read now.
async fn inactive(
    job: &AuthorizeJob,
    delivery: &Delivery,
    deps: &Deps,
) -> Result<bool, JobFailure> {
    let leased = delivery.reads.as_ref().and_then(|reads| {
        deps.registry.inactive_from(
            AuthorizeJob::LAYOUT.login,
            &job.login_id,
            reads,
            deps.authorize_reads.inactive_at,
        )
    });
    match leased {
        Some(inactive) => Ok(inactive),
        None => deps
            .registry
            .is_inactive(&job.login_id)
            .await
            .map_err(|e| JobFailure::Retry {
                error: format!("reading the login's active flag: {e}"),
                delay: Some(Duration::from_secs(5)),
            }),
    }
}

/// Takes the rate-limit permit: on the lease's read of the stored limit when there is one
/// ([`super::Permits::take_after_read`]), else asked of Redis.
async fn take_permit(delivery: &Delivery, deps: &Deps) -> Result<(), JobFailure> {
    let stored = delivery
        .reads
        .as_ref()
        .and_then(|reads| reads.values.get(deps.authorize_reads.limit_at));
    match stored {
        Some(stored) => {
            deps.permits
                .take_after_read(stored.as_deref(), delivery.leased_at)
                .await
        }
        None => deps.permits.take().await,
    }
}

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
    let leased_reads = delivery
        .reads
        .as_ref()
        .filter(|_| deps.authorize_reads.ledger);
    let leased_check = leased_reads.and_then(|reads| {
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
    // GetNightlyRefreshStatus listed the login for this date: it is recorded as needs
    // re-auth already, and an Authorize would only spend a permit (or overwrite it).
    if check.ineligible {
        tracing::info!("listed by GetNightlyRefreshStatus for this date; not authorized");
        return Ok(Handled::AlreadyDone);
    }
    // A redelivery of a job whose detail job exists already (on a Cluster, a crash between
    // chaining it and the ack; on one Redis, a lease lost as the handler finished):
    // authorizing again would only open a second session for nothing. Asked before the
    // checks below that record `superseded`, which would replace what the detail job
    // recorded.
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
    // Past the date's deadline the next date's routine covers the login: no permit spent.
    let deadline = routine_deadline(deps, job.routine_date).await?;
    if let Some(deadline) = passed(deadline, Utc::now()) {
        return record_past_deadline(deps, &job.login_id, job.routine_date, deadline).await;
    }
    // Deactivated since the routine queued the job: the routine is for active logins.
    if inactive(job, delivery, deps).await? {
        return record_deactivated(deps, &job.login_id, job.routine_date).await;
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
    take_permit(delivery, deps).await?;
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
            let options = chained_options(chained_key.clone(), deadline, Utc::now());
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
            let options = chained_options(chained_key.clone(), deadline, Utc::now())
                .delayed(deps.policy.poll_interval);
            chain(deps, delivery, &poll, options, "queue async poll").await?;
            tracing::info!("Authorize answered 202; polling the async endpoint");
            Ok(Handled::PendingPoll)
        }
        Err(error) => settle_failure(deps, step, error).await,
    }
}

/// How long a chained detail job's dedupe key outlives the date's deadline: a delivery
/// that starts past the deadline calls no Flinks and chains nothing (it records the login
/// superseded), so the key only has to cover a delivery that checked just before it and
/// is still finishing, or whose ack is retried.
///
/// What a key gone too early costs, in the rare cases where it matters: a `routine run`
/// of the same date that stores a later deadline does not lengthen the keys already set,
/// so a redelivery of a job whose earlier delivery chained (a lease lost as its handler
/// finished; on a Cluster, a crash between the chain and the ack) that starts after the
/// first deadline and its hour authorizes once more: a second session, one Authorize and
/// one GetAccountsDetail more, while the ledger keeps one outcome and the results stream
/// one entry. The dead-letter reconciliation and `requeue` read the key to tell whether a
/// dead authorize letter's detail job may still run; for a detail job still waiting past
/// the hour (a paused or backlogged detail queue) they take it as gone: the reconciliation
/// records `failed`, which the detail job's outcome replaces, and `requeue` no longer
/// skips the letter.
pub(crate) const CHAINED_DEDUPE_PAST_DEADLINE: Duration = Duration::from_secs(3600);

/// The options of the detail job chained under `key` on a date whose deadline is
/// `deadline`: its dedupe key lives until [`CHAINED_DEDUPE_PAST_DEADLINE`] after the
/// deadline (by default the schedule's next firing), not the queue's `dedupe_ttl`. It
/// keeps a redelivery of the authorize job from chaining twice, which a delivery that
/// starts past the deadline cannot do, and it costs Redis about 190 bytes a login: kept
/// three days, a million logins a night held the keys of three nights. With no deadline
/// stored (jobs queued without a routine run) the queue's lifetime stays.
pub(crate) fn chained_options(
    key: String,
    deadline: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> EnqueueOptions {
    let options = EnqueueOptions::dedupe(key);
    match deadline {
        Some(deadline) => {
            let left = (deadline - now).to_std().unwrap_or_default();
            options.dedupe_for(left + CHAINED_DEDUPE_PAST_DEADLINE)
        }
        None => options,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chained_jobs_dedupe_key_outlives_the_deadline_by_the_margin_only() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T06:00:00Z")
            .unwrap()
            .to_utc();
        let key = || DetailJob::chained_dedupe_key("job-1");

        let before = chained_options(key(), Some(now + chrono::Duration::hours(20)), now);
        assert_eq!(before.dedupe_key.as_deref(), Some("detail:chained:job-1"));
        assert_eq!(
            before.dedupe_ttl,
            Some(Duration::from_secs(20 * 3600) + CHAINED_DEDUPE_PAST_DEADLINE)
        );
        // A deadline that passed while Flinks answered: the margin still covers the ack.
        let passed = chained_options(key(), Some(now - chrono::Duration::minutes(5)), now);
        assert_eq!(passed.dedupe_ttl, Some(CHAINED_DEDUPE_PAST_DEADLINE));
        // No deadline stored: the queue's own lifetime.
        assert_eq!(chained_options(key(), None, now).dedupe_ttl, None);
    }
}

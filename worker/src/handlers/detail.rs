//! The detail step: `/GetAccountsDetail`, or on a 202 a delayed poll of
//! `GET /GetAccountsDetailAsync/{RequestId}` every `POLL_INTERVAL` up to `POLL_TIMEOUT`
//! (a delayed job, never a sleeping handler), then the results stream and the ledger in
//! one atomic write, so a redelivery never fetches or stores twice. On one Redis that write
//! rides the job's ack, in the same script call: the stored result and the finished job
//! are one step, and cost one call.
//!
//! Only a redelivery reads the ledger before calling Flinks: a job no handler held before
//! (`Delivery::first`) was chained by an authorize step that found the date not done, and
//! nothing but this job stores its result. The ledger write itself never replaces a
//! refresh, so even a second fetch would not store twice.

use chrono::{NaiveDateTime, Utc};
use shared::flinks::DetailOutcome;
use shared::jobs::DetailJob;
use shared::ledger::LedgerOutcome;
use shared::queue::{EnqueueOptions, JobFailure};
use shared::results::ResultEntry;

use super::settle::{already_done, persist, record_final, settle_failure, Step};
use super::{Delivery, Deps, Handled};

/// Runs one delivery of a detail job (the first fetch or a poll).
#[tracing::instrument(
    name = "job.detail",
    skip_all,
    fields(job_id = %delivery.job_id, login = %job.login_id.fingerprint(), date = %job.routine_date, request_id = %job.request_id, polls = job.polls, attempt = delivery.attempt)
)]
pub async fn handle(
    job: &DetailJob,
    delivery: &Delivery,
    deps: &Deps,
) -> Result<Handled, JobFailure> {
    if !delivery.first && already_done(deps, &job.login_id, job.routine_date).await? {
        return Ok(Handled::AlreadyDone);
    }
    let now = Utc::now();
    if let Some(since) = job.polling_since {
        let waited = (now - since).to_std().unwrap_or_default();
        if waited >= deps.policy.poll_timeout {
            let outcome = LedgerOutcome::Failed {
                flinks_code: Some(shared::FlinksCode::OperationPending),
                http_status: Some(202),
                message: format!(
                    "GetAccountsDetailAsync still pending after {} polls over {}",
                    job.polls,
                    humantime::format_duration(deps.policy.poll_timeout)
                ),
                attempts: job.polls,
                at: now,
                reason: None,
            };
            record_final(deps, &job.login_id, job.routine_date, &outcome).await?;
            return Ok(Handled::Failed);
        }
    }
    let answer = if job.polling_since.is_some() {
        deps.flinks
            .get_accounts_detail_async_for(&job.login_id, &job.request_id)
            .await
    } else {
        deps.flinks
            .get_accounts_detail_for(&job.login_id, &job.request_id)
            .await
    };
    let step = Step::new(
        &job.login_id,
        job.routine_date,
        job.session_restarts,
        delivery,
    );
    match answer {
        Ok(DetailOutcome::Ready(detail)) => {
            // An Authorize answered 202 gave no LastRefresh: the data's own Login says it.
            let last_refresh = job.last_refresh.or(detail.last_refresh);
            let stale = is_stale(last_refresh, now.naive_utc(), deps.policy.stale_after);
            let entry = ResultEntry {
                login_id: &job.login_id,
                request_id: &detail.request_id,
                routine_date: job.routine_date,
                fetched_at: now,
                last_refresh,
                stale,
                accounts: &detail.accounts,
            };
            // On one Redis the job's ack stores the result, in its own script call.
            let by_ack = deps
                .outcomes
                .result_ack_write(&deps.results, &entry, |stored| match stored {
                    Ok(stored) if !stored.newly_stored => super::settle::count_skipped_redelivery(),
                    Ok(_) => {}
                    Err(error) => tracing::error!(error.message = %error,
                        "the job's ack stored the result, but its answer did not read"),
                })
                .map_err(|error| JobFailure::retry(format!("store result: {error}")))?;
            match by_ack {
                Some(write) => delivery.ack_with.write(write),
                None => {
                    let stored = persist("store result", || {
                        deps.outcomes.store_result(&deps.results, &entry)
                    })
                    .await?;
                    if !stored.newly_stored {
                        super::settle::count_skipped_redelivery();
                    }
                }
            }
            Ok(if stale {
                Handled::Stale
            } else {
                Handled::Refreshed
            })
        }
        Ok(DetailOutcome::Pending { request_id, .. }) => {
            let next = DetailJob {
                request_id,
                polling_since: Some(job.polling_since.unwrap_or(now)),
                polls: job.polls + 1,
                ..job.clone()
            };
            let options =
                EnqueueOptions::dedupe(next.poll_dedupe_key()).delayed(deps.policy.poll_interval);
            persist("queue async poll", || {
                deps.detail_queue.enqueue(&next, options.clone())
            })
            .await?;
            Ok(Handled::PendingPoll)
        }
        Err(error) => settle_failure(deps, step, error).await,
    }
}

/// A refresh is stale when Flinks' `LastRefresh` is unknown or older than `stale_after`.
pub fn is_stale(
    last_refresh: Option<NaiveDateTime>,
    now: NaiveDateTime,
    stale_after: std::time::Duration,
) -> bool {
    match last_refresh {
        None => true,
        Some(at) => (now - at)
            .to_std()
            .map(|age| age > stale_after)
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_refresh_is_stale_when_last_refresh_is_old_or_unknown() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        let limit = Duration::from_secs(36 * 3600);
        assert!(!is_stale(
            Some(now - chrono::Duration::hours(6)),
            now,
            limit
        ));
        assert!(is_stale(
            Some(now - chrono::Duration::hours(37)),
            now,
            limit
        ));
        assert!(is_stale(None, now, limit));
        // A LastRefresh slightly in the future (clock skew) is fresh, not an error.
        assert!(!is_stale(
            Some(now + chrono::Duration::minutes(1)),
            now,
            limit
        ));
    }
}

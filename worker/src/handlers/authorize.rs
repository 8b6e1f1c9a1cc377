//! The authorize step: ledger check → `/Authorize` (cached) → chain the detail fetch, or
//! settle the failure (re-auth, retry, restart, fail).
//!
//! The global rate-limit permit is taken by the worker *before* it claims this job, so
//! first attempts and retries draw from one budget and no job sits leased while waiting.

use chrono::Utc;
use shared::jobs::{AuthorizeJob, DetailJob};
use shared::queue::{EnqueueOptions, JobFailure};

use super::settle::{already_done, persist, settle_failure, Step};
use super::{Deps, Handled};

/// Runs one authorize job (delivery number `attempt`, 1-based).
#[tracing::instrument(
    name = "job.authorize",
    skip_all,
    fields(login = %job.login_id.fingerprint(), date = %job.routine_date, attempt)
)]
pub async fn handle(job: &AuthorizeJob, attempt: u32, deps: &Deps) -> Result<Handled, JobFailure> {
    if already_done(deps, &job.login_id, job.routine_date).await? {
        return Ok(Handled::AlreadyDone);
    }
    match deps.flinks.authorize(&job.login_id).await {
        Ok(ok) => {
            let detail = DetailJob {
                login_id: job.login_id.clone(),
                routine_date: job.routine_date,
                request_id: ok.request_id,
                last_refresh: ok.login.last_refresh_known(),
                session_restarts: job.session_restarts,
                polling_since: None,
                polls: 0,
            };
            let options = EnqueueOptions::dedupe(detail.dedupe_key());
            persist("chain detail job", || {
                deps.detail_queue.enqueue(&detail, options.clone())
            })
            .await?;
            tracing::debug!(at = %Utc::now(), "authorized; detail job chained");
            Ok(Handled::Chained)
        }
        Err(error) => {
            let step = Step {
                login: &job.login_id,
                date: job.routine_date,
                session_restarts: job.session_restarts,
                attempt,
            };
            settle_failure(deps, step, error).await
        }
    }
}

//! Metric names the queue records. `pub const`s so the metrics module can re-export and
//! describe them; labels are bounded (`queue` is a const name, `outcome` one of
//! [`OUTCOME_SUCCEEDED`], [`OUTCOME_RETRIED`], [`OUTCOME_DEAD`]).

/// Counter, `queue`: jobs accepted by enqueue (duplicates not counted).
pub const JOBS_ENQUEUED_TOTAL: &str = "nightly_refresh_jobs_enqueued_total";
/// Counter, `queue`, `outcome`: attempts settled by a worker.
pub const JOBS_PROCESSED_TOTAL: &str = "nightly_refresh_jobs_processed_total";
/// Counter, `queue`: jobs whose lease expired and that the reaper returned to ready.
pub const JOBS_RESCUED_TOTAL: &str = "nightly_refresh_jobs_rescued_total";
/// Histogram (seconds), `queue`: handler run time of one attempt.
pub const JOB_DURATION_SECONDS: &str = "nightly_refresh_job_duration_seconds";

/// `outcome` label: the job finished and was acknowledged.
pub const OUTCOME_SUCCEEDED: &str = "succeeded";
/// `outcome` label: the attempt failed and the job will be retried later.
pub const OUTCOME_RETRIED: &str = "retried";
/// `outcome` label: the job went to the dead letters (permanent, last attempt, or poison).
/// Not `failed`: that is a recorded routine outcome (`routine_outcomes_total`), which a
/// dead letter only becomes once the reconciler records it.
pub const OUTCOME_DEAD: &str = "dead";

//! Every metric of nightly-refresh, in one place: the [`ALL_METRICS`] table (name, type,
//! unit, help, labels) is what `describe_*!` registers, what the dashboard test checks the
//! PromQL of `grafana/` and `prometheus/` against, and where cardinality is reviewed.
//!
//! Names recorded by other modules keep their `const` beside the code that records them
//! (`flinks::call_log`, `queue::metrics_names`, `ratelimit`, `results`, `routine`) and are
//! referenced here, so a rename there changes the table too. The worker's names
//! ([`ROUTINE_OUTCOMES_TOTAL`], [`REDELIVERIES_SKIPPED_TOTAL`], [`AUTHORIZE_CHECKS_TOTAL`])
//! are defined here because `shared` cannot see the worker crate; a test scans the
//! workspace's sources for any `"nightly_refresh_…"` literal missing from the table.
//!
//! The recorder gives every histogram explicit buckets (the exporter renders summaries
//! otherwise, which cannot be summed across pods), creates the known series at zero (so
//! `rate()` and `increase()` see the first event, and panels show 0 rather than "no data"),
//! and runs its upkeep in the background. The gauges read from Redis are set by
//! [`crate::gauges`]; this module only names and describes them.

use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::events::webhook::{
    FAILURE_REASONS as WEBHOOK_FAILURE_REASONS, WEBHOOK_DEAD_LETTERED_TOTAL,
    WEBHOOK_DELIVERED_TOTAL, WEBHOOK_FAILED_ATTEMPTS_TOTAL, WEBHOOK_OLDEST_UNDELIVERED_AGE_SECONDS,
};
use crate::events::{EVENTS_STREAM_HELD_ENTRIES, EVENTS_TRIMMED_TOTAL};
use crate::flinks::call_log::{
    Endpoint, FLINKS_ERRORS_TOTAL, FLINKS_REQUESTS_TOTAL, FLINKS_REQUEST_DURATION_SECONDS,
    OUTCOME_LABELS as FLINKS_OUTCOMES,
};
use crate::jobs::{AUTHORIZE_QUEUE, DETAIL_QUEUE};
use crate::queue::metrics_names::{
    JOBS_ENQUEUED_TOTAL, JOBS_PROCESSED_TOTAL, JOBS_RESCUED_TOTAL, JOB_DURATION_SECONDS,
    OUTCOME_DEAD, OUTCOME_RETRIED, OUTCOME_SUCCEEDED,
};
use crate::ratelimit::{COOLDOWNS_TOTAL, PERMITS_TOTAL, WAIT_SECONDS};
use crate::results::RESULTS_STORED_TOTAL;
use crate::routine::ROUTINE_LAST_FIRED_TIMESTAMP_SECONDS;

/// Latency buckets in seconds: from a fast cached Authorize to a 210 s GetAccountsDetail.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 240.0,
];

/// Gauge: `nightly_refresh_build_info{version,git_rev} 1`.
pub const BUILD_INFO: &str = "nightly_refresh_build_info";
/// The git revision this binary was built from (`shared/build.rs`; "unknown" without git).
pub const GIT_REV: &str = env!("NIGHTLY_REFRESH_GIT_REV");
/// Counter (worker), `queue`, `outcome`: what the routine's handlers did
/// ([`ROUTINE_OUTCOME_LABELS`]). The worker's `startup::ROUTINE_OUTCOMES_TOTAL` must equal it.
pub const ROUTINE_OUTCOMES_TOTAL: &str = "nightly_refresh_routine_outcomes_total";
/// Counter (worker): redeliveries that found their (LoginId, date) done and called nothing.
pub const REDELIVERIES_SKIPPED_TOTAL: &str = "nightly_refresh_redeliveries_skipped_total";
/// Counter (worker), `read` ([`AUTHORIZE_CHECK_READS`]): authorize steps' ledger checks, by
/// how they were read.
pub const AUTHORIZE_CHECKS_TOTAL: &str = "nightly_refresh_authorize_checks_total";

/// Gauge (sampler), `queue`, `state` ([`QUEUE_STATES`]): jobs per queue and state.
pub const QUEUE_JOBS: &str = "nightly_refresh_queue_jobs";
/// Gauge (sampler): worker processes whose queue heartbeat is recent (3 leases).
pub const WORKERS_ALIVE: &str = "nightly_refresh_workers_alive";
/// Gauge (sampler), `queue`: how long ago the job next in line was first enqueued (0 when
/// nothing is ready).
pub const QUEUE_OLDEST_READY_AGE_SECONDS: &str = "nightly_refresh_queue_oldest_ready_age_seconds";
/// Gauge (worker, per process), `queue`: handlers running ÷ the process' concurrency.
pub const WORKER_SLOT_SATURATION_RATIO: &str = "nightly_refresh_worker_slot_saturation_ratio";
/// Gauge (sampler): entries in the results stream.
pub const RESULTS_STREAM_ENTRIES: &str = "nightly_refresh_results_stream_entries";
/// Gauge (sampler), `group`: results-stream entries not yet delivered to the consumer group.
pub const RESULTS_CONSUMER_GROUP_LAG_ENTRIES: &str =
    "nightly_refresh_results_consumer_group_lag_entries";
/// Gauge (sampler), `group`: entries delivered to the consumer group, not acknowledged.
pub const RESULTS_CONSUMER_GROUP_PENDING_ENTRIES: &str =
    "nightly_refresh_results_consumer_group_pending_entries";

/// Prefix of the process metrics (CPU, memory, file descriptors, threads) that
/// `metrics-process` collects on every scrape ([`collect_process`]).
pub const PROCESS_PREFIX: &str = "nightly_refresh_";
/// Counter: CPU time (user + system) of the process, whole seconds.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "nightly_refresh_process_cpu_seconds_total";
/// Gauge: resident memory of the process.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "nightly_refresh_process_resident_memory_bytes";
/// Gauge: virtual memory of the process.
pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "nightly_refresh_process_virtual_memory_bytes";
/// Gauge: the process' virtual memory limit.
pub const PROCESS_VIRTUAL_MEMORY_MAX_BYTES: &str =
    "nightly_refresh_process_virtual_memory_max_bytes";
/// Gauge: open file descriptors of the process.
pub const PROCESS_OPEN_FDS: &str = "nightly_refresh_process_open_fds";
/// Gauge: the process' file-descriptor limit.
pub const PROCESS_MAX_FDS: &str = "nightly_refresh_process_max_fds";
/// Gauge: when the process started (Unix seconds).
pub const PROCESS_START_TIME_SECONDS: &str = "nightly_refresh_process_start_time_seconds";
/// Gauge: OS threads of the process.
pub const PROCESS_THREADS: &str = "nightly_refresh_process_threads";
/// Gauge (sampler), `state` ([`ROUTINE_LOGIN_STATES`]): the due routine's LoginIds.
pub const ROUTINE_LOGINS: &str = "nightly_refresh_routine_logins";
/// Gauge (sampler), `outcome` ([`ROUTINE_DONE_OUTCOMES`]): the due routine's recorded
/// outcomes, counted as the report counts them: `refreshed` includes `stale`, so
/// `done = refreshed + needs_reauth + failed + superseded`.
pub const ROUTINE_DONE_LOGINS: &str = "nightly_refresh_routine_done_logins";
/// Gauge (sampler): seconds to authorize the due routine's remaining LoginIds at the
/// rate limit in force (NaN when the rate limit is off).
pub const ROUTINE_ETA_SECONDS: &str = "nightly_refresh_routine_eta_seconds";
/// Gauge (sampler): the due routine's deadline, as its run stored it (the schedule's next
/// firing before it ran), Unix seconds.
pub const ROUTINE_DEADLINE_TIMESTAMP_SECONDS: &str =
    "nightly_refresh_routine_deadline_timestamp_seconds";
/// Gauge (sampler): logins the routine can authorize per day at the configured rate,
/// `RATE_LIMIT_PER_MINUTE × 1440` (NaN when the rate limit is off).
pub const ROUTINE_CAPACITY_PER_DAY: &str = "nightly_refresh_routine_capacity_per_day";
/// Gauge (sampler): active logins in the registry (the routine's daily demand).
pub const ACTIVE_LOGINS: &str = "nightly_refresh_active_logins";
/// Counter (producer, worker): waiting authorize jobs replaced by a later date's job of the
/// same login, jobs past their date's deadline and jobs of logins deactivated after the
/// routine queued them (all recorded as `superseded`).
pub const ROUTINE_SUPERSEDED_TOTAL: &str = "nightly_refresh_routine_superseded_total";
/// Gauge (sampler): 1 when the last sample read Redis, 0 when Redis did not answer.
pub const REDIS_UP: &str = "nightly_refresh_redis_up";
/// Gauge (sampler): when a sample last succeeded (Unix seconds).
pub const SAMPLER_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "nightly_refresh_sampler_last_success_timestamp_seconds";

/// Gauge (sampler): logins whose nightly-refresh change (SetScheduledRefresh) Flinks has
/// not confirmed yet: pending or failed.
pub const FLINKS_SCHEDULED_REFRESH_UNCONFIRMED: &str =
    "nightly_refresh_flinks_scheduled_refresh_unconfirmed_logins";

/// Gauge (sampler): the rate limit in force, LoginIds per minute across every worker
/// (0 = off): the stored one, `RATE_LIMIT_PER_MINUTE` while none is stored.
pub const RATE_LIMIT_PER_MINUTE: &str = "nightly_refresh_rate_limit_per_minute";
/// Gauge (sampler), `queue` ([`crate::control::PAUSABLE_QUEUES`]): 1 while an operator
/// paused the queue (workers do not fetch it), else 0.
pub const QUEUE_PAUSED: &str = "nightly_refresh_queue_paused";

/// The routine's queues (the `queue` label).
pub const ROUTINE_QUEUES: [&str; 2] = [AUTHORIZE_QUEUE, DETAIL_QUEUE];
/// Values of `state` on [`QUEUE_JOBS`].
pub const QUEUE_STATES: [&str; 4] = ["ready", "delayed", "in_flight", "dead"];
/// Values of `state` on [`ROUTINE_LOGINS`].
pub const ROUTINE_LOGIN_STATES: [&str; 3] = ["expected", "done", "remaining"];
/// Values of `outcome` on [`ROUTINE_DONE_LOGINS`] (`refreshed` includes `stale`).
pub const ROUTINE_DONE_OUTCOMES: [&str; 5] =
    ["refreshed", "stale", "needs_reauth", "failed", "superseded"];
/// Values of `read` on [`AUTHORIZE_CHECKS_TOTAL`]: with the job's lease, or in a round trip
/// of its own (a Cluster, more ledger buckets, a payload of another form).
pub const AUTHORIZE_CHECK_READS: [&str; 2] = ["lease", "round_trip"];
/// Values of `result` on `rate_limit_permits_total`.
pub const PERMIT_RESULTS: [&str; 2] = ["granted", "throttled"];
/// Values of `outcome` on `jobs_processed_total`.
pub const QUEUE_OUTCOMES: [&str; 3] = [OUTCOME_SUCCEEDED, OUTCOME_RETRIED, OUTCOME_DEAD];
/// Values of `outcome` on [`ROUTINE_OUTCOMES_TOTAL`]: the worker's `Handled::as_label`
/// values plus `retried`, `deferred` and `dead`.
pub const ROUTINE_OUTCOME_LABELS: [&str; 13] = [
    "chained",
    "refreshed",
    "stale",
    "reauth",
    "failed",
    "pending_poll",
    "session_restarted",
    "already_done",
    "past_deadline",
    "deactivated",
    "retried",
    "deferred",
    "dead",
];

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; ends in `_total`.
    Counter,
    /// A current value.
    Gauge,
    /// Observations in [`LATENCY_BUCKETS`]; ends in `_seconds`.
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// Full Prometheus name.
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// Unit, when it has one.
    pub unit: Option<Unit>,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Label names (every value bounded).
    pub labels: &'static [&'static str],
}

const fn def(
    name: &'static str,
    kind: Kind,
    unit: Option<Unit>,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit,
        help,
        labels,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Counter: cached Authorize answers recorded as needs re-auth on the routine's 401 rule
/// alone, by `flinks_code` (`other` for a code this version does not know, `none`).
pub const FLINKS_UNRECOGNISED_REAUTH_TOTAL: &str =
    "nightly_refresh_flinks_unrecognised_reauth_total";

/// Every metric the code records, described once.
pub const ALL_METRICS: &[MetricDef] = &[
    def(
        BUILD_INFO,
        Gauge,
        None,
        &["version", "git_rev"],
        "Always 1; the labels name the build: the crate version and the git revision (unknown when built without git)",
    ),
    def(
        QUEUE_OLDEST_READY_AGE_SECONDS,
        Gauge,
        Some(Unit::Seconds),
        &["queue"],
        "How long ago the job next in line on the queue was first enqueued (0 when nothing is ready), on Redis' clock; the same on every pod, aggregate with max",
    ),
    def(
        WORKER_SLOT_SATURATION_RATIO,
        Gauge,
        None,
        &["queue"],
        "Handlers running in this worker process divided by its concurrency, per queue (1 = every slot busy)",
    ),
    def(
        RESULTS_STREAM_ENTRIES,
        Gauge,
        Some(Unit::Count),
        &[],
        "Entries in the results stream (capped at about RESULTS_STREAM_MAXLEN), read from Redis",
    ),
    def(
        RESULTS_CONSUMER_GROUP_LAG_ENTRIES,
        Gauge,
        Some(Unit::Count),
        &["group"],
        "Results-stream entries not yet delivered to each consumer group (NaN when Redis cannot tell); group names are the consumers' own, a handful",
    ),
    def(
        RESULTS_CONSUMER_GROUP_PENDING_ENTRIES,
        Gauge,
        Some(Unit::Count),
        &["group"],
        "Results-stream entries delivered to each consumer group and not acknowledged yet",
    ),
    def(
        PROCESS_CPU_SECONDS_TOTAL,
        Counter,
        Some(Unit::Seconds),
        &[],
        "CPU time (user + system) this process used, whole seconds",
    ),
    def(
        PROCESS_RESIDENT_MEMORY_BYTES,
        Gauge,
        Some(Unit::Bytes),
        &[],
        "Resident memory of this process",
    ),
    def(
        PROCESS_VIRTUAL_MEMORY_BYTES,
        Gauge,
        Some(Unit::Bytes),
        &[],
        "Virtual memory of this process",
    ),
    def(
        PROCESS_VIRTUAL_MEMORY_MAX_BYTES,
        Gauge,
        Some(Unit::Bytes),
        &[],
        "Virtual memory limit of this process",
    ),
    def(
        PROCESS_OPEN_FDS,
        Gauge,
        Some(Unit::Count),
        &[],
        "Open file descriptors of this process",
    ),
    def(
        PROCESS_MAX_FDS,
        Gauge,
        Some(Unit::Count),
        &[],
        "File-descriptor limit of this process",
    ),
    def(
        PROCESS_START_TIME_SECONDS,
        Gauge,
        Some(Unit::Seconds),
        &[],
        "When this process started (Unix seconds)",
    ),
    def(
        PROCESS_THREADS,
        Gauge,
        Some(Unit::Count),
        &[],
        "OS threads of this process",
    ),
    def(
        FLINKS_REQUESTS_TOTAL,
        Counter,
        Some(Unit::Count),
        &["endpoint", "outcome", "status"],
        "Flinks API calls by endpoint, wire outcome (ok, pending, unauthorized, client_error, server_error, timeout, transport_error) and HTTP status (a closed set; other, or none without an answer), counted when they end",
    ),
    def(
        FLINKS_REQUEST_DURATION_SECONDS,
        Histogram,
        Some(Unit::Seconds),
        &["endpoint"],
        "Flinks API call latency by endpoint, transport errors included",
    ),
    def(
        FLINKS_ERRORS_TOTAL,
        Counter,
        Some(Unit::Count),
        &["flinks_code"],
        "Failed Flinks calls that carried a FlinksCode, by code (unknown codes as other)",
    ),
    def(
        FLINKS_UNRECOGNISED_REAUTH_TOTAL,
        Counter,
        Some(Unit::Count),
        &["flinks_code"],
        "401 answers to the cached Authorize recorded as needs re-auth without a FlinksCode known to mean it (other: a new code; none: no code)",
    ),
    def(
        PERMITS_TOTAL,
        Counter,
        Some(Unit::Count),
        &["result"],
        "Global rate-limit permit requests, by result (granted, throttled)",
    ),
    def(
        WAIT_SECONDS,
        Histogram,
        Some(Unit::Seconds),
        &[],
        "Time a worker waited for a global rate-limit permit",
    ),
    def(
        COOLDOWNS_TOTAL,
        Counter,
        Some(Unit::Count),
        &[],
        "Cool-downs of every worker after Flinks answered TOO_MANY_REQUESTS",
    ),
    def(
        RATE_LIMIT_PER_MINUTE,
        Gauge,
        None,
        &[],
        "The rate limit in force: LoginId authorizations per minute, all workers together (0 = off); set at run time with producer ratelimit set",
    ),
    def(
        QUEUE_PAUSED,
        Gauge,
        None,
        &["queue"],
        "1 while an operator has paused the queue (authorize, detail, deactivation): workers fetch none of its jobs; 0 otherwise",
    ),
    def(
        JOBS_ENQUEUED_TOTAL,
        Counter,
        Some(Unit::Count),
        &["queue"],
        "Jobs accepted by enqueue, duplicates not counted (recorded by the enqueuing process)",
    ),
    def(
        JOBS_PROCESSED_TOTAL,
        Counter,
        Some(Unit::Count),
        &["queue", "outcome"],
        "Job attempts settled by a worker, by queue and outcome (succeeded, retried, dead)",
    ),
    def(
        JOBS_RESCUED_TOTAL,
        Counter,
        Some(Unit::Count),
        &["queue"],
        "Jobs whose lease expired (their worker died) and that the reaper returned to ready",
    ),
    def(
        JOB_DURATION_SECONDS,
        Histogram,
        Some(Unit::Seconds),
        &["queue"],
        "Handler run time of one job attempt, by queue",
    ),
    def(
        ROUTINE_OUTCOMES_TOTAL,
        Counter,
        Some(Unit::Count),
        &["queue", "outcome"],
        "What the routine's handlers did, by queue and outcome (chained, refreshed, stale, reauth, failed, pending_poll, session_restarted, already_done, past_deadline, deactivated, retried, deferred, dead)",
    ),
    def(
        REDELIVERIES_SKIPPED_TOTAL,
        Counter,
        Some(Unit::Count),
        &[],
        "Redeliveries that found their (LoginId, date) already done in the ledger and called nothing",
    ),
    def(
        AUTHORIZE_CHECKS_TOTAL,
        Counter,
        Some(Unit::Count),
        &["read"],
        "Authorize steps' ledger checks (done? ineligible?), read with the job's lease or in a round trip of their own",
    ),
    def(
        RESULTS_STORED_TOTAL,
        Counter,
        Some(Unit::Count),
        &[],
        "Account-detail results appended to the results stream",
    ),
    def(
        ROUTINE_LAST_FIRED_TIMESTAMP_SECONDS,
        Gauge,
        Some(Unit::Seconds),
        &[],
        "When producer schedule last fired the routine (Unix seconds)",
    ),
    def(
        QUEUE_JOBS,
        Gauge,
        Some(Unit::Count),
        &["queue", "state"],
        "Jobs per queue and state (ready, delayed, in_flight, dead), read from Redis; the same on every pod, aggregate with max",
    ),
    def(
        WORKERS_ALIVE,
        Gauge,
        Some(Unit::Count),
        &[],
        "Worker processes with a queue heartbeat within three leases, read from Redis",
    ),
    def(
        ROUTINE_LOGINS,
        Gauge,
        Some(Unit::Count),
        &["state"],
        "The due routine date's LoginIds: expected (active when it started), done (any outcome recorded), remaining",
    ),
    def(
        ROUTINE_DONE_LOGINS,
        Gauge,
        Some(Unit::Count),
        &["outcome"],
        "The due routine date's recorded outcomes: refreshed (accounts fetched and stored, stale ones included), stale (the refreshed ones whose Flinks LastRefresh is old), needs_reauth, failed, superseded; done = refreshed + needs_reauth + failed + superseded",
    ),
    def(
        ROUTINE_CAPACITY_PER_DAY,
        Gauge,
        Some(Unit::Count),
        &[],
        "Logins the routine can authorize per day at the configured rate: RATE_LIMIT_PER_MINUTE x 1440 (NaN when the limit is off)",
    ),
    def(
        ACTIVE_LOGINS,
        Gauge,
        Some(Unit::Count),
        &[],
        "Active logins in the registry: the routine's daily demand, read from Redis",
    ),
    def(
        ROUTINE_SUPERSEDED_TOTAL,
        Counter,
        Some(Unit::Count),
        &[],
        "Authorize jobs recorded as superseded on their date: replaced by a later routine date's job of the same login, past the date's deadline, or of a login deactivated after the routine queued it",
    ),
    def(
        ROUTINE_ETA_SECONDS,
        Gauge,
        Some(Unit::Seconds),
        &[],
        "Time to authorize the due routine's remaining LoginIds at the rate limit in force (NaN when the limit is off)",
    ),
    def(
        ROUTINE_DEADLINE_TIMESTAMP_SECONDS,
        Gauge,
        Some(Unit::Seconds),
        &[],
        "The due routine's deadline as its run stored it (the schedule's next firing until it ran), Unix seconds",
    ),
    def(
        REDIS_UP,
        Gauge,
        None,
        &[],
        "1 when this pod's last sample read Redis, 0 when Redis did not answer",
    ),
    def(
        SAMPLER_LAST_SUCCESS_TIMESTAMP_SECONDS,
        Gauge,
        Some(Unit::Seconds),
        &[],
        "When this pod last read the queue and routine gauges from Redis (Unix seconds)",
    ),
    def(
        FLINKS_SCHEDULED_REFRESH_UNCONFIRMED,
        Gauge,
        Some(Unit::Count),
        &[],
        "Logins whose nightly-refresh on/off change (SetScheduledRefresh) Flinks has not confirmed yet: pending or failed; Flinks may bill the inactive ones meanwhile",
    ),
    def(
        EVENTS_STREAM_HELD_ENTRIES,
        Gauge,
        Some(Unit::Count),
        &[],
        "Events beyond EVENTS_STREAM_MAXLEN kept because a consumer group or the webhook has not acknowledged them",
    ),
    def(
        EVENTS_TRIMMED_TOTAL,
        Counter,
        Some(Unit::Count),
        &[],
        "Events removed from the stream by EVENTS_STREAM_MAXLEN after every consumer acknowledged them",
    ),
    def(
        WEBHOOK_DELIVERED_TOTAL,
        Counter,
        Some(Unit::Count),
        &[],
        "Events a webhook receiver acknowledged with a 2xx (redeliveries included)",
    ),
    def(
        WEBHOOK_FAILED_ATTEMPTS_TOTAL,
        Counter,
        Some(Unit::Count),
        &["reason"],
        "Webhook delivery attempts without a 2xx, by reason (server_error, client_error, timeout, connect, other)",
    ),
    def(
        WEBHOOK_DEAD_LETTERED_TOTAL,
        Counter,
        Some(Unit::Count),
        &[],
        "Events parked in the webhook dead-letter list after WEBHOOK_MAX_AGE of failed attempts",
    ),
    def(
        WEBHOOK_OLDEST_UNDELIVERED_AGE_SECONDS,
        Gauge,
        Some(Unit::Seconds),
        &[],
        "Age of the oldest event the webhook has not delivered (0 when none)",
    ),
];

/// The names of [`ALL_METRICS`].
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    ALL_METRICS.iter().map(|m| m.name)
}

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct MetricsError(String);

/// The builder every process uses: explicit buckets for every histogram.
pub fn builder() -> Result<PrometheusBuilder, MetricsError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| MetricsError(e.to_string()))
}

static PROCESS: std::sync::LazyLock<metrics_process::Collector> =
    std::sync::LazyLock::new(|| metrics_process::Collector::new(PROCESS_PREFIX));

/// Reads this process' CPU, memory, file descriptors and threads into their metrics (the
/// `/metrics` handler calls it before rendering, so they are as fresh as the scrape).
pub fn collect_process() {
    PROCESS.collect();
}

/// Installs the global recorder (once per process), describes every metric, creates the
/// known series at zero and returns the handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let handle = builder()?
        .install_recorder()
        .map_err(|e| MetricsError(e.to_string()))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    register();
    Ok(handle)
}

/// Describes every metric of [`ALL_METRICS`], sets `build_info` and creates the known
/// series at zero, on the current recorder (global, or a test's local one).
pub fn register() {
    describe();
    zero_known_series();
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for m in ALL_METRICS {
        match (m.kind, m.unit) {
            (Kind::Counter, Some(unit)) => describe_counter!(m.name, unit, m.help),
            (Kind::Counter, None) => describe_counter!(m.name, m.help),
            (Kind::Gauge, Some(unit)) => describe_gauge!(m.name, unit, m.help),
            (Kind::Gauge, None) => describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(m.name, unit, m.help),
            (Kind::Histogram, None) => describe_histogram!(m.name, m.help),
        }
    }
}

/// Creates the series whose label values are known in advance at zero. Counters are
/// incremented by 0 (a value already counted stays), histograms only registered.
fn zero_known_series() {
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "git_rev" => GIT_REV
    )
    .set(1.0);
    for endpoint in Endpoint::ALL {
        let endpoint = endpoint.as_str();
        for outcome in FLINKS_OUTCOMES {
            // One representative status per outcome, so every (endpoint, outcome) exists.
            let status = match outcome {
                "ok" => "200",
                "pending" => "202",
                "unauthorized" => "401",
                "client_error" => "400",
                "server_error" => "500",
                _ => "none",
            };
            metrics::counter!(
                FLINKS_REQUESTS_TOTAL,
                "endpoint" => endpoint,
                "outcome" => outcome,
                "status" => status
            )
            .increment(0);
        }
        let _ = metrics::histogram!(FLINKS_REQUEST_DURATION_SECONDS, "endpoint" => endpoint);
    }
    for result in PERMIT_RESULTS {
        metrics::counter!(PERMITS_TOTAL, "result" => result).increment(0);
    }
    let _ = metrics::histogram!(WAIT_SECONDS);
    metrics::counter!(COOLDOWNS_TOTAL).increment(0);
    for code in ["other", "none"] {
        metrics::counter!(FLINKS_UNRECOGNISED_REAUTH_TOTAL, "flinks_code" => code).increment(0);
    }
    metrics::counter!(REDELIVERIES_SKIPPED_TOTAL).increment(0);
    for read in AUTHORIZE_CHECK_READS {
        metrics::counter!(AUTHORIZE_CHECKS_TOTAL, "read" => read).increment(0);
    }
    metrics::counter!(RESULTS_STORED_TOTAL).increment(0);
    metrics::counter!(ROUTINE_SUPERSEDED_TOTAL).increment(0);
    metrics::counter!(EVENTS_TRIMMED_TOTAL).increment(0);
    metrics::counter!(WEBHOOK_DELIVERED_TOTAL).increment(0);
    metrics::counter!(WEBHOOK_DEAD_LETTERED_TOTAL).increment(0);
    for reason in WEBHOOK_FAILURE_REASONS {
        metrics::counter!(WEBHOOK_FAILED_ATTEMPTS_TOTAL, "reason" => reason).increment(0);
    }
    for queue in ROUTINE_QUEUES {
        metrics::counter!(JOBS_ENQUEUED_TOTAL, "queue" => queue).increment(0);
        metrics::counter!(JOBS_RESCUED_TOTAL, "queue" => queue).increment(0);
        let _ = metrics::histogram!(JOB_DURATION_SECONDS, "queue" => queue);
        for outcome in QUEUE_OUTCOMES {
            metrics::counter!(JOBS_PROCESSED_TOTAL, "queue" => queue, "outcome" => outcome)
                .increment(0);
        }
        for outcome in ROUTINE_OUTCOME_LABELS {
            metrics::counter!(ROUTINE_OUTCOMES_TOTAL, "queue" => queue, "outcome" => outcome)
                .increment(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_follows_the_naming_guide() {
        let mut seen = std::collections::HashSet::new();
        for m in ALL_METRICS {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("nightly_refresh_"), "{}", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                Kind::Gauge => assert!(!m.name.ends_with("_total"), "{}", m.name),
                Kind::Histogram => assert!(m.name.ends_with("_seconds"), "{}", m.name),
            }
            for label in m.labels {
                assert!(
                    !matches!(*label, "job" | "instance"),
                    "{}: reserved label",
                    m.name
                );
            }
        }
    }
}

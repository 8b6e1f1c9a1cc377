//! The Prometheus recorder: every histogram gets explicit buckets (the exporter renders
//! summaries otherwise, which cannot be summed across pods), and the recorder's upkeep
//! runs in the background. Metric *names* live beside the code that records them
//! (`flinks::call_log`, `queue`, `ratelimit`) and are described here in one place.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: from a fast cached Authorize to a 210 s GetAccountsDetail.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 240.0,
];

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct MetricsError(String);

/// Installs the global recorder (once per process) and returns the handle that renders
/// `/metrics`.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| MetricsError(e.to_string()))?
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
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        crate::ratelimit::PERMITS_TOTAL,
        "Global rate-limit permit requests, by result (granted, throttled)"
    );
    describe_histogram!(
        crate::ratelimit::WAIT_SECONDS,
        Unit::Seconds,
        "Time a worker waited for a global rate-limit permit"
    );
    describe_counter!(
        crate::ratelimit::COOLDOWNS_TOTAL,
        "Cool-downs of every worker after Flinks answered TOO_MANY_REQUESTS"
    );
    describe_gauge!(
        crate::ratelimit::BUDGET_PER_MINUTE,
        "Configured LoginId authorizations per minute, all workers together (0 = off)"
    );
}

//! The `producer schedule` process: the ops port (/metrics, /healthz, /readyz), the
//! Redis-sampled gauges, the GetNightlyRefreshStatus pre-check when a bearer secret is
//! configured, and the once-a-day [`Schedule`] that fires the routine. The binary only
//! loads settings and hands over a connection and a shutdown token.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings};
use crate::flinks::{FlinksClient, FlinksConfig};
use crate::keys::KeySpace;
use crate::metrics::MetricsError;
use crate::ops::logins::LoginOps;
use crate::ops_http::OpsLimits;
use crate::redis_conn::RedisConn;
use crate::routine::{DayClaim, RefreshStatusPrecheck, Schedule};

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The Flinks settings of the pre-check are missing or invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The Flinks client of the pre-check could not be built.
    #[error("Flinks client")]
    Flinks(#[source] crate::flinks::Error),
    /// The Prometheus recorder could not be installed.
    #[error("metrics recorder")]
    Metrics(#[source] MetricsError),
    /// METRICS_ADDR could not be bound.
    #[error("cannot serve the ops port on METRICS_ADDR={addr}")]
    OpsPort {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
}

/// This replica's name in the day claim: the host name (or `producer`) and the process id.
pub fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "producer".into());
    format!("{host}-{}", std::process::id())
}

/// The GetNightlyRefreshStatus pre-check, when a bearer secret is configured.
fn precheck(
    conn: &RedisConn,
    keys: &KeySpace,
    settings: &Settings,
) -> Result<Option<RefreshStatusPrecheck>, DaemonError> {
    if settings.flinks_bearer_secret.is_none() {
        return Ok(None);
    }
    let config = FlinksConfig::from_settings(settings)?;
    Ok(Some(RefreshStatusPrecheck {
        client: FlinksClient::new(config).map_err(DaemonError::Flinks)?,
        ops: LoginOps::new(conn.clone(), keys, settings),
    }))
}

/// Runs the scheduler until `shutdown`: serves the ops port, samples the gauges (the same
/// as the worker's, so queue depth, routine progress and the deadline stay visible while
/// no worker runs) and fires the routine once a day at ROUTINE_AT in ROUTINE_TZ.
pub async fn run(
    conn: RedisConn,
    keys: &KeySpace,
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let stores = crate::stores::Stores::open(conn.clone(), keys, settings);
    let (registry, ledger, queue) = (stores.registry, stores.ledger, stores.authorize);
    let metrics = crate::metrics::install().map_err(DaemonError::Metrics)?;
    let addr = settings.metrics_addr;
    let limits = OpsLimits::from_settings(settings);
    let ops = crate::ops_http::serve(addr, limits, metrics, conn.clone(), shutdown.clone())
        .await
        .map_err(|source| DaemonError::OpsPort { addr, source })?;
    let _sampler = crate::gauges::spawn_sampler(
        conn.clone(),
        keys.clone(),
        crate::gauges::SamplerConfig::from_settings(settings),
        shutdown.clone(),
    );
    let schedule = Schedule {
        claim: DayClaim::new(conn.clone(), keys, replica_name()),
        at: settings.routine_at,
        tz: settings.routine_tz,
        rate_per_minute: settings.rate_limit_per_minute,
        deadline: settings.routine_deadline,
        precheck: precheck(&conn, keys, settings)?,
    };
    tracing::info!(
        at = %settings.routine_at,
        tz = %settings.routine_tz,
        ops = %ops,
        "schedule running; fires the routine once a day"
    );
    schedule.run(&registry, &ledger, &queue, &shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_named_after_its_host_and_process() {
        let name = replica_name();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
    }
}

//! The ops port: `/metrics` (Prometheus), `/healthz` (the process is alive) and `/readyz`
//! (Redis answers), on `METRICS_ADDR`, apart from anything user-facing.
//!
//! Anyone who can reach the port can open connections to it, so the server bounds what a
//! client can hold: a connection that has not sent a complete request head within
//! [`OpsLimits::read_timeout`] (idle, half-open, or dribbling a byte at a time; also
//! between two requests of a kept-alive connection) is closed, and at most
//! [`OpsLimits::max_connections`] are open at once: a connection beyond that is accepted
//! and closed at once, so it costs a file descriptor for no longer than that. The worker's
//! Redis and Flinks connections therefore never starve for descriptors because of this
//! port, and Prometheus gets its scrape in as soon as a slot frees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors), so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What one client may hold on the ops port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpsLimits {
    /// `METRICS_READ_TIMEOUT`: a connection must send a complete request head within this
    /// long (from connecting, or from the previous response); otherwise it is closed.
    pub read_timeout: Duration,
    /// `METRICS_MAX_CONNECTIONS`: connections served at once; more are closed on accept.
    pub max_connections: usize,
}

impl OpsLimits {
    /// Default `read_timeout`: a scrape's request head arrives in milliseconds.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default `max_connections`: Prometheus, probes and an operator's curl need a handful.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

    /// The limits the settings describe.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            read_timeout: settings.metrics_read_timeout,
            max_connections: settings.metrics_max_connections,
        }
    }
}

impl Default for OpsLimits {
    fn default() -> Self {
        Self {
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: PrometheusHandle,
    redis: RedisConn,
}

/// The ops router, apart from the socket so tests need none.
pub fn app(metrics: PrometheusHandle, redis: RedisConn) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState { metrics, redis })
}

/// Binds `addr` and serves the ops router within `limits` until `shutdown` fires. Returns
/// the bound address (useful with port 0) once listening.
pub async fn serve(
    addr: SocketAddr,
    limits: OpsLimits,
    metrics: PrometheusHandle,
    redis: RedisConn,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let router = app(metrics, redis);
    tokio::spawn(accept_loop(listener, router, limits, shutdown));
    Ok(bound)
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: OpsLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(error.message = %error, "ops HTTP server: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: closing now frees the descriptor at once; the client may retry.
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            // Timeouts and resets are the client's business, not an operator's.
            if let Err(error) = result {
                tracing::debug!(error.message = %error, "ops HTTP connection closed");
            }
        });
    }
}

async fn render_metrics(State(state): State<OpsState>) -> String {
    crate::metrics::collect_process();
    state.metrics.render()
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, &'static str) {
    let mut conn = state.redis.clone();
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    if matches!(ping, Ok(Ok(_))) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable\n")
    }
}

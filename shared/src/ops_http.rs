//! The ops port: `/metrics` (Prometheus), `/healthz` (the process is alive) and `/readyz`
//! (Redis answers), on `METRICS_ADDR`, apart from anything user-facing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct OpsState {
    metrics: PrometheusHandle,
    redis: ConnectionManager,
}

/// The ops router, apart from the socket so tests need none.
pub fn app(metrics: PrometheusHandle, redis: ConnectionManager) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState { metrics, redis })
}

/// Binds `addr` and serves the ops router until `shutdown` fires. Returns the bound
/// address (useful with port 0) once listening.
pub async fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    redis: ConnectionManager,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let router = app(metrics, redis);
    tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(error.message = %error, "ops HTTP server stopped");
        }
    });
    Ok(bound)
}

async fn render_metrics(State(state): State<OpsState>) -> String {
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

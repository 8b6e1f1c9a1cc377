//! The ops port under connection abuse: idle, half-open and dribbling clients are closed
//! after `METRICS_READ_TIMEOUT`, connections beyond `METRICS_MAX_CONNECTIONS` are closed on
//! accept, and `/metrics` keeps answering. Timeouts are injected short so the test is fast.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use shared::ops_http::{serve, OpsLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::redis_url;

/// Longest wait for something that must happen (a hang guard, not a speed assertion).
const GUARD: Duration = Duration::from_secs(10);

async fn start(limits: OpsLimits) -> (SocketAddr, CancellationToken) {
    let conn = shared::redis_conn::connect_in_env_mode(&redis_url())
        .await
        .unwrap();
    let metrics = PrometheusBuilder::new().build_recorder().handle();
    let shutdown = CancellationToken::new();
    let addr = serve(
        "127.0.0.1:0".parse().unwrap(),
        limits,
        metrics,
        conn,
        shutdown.clone(),
    )
    .await
    .unwrap();
    (addr, shutdown)
}

/// The status line of `GET path`, or `None` when the server closed without answering.
async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut response))
        .await
        .expect("the ops port answers or closes")
        .ok()?;
    let text = String::from_utf8_lossy(&response);
    text.lines().next().map(str::to_string)
}

/// True once the server has closed `stream` (EOF or reset), false if it is still open
/// after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("the server sent bytes to a client that sent no request"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn idle_and_dribbling_connections_are_closed_after_the_read_timeout_and_metrics_answers() {
    // Arrange: a short read timeout, 20 idle connections and 5 sending half a request head.
    let read_timeout = Duration::from_millis(300);
    let (addr, shutdown) = start(OpsLimits {
        read_timeout,
        max_connections: 64,
    })
    .await;
    let opened = Instant::now();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: ops\r\n")
            .await
            .unwrap();
        held.push(s);
    }

    // Act + Assert: /metrics answers while they hang on.
    assert_eq!(
        get(addr, "/metrics").await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );

    // Every one of them is closed by the server, and not before the read timeout.
    for (n, stream) in held.iter_mut().enumerate() {
        assert!(
            closed_within(stream, GUARD).await,
            "connection {n} still open"
        );
    }
    assert!(opened.elapsed() >= read_timeout);
    assert_eq!(
        get(addr, "/healthz").await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    shutdown.cancel();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_on_accept_and_metrics_answers_once_one_frees() {
    // Arrange: a long read timeout, so only the cap can close anything here.
    let (addr, shutdown) = start(OpsLimits {
        read_timeout: Duration::from_secs(60),
        max_connections: 4,
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }

    // Act: see which the server closes.
    let closed = futures::future::join_all(
        streams
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(2))),
    )
    .await;

    // Assert: exactly the 6 beyond the cap were closed; the 4 within it stay open.
    assert_eq!(closed.iter().filter(|c| **c).count(), 6, "{closed:?}");
    let mut open: Vec<TcpStream> = streams
        .into_iter()
        .zip(closed)
        .filter_map(|(s, c)| (!c).then_some(s))
        .collect();
    // A client leaving frees its slot, and /metrics answers again.
    drop(open.pop());
    let deadline = Instant::now() + GUARD;
    loop {
        if get(addr, "/metrics").await.as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        assert!(Instant::now() < deadline, "/metrics never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
}

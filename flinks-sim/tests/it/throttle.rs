//! The Authorize throttle and the window statistics.

use std::time::Duration;

use flinks_sim::{endpoint, SimConfig, Throttle};

use crate::helpers::*;

fn throttled(status: u16) -> SimConfig {
    SimConfig {
        throttle: Some(Throttle {
            max_calls: 3,
            // Wide enough that five calls on a loaded machine still land in one window.
            window: Duration::from_secs(3),
            status,
        }),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn throttle_rejects_calls_over_n_per_window_and_counts_violations() {
    let sim = sim(throttled(401)).await;

    let mut statuses = Vec::new();
    for i in 0..5 {
        let (status, body) = authorize(&sim, &format!("L{i}")).await;
        if status != 200 {
            assert_eq!(flinks_code(&body), "TOO_MANY_REQUESTS");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 401, 401]);

    tokio::time::sleep(Duration::from_millis(3_050)).await;
    assert_eq!(authorize(&sim, "later").await.0, 200, "the window slid");

    let stats = sim.stats().await;
    assert_eq!(stats.throttle_violations, 2);
    assert_eq!(stats.calls(endpoint::AUTHORIZE, 200), 4);
    assert_eq!(stats.calls(endpoint::AUTHORIZE, 401), 2);
    assert_eq!(stats.throttle_window_ms, 3000);
    assert_eq!(stats.max_authorize_in_any_60s_window, 5);
    assert!(stats.max_authorize_in_any_1s_window >= 1);
    assert_eq!(stats.authorize_timestamps_ms.len(), 6);
    let ts = &stats.authorize_timestamps_ms;
    assert!(ts[5] - ts[0] >= 3000, "{ts:?}");
}

#[tokio::test]
async fn throttle_status_is_configurable() {
    let sim = sim(throttled(403)).await;

    for _ in 0..3 {
        assert_eq!(authorize(&sim, "L").await.0, 200);
    }
    let (status, body) = authorize(&sim, "L").await;

    assert_eq!((status, flinks_code(&body)), (403, "TOO_MANY_REQUESTS"));
    assert_eq!(body["HttpStatusCode"], 403);
}

//! `/_sim/stats`, `SimHandle::stats` and reset.

use flinks_sim::{endpoint, Rules, Scenario, SimConfig, Stats};

use crate::helpers::*;

#[tokio::test]
async fn stats_count_calls_per_endpoint_status_and_login_and_reset_clears_them() {
    let sim = sim(SimConfig {
        rules: Rules::default().with_login("bad", Scenario::InvalidPassword),
        ..SimConfig::default()
    })
    .await;
    let (_, auth) = authorize(&sim, "good").await;
    detail(&sim, &request_id(&auth)).await;
    authorize(&sim, "bad").await;
    authorize(&sim, "bad").await;

    let stats = sim.stats().await;
    assert_eq!(stats.calls(endpoint::AUTHORIZE, 200), 1);
    assert_eq!(stats.calls(endpoint::AUTHORIZE, 401), 2);
    assert_eq!(stats.calls(endpoint::GET_ACCOUNTS_DETAIL, 200), 1);
    assert_eq!(stats.total_calls(endpoint::AUTHORIZE), 3);
    assert_eq!(stats.calls_for_login("bad", endpoint::AUTHORIZE), 2);
    assert_eq!(
        stats.calls_for_login("good", endpoint::GET_ACCOUNTS_DETAIL),
        1
    );
    assert_eq!(stats.max_authorize_in_any_60s_window, 3);
    assert_eq!(stats.throttle_window_ms, 60_000);

    let over_http: Stats = client()
        .get(format!("{}/_sim/stats", sim.root_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, stats);
    let raw: serde_json::Value = client()
        .get(format!("{}/_sim/stats", sim.root_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["calls"]["authorize"]["401"], 2);

    let resp = client()
        .post(format!("{}/_sim/reset", sim.root_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        sim.stats().await,
        Stats {
            throttle_window_ms: 60_000,
            ..Stats::default()
        }
    );
    let (status, body) = detail(&sim, &request_id(&auth)).await;
    assert_eq!(
        (status, flinks_code(&body)),
        (400, "SESSION_NONEXISTENT"),
        "sessions cleared"
    );
}

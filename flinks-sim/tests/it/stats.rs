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

#[tokio::test]
async fn accounts_delivered_counts_only_answers_that_carry_the_accounts() {
    let sim = sim(SimConfig {
        rules: Rules::default()
            .with_login("expires", Scenario::SessionExpiredOnce)
            .with_login("slow", Scenario::Pending { polls: 1 }),
        ..SimConfig::default()
    })
    .await;
    let (_, auth) = authorize(&sim, "good").await;
    detail(&sim, &request_id(&auth)).await;
    detail(&sim, &request_id(&auth)).await;
    let (_, auth) = authorize(&sim, "expires").await;
    let (status, _) = detail(&sim, &request_id(&auth)).await;
    assert_eq!(status, 400);
    let (_, auth) = authorize(&sim, "slow").await;
    let (status, _) = detail(&sim, &request_id(&auth)).await;
    assert_eq!(status, 202);

    let stats = sim.stats().await;
    assert_eq!(
        stats.accounts_delivered_by_login,
        [("good".to_owned(), 2)].into_iter().collect()
    );
    assert_eq!(
        stats.calls_for_login("expires", endpoint::GET_ACCOUNTS_DETAIL),
        1,
        "calls are still counted apart"
    );
}

//! Seeded fault injection.

use std::time::{Duration, Instant};

use flinks_sim::{Faults, SimConfig, SimHandle};

use crate::helpers::*;

fn faulty(seed: u64) -> SimConfig {
    SimConfig {
        faults: Faults {
            seed,
            error_rate: 0.3,
            malformed_rate: 0.2,
            ..Faults::default()
        },
        ..SimConfig::default()
    }
}

/// (status, body kind) of 30 sequential Authorize calls.
async fn outcomes(sim: &SimHandle) -> Vec<(u16, &'static str)> {
    let mut out = Vec::new();
    for i in 0..30 {
        let resp = client()
            .post(format!("{}/Authorize", sim.base_url))
            .json(&serde_json::json!({"LoginId": format!("L{i}")}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let kind = if text.starts_with("<html>") {
            "html"
        } else if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
            "json"
        } else {
            "truncated"
        };
        out.push((status, kind));
    }
    out
}

#[tokio::test]
async fn faults_are_deterministic_for_a_seed() {
    let a = sim(faulty(42)).await;
    let b = sim(faulty(42)).await;
    let c = sim(faulty(43)).await;

    let first = outcomes(&a).await;
    assert_eq!(first, outcomes(&b).await);
    assert_ne!(first, outcomes(&c).await);
    for kind in ["html", "json", "truncated"] {
        assert!(first.iter().any(|(_, k)| *k == kind), "{kind} in {first:?}");
    }
    assert!(first.contains(&(500, "json")) || first.contains(&(500, "html")));

    let stats = a.stats().await;
    let faults = first
        .iter()
        .filter(|(s, k)| *s == 500 || *k == "truncated")
        .count();
    assert_eq!(
        (stats.faults.errors + stats.faults.malformed) as usize,
        faults
    );

    a.reset().await;
    assert_eq!(first, outcomes(&a).await, "reset reseeds the RNG");
}

#[tokio::test]
async fn a_hung_call_outlasts_the_client_timeout() {
    let sim = sim(SimConfig {
        faults: Faults {
            hang_rate: 1.0,
            hang_for: Duration::from_secs(30),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;

    let err = reqwest::Client::new()
        .post(format!("{}/Authorize", sim.base_url))
        .timeout(Duration::from_millis(200))
        .json(&serde_json::json!({"LoginId": "L"}))
        .send()
        .await
        .expect_err("hangs");

    assert!(err.is_timeout());
    assert_eq!(sim.stats().await.faults.hangs, 1);
    sim.shutdown();
}

#[tokio::test]
async fn latency_is_drawn_within_the_configured_range() {
    let sim = sim(SimConfig {
        faults: Faults {
            latency_min_ms: 40,
            latency_max_ms: 60,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;

    let started = Instant::now();
    let (status, _) = authorize(&sim, "L").await;

    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(40));
}

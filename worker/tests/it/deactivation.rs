//! Inactive logins are switched off at Flinks by the system: `producer logins import` /
//! `logins activate` change the registry, and a real `worker` process sends exactly one
//! SetScheduledRefresh per change to the simulator, retrying a 5xx until Flinks confirms.

use std::time::{Duration, Instant};

use flinks_sim::{Rules, Scenario, SimConfig, SimHandle};
use shared::registry::Registry;
use shared::scheduled_refresh::ScheduledRefreshState;
use shared::LoginId;

use crate::helpers::Stack;

fn new_login() -> LoginId {
    LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap()
}

async fn stack(test: &str, sim: &SimHandle) -> Stack {
    let mut stack = Stack::new(test, &sim.base_url).await;
    for (key, value) in [
        ("RETRY_BASE_DELAY", "100ms"),
        ("RETRY_MAX_DELAY", "300ms"),
        ("WORKER_LEASE", "5s"),
        ("SHUTDOWN_GRACE", "2s"),
    ] {
        stack.set(key, value);
    }
    stack
}

/// Imports `rows` (LoginId, active) from a CSV through the producer.
fn import(stack: &Stack, rows: &[(&LoginId, bool)]) {
    let csv = std::env::temp_dir().join(format!("{}-deactivation.csv", uuid::Uuid::new_v4()));
    let mut text = String::from("LoginId,Active\n");
    for (login, active) in rows {
        text.push_str(&format!("{},{active}\n", login.as_str()));
    }
    std::fs::write(&csv, text).unwrap();
    let out = stack.producer(&["logins", "import", csv.to_str().unwrap()]);
    let _ = std::fs::remove_file(&csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `login`'s state is `want` (60 s at most).
async fn wait_state(stack: &Stack, login: &LoginId, want: ScheduledRefreshState) {
    let registry = Registry::new(stack.conn.clone(), &stack.keys);
    let started = Instant::now();
    loop {
        let state = registry
            .get(login)
            .await
            .unwrap()
            .and_then(|s| s.flinks_scheduled_refresh);
        if state == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{login:?} still {state:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn show_json(stack: &Stack, login: &LoginId) -> serde_json::Value {
    let out = stack.producer(&["logins", "show", login.as_str(), "--json"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_import_is_switched_off_once_and_activate_switches_it_back_on() {
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = stack("deact-import", &sim).await;
    stack.set("RUST_LOG", "warn,flinks.answer=info");
    let (active, inactive) = (new_login(), new_login());
    import(&stack, &[(&active, true), (&inactive, false)]);
    stack.spawn_worker(&[]);

    wait_state(&stack, &inactive, ScheduledRefreshState::Off).await;
    // Re-importing the same file is no change: nothing more is sent.
    import(&stack, &[(&active, true), (&inactive, false)]);
    let activate = stack.producer(&["logins", "activate", inactive.as_str(), "--wait", "30s"]);
    let shown = show_json(&stack, &inactive);
    let pending = stack.producer(&["logins", "list", "--flinks-pending", "--json"]);
    let logs = stack.terminate_workers();

    assert!(
        activate.status.success(),
        "{}{}",
        String::from_utf8_lossy(&activate.stdout),
        String::from_utf8_lossy(&activate.stderr)
    );
    assert_eq!(shown["flinks_scheduled_refresh"], "on");
    assert_eq!(shown["active"], true);
    let pending: serde_json::Value = serde_json::from_slice(&pending.stdout).unwrap();
    assert_eq!(pending, serde_json::json!([]));
    let stats = sim.stats().await;
    assert_eq!(
        stats.scheduled_refresh_calls(inactive.as_str()),
        &[false, true],
        "one PATCH per change, in order"
    );
    assert!(stats.scheduled_refresh_calls(active.as_str()).is_empty());
    // Flinks' bare-string answer is traced, its LoginId fingerprinted.
    let log = &logs[0].1;
    let answer = log
        .lines()
        .find(|l| l.contains("SetScheduledRefresh answer") && l.contains("deactivated"))
        .unwrap_or_else(|| panic!("no traced answer: {log}"));
    assert!(answer.contains(&inactive.fingerprint()), "{answer}");
    assert!(!log.contains(inactive.as_str()), "{answer}");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_until_flinks_confirms_and_an_unknown_login_is_marked_failed() {
    let (flaky, unknown) = (new_login(), new_login());
    let rules = Rules::default()
        .with_login(flaky.as_str(), Scenario::AggregationError { failures: 2 })
        .with_login(unknown.as_str(), Scenario::InvalidLogin);
    let sim = flinks_sim::spawn(SimConfig {
        rules,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = stack("deact-retry", &sim).await;
    import(&stack, &[(&flaky, false), (&unknown, false)]);
    stack.spawn_worker(&[]);

    wait_state(&stack, &flaky, ScheduledRefreshState::Off).await;
    wait_state(&stack, &unknown, ScheduledRefreshState::Failed).await;
    // The confirm settles the login, then drops it from the unconfirmed index.
    let scheduled =
        shared::scheduled_refresh::ScheduledRefresh::new(stack.conn.clone(), &stack.keys);
    let started = Instant::now();
    while scheduled.count_unconfirmed().await.unwrap() > 1 {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = stack.producer(&["logins", "list", "--flinks-pending", "--json"]);
    let shown = show_json(&stack, &unknown);
    stack.terminate_workers();

    let stats = sim.stats().await;
    assert_eq!(
        stats.scheduled_refresh_calls(flaky.as_str()),
        &[false, false, false],
        "two 500s, then the 200"
    );
    assert_eq!(
        stats.calls(flinks_sim::endpoint::SET_SCHEDULED_REFRESH, 500),
        2
    );
    assert_eq!(
        stats.scheduled_refresh_calls(unknown.as_str()),
        &[false],
        "a permanent refusal is not retried"
    );
    assert!(
        shown["flinks_error"]
            .as_str()
            .unwrap_or_default()
            .contains("INVALID_LOGIN"),
        "{shown}"
    );
    let pending: serde_json::Value = serde_json::from_slice(&pending.stdout).unwrap();
    let ids: Vec<&str> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["login_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![unknown.as_str()]);
    stack.cleanup().await;
}

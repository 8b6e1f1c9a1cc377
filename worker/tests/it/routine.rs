//! The routine end to end: `producer logins import` + `producer routine run` + two `worker`
//! processes against the simulator, 500 LoginIds spread over every scenario.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use flinks_sim::{Rules, Scenario, SimConfig};
use shared::ledger::{IndexFilter, Ledger, LedgerOutcome};
use shared::{FlinksCode, LoginId};

use crate::helpers::Stack;

const DATE: &str = "2026-11-25";

fn scenario_of(i: usize) -> Scenario {
    match i % 10 {
        0..=2 => Scenario::Healthy,
        3 => Scenario::Stale { hours: 48 },
        4 => Scenario::QuestionNotFound,
        5 if i % 20 == 5 => Scenario::InvalidPassword,
        5 => Scenario::DisabledLogin,
        6 => Scenario::Pending { polls: 2 },
        7 => Scenario::RetryLater,
        8 => Scenario::AggregationError { failures: 1 },
        _ if i % 20 == 9 => Scenario::SessionExpiredOnce,
        _ => Scenario::InvalidLogin,
    }
}

/// The final outcome a scenario must end in: (ledger kind, FlinksCode, stale).
fn expected(scenario: &Scenario) -> (&'static str, Option<FlinksCode>, bool) {
    match scenario {
        Scenario::Healthy
        | Scenario::Pending { .. }
        | Scenario::AggregationError { .. }
        | Scenario::SessionExpiredOnce => ("refreshed", None, false),
        Scenario::Stale { .. } => ("refreshed", None, true),
        Scenario::QuestionNotFound => ("needs_reauth", Some(FlinksCode::QuestionNotFound), false),
        Scenario::InvalidPassword => ("needs_reauth", Some(FlinksCode::InvalidPassword), false),
        Scenario::DisabledLogin => ("needs_reauth", Some(FlinksCode::DisabledLogin), false),
        Scenario::RetryLater => ("failed", Some(FlinksCode::RetryLater), false),
        Scenario::InvalidLogin => ("failed", Some(FlinksCode::InvalidLogin), false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_ends_in_exactly_one_outcome_matching_its_scenario() {
    // Arrange: 500 logins over every scenario, the simulator scripted per login.
    let logins: Vec<(LoginId, Scenario)> = (0..500)
        .map(|i| {
            (
                LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
                scenario_of(i),
            )
        })
        .collect();
    let mut rules = Rules::default();
    for (login, scenario) in &logins {
        rules = rules.with_login(login.as_str(), *scenario);
    }
    let sim = flinks_sim::spawn(SimConfig {
        rules,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("e2e", &sim.base_url).await;
    for (key, value) in [
        ("RATE_LIMIT_PER_MINUTE", "3000"),
        ("POLL_INTERVAL", "200ms"),
        ("RETRY_BASE_DELAY", "100ms"),
        ("RETRY_MAX_DELAY", "400ms"),
        ("MAX_ATTEMPTS", "3"),
        ("WORKER_LEASE", "5s"),
        ("WORKER_CONCURRENCY", "8"),
    ] {
        stack.set(key, value);
    }
    let dir = std::env::temp_dir().join(format!("nr-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("logins.csv");
    let mut text = String::from("LoginId,Active\n");
    for (login, _) in &logins {
        text.push_str(&format!("{},true\n", login.as_str()));
    }
    std::fs::write(&csv, text).unwrap();

    // Act: import, enqueue the routine, run two workers until every login is done.
    let import = stack.producer(&["logins", "import", csv.to_str().unwrap()]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let run = stack.producer(&["routine", "run", "--date", DATE]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let again = stack.producer(&["routine", "run", "--date", DATE, "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        again["enqueued"], 0,
        "a second run enqueues nothing: {again}"
    );
    stack.spawn_worker(&[]);
    stack.spawn_worker(&["--concurrency", "4"]);

    let date = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    let started = Instant::now();
    loop {
        let done = ledger.counts(date).await.unwrap().done();
        if done >= 500 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {done} of 500 logins done after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Give any straggling redelivery a moment, then stop the workers gracefully.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (status, stderr) in stack.terminate_workers() {
        assert!(status.success(), "worker exited with {status}: {stderr}");
    }

    // Assert: one outcome per login, matching its scenario.
    let mut by_kind: HashMap<&str, usize> = HashMap::new();
    for (login, scenario) in &logins {
        let outcome = ledger
            .get(date, login)
            .await
            .unwrap()
            .expect("every login has an outcome");
        let (kind, code, stale) = expected(scenario);
        assert_eq!(outcome.kind(), kind, "{scenario:?} ended as {outcome:?}");
        assert_eq!(
            outcome.flinks_code(),
            code.as_ref(),
            "{scenario:?} ended as {outcome:?}"
        );
        assert_eq!(
            outcome.is_stale(),
            stale,
            "{scenario:?} ended as {outcome:?}"
        );
        *by_kind.entry(kind).or_default() += 1;
    }
    let counts = ledger.counts(date).await.unwrap();
    assert_eq!(counts.done(), 500);
    assert_eq!(counts.refreshed as usize, by_kind["refreshed"]);
    assert_eq!(counts.needs_reauth as usize, by_kind["needs_reauth"]);
    assert_eq!(counts.failed as usize, by_kind["failed"]);

    // The simulator fetched the detail of each refreshed login exactly once (a lapsed
    // session is asked once more, after a fresh authorize), and never for the others.
    let stats = sim.stats().await;
    for (login, scenario) in &logins {
        let fetches = stats.calls_for_login(login.as_str(), "get_accounts_detail");
        let want = match scenario {
            Scenario::SessionExpiredOnce => 2,
            s if expected(s).0 == "refreshed" => 1,
            _ => 0,
        };
        assert_eq!(
            fetches, want,
            "{scenario:?}: {fetches} GetAccountsDetail calls"
        );
    }
    assert_eq!(stats.throttle_violations, 0);

    // The re-auth queue holds exactly the 401 ones.
    let reauth = ledger.list_reauth(&IndexFilter::default()).await.unwrap();
    let mut reauth_ids: Vec<&str> = reauth.iter().map(|e| e.login_id.as_str()).collect();
    reauth_ids.sort_unstable();
    let mut want_reauth: Vec<&str> = logins
        .iter()
        .filter(|(_, s)| expected(s).0 == "needs_reauth")
        .map(|(l, _)| l.as_str())
        .collect();
    want_reauth.sort_unstable();
    assert_eq!(reauth_ids, want_reauth);

    // One results-stream entry per refreshed login.
    let mut conn = stack.conn.clone();
    let stream_len: u64 = redis::cmd("XLEN")
        .arg(stack.keys.results_stream())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stream_len as usize, by_kind["refreshed"]);
    let refreshed_ids: Vec<&LoginId> = logins
        .iter()
        .filter(|(_, s)| expected(s).0 == "refreshed")
        .map(|(l, _)| l)
        .collect();
    for login in refreshed_ids.iter().take(3) {
        match ledger.get(date, login).await.unwrap() {
            Some(LedgerOutcome::Refreshed {
                results_stream_id, ..
            }) => {
                assert!(results_stream_id.is_some_and(|id| id.contains('-')));
            }
            other => panic!("expected refreshed, got {other:?}"),
        }
    }

    // The report agrees.
    let report = stack.producer(&["report", "--date", DATE, "--json"]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["active"], 500);
    assert_eq!(report["done"], 500);
    assert_eq!(report["pending"], 0);
    assert_eq!(report["refreshed"], by_kind["refreshed"]);
    assert_eq!(
        report["reauth"].as_array().unwrap().len(),
        by_kind["needs_reauth"]
    );
    assert_eq!(
        report["failed"].as_array().unwrap().len(),
        by_kind["failed"]
    );
    assert_eq!(
        report["stale"].as_array().unwrap().len(),
        logins
            .iter()
            .filter(|(_, s)| matches!(s, Scenario::Stale { .. }))
            .count()
    );

    stack.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

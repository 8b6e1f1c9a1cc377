//! The routine end to end: `producer logins import` + `producer routine run` + two `worker`
//! processes against the simulator, 600 LoginIds spread over every scenario.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use flinks_sim::{Rules, Scenario, SimConfig};
use shared::ledger::{FailureReason, IndexFilter, Ledger, LedgerOutcome};
use shared::{FlinksCode, LoginId};

use crate::helpers::{parse_date, Stack};

const DATE: &str = "2026-11-25";
const LOGINS: usize = 600;
const INACTIVE: usize = 20;

fn scenario_of(i: usize) -> Scenario {
    match i % 20 {
        0..=4 => Scenario::Healthy,
        5 => Scenario::Stale { hours: 48 },
        6 => Scenario::QuestionNotFound,
        7 if i % 40 == 7 => Scenario::InvalidPassword,
        7 => Scenario::DisabledLogin,
        8 => Scenario::Pending { polls: 2 },
        9 => Scenario::RetryLater,
        10 => Scenario::AggregationError { failures: 1 },
        11 => Scenario::SessionExpiredOnce,
        12 if i % 40 == 12 => Scenario::InvalidLogin,
        12 => Scenario::InvalidLogin400,
        13 => Scenario::InvalidLoginCredentials,
        14 => Scenario::UnknownReauthCode,
        15 => Scenario::BodySays401,
        16 => Scenario::BodySays401NoCode,
        17 => Scenario::Bare203,
        18 => Scenario::Throttled,
        _ => Scenario::AuthorizePending { polls: 2 },
    }
}

/// What a scenario must end in, and the calls it may cost.
struct Expected {
    kind: &'static str,
    code: Option<FlinksCode>,
    stale: bool,
    unrecognised_code: bool,
    reason: Option<FailureReason>,
    /// `/Authorize` calls (MAX_ATTEMPTS = 3, MAX_THROTTLE_DEFERS = 3 in this test).
    authorizes: u64,
    /// `/GetAccountsDetail` calls (the sync endpoint; polls are not counted).
    details: u64,
}

fn expected(scenario: &Scenario) -> Expected {
    let outcome = |kind, code: Option<&str>, authorizes, details| Expected {
        kind,
        code: code.map(FlinksCode::parse),
        stale: false,
        unrecognised_code: false,
        reason: None,
        authorizes,
        details,
    };
    match scenario {
        Scenario::Healthy | Scenario::Pending { .. } => outcome("refreshed", None, 1, 1),
        Scenario::AggregationError { .. } => outcome("refreshed", None, 2, 1),
        Scenario::SessionExpiredOnce => outcome("refreshed", None, 2, 2),
        Scenario::AuthorizePending { .. } => outcome("refreshed", None, 1, 0),
        Scenario::Stale { .. } => Expected {
            stale: true,
            ..outcome("refreshed", None, 1, 1)
        },
        Scenario::QuestionNotFound => outcome("needs_reauth", Some("QUESTION_NOT_FOUND"), 1, 0),
        Scenario::BodySays401 => outcome("needs_reauth", Some("QUESTION_NOT_FOUND"), 1, 0),
        Scenario::InvalidPassword => outcome("needs_reauth", Some("INVALID_PASSWORD"), 1, 0),
        Scenario::DisabledLogin => outcome("needs_reauth", Some("DISABLED_LOGIN"), 1, 0),
        Scenario::UnknownReauthCode => Expected {
            unrecognised_code: true,
            ..outcome("needs_reauth", Some("CONSENT_RENEWAL_REQUIRED"), 1, 0)
        },
        Scenario::BodySays401NoCode => Expected {
            unrecognised_code: true,
            ..outcome("needs_reauth", None, 1, 0)
        },
        Scenario::RetryLater => outcome("failed", Some("RETRY_LATER"), 3, 0),
        Scenario::Bare203 => outcome("failed", None, 3, 0),
        Scenario::Throttled => Expected {
            reason: Some(FailureReason::Throttled),
            ..outcome("failed", Some("TOO_MANY_REQUESTS"), 3, 0)
        },
        Scenario::InvalidLogin | Scenario::InvalidLogin400 | Scenario::InvalidLoginCredentials => {
            Expected {
                reason: Some(FailureReason::InvalidLogin),
                ..outcome("failed", Some("INVALID_LOGIN"), 1, 0)
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_ends_in_exactly_one_outcome_matching_its_scenario() {
    // Arrange: 600 logins over every scenario, the simulator scripted per login.
    let logins: Vec<(LoginId, Scenario)> = (0..LOGINS)
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
        ("MAX_THROTTLE_DEFERS", "3"),
        ("RATE_LIMIT_COOLDOWN", "100ms"),
        ("WORKER_LEASE", "5s"),
        ("WORKER_CONCURRENCY", "8"),
    ] {
        stack.set(key, value);
    }
    let dir = std::env::temp_dir().join(format!("nr-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("logins.csv");
    // Inactive logins are not refreshed; the import itself switches their nightly refresh
    // off at Flinks, once each.
    let inactive: Vec<LoginId> = (0..INACTIVE).map(|_| new_login()).collect();
    let mut text = String::from("LoginId,Active\n");
    for (login, _) in &logins {
        text.push_str(&format!("{},true\n", login.as_str()));
    }
    for login in &inactive {
        text.push_str(&format!("{},false\n", login.as_str()));
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
        if done >= LOGINS as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "only {done} of {LOGINS} logins done after 240 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let registry = shared::registry::Registry::new(stack.conn.clone(), &stack.keys);
    for login in &inactive {
        while registry
            .get(login)
            .await
            .unwrap()
            .and_then(|s| s.flinks_scheduled_refresh)
            != Some(shared::scheduled_refresh::ScheduledRefreshState::Off)
        {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "an inactive login was not switched off at Flinks"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
        let want = expected(scenario);
        assert_eq!(
            outcome.kind(),
            want.kind,
            "{scenario:?} ended as {outcome:?}"
        );
        assert_eq!(
            outcome.flinks_code(),
            want.code.as_ref(),
            "{scenario:?} ended as {outcome:?}"
        );
        assert_eq!(
            outcome.is_stale(),
            want.stale,
            "{scenario:?} ended as {outcome:?}"
        );
        assert_eq!(
            outcome.has_unrecognised_code(),
            want.unrecognised_code,
            "{scenario:?} ended as {outcome:?}"
        );
        assert_eq!(
            outcome.failure_reason(),
            want.reason,
            "{scenario:?} ended as {outcome:?}"
        );
        *by_kind.entry(want.kind).or_default() += 1;
    }
    let counts = ledger.counts(date).await.unwrap();
    assert_eq!(counts.done(), LOGINS as u64);
    assert_eq!(counts.refreshed as usize, by_kind["refreshed"]);
    assert_eq!(counts.needs_reauth as usize, by_kind["needs_reauth"]);
    assert_eq!(counts.failed as usize, by_kind["failed"]);

    // Per login, exactly the calls its scenario calls for: the detail of each refreshed
    // login is fetched once (a lapsed session once more, after a fresh authorize), never
    // for the others; no active login is touched at Flinks, each inactive one is switched
    // off once and never authorized.
    let stats = sim.stats().await;
    for login in &inactive {
        assert_eq!(stats.scheduled_refresh_calls(login.as_str()), [false]);
        assert_eq!(stats.calls_for_login(login.as_str(), "authorize"), 0);
        assert!(ledger.get(date, login).await.unwrap().is_none());
    }
    for (login, scenario) in &logins {
        let want = expected(scenario);
        let calls = |endpoint| stats.calls_for_login(login.as_str(), endpoint);
        assert_eq!(
            (
                calls("authorize"),
                calls("get_accounts_detail"),
                calls("set_scheduled_refresh")
            ),
            (want.authorizes, want.details, 0),
            "{scenario:?}: (Authorize, GetAccountsDetail, SetScheduledRefresh) calls"
        );
    }
    assert_eq!(stats.throttle_violations, 0);

    // The re-auth queue holds exactly the 401 ones.
    let reauth = ledger.list_reauth(&IndexFilter::default()).await.unwrap();
    let mut reauth_ids: Vec<&str> = reauth.iter().map(|e| e.login_id.as_str()).collect();
    reauth_ids.sort_unstable();
    let mut want_reauth: Vec<&str> = logins
        .iter()
        .filter(|(_, s)| expected(s).kind == "needs_reauth")
        .map(|(l, _)| l.as_str())
        .collect();
    want_reauth.sort_unstable();
    assert_eq!(reauth_ids, want_reauth);

    // One results-stream entry per refreshed login.
    let mut conn = stack.conn.clone();
    let mut stream_len = 0u64;
    for bucket in stack.keys.all_ledger_buckets() {
        stream_len += redis::cmd("XLEN")
            .arg(stack.keys.results_stream(bucket))
            .query_async::<u64>(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(stream_len as usize, by_kind["refreshed"]);
    let refreshed_ids: Vec<&LoginId> = logins
        .iter()
        .filter(|(_, s)| expected(s).kind == "refreshed")
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
    assert_eq!(report["active"], LOGINS);
    assert_eq!(report["done"], LOGINS);
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
    let flagged = |list: &str, field: &str| {
        report[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item[field] == true || item[field] == "invalid_login")
            .count()
    };
    assert_eq!(
        flagged("reauth", "unrecognised_code"),
        logins
            .iter()
            .filter(|(_, s)| expected(s).unrecognised_code)
            .count()
    );
    let invalid = logins
        .iter()
        .filter(|(_, s)| expected(s).reason == Some(FailureReason::InvalidLogin))
        .count();
    assert_eq!(flagged("failed", "reason"), invalid);
    assert_eq!(report["invalid_login"].as_array().unwrap().len(), invalid);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_listed_by_get_nightly_refresh_status_are_recorded_and_never_authorized() {
    // Arrange: two logins Flinks lists as ineligible, one healthy.
    let listed = [
        (new_login(), Scenario::DisabledLogin),
        (new_login(), Scenario::QuestionNotFound),
    ];
    let healthy = new_login();
    let mut rules = Rules::default();
    for (login, scenario) in &listed {
        rules = rules.with_login(login.as_str(), *scenario);
    }
    let sim = flinks_sim::spawn(SimConfig {
        rules,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("precheck", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "3000");
    for login in listed.iter().map(|(l, _)| l).chain([&healthy]) {
        let add = stack.producer(&["logins", "add", login.as_str()]);
        assert!(
            add.status.success(),
            "{}",
            String::from_utf8_lossy(&add.stderr)
        );
    }

    // Act: the pre-check, then the routine of the same (today's) date, then a worker.
    let precheck = stack.producer(&["refresh-status", "--json"]);
    assert!(
        precheck.status.success(),
        "{}",
        String::from_utf8_lossy(&precheck.stderr)
    );
    let precheck: serde_json::Value = serde_json::from_slice(&precheck.stdout).unwrap();
    let date = NaiveDate::parse_from_str(precheck["date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let day = date.to_string();
    let run = stack.producer(&["routine", "run", "--date", &day]);
    let printed = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stack.spawn_worker(&[]);
    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    let started = Instant::now();
    while ledger.counts(date).await.unwrap().refreshed < 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "not refreshed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.terminate_workers();

    // Assert: the listed logins are re-auths with Flinks' error code, never authorized,
    // and `routine run` said it skipped them.
    assert!(printed.contains("1 enqueued now"), "{printed}");
    assert!(printed.contains("2 skipped"), "{printed}");
    let stats = sim.stats().await;
    for (login, scenario) in &listed {
        assert_eq!(
            stats.calls_for_login(login.as_str(), "authorize"),
            0,
            "{scenario:?}"
        );
        let outcome = ledger.get(date, login).await.unwrap().unwrap();
        assert_eq!(outcome.kind(), "needs_reauth", "{scenario:?}");
    }
    let disabled = ledger.get(date, &listed[0].0).await.unwrap().unwrap();
    assert_eq!(disabled.flinks_code(), Some(&FlinksCode::DisabledLogin));
    assert_eq!(stats.calls_for_login(healthy.as_str(), "authorize"), 1);
    let counts = ledger.counts(date).await.unwrap();
    assert_eq!((counts.done(), counts.needs_reauth), (3, 2));
    stack.cleanup().await;
}

fn new_login() -> LoginId {
    LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_date_supersedes_the_waiting_jobs_so_each_login_is_authorized_once() {
    // Arrange: 10 healthy logins; the routine of D runs while no worker does.
    const N: usize = 10;
    let (d, d1) = ("2026-11-25", "2026-11-26");
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new("supersede", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "3000");
    let logins = crate::helpers::new_logins(N);
    stack.import_and_run(&logins, d);

    // Act: D+1 starts before any of D's jobs ran, then a worker drains the queue.
    let run = stack.producer(&["routine", "run", "--date", d1, "--json"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let older = stack.producer(&["report", "--date", d, "--json"]);
    let older: serde_json::Value = serde_json::from_slice(&older.stdout).unwrap();
    stack.spawn_worker(&[]);
    stack.wait_done(d1, N as u64, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.terminate_workers();

    // Assert: one job per login queued, D records them all as superseded with nothing
    // pending, D+1 refreshed them, and Flinks saw one Authorize per login.
    assert_eq!(run["enqueued"], N, "{run}");
    assert_eq!(run["superseded"], N, "{run}");
    assert_eq!(run["backlog"], N, "{run}");
    assert_eq!(run["capacity_per_day"], 3000 * 1440, "{run}");
    assert_eq!(run["over_capacity"], false, "{run}");
    assert_eq!(run["coverage_days"], 1, "{run}");
    assert_eq!(older["superseded"], N, "{older}");
    assert_eq!(older["pending"], 0, "{older}");
    assert_eq!(older["backlog"], N, "{older}");
    let ledger = stack.ledger();
    let old_counts = ledger.counts(parse_date(d)).await.unwrap();
    assert_eq!(
        (old_counts.superseded, old_counts.done()),
        (N as u64, N as u64)
    );
    let new_counts = ledger.counts(parse_date(d1)).await.unwrap();
    assert_eq!(new_counts.refreshed, N as u64);
    match ledger.get(parse_date(d), &logins[0]).await.unwrap() {
        Some(LedgerOutcome::Superseded { by_date, .. }) => assert_eq!(by_date, parse_date(d1)),
        other => panic!("expected superseded, got {other:?}"),
    }
    let stats = sim.stats().await;
    for login in &logins {
        assert_eq!(stats.calls_for_login(login.as_str(), "authorize"), 1);
    }
    let queue = stack.queue_stats("authorize").await;
    assert_eq!((queue.ready, queue.delayed, queue.in_flight), (0, 0, 0));
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_authorized_by_priority_then_least_recently_refreshed_first() {
    // Arrange: nine logins. Six without a priority: four refreshed at different times, two
    // never. Two with Priority 5 in the CSV (one refreshed, one never), and one given
    // priority 10 by `logins add --priority` after refreshing most recently of all.
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new("lrr-order", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "3000");
    let logins = crate::helpers::new_logins(9);
    let csv = std::env::temp_dir().join(format!("{}-priority.csv", stack.namespace));
    let mut text = String::from("LoginId,Priority\n");
    for (i, login) in logins.iter().enumerate() {
        let priority = match i {
            6 | 7 => "5",
            0 => "0",
            _ => "",
        };
        text.push_str(&format!("{},{priority}\n", login.as_str()));
    }
    std::fs::write(&csv, text).unwrap();
    let import = stack.producer(&["logins", "import", csv.to_str().unwrap()]);
    let _ = std::fs::remove_file(&csv);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let add = stack.producer(&["logins", "add", logins[8].as_str(), "--priority", "10"]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let registry = shared::registry::Registry::new(stack.conn.clone(), &stack.keys);
    let refreshed_at = |day: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
    };
    for (login, day) in [(0, 20), (1, 3), (3, 24), (4, 11), (6, 25), (8, 26)] {
        let outcome = LedgerOutcome::Refreshed {
            request_id: shared::RequestId::new("r-earlier"),
            last_refresh: None,
            stale: false,
            fetched_at: refreshed_at(day),
            results_stream_id: None,
        };
        registry
            .record_outcome(&logins[login], &outcome)
            .await
            .unwrap();
    }
    let shown = registry.get(&logins[8]).await.unwrap().unwrap();
    assert_eq!(shown.priority, 10);

    // Act: the routine, then one worker authorizing one login at a time: the order of the
    // Authorize calls is the order a budget smaller than the list would cut.
    let run = stack.producer(&["routine", "run", "--date", DATE]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stack.spawn_worker(&["--concurrency", "1"]);
    stack.wait_done(DATE, 9, Duration::from_secs(60)).await;
    stack.terminate_workers();

    // Assert: priority 10, then priority 5 (never refreshed first), then the rest: never
    // refreshed first (by LoginId), then the oldest refresh first.
    let mut want: Vec<&str> = [8, 7, 6].map(|i| logins[i].as_str()).to_vec();
    let mut never = vec![logins[2].as_str(), logins[5].as_str()];
    never.sort_unstable();
    want.extend(never);
    want.extend([1, 4, 0, 3].map(|i| logins[i].as_str()));
    let stats = sim.stats().await;
    assert_eq!(stats.authorize_logins, want);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_date_past_its_deadline_are_superseded_without_calling_flinks() {
    // Arrange: five healthy logins queued for D, then D's deadline moved a minute into
    // the past (as if the workers had been down until after it).
    const N: usize = 5;
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new("deadline-passed", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "3000");
    let logins = crate::helpers::new_logins(N);
    stack.import_and_run(&logins, DATE);
    let control = shared::control::Control::new(stack.conn.clone(), &stack.keys);
    let stored = control.routine_deadline(parse_date(DATE)).await.unwrap();
    assert!(stored.is_some_and(|d| d > chrono::Utc::now()), "{stored:?}");
    let deadline = chrono::Utc::now() - chrono::Duration::minutes(1);
    control
        .set_routine_deadline(parse_date(DATE), deadline)
        .await
        .unwrap();

    // Act: a worker takes the jobs.
    stack.spawn_worker(&[]);
    stack
        .wait_done(DATE, N as u64, Duration::from_secs(60))
        .await;
    stack.terminate_workers();

    // Assert: every login superseded by the next date at the deadline, nothing pending,
    // no Authorize sent, and the report shows the passed deadline.
    let ledger = stack.ledger();
    let counts = ledger.counts(parse_date(DATE)).await.unwrap();
    assert_eq!((counts.superseded, counts.refreshed), (N as u64, 0));
    let next = parse_date(DATE).succ_opt().unwrap();
    for login in &logins {
        match ledger.get(parse_date(DATE), login).await.unwrap() {
            Some(LedgerOutcome::Superseded {
                by_date,
                deadline: Some(at),
                ..
            }) => {
                assert_eq!(by_date, next);
                assert_eq!(at.timestamp_millis(), deadline.timestamp_millis());
            }
            other => panic!("expected superseded at the deadline, got {other:?}"),
        }
    }
    assert_eq!(sim.stats().await.authorize_logins.len(), 0);
    let report = stack.producer(&["report", "--date", DATE, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["superseded"], N, "{report}");
    assert_eq!(report["pending"], 0, "{report}");
    assert_eq!(
        report["deadline"]
            .as_str()
            .map(|d| d.starts_with(&deadline.format("%Y-%m-%dT%H:%M:%S").to_string())),
        Some(true),
        "{report}"
    );
    let text = stack.producer(&["report", "--date", DATE]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("(passed)"), "{text}");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_deactivated_after_the_routine_queued_it_is_not_authorized() {
    deactivated_logins_queued_are_not_authorized("deactivated-queued", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_deactivated_after_the_routine_queued_it_is_not_authorized_with_ledger_buckets() {
    // The ledger's check then takes a round trip; the active flag still rides the lease.
    deactivated_logins_queued_are_not_authorized("deactivated-buckets", Some("4")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_its_detail_job_ran_keeps_that_outcome_though_the_login_is_inactive() {
    use shared::jobs::{AuthorizeJob, DetailJob};
    use shared::queue::{Queue, QueueConfig, WorkerId};
    // Arrange: a login's authorize job leased once and lost (as a worker that chained the
    // detail job and died before its ack would leave it); the detail job ran and recorded
    // needs re-auth; then the login was deactivated.
    let login = new_login();
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new("deactivated-redelivery", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "3000");
    stack.import_and_run(std::slice::from_ref(&login), DATE);
    let short = |name| QueueConfig::new(name).with_lease(Duration::from_millis(50));
    let authorize: Queue<AuthorizeJob> =
        Queue::new(stack.conn.clone(), &stack.keys, short("authorize"));
    let detail: Queue<DetailJob> = Queue::new(stack.conn.clone(), &stack.keys, short("detail"));
    let lost = authorize
        .fetch(&WorkerId::generate(), 1)
        .await
        .unwrap()
        .remove(0);
    let detail_job = DetailJob {
        login_id: login.clone(),
        routine_date: parse_date(DATE),
        request_id: shared::RequestId::new("r-1"),
        last_refresh: None,
        session_restarts: 0,
        polling_since: None,
        polls: 0,
    };
    let chained_key = DetailJob::chained_dedupe_key(lost.id.as_str());
    detail
        .enqueue(
            &detail_job,
            shared::queue::EnqueueOptions::dedupe(chained_key),
        )
        .await
        .unwrap();
    let ran = detail
        .fetch(&WorkerId::generate(), 1)
        .await
        .unwrap()
        .remove(0);
    assert!(detail.ack(&ran.token, &ran.id).await.unwrap());
    let reauth = LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::QuestionNotFound),
        message: Some("reconnect".into()),
        request_id: None,
        at: chrono::Utc::now(),
        unrecognised_code: false,
    };
    let ledger = stack.ledger();
    ledger
        .record(
            parse_date(DATE),
            &login,
            &reauth,
            shared::ledger::Overwrite::AllButRefreshed,
        )
        .await
        .unwrap();
    let out = stack.producer(&["logins", "deactivate", login.as_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    authorize.reap_expired().await.unwrap();

    // Act: a worker takes the job's second delivery.
    stack.spawn_worker(&[]);
    let started = Instant::now();
    loop {
        let queue = stack.queue_stats("authorize").await;
        if (queue.ready, queue.delayed, queue.in_flight) == (0, 0, 0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{queue:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.terminate_workers();

    // Assert: the detail job's outcome stands, and nothing was called.
    match ledger.get(parse_date(DATE), &login).await.unwrap() {
        Some(LedgerOutcome::NeedsReauth { .. }) => {}
        other => panic!("expected the detail job's needs_reauth, got {other:?}"),
    }
    assert_eq!(sim.stats().await.authorize_logins.len(), 0);
    stack.cleanup().await;
}

async fn deactivated_logins_queued_are_not_authorized(test: &str, ledger_buckets: Option<&str>) {
    // Arrange: four healthy logins queued for D, then two of them deactivated by an
    // operator before any worker ran.
    const N: usize = 4;
    let sim = flinks_sim::spawn(SimConfig::default()).await.unwrap();
    let mut stack = Stack::new(test, &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "3000");
    if let Some(buckets) = ledger_buckets {
        stack.set("LEDGER_BUCKETS", buckets);
        let buckets = buckets.parse().unwrap();
        stack.keys = stack.keys.clone().with_ledger_buckets(buckets);
    }
    let logins = crate::helpers::new_logins(N);
    stack.import_and_run(&logins, DATE);
    let (gone, kept) = logins.split_at(2);
    let mut args = vec!["logins", "deactivate"];
    args.extend(gone.iter().map(LoginId::as_str));
    let out = stack.producer(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Act: a worker takes the jobs.
    stack.spawn_worker(&[]);
    stack
        .wait_done(DATE, N as u64, Duration::from_secs(60))
        .await;
    stack.terminate_workers();

    // Assert: no Authorize for the deactivated logins, each recorded superseded on its
    // own date as deactivated; the others refreshed; nothing pending.
    let stats = sim.stats().await;
    let ledger = stack.ledger();
    for login in gone {
        assert_eq!(stats.calls_for_login(login.as_str(), "authorize"), 0);
        match ledger.get(parse_date(DATE), login).await.unwrap() {
            Some(LedgerOutcome::Superseded {
                by_date,
                deadline: None,
                deactivated: true,
                ..
            }) => assert_eq!(by_date, parse_date(DATE)),
            other => panic!("expected superseded as deactivated, got {other:?}"),
        }
    }
    for login in kept {
        assert_eq!(stats.calls_for_login(login.as_str(), "authorize"), 1);
        assert!(matches!(
            ledger.get(parse_date(DATE), login).await.unwrap(),
            Some(LedgerOutcome::Refreshed { .. })
        ));
    }
    let report = stack.producer(&["report", "--date", DATE, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["superseded"], 2, "{report}");
    assert_eq!(report["pending"], 0, "{report}");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_would_run_past_the_deadline_is_superseded_instead() {
    // Arrange: a login Flinks answers RETRY_LATER, a backoff of 10 minutes and a deadline
    // two minutes away: its retry would run after the deadline.
    let login = new_login();
    let sim = flinks_sim::spawn(SimConfig {
        rules: Rules::default().with_login(login.as_str(), Scenario::RetryLater),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("deadline-retry", &sim.base_url).await;
    stack.set("RATE_LIMIT_PER_MINUTE", "3000");
    stack.set("RETRY_BASE_DELAY", "10m");
    stack.set("ROUTINE_DEADLINE", "2m");
    stack.import_and_run(std::slice::from_ref(&login), DATE);

    // Act
    stack.spawn_worker(&[]);
    stack.wait_done(DATE, 1, Duration::from_secs(60)).await;
    stack.terminate_workers();

    // Assert: one Authorize, then superseded at the deadline instead of a retry queued.
    match stack.ledger().get(parse_date(DATE), &login).await.unwrap() {
        Some(LedgerOutcome::Superseded {
            deadline: Some(_), ..
        }) => {}
        other => panic!("expected superseded at the deadline, got {other:?}"),
    }
    assert_eq!(
        sim.stats()
            .await
            .calls_for_login(login.as_str(), "authorize"),
        1
    );
    let queue = stack.queue_stats("authorize").await;
    assert_eq!((queue.ready, queue.delayed, queue.in_flight), (0, 0, 0));
    stack.cleanup().await;
}

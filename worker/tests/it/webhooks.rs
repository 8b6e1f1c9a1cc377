//! Outcome events delivered by webhook as a customer's receiver sees them: a local receiver
//! in the test checks every signature with its own HMAC, answers 500s and timeouts for a
//! while, and must end with exactly the expected event ids, across routine dates, worker
//! restarts, a worker killed mid-batch and the dead-letter list.

use shared::ledger::Overwrite;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use flinks_sim::{Rules, Scenario, SimConfig};
use hmac::{Hmac, Mac};
use shared::events::{EventRecord, Events, ReadFilter};
use shared::ledger::LedgerOutcome;
use shared::outcomes::Outcomes;
use shared::{FlinksCode, LoginId};

use crate::helpers::{new_logins, parse_date, Stack};

const SECRET: &str = "whsec-test-3f9a";

/// What the receiver answers to the next requests, in order; then 200.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Answers 200 after this long (longer than WEBHOOK_TIMEOUT: a timeout).
    Slow(Duration),
}

#[derive(Default)]
struct Seen {
    requests: usize,
    bad_signatures: usize,
    /// Every event id received in a request, with how often (redeliveries count).
    ids: BTreeMap<String, usize>,
    /// (login_id, type) in the order received.
    order: Vec<(String, String)>,
    in_flight: usize,
    max_in_flight: usize,
    batch_sizes: Vec<usize>,
}

struct Receiver {
    seen: Mutex<Seen>,
    script: Mutex<Vec<Answer>>,
    /// Answer 500 to everything until this instant.
    down_until: Mutex<Option<Instant>>,
}

struct InFlight(Arc<Receiver>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.seen.lock().unwrap().in_flight -= 1;
    }
}

/// HMAC-SHA256 of "<t>.<body>", computed here as a receiver would, not with shared's code.
fn signature_ok(header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else { return false };
    let mut parts = header.split(',').filter_map(|p| p.split_once('='));
    let (Some(("t", t)), Some(("v1", v1))) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(t) = t.parse::<i64>() else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let fresh = (Utc::now().timestamp() - t).abs() <= 300;
    fresh && hex::decode(v1).is_ok_and(|v| mac.verify_slice(&v).is_ok())
}

async fn hook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    {
        let mut seen = rx.seen.lock().unwrap();
        seen.in_flight += 1;
        seen.max_in_flight = seen.max_in_flight.max(seen.in_flight);
    }
    let _guard = InFlight(rx.clone());
    let signed = signature_ok(
        headers
            .get("x-nightly-refresh-signature")
            .and_then(|v| v.to_str().ok()),
        &body,
    );
    let batch: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let events = batch["events"].as_array().cloned().unwrap_or_default();
    {
        let mut seen = rx.seen.lock().unwrap();
        seen.requests += 1;
        if !signed {
            seen.bad_signatures += 1;
            return StatusCode::UNAUTHORIZED;
        }
        seen.batch_sizes.push(events.len());
    }
    let down = rx
        .down_until
        .lock()
        .unwrap()
        .is_some_and(|t| Instant::now() < t);
    let answer = {
        let mut script = rx.script.lock().unwrap();
        (!script.is_empty()).then(|| script.remove(0))
    };
    match (down, answer) {
        (true, _) | (_, Some(Answer::Status(500))) => return StatusCode::INTERNAL_SERVER_ERROR,
        (_, Some(Answer::Status(code))) => {
            return StatusCode::from_u16(code).unwrap();
        }
        (_, Some(Answer::Slow(d))) => tokio::time::sleep(d).await,
        (_, None) => {}
    }
    let mut seen = rx.seen.lock().unwrap();
    for event in events {
        let id = event["event_id"].as_str().unwrap_or_default().to_string();
        *seen.ids.entry(id).or_default() += 1;
        seen.order.push((
            event["login_id"].as_str().unwrap_or_default().to_string(),
            event["type"].as_str().unwrap_or_default().to_string(),
        ));
    }
    StatusCode::OK
}

/// Starts a receiver on a free loopback port; returns it and its URL.
async fn receiver(script: Vec<Answer>) -> (Arc<Receiver>, String) {
    let rx = Arc::new(Receiver {
        seen: Mutex::new(Seen::default()),
        script: Mutex::new(script),
        down_until: Mutex::new(None),
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (rx, url)
}

fn with_webhook(stack: &mut Stack, url: &str) {
    for (key, value) in [
        ("WEBHOOK_URL", url),
        ("WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_TIMEOUT", "400ms"),
        ("WEBHOOK_RETRY_BASE_DELAY", "50ms"),
        ("WEBHOOK_RETRY_MAX_DELAY", "200ms"),
        ("RATE_LIMIT_PER_MINUTE", "3000"),
        ("RETRY_BASE_DELAY", "100ms"),
        ("RETRY_MAX_DELAY", "200ms"),
        ("MAX_ATTEMPTS", "2"),
        ("WORKER_LEASE", "5s"),
    ] {
        stack.set(key, value);
    }
}

async fn stream(stack: &Stack) -> Vec<EventRecord> {
    Events::new(stack.conn.clone(), &stack.keys)
        .read("-", 10_000, &ReadFilter::default())
        .await
        .unwrap()
        .events
}

/// Waits until the receiver acknowledged every id in `want`; panics after `timeout`.
async fn wait_received(rx: &Receiver, want: &HashSet<String>, timeout: Duration) {
    let started = Instant::now();
    loop {
        let got: HashSet<String> = rx.seen.lock().unwrap().ids.keys().cloned().collect();
        if want.is_subset(&got) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "receiver has {} of {} events after {timeout:?}",
            got.intersection(want).count(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sim_rules(logins: &[(LoginId, Scenario)]) -> SimConfig {
    let mut rules = Rules::default();
    for (login, scenario) in logins {
        rules = rules.with_login(login.as_str(), *scenario);
    }
    SimConfig {
        rules,
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routine_with_reauth_invalid_and_failed_logins_delivers_one_event_per_login_per_episode_through_failures(
) {
    // Arrange: re-auth, invalid, failed and healthy logins; a receiver that fails first.
    let reauth = new_logins(3);
    let invalid = new_logins(2);
    let failed = new_logins(2);
    let healthy = new_logins(3);
    let all: Vec<LoginId> = [&reauth, &invalid, &failed, &healthy]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let scenario = |l: &LoginId, fixed: &[LoginId]| {
        if fixed.contains(l) || healthy.contains(l) {
            Scenario::Healthy
        } else if reauth.contains(l) {
            Scenario::InvalidPassword
        } else if invalid.contains(l) {
            Scenario::InvalidLogin
        } else {
            Scenario::RetryLater
        }
    };
    let day1: Vec<_> = all.iter().map(|l| (l.clone(), scenario(l, &[]))).collect();
    // The next day, the first re-auth login works again and the user reconnects the second.
    let fixed = [reauth[0].clone(), reauth[1].clone()];
    let day2: Vec<_> = all
        .iter()
        .map(|l| (l.clone(), scenario(l, &fixed)))
        .collect();
    let sim1 = flinks_sim::spawn(sim_rules(&day1)).await.unwrap();
    let sim2 = flinks_sim::spawn(sim_rules(&day2)).await.unwrap();
    let (rx, url) = receiver(vec![
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(503),
        Answer::Slow(Duration::from_secs(2)),
        Answer::Slow(Duration::from_secs(2)),
    ])
    .await;
    let mut stack = Stack::new("webhook-e2e", &sim1.base_url).await;
    with_webhook(&mut stack, &url);

    // Act: day 1 on two workers; day 2 on fresh workers against the second simulator, after
    // the user reconnected the second login.
    stack.spawn_worker(&[]);
    stack.spawn_worker(&[]);
    stack.import_and_run(&all, "2026-11-20");
    stack
        .wait_done("2026-11-20", all.len() as u64, Duration::from_secs(60))
        .await;
    stack.terminate_workers();
    stack.set("FLINKS_BASE_URL", &sim2.base_url);
    stack.spawn_worker(&[]);
    stack.spawn_worker(&[]);
    let reconnected = stack.producer(&["logins", "reconnected", reauth[1].as_str()]);
    assert!(
        reconnected.status.success(),
        "{}",
        String::from_utf8_lossy(&reconnected.stderr)
    );
    let run = stack.producer(&["routine", "run", "--date", "2026-11-21"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stack
        .wait_done("2026-11-21", all.len() as u64, Duration::from_secs(60))
        .await;

    // Assert: the stream holds exactly one event per login per episode...
    let events = stream(&stack).await;
    let mut kinds: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &events {
        *kinds
            .entry((r.event.login_id.clone(), r.event.event_type.clone()))
            .or_default() += 1;
    }
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut expect = |l: &LoginId, t: &str, n: usize| {
        want.insert((l.as_str().to_string(), t.to_string()), n);
    };
    for l in &reauth {
        expect(l, "needs_reauth", 1);
    }
    expect(&reauth[0], "reauth_resolved", 1);
    expect(&reauth[1], "reauth_resolved", 1);
    for l in &invalid {
        expect(l, "invalid_login", 1);
    }
    for l in &failed {
        expect(l, "failed", 2);
    }
    assert_eq!(kinds, want, "events by (login, type)");
    let sources: BTreeMap<&str, &str> = events
        .iter()
        .filter(|r| r.event.event_type == "reauth_resolved")
        .map(|r| {
            (
                r.event.login_id.as_str(),
                r.event.source.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(sources[reauth[0].as_str()], "refreshed");
    assert_eq!(sources[reauth[1].as_str()], "reconnected");
    // ...and the receiver ends with exactly those ids, every signature valid, one sender at
    // a time, each login's events in order, through 500s and timeouts.
    let ids: HashSet<String> = events.iter().map(|r| r.event.event_id.clone()).collect();
    wait_received(&rx, &ids, Duration::from_secs(30)).await;
    stack.terminate_workers();
    {
        let seen = rx.seen.lock().unwrap();
        let received: HashSet<String> = seen.ids.keys().cloned().collect();
        assert_eq!(received, ids);
        assert_eq!(seen.bad_signatures, 0);
        assert_eq!(seen.max_in_flight, 1, "two pods sent at once");
        assert!(
            seen.requests >= 6,
            "the failures were retried: {}",
            seen.requests
        );
        assert!(seen.batch_sizes.iter().all(|n| *n <= 100));
        let position = |l: &LoginId, t: &str| {
            seen.order
                .iter()
                .position(|(login, kind)| login == l.as_str() && kind == t)
                .unwrap()
        };
        assert!(position(&reauth[0], "needs_reauth") < position(&reauth[0], "reauth_resolved"));
    }
    stack.cleanup().await;
}

fn reauth_outcome() -> LedgerOutcome {
    LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("INVALID_PASSWORD")),
        message: Some("reconnect".into()),
        request_id: None,
        at: Utc::now(),
        unrecognised_code: false,
    }
}

/// Records a re-auth for each login (as the routine would) and returns the event ids.
async fn seed_events(stack: &Stack, logins: &[LoginId]) -> HashSet<String> {
    let outcomes = Outcomes::new(stack.conn.clone(), &stack.keys);
    let date = parse_date("2026-11-22");
    for login in logins {
        outcomes
            .record(date, login, &reauth_outcome(), Overwrite::AllButRefreshed)
            .await
            .unwrap();
    }
    stream(stack)
        .await
        .into_iter()
        .map(|r| r.event.event_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_no_event_and_no_batch_is_sent_twice_at_once() {
    // Arrange: 250 events (three batches); the receiver holds the first batch a while.
    let (rx, url) = receiver(vec![Answer::Slow(Duration::from_millis(300))]).await;
    let mut stack = Stack::new("webhook-kill", "http://127.0.0.1:9").await;
    with_webhook(&mut stack, &url);
    stack.set("WEBHOOK_TIMEOUT", "2s");
    let ids = seed_events(&stack, &new_logins(250)).await;
    assert_eq!(ids.len(), 250);

    // Act: a worker starts sending and is killed while the receiver holds its batch; a
    // second one takes over once the lease expires.
    let first = stack.spawn_worker(&[]);
    let started = Instant::now();
    while rx.seen.lock().unwrap().in_flight == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no delivery started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stack.signal_worker(first, "KILL");
    let _ = stack.wait_worker(first, Duration::from_secs(10)).await;
    stack.spawn_worker(&[]);
    wait_received(&rx, &ids, Duration::from_secs(30)).await;

    // Assert: every event arrived, the killed batch again (at-least-once), never two at once.
    {
        let seen = rx.seen.lock().unwrap();
        let received: HashSet<String> = seen.ids.keys().cloned().collect();
        assert_eq!(received, ids);
        assert_eq!(seen.bad_signatures, 0);
        assert_eq!(seen.max_in_flight, 1);
    }
    stack.terminate_workers();
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_failing_past_webhook_max_age_is_parked_and_events_redeliver_sends_it() {
    // Arrange: the receiver is down for the first seconds; batches expire after 1s.
    let (rx, url) = receiver(vec![]).await;
    *rx.down_until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(4));
    let mut stack = Stack::new("webhook-dead", "http://127.0.0.1:9").await;
    with_webhook(&mut stack, &url);
    stack.set("WEBHOOK_MAX_AGE", "1s");
    let logins = new_logins(3);
    let ids = seed_events(&stack, &logins).await;

    // Act: the worker retries, then parks the batch; once the receiver is back, an
    // operator redelivers.
    stack.spawn_worker(&[]);
    // One batch per ledger bucket the logins' events are in.
    let buckets: HashSet<u16> = logins
        .iter()
        .map(|l| stack.keys.ledger_bucket_of(l.as_str()))
        .collect();
    let dead_key = stack.keys.events_webhook("dead");
    let started = Instant::now();
    loop {
        let mut conn = stack.conn.clone();
        let parked: usize = redis::cmd("LLEN")
            .arg(&dead_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if parked == buckets.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing parked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while rx
        .down_until
        .lock()
        .unwrap()
        .is_some_and(|t| Instant::now() < t)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let redeliver = stack.producer(&["events", "redeliver", "--json"]);
    let read = stack.producer(&["events", "read", "--type", "needs_reauth", "--json"]);
    let bad_type = stack.producer(&["events", "read", "--type", "reauth"]);

    // Assert
    assert!(
        redeliver.status.success(),
        "{}",
        String::from_utf8_lossy(&redeliver.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&redeliver.stdout).unwrap();
    assert_eq!(report["delivered_events"], 3);
    assert_eq!(report["failed_batches"], 0);
    let received: HashSet<String> = rx.seen.lock().unwrap().ids.keys().cloned().collect();
    assert_eq!(received, ids);
    assert_eq!(rx.seen.lock().unwrap().bad_signatures, 0);
    let page: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    assert_eq!(bad_type.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_type.stderr).contains("needs_reauth"));
    stack.terminate_workers();
    stack.cleanup().await;
}

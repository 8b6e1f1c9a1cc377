//! Observability end to end: a short routine through real `producer schedule` and
//! `worker` processes, then what operators would see of it.
//!
//! - `/metrics` of both processes passes `promtool check metrics`, renders histograms with
//!   `_bucket` lines (never summaries) and carries no LoginId or RequestId in a label value.
//! - The worker's JSON log holds no secret, account number or account holder detail, and
//!   every per-call trace line (`flinks.api_call`) carries its timestamp, URL, HTTP status
//!   and, for errors, the FlinksCode and Message.
//! - A real Prometheus (Debian package `prometheus`) scrapes both every second with the
//!   project's `rules.yml` loaded, and every PromQL expression of the dashboard and of the
//!   rules evaluates without error; every dashboard query returns data.
//!
//! `promtool` and `prometheus` are optional locally (the parts that need them are skipped
//! with a message) and mandatory when `CI` is set: `scripts/check-observability` installs
//! them before `.ci/run` runs the tests.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flinks_sim::{Rules, Scenario, SimConfig};
use serde_json::Value;
use shared::config::RedisMode;
use shared::LoginId;

use crate::helpers::{free_port, http_status, new_logins, Stack};

const LOGINS: usize = 40;

/// What the simulator sends about every account holder (`flinks-sim/src/model.rs`,
/// `accounts_for`): none of it may reach a log line.
const HOLDER_DETAILS: [&str; 4] = ["Testing", "25 york street", "x@y.com", "9051234567"];

/// Dashboard queries allowed to return no series in a short, healthy run, with the reason.
/// Empty today: every counter the dashboard reads is created at zero, and the scenario mix
/// produces at least one FlinksCode error. Add `(expr fragment, reason)` pairs only for
/// series that cannot exist without a fault the test does not inject.
const DASHBOARD_NO_DATA_EXCEPTIONS: &[(&str, &str)] = &[];

fn scenario_of(i: usize) -> Scenario {
    match i % 8 {
        0..=2 => Scenario::Healthy,
        3 => Scenario::Pending { polls: 1 },
        4 => Scenario::QuestionNotFound,
        5 => Scenario::RetryLater,
        6 => Scenario::AggregationError { failures: 1 },
        _ => Scenario::Stale { hours: 48 },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_routine_exports_lintable_bounded_metrics_clean_logs_and_queryable_dashboards() {
    // Arrange: the simulator requiring both keys, 40 logins over several scenarios, and
    // `producer schedule` due since midnight UTC, so it fires the routine on start.
    let logins = new_logins(LOGINS);
    let mut rules = Rules::default();
    for (i, login) in logins.iter().enumerate() {
        rules = rules.with_login(login.as_str(), scenario_of(i));
    }
    let secret_key = format!("sk-obs-{}", uuid::Uuid::new_v4().simple());
    let api_key = format!("ak-obs-{}", uuid::Uuid::new_v4().simple());
    let sim = flinks_sim::spawn(SimConfig {
        rules,
        secret_key: Some(secret_key.clone()),
        api_key: Some(api_key.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut stack = Stack::new("observability", &sim.base_url).await;
    for (key, value) in [
        ("FLINKS_SECRET_KEY", secret_key.as_str()),
        ("FLINKS_API_KEY", api_key.as_str()),
        ("RATE_LIMIT_PER_MINUTE", "6000"),
        ("POLL_INTERVAL", "200ms"),
        ("RETRY_BASE_DELAY", "100ms"),
        ("RETRY_MAX_DELAY", "400ms"),
        ("MAX_ATTEMPTS", "3"),
        ("WORKER_LEASE", "5s"),
        ("WORKER_CONCURRENCY", "8"),
        ("ROUTINE_AT", "00:00"),
        ("ROUTINE_TZ", "UTC"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ] {
        stack.set(key, value);
    }
    let date = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    stack.import_logins(&logins);
    // A consumer service reading the results stream: its lag and pending gauges exist.
    let mut conn = stack.conn.clone();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stack.keys.results_stream(0))
        .arg("dashboard-check")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();

    let worker_addr = format!("127.0.0.1:{}", free_port());
    let producer_addr = format!("127.0.0.1:{}", free_port());
    stack.set("METRICS_ADDR", &worker_addr);
    stack.spawn_worker(&[]);
    stack.set("METRICS_ADDR", &producer_addr);
    stack.spawn_producer(&["schedule"]);
    wait_until_serving(&worker_addr, "worker").await;
    wait_until_serving(&producer_addr, "producer schedule").await;

    // Prometheus scrapes from the start, so it sees the routine happen.
    let prometheus = tool("prometheus", "the real-Prometheus part")
        .map(|bin| PrometheusServer::start(&bin, &worker_addr, &producer_addr));

    // Act: the schedule fires; the worker drains the routine.
    stack
        .wait_done(&date, LOGINS as u64, Duration::from_secs(60))
        .await;
    // Let the samplers (every 5 s) and Prometheus (every 1 s) see the finished routine.
    tokio::time::sleep(Duration::from_secs(6)).await;

    // Assert (a, b): /metrics of both processes.
    let worker_metrics = scrape(&worker_addr).await;
    let producer_metrics = scrape(&producer_addr).await;
    let promtool = tool("promtool", "`promtool check metrics`");
    for (who, text) in [
        ("worker", &worker_metrics),
        ("producer schedule", &producer_metrics),
    ] {
        if let Some(promtool) = &promtool {
            promtool_check_metrics(promtool, who, text);
        }
        assert_histograms_have_buckets(who, text);
    }
    assert!(
        worker_metrics.contains(
            r#"nightly_refresh_flinks_requests_total{endpoint="authorize",outcome="ok",status="200"}"#
        ),
        "the worker counted no authorize call:\n{worker_metrics}"
    );
    // On one Redis with one ledger bucket every authorize check rides its job's lease.
    let checks = |read: &str| {
        let series = format!(r#"nightly_refresh_authorize_checks_total{{read="{read}"}} "#);
        let value = worker_metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()));
        value.and_then(|v| v.trim().parse::<f64>().ok())
    };
    if stack.conn.mode() != RedisMode::Cluster && stack.keys.ledger_buckets() == 1 {
        assert!(
            checks("lease").is_some_and(|n| n >= LOGINS as f64)
                && checks("round_trip") == Some(0.0),
            "authorize checks not read with the lease:\n{worker_metrics}"
        );
    }
    assert!(
        producer_metrics.contains("nightly_refresh_routine_last_fired_timestamp_seconds"),
        "producer schedule exports no last-fired timestamp:\n{producer_metrics}"
    );

    // Assert (d): the dashboard's and the rules' PromQL on a real Prometheus.
    if let Some(prometheus) = prometheus {
        prometheus.assert_dashboard_and_rules_evaluate().await;
        drop(prometheus);
    }

    // Assert (c): the full logs, once the processes have exited.
    let mut logs = Vec::new();
    for (status, log) in stack.terminate_workers() {
        assert!(status.success(), "worker exited with {status}: {log}");
        logs.push(("worker", log));
    }
    for (status, log) in stack.terminate_producers() {
        assert!(
            status.success(),
            "producer schedule exited with {status}: {log}"
        );
        logs.push(("producer schedule", log));
    }
    let request_ids = assert_api_call_lines_are_complete(&logs[0].1);
    let mut forbidden: Vec<(String, &str)> = vec![
        (secret_key.clone(), "FLINKS_SECRET_KEY"),
        (api_key.clone(), "FLINKS_API_KEY"),
    ];
    for detail in HOLDER_DETAILS {
        forbidden.push((detail.to_string(), "an account holder detail"));
    }
    for login in &logins {
        for number in account_numbers(login) {
            forbidden.push((number, "an account number"));
        }
    }
    for (who, log) in &logs {
        for line in log.lines() {
            assert!(
                serde_json::from_str::<Value>(line).is_ok(),
                "{who}: LOG_FORMAT=json wrote a line that is not JSON: {line}"
            );
            for (value, what) in &forbidden {
                assert!(
                    !line.contains(value.as_str()),
                    "{who} logged {what} ({value}): {line}"
                );
            }
        }
    }

    // Assert (b): no identifier in any label value, on either process.
    let mut identifiers: BTreeSet<String> = logins.iter().map(|l| l.as_str().to_string()).collect();
    identifiers.extend(request_ids);
    for (who, text) in [
        ("worker", &worker_metrics),
        ("producer schedule", &producer_metrics),
    ] {
        for (series, value) in label_values(text) {
            assert!(
                !looks_like_uuid(&value) && !identifiers.iter().any(|id| value.contains(id)),
                "{who}: the label value {value:?} of {series} holds an identifier"
            );
        }
    }

    stack.cleanup().await;
}

/// `CI` is set (and not `false`/`0`): optional tools become mandatory.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The path of `name` on `PATH`; when it is missing, `None` with a message, or a panic in CI.
fn tool(name: &str, part: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is required in CI (scripts/check-observability installs the Debian \
             package prometheus)"
        );
        eprintln!(
            "SKIPPED {part}: {name} is not installed (apt-get install prometheus, or run \
             scripts/check-observability); CI runs it"
        );
    }
    found
}

async fn wait_until_serving(addr: &str, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_status(addr, "/healthz").await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "{who} does not serve /healthz on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(addr: &str) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap_or_else(|e| panic!("GET {addr}/metrics: {e}"));
    assert!(response.status().is_success(), "GET {addr}/metrics");
    response.text().await.unwrap()
}

fn promtool_check_metrics(promtool: &Path, who: &str, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics rejects the {who}'s /metrics ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_histograms_have_buckets(who: &str, text: &str) {
    assert!(
        !text.contains("quantile="),
        "{who}: a histogram is rendered as a summary:\n{text}"
    );
    let histograms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" histogram"))
        .collect();
    assert!(
        !histograms.is_empty(),
        "{who}: no histogram at all:\n{text}"
    );
    for name in histograms {
        assert!(
            text.contains(&format!("{name}_bucket{{")),
            "{who}: {name} has no _bucket lines"
        );
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(!line.ends_with(" summary"), "{who}: {line}");
    }
}

/// Every `(series name, label value)` of a Prometheus text exposition.
fn label_values(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let mut chars = rest.chars();
        let mut value = String::new();
        let mut in_value = false;
        while let Some(c) = chars.next() {
            match (in_value, c) {
                (false, '"') => in_value = true,
                (false, '}') => break,
                (false, _) => {}
                (true, '\\') => value.extend(chars.next()),
                (true, '"') => {
                    out.push((name.to_string(), std::mem::take(&mut value)));
                    in_value = false;
                }
                (true, c) => value.push(c),
            }
        }
    }
    out
}

/// True when `s` holds a UUID (LoginIds and RequestIds are UUIDs).
fn looks_like_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(36).any(|w| {
        w.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    })
}

/// The account numbers the simulator sends for `login` (`flinks-sim/src/model.rs`,
/// `accounts_for`: a chequing and a credit account).
fn account_numbers(login: &LoginId) -> [String; 2] {
    ["chequing", "credit"].map(|tag| {
        let seed = format!("{}/{tag}", login.as_str());
        (1_000_000 + flinks_sim::stable_hash(&seed) % 9_000_000).to_string()
    })
}

/// Checks the per-call trace lines of the worker's log and returns the RequestIds they
/// name (to look for in label values).
fn assert_api_call_lines_are_complete(log: &str) -> BTreeSet<String> {
    let mut request_ids = BTreeSet::new();
    let mut calls = 0;
    let mut with_code = 0;
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["target"] != shared::flinks::call_log::API_CALL_TARGET {
            continue;
        }
        calls += 1;
        let timestamp = event["timestamp"].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "no RFC 3339 timestamp: {line}"
        );
        assert!(
            event["url"].as_str().is_some_and(|u| u.starts_with("http")),
            "no url: {line}"
        );
        let status = event["http_status"]
            .as_u64()
            .unwrap_or_else(|| panic!("no http_status: {line}"));
        if status >= 400 {
            assert!(event["flinks_code"].is_string(), "no flinks_code: {line}");
            assert!(
                event["flinks_message"].is_string(),
                "no flinks_message: {line}"
            );
            with_code += 1;
        }
        if let Some(id) = event["request_id"].as_str() {
            // A RequestId is a session token: the trace shows 8 characters and `…`.
            let shown = id.trim_end_matches('…');
            assert!(
                shown.chars().count() <= 8 && !line.contains(&format!("{shown}-")),
                "a full RequestId was logged: {line}"
            );
            request_ids.insert(shown.to_string());
        }
    }
    assert!(
        calls >= LOGINS,
        "only {calls} flinks.api_call lines:\n{log}"
    );
    assert!(with_code > 0, "no failed call carried a FlinksCode:\n{log}");
    assert!(!request_ids.is_empty(), "no call named its RequestId");
    request_ids
}

/// The PromQL of every dashboard panel, with Grafana's variables replaced.
fn dashboard_exprs() -> Vec<(String, String)> {
    let path = workspace_root().join("grafana/dashboards/nightly-refresh.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let mut expr = expr.to_string();
            for (variable, value) in [
                ("${__rate_interval}", "1m"),
                ("$__rate_interval", "1m"),
                ("${__interval}", "1s"),
                ("$__interval", "1s"),
                ("${__range}", "5m"),
                ("$__range", "5m"),
            ] {
                expr = expr.replace(variable, value);
            }
            assert!(
                !expr.contains('$'),
                "the dashboard uses a variable this test does not replace: {expr}"
            );
            out.push((panel["title"].as_str().unwrap_or("?").to_string(), expr));
        }
    }
    assert!(
        out.len() > 10,
        "the dashboard has only {} queries",
        out.len()
    );
    out
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("worker/ sits in the workspace")
        .to_path_buf()
}

/// A `prometheus` server of the test's own: temporary config and storage, a free port,
/// scraping the worker and the producer every second with `prometheus/rules.yml` loaded.
/// Killed (and its directory removed) on drop.
struct PrometheusServer {
    child: Child,
    dir: PathBuf,
    base: String,
    http: reqwest::Client,
}

impl PrometheusServer {
    fn start(bin: &Path, worker_addr: &str, producer_addr: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nr-prom-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let rules = workspace_root().join("prometheus/rules.yml");
        // Job names as a Prometheus Operator PodMonitor makes them (namespace/name), not
        // compose's: no rule or panel may depend on a job's name.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n\
             \x20 - job_name: monitoring/nightly-refresh-worker\n    static_configs:\n      - targets: [\"{worker_addr}\"]\n\
             \x20 - job_name: monitoring/nightly-refresh-producer\n    static_configs:\n      - targets: [\"{producer_addr}\"]\n",
            rules = rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            dir,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// Waits until Prometheus answers and both targets are up (or fails with its log).
    async fn wait_targets_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let targets = self.get("/api/v1/targets", &[]).await;
            let up = targets
                .as_ref()
                .and_then(|t| t["data"]["activeTargets"].as_array())
                .map(|ts| ts.iter().filter(|t| t["health"] == "up").count())
                .unwrap_or(0);
            if up == 2 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus targets not up after 30 s: {targets:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn query(&self, expr: &str) -> Value {
        self.get("/api/v1/query", &[("query", expr)])
            .await
            .unwrap_or_else(|| panic!("Prometheus did not answer the query {expr}"))
    }

    /// Every dashboard query evaluates and returns series; every rule loads, evaluates
    /// healthy and its expression evaluates.
    async fn assert_dashboard_and_rules_evaluate(&self) {
        self.wait_targets_up().await;
        // Two scrapes at least after the routine, so rate() has points.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let mut failures = Vec::new();
        for (panel, expr) in dashboard_exprs() {
            let answer = self.query(&expr).await;
            if answer["status"] != "success" {
                failures.push(format!("{panel}: {expr}: {answer}"));
                continue;
            }
            let empty = answer["data"]["result"]
                .as_array()
                .is_some_and(|r| r.is_empty());
            let excused = DASHBOARD_NO_DATA_EXCEPTIONS
                .iter()
                .any(|(fragment, _)| expr.contains(fragment));
            if empty && !excused {
                failures.push(format!("{panel}: {expr}: no series"));
            }
        }

        let rules_text =
            std::fs::read_to_string(workspace_root().join("prometheus/rules.yml")).unwrap();
        let declared = rules_text
            .lines()
            .filter(|l| l.trim_start().starts_with("expr:"))
            .count();
        let deadline = Instant::now() + Duration::from_secs(15);
        let rules = loop {
            let answer = self.get("/api/v1/rules", &[]).await.unwrap_or_default();
            let rules: Vec<Value> = answer["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = rules.iter().all(|r| r["health"] != "unknown");
            if rules.len() == declared && evaluated {
                break rules;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus loaded {} of the {declared} rules of rules.yml, or has not \
                 evaluated them: {answer}\n{}",
                rules.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        for rule in &rules {
            let name = rule["name"].as_str().unwrap_or("?");
            let expr = rule["query"].as_str().unwrap_or_default();
            if rule["health"] != "ok" {
                failures.push(format!("rule {name}: {}: {expr}", rule["lastError"]));
            }
            let answer = self.query(expr).await;
            if answer["status"] != "success" {
                failures.push(format!("rule {name}: {expr}: {answer}"));
            }
        }
        assert!(
            failures.is_empty(),
            "PromQL that does not work against the exported metrics:\n{}",
            failures.join("\n")
        );
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

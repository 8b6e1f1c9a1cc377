//! Observability: the rendered `/metrics` (histogram buckets, zeroed series, build info),
//! the Redis sampler's gauges on a real Redis, and the dashboards and alert rules querying
//! only metrics the code exports (style guideline 18).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveTime, TimeZone, Utc};
use metrics_exporter_prometheus::PrometheusRecorder;
use shared::domain::{FlinksCode, LoginId, RequestId};
use shared::gauges::{sample_once, spawn_sampler, SamplerConfig};
use shared::jobs::{AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::ledger::{Ledger, LedgerOutcome};
use shared::metrics::{self as m, Kind, ALL_METRICS};
use shared::queue::{EnqueueOptions, Queue, QueueConfig, WorkerId};
use tokio_util::sync::CancellationToken;

use crate::support::{RecordExt, TestRedis};

fn recorder() -> PrometheusRecorder {
    m::builder().expect("valid buckets").build_recorder()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("shared/ sits in the workspace")
        .to_path_buf()
}

/// Every `nightly_refresh_…` name in `text`, with `_bucket`/`_sum`/`_count` stripped.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("nightly_refresh_") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded_by_ident {
            let name = &tail[..len];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(name.to_owned());
        }
        rest = &tail[len..];
    }
    names
}

fn exported() -> BTreeSet<String> {
    m::metric_names().map(str::to_owned).collect()
}

#[test]
fn metrics_render_histogram_buckets_and_the_known_series_at_zero() {
    let recorder = recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        m::register();
        m::collect_process();
        metrics::histogram!(
            shared::flinks::call_log::FLINKS_REQUEST_DURATION_SECONDS,
            "endpoint" => "authorize"
        )
        .record(0.3);
    });
    let rendered = handle.render();

    for expected in [
        r#"nightly_refresh_build_info{version=""#,
        &*format!(r#",git_rev="{}"}} 1"#, m::GIT_REV),
        "nightly_refresh_process_resident_memory_bytes ",
        "nightly_refresh_process_open_fds ",
        "nightly_refresh_process_cpu_seconds_total ",
        r#"nightly_refresh_flinks_requests_total{endpoint="get_accounts_detail_async",outcome="timeout",status="none"} 0"#,
        r#"nightly_refresh_rate_limit_permits_total{result="granted"} 0"#,
        r#"nightly_refresh_rate_limit_permits_total{result="throttled"} 0"#,
        r#"nightly_refresh_rate_limit_cooldowns_total 0"#,
        r#"nightly_refresh_routine_outcomes_total{queue="authorize",outcome="reauth"} 0"#,
        r#"nightly_refresh_routine_outcomes_total{queue="detail",outcome="refreshed"} 0"#,
        r#"nightly_refresh_jobs_processed_total{queue="detail",outcome="retried"} 0"#,
        // A dead letter is `dead` here; `failed` is a recorded routine outcome.
        r#"nightly_refresh_jobs_processed_total{queue="authorize",outcome="dead"} 0"#,
        r#"nightly_refresh_jobs_rescued_total{queue="authorize"} 0"#,
        r#"nightly_refresh_flinks_request_duration_seconds_bucket{endpoint="authorize",le="0.5"} 1"#,
        r#"nightly_refresh_flinks_request_duration_seconds_bucket{endpoint="authorize",le="+Inf"} 1"#,
        r#"nightly_refresh_flinks_request_duration_seconds_count{endpoint="authorize"} 1"#,
        // Registered, never observed: still rendered as a histogram with zero buckets.
        r#"nightly_refresh_rate_limit_wait_seconds_bucket{le="0.005"} 0"#,
        r#"nightly_refresh_job_duration_seconds_bucket{queue="detail",le="240"} 0"#,
        "# HELP nightly_refresh_flinks_requests_total Flinks API calls",
    ] {
        assert!(
            rendered.contains(expected),
            "{expected:?} missing:\n{rendered}"
        );
    }
    assert!(
        !rendered.contains("quantile="),
        "a histogram rendered as a summary:\n{rendered}"
    );
    // Every histogram of the table is rendered with buckets.
    for metric in ALL_METRICS.iter().filter(|d| d.kind == Kind::Histogram) {
        assert!(
            rendered.contains(&format!("{}_bucket{{", metric.name)),
            "{} has no _bucket lines:\n{rendered}",
            metric.name
        );
    }
    // Everything rendered is in the table.
    let unknown: Vec<_> = metric_names_in(&rendered)
        .difference(&exported())
        .cloned()
        .collect();
    assert!(
        unknown.is_empty(),
        "rendered but not described: {unknown:?}"
    );
}

#[test]
fn every_metric_name_in_the_workspace_sources_is_described() {
    let root = workspace_root();
    let mut found = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ["shared/src", "worker/src", "producer/src"]
        .iter()
        .map(|dir| root.join(dir))
        .collect();
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Only string literals: `"nightly_refresh_…"`.
                for piece in text.split("\"nightly_refresh_").skip(1) {
                    let len = piece
                        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                        .unwrap_or(piece.len());
                    if len > 0 {
                        found.insert(format!("nightly_refresh_{}", &piece[..len]));
                    }
                }
            }
        }
    }
    assert!(found.contains(m::ROUTINE_OUTCOMES_TOTAL), "{found:?}");
    let missing: Vec<_> = found.difference(&exported()).cloned().collect();
    assert!(
        missing.is_empty(),
        "metric names in the code but not in shared::metrics::ALL_METRICS: {missing:?}"
    );
}

#[test]
fn the_dashboard_and_alert_rules_only_query_exported_metrics() {
    let root = workspace_root();
    let dashboard_text =
        std::fs::read_to_string(root.join("grafana/dashboards/nightly-refresh.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).unwrap();
    let rules = std::fs::read_to_string(root.join("prometheus/rules.yml")).unwrap();

    // Every panel explains itself and queries the provisioned datasource by variable.
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut exprs = String::new();
    let mut queried_panels = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without title: {panel}");
        if panel["type"] == "row" {
            continue;
        }
        queried_panels += 1;
        let description = panel["description"].as_str().unwrap_or_default();
        assert!(
            description.len() > 40,
            "panel {title:?} needs a description of what it shows and what bad looks like"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "panel {title:?} has no unit"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?} must use the datasource variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} queries nothing");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            assert!(expr.contains("nightly_refresh_"), "{title:?}: {expr}");
            exprs.push_str(expr);
            exprs.push('\n');
        }
    }
    assert!(queried_panels >= 10, "{queried_panels} panels");

    let exported = exported();
    for (file, text) in [("dashboard", exprs.as_str()), ("rules.yml", rules.as_str())] {
        let used = metric_names_in(text);
        assert!(!used.is_empty(), "{file} uses no metric");
        let unknown: Vec<_> = used.difference(&exported).cloned().collect();
        assert!(
            unknown.is_empty(),
            "{file} queries metrics the code does not export: {unknown:?}"
        );
    }
}

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

fn gauge(rendered: &str, series: &str) -> f64 {
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing:\n{rendered}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_sampler_reports_queue_depths_workers_and_routine_progress_from_redis() {
    // Arrange: 3 authorize jobs (one leased by a worker, one delayed), 1 detail job, and a
    // routine date with 10 expected logins of which 3 are done.
    let redis = TestRedis::new("observability-sampler").await;
    let config = SamplerConfig {
        interval: Duration::from_secs(5),
        rate_per_minute: 60.0,
        routine_at: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
        routine_tz: chrono_tz::UTC,
        worker_lease: Duration::from_secs(30),
    };
    let now = Utc.with_ymd_and_hms(2025, 6, 10, 3, 0, 0).unwrap();
    let date = now.date_naive();
    let authorize: Queue<serde_json::Value> = Queue::new(
        redis.conn.clone(),
        &redis.keys,
        QueueConfig::new(AUTHORIZE_QUEUE),
    );
    let detail: Queue<serde_json::Value> = Queue::new(
        redis.conn.clone(),
        &redis.keys,
        QueueConfig::new(DETAIL_QUEUE),
    );
    for n in 0..2 {
        authorize
            .enqueue(&serde_json::json!({ "n": n }), EnqueueOptions::default())
            .await
            .unwrap();
    }
    authorize
        .enqueue(
            &serde_json::json!({ "n": 2 }),
            EnqueueOptions::default().delayed(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    detail
        .enqueue(&serde_json::json!({ "n": 3 }), EnqueueOptions::default())
        .await
        .unwrap();
    let worker = WorkerId::generate();
    assert_eq!(authorize.fetch(&worker, 1).await.unwrap().len(), 1);

    let ledger = Ledger::new(redis.conn.clone(), &redis.keys);
    ledger.set_expected(date, 10).await.unwrap();
    let refreshed = |stale| LedgerOutcome::Refreshed {
        request_id: RequestId::new(uuid::Uuid::new_v4().to_string()),
        last_refresh: None,
        stale,
        fetched_at: Utc::now(),
        results_stream_id: None,
    };
    ledger.put(date, &login(1), &refreshed(false)).await;
    ledger.put(date, &login(2), &refreshed(true)).await;
    let reauth = LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("QUESTION_NOT_FOUND")),
        message: None,
        request_id: None,
        at: Utc::now(),
        unrecognised_code: false,
    };
    ledger.put(date, &login(3), &reauth).await;
    // The results stream: 3 entries, a consumer group that has read one of them.
    let stream = redis.keys.results_stream(0);
    let mut c = redis.conn.clone();
    for n in 0..3 {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("n")
            .arg(n)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("billing")
        .arg("0")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("billing")
        .arg("c1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();

    // Act
    let sample = sample_once(&redis.conn, &redis.keys, &config, now)
        .await
        .unwrap();
    let recorder = recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || sample.publish());
    let rendered = handle.render();

    // Assert
    assert_eq!(sample.date, date);
    for (series, value) in [
        (
            r#"nightly_refresh_queue_jobs{queue="authorize",state="ready"}"#,
            1.0,
        ),
        (
            r#"nightly_refresh_queue_jobs{queue="authorize",state="delayed"}"#,
            1.0,
        ),
        (
            r#"nightly_refresh_queue_jobs{queue="authorize",state="in_flight"}"#,
            1.0,
        ),
        (
            r#"nightly_refresh_queue_jobs{queue="authorize",state="dead"}"#,
            0.0,
        ),
        (
            r#"nightly_refresh_queue_jobs{queue="detail",state="ready"}"#,
            1.0,
        ),
        ("nightly_refresh_workers_alive", 1.0),
        (r#"nightly_refresh_routine_logins{state="expected"}"#, 10.0),
        (r#"nightly_refresh_routine_logins{state="done"}"#, 3.0),
        (r#"nightly_refresh_routine_logins{state="remaining"}"#, 7.0),
        // Counted as the report counts them: refreshed includes the stale one.
        (
            r#"nightly_refresh_routine_done_logins{outcome="refreshed"}"#,
            2.0,
        ),
        (
            r#"nightly_refresh_routine_done_logins{outcome="stale"}"#,
            1.0,
        ),
        (
            r#"nightly_refresh_routine_done_logins{outcome="needs_reauth"}"#,
            1.0,
        ),
        (
            r#"nightly_refresh_routine_done_logins{outcome="failed"}"#,
            0.0,
        ),
        ("nightly_refresh_redis_up", 1.0),
        ("nightly_refresh_results_stream_entries", 3.0),
        (
            r#"nightly_refresh_results_consumer_group_lag_entries{group="billing"}"#,
            2.0,
        ),
        (
            r#"nightly_refresh_results_consumer_group_pending_entries{group="billing"}"#,
            1.0,
        ),
    ] {
        assert_eq!(gauge(&rendered, series), value, "{series}:\n{rendered}");
    }
    // The jobs were enqueued moments ago, on Redis' clock.
    let age = gauge(
        &rendered,
        r#"nightly_refresh_queue_oldest_ready_age_seconds{queue="authorize"}"#,
    );
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(sample.snapshot.workers_alive(), 1);
    assert_eq!(sample.snapshot.workers[0].in_flight, 1);
    // 7 remaining at 60/min, with the limiter's 1 % spacing margin: 7.07 s.
    let eta = gauge(&rendered, "nightly_refresh_routine_eta_seconds");
    assert!((7.0..7.2).contains(&eta), "{eta}");
    // The deadline is the next firing: tomorrow 02:00 UTC.
    let deadline = Utc.with_ymd_and_hms(2025, 6, 11, 2, 0, 0).unwrap();
    assert_eq!(
        gauge(
            &rendered,
            "nightly_refresh_routine_deadline_timestamp_seconds"
        ),
        deadline.timestamp() as f64
    );

    redis.cleanup().await;
}

#[tokio::test]
async fn the_sampler_reports_the_stored_rate_limit_and_the_paused_queues() {
    // Arrange: the process says 60/min, an operator stored 120/min and paused detail.
    let redis = TestRedis::new("observability-control").await;
    let control = shared::control::Control::new(redis.conn.clone(), &redis.keys);
    control.set_rate_limit(120.0).await.unwrap();
    control
        .pause(DETAIL_QUEUE, Some("incident"), "t", Utc::now())
        .await
        .unwrap();
    let config = SamplerConfig {
        interval: Duration::from_secs(5),
        rate_per_minute: 60.0,
        routine_at: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
        routine_tz: chrono_tz::UTC,
        worker_lease: Duration::from_secs(30),
    };

    // Act
    let sample = sample_once(&redis.conn, &redis.keys, &config, Utc::now())
        .await
        .unwrap();
    let recorder = recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || sample.publish());
    let rendered = handle.render();

    // Assert
    for (series, value) in [
        ("nightly_refresh_rate_limit_per_minute", 120.0),
        (r#"nightly_refresh_queue_paused{queue="authorize"}"#, 0.0),
        (r#"nightly_refresh_queue_paused{queue="detail"}"#, 1.0),
        (r#"nightly_refresh_queue_paused{queue="deactivation"}"#, 0.0),
    ] {
        assert_eq!(gauge(&rendered, series), value, "{series}:\n{rendered}");
    }
    redis.cleanup().await;
}

#[tokio::test]
async fn the_sampler_task_samples_at_once_and_stops_on_shutdown() {
    let redis = TestRedis::new("observability-spawn").await;
    let recorder = recorder();
    let handle = recorder.handle();
    // Current-thread runtime: the spawned task runs on this thread, under this recorder.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let config = SamplerConfig {
        interval: Duration::from_secs(3600),
        rate_per_minute: 0.0,
        routine_at: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
        routine_tz: chrono_tz::UTC,
        worker_lease: Duration::from_secs(30),
    };
    let shutdown = CancellationToken::new();
    let task = spawn_sampler(
        redis.conn.clone(),
        redis.keys.clone(),
        config,
        shutdown.clone(),
    );

    let mut rendered = String::new();
    for _ in 0..200 {
        rendered = handle.render();
        if rendered.contains("nightly_refresh_redis_up 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        rendered.contains("nightly_refresh_redis_up 1"),
        "{rendered}"
    );
    assert!(
        rendered.contains(r#"nightly_refresh_queue_jobs{queue="detail",state="ready"} 0"#),
        "{rendered}"
    );
    // Rate limit off: no ETA can be computed.
    assert!(
        rendered.contains("nightly_refresh_routine_eta_seconds NaN"),
        "{rendered}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the sampler stops on shutdown")
        .unwrap();
    redis.cleanup().await;
}

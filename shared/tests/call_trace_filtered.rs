//! The Flinks call trace with its `info` events filtered out (`RUST_LOG=warn`): a failed
//! call still logs its event in full, a successful one logs nothing, and every call is
//! still counted in the metrics.
//!
//! A test binary of its own, as `call_trace.rs` is: tracing caches each event site's
//! interest process-wide, and this test's subscriber keeps only `warn`.

mod capture;

use std::time::Duration;

use flinks_sim::{Rules, Scenario, SimConfig};
use shared::flinks::{DetailOutcome, FlinksClient, FlinksConfig};
use shared::LoginId;

#[tokio::test(flavor = "current_thread")]
async fn with_info_filtered_out_only_failed_calls_are_traced_and_every_call_is_counted() {
    let healthy = LoginId::parse("0000003a-0000-4000-8000-000000000001").unwrap();
    let qnf = LoginId::parse("0000003a-0000-4000-8000-000000000002").unwrap();
    let sim = flinks_sim::spawn(SimConfig {
        rules: Rules::default().with_login(qnf.as_str(), Scenario::QuestionNotFound),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let mut config = FlinksConfig::new(sim.base_url.parse().unwrap());
    config.authorize_timeout = Duration::from_secs(10);
    config.default_timeout = Duration::from_secs(10);
    let client = FlinksClient::new(config).expect("valid config");

    let (captured, subscriber) = capture::subscriber("warn");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _metrics_guard = metrics::set_default_local_recorder(&recorder);
    let _guard = tracing::subscriber::set_default(subscriber);

    let ok = client.authorize(&healthy).await.unwrap();
    let DetailOutcome::Ready(_) = client.get_accounts_detail(&ok.request_id).await.unwrap() else {
        panic!("expected data")
    };
    client.authorize(&qnf).await.unwrap_err();
    drop(_guard);

    let logs = captured.text();
    // Only the failed call is traced.
    let event = capture::only_api_call_event(&logs);
    capture::assert_contains_all(
        event,
        &[
            "WARN".to_owned(),
            qnf.fingerprint(),
            format!("url=\"{}/Authorize\"", sim.base_url),
            "http_status=401".to_owned(),
            "flinks_code=\"QUESTION_NOT_FOUND\"".to_owned(),
            format!(
                "request_body=\"{{\\\"LoginId\\\":\\\"{}\\\"",
                qnf.fingerprint()
            ),
        ],
    );
    for raw in [healthy.as_str(), qnf.as_str()] {
        assert!(!logs.contains(raw), "{raw} leaked into the logs:\n{logs}");
    }

    let rendered = metrics.render();
    for counted in [
        r#"nightly_refresh_flinks_requests_total{endpoint="authorize",outcome="ok",status="200"} 1"#,
        r#"nightly_refresh_flinks_requests_total{endpoint="get_accounts_detail",outcome="ok",status="200"} 1"#,
        r#"nightly_refresh_flinks_requests_total{endpoint="authorize",outcome="unauthorized",status="401"} 1"#,
        r#"nightly_refresh_flinks_errors_total{flinks_code="QUESTION_NOT_FOUND"} 1"#,
    ] {
        assert!(rendered.contains(counted), "{counted} missing:\n{rendered}");
    }
}

//! The Flinks call trace: every API call logs one event with fingerprints, URLs and codes,
//! and never a secret or account data.
//!
//! A test binary of its own: the test installs a scoped tracing subscriber and counts
//! events, and tracing caches each event site's interest process-wide, so tests running in
//! parallel in one process with subscribers of their own could hide an event from it.

mod capture;

use std::time::Duration;

use flinks_sim::{Rules, Scenario, SimConfig, SimHandle};
use secrecy::SecretString;
use shared::flinks::{DetailOutcome, FlinksClient, FlinksConfig};
use shared::LoginId;

/// A distinct, valid LoginId per test and number.
fn login(tag: u16, n: u16) -> LoginId {
    LoginId::parse(&format!("{tag:08x}-0000-4000-8000-{n:012x}")).unwrap()
}

fn config(base_url: &str) -> FlinksConfig {
    let mut config = FlinksConfig::new(base_url.parse().unwrap());
    config.authorize_timeout = Duration::from_secs(10);
    config.default_timeout = Duration::from_secs(10);
    config
}

async fn sim(config: SimConfig) -> SimHandle {
    flinks_sim::spawn(config).await.expect("simulator starts")
}

fn sim_with(rules: Rules) -> SimConfig {
    SimConfig {
        rules,
        ..SimConfig::default()
    }
}

fn client(config: FlinksConfig) -> FlinksClient {
    FlinksClient::new(config).expect("valid config")
}

// The call trace

#[tokio::test(flavor = "current_thread")]
async fn the_call_trace_shows_fingerprints_urls_and_codes_but_no_secret_or_account_data() {
    let (healthy, qnf) = (login(30, 1), login(30, 2));
    let sim = sim(SimConfig {
        secret_key: Some("sk-SECRET-777".into()),
        api_key: Some("ak-SECRET-888".into()),
        bearer_secret: Some("bs-SECRET-999".into()),
        ..sim_with(Rules::default().with_login(qnf.as_str(), Scenario::QuestionNotFound))
    })
    .await;
    let mut config = config(&sim.base_url);
    config.secret_key = Some(SecretString::from("sk-SECRET-777"));
    config.api_key = Some(SecretString::from("ak-SECRET-888"));
    config.bearer_secret = Some(SecretString::from("bs-SECRET-999"));
    let client = client(config);

    let (captured, subscriber) =
        capture::subscriber("flinks.api_call=trace,flinks.answer=trace,shared=trace");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _metrics_guard = metrics::set_default_local_recorder(&recorder);
    let _guard = tracing::subscriber::set_default(subscriber);

    let ok = client.authorize(&healthy).await.unwrap();
    let DetailOutcome::Ready(detail) = client.get_accounts_detail(&ok.request_id).await.unwrap()
    else {
        panic!("expected data")
    };
    client.set_scheduled_refresh(&healthy, true).await.unwrap();
    client.get_nightly_refresh_status().await.unwrap();
    let err = client.authorize(&qnf).await.unwrap_err();
    drop(_guard);

    let logs = captured.text();
    let accounts: serde_json::Value = serde_json::from_str(detail.accounts.get()).unwrap();
    let account = &accounts[0];
    let mut forbidden = vec![
        "sk-SECRET-777".to_owned(),
        "ak-SECRET-888".to_owned(),
        "bs-SECRET-999".to_owned(),
        healthy.as_str().to_owned(),
        qnf.as_str().to_owned(),
        account["AccountNumber"].as_str().unwrap().to_owned(),
        account["Holder"]["Name"].as_str().unwrap().to_owned(),
        account["Transactions"][0]["Description"]
            .as_str()
            .unwrap()
            .to_owned(),
        // RequestIds are session tokens: logs, spans and URLs show 8 characters and `…`.
        ok.request_id.as_str().to_owned(),
        err.request_id().unwrap().as_str().to_owned(),
    ];
    assert!(
        ok.request_id.as_str().len() > 9,
        "{}",
        ok.request_id.as_str()
    );
    forbidden.push(account["Balance"]["Current"].to_string());
    for secret in &forbidden {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
    for expected in [
        healthy.fingerprint(),
        qnf.fingerprint(),
        format!("{}/Authorize", sim.base_url),
        "QUESTION_NOT_FOUND".to_owned(),
        "endpoint=\"get_accounts_detail\"".to_owned(),
        err.request_id().unwrap().to_string(),
        format!("request_id={}", ok.request_id),
    ] {
        assert!(
            logs.contains(&expected),
            "{expected:?} missing from the logs:\n{logs}"
        );
    }
    // One api_call event per HTTP call: 2 token + 2 authorize + detail + refresh + status.
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("flinks.api_call: flinks api call"))
            .count(),
        7,
        "{logs}"
    );
    // SetScheduledRefresh's bare-string answer is traced too, the LoginId it echoes
    // fingerprinted (the raw one is among the forbidden strings above).
    let answer = format!(
        "answer=LoginId {} has now been activated",
        healthy.fingerprint()
    );
    assert!(logs.contains(&answer), "{answer:?} missing:\n{logs}");

    let rendered = metrics.render();
    assert!(
        rendered.contains(
            r#"nightly_refresh_flinks_requests_total{endpoint="authorize",outcome="ok",status="200"} 1"#
        ),
        "{rendered}"
    );
    assert!(
        rendered
            .contains(r#"nightly_refresh_flinks_errors_total{flinks_code="QUESTION_NOT_FOUND"} 1"#),
        "{rendered}"
    );
    assert!(
        rendered.contains("nightly_refresh_flinks_request_duration_seconds"),
        "{rendered}"
    );
}

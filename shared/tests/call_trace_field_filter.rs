//! The Flinks call trace under a filter that keeps its events by a field
//! (`RUST_LOG=warn,flinks.api_call[result]=info`): a successful call's event is kept and
//! whole, as the filter says, though `warn` alone would drop it.
//!
//! A test binary of its own, as `call_trace.rs` is: tracing caches each event site's
//! interest process-wide, and this test's subscriber filters by field.

mod capture;

use std::time::Duration;

use flinks_sim::SimConfig;
use shared::flinks::{FlinksClient, FlinksConfig};
use shared::LoginId;

#[tokio::test(flavor = "current_thread")]
async fn a_filter_keeping_the_trace_by_a_field_keeps_successful_calls_whole() {
    let login = LoginId::parse("0000003b-0000-4000-8000-000000000001").unwrap();
    let sim = flinks_sim::spawn(SimConfig::default())
        .await
        .expect("simulator starts");
    let mut config = FlinksConfig::new(sim.base_url.parse().unwrap());
    config.authorize_timeout = Duration::from_secs(10);
    let client = FlinksClient::new(config).expect("valid config");

    let (captured, subscriber) = capture::subscriber("warn,flinks.api_call[{result}]=info");
    let _guard = tracing::subscriber::set_default(subscriber);
    client.authorize(&login).await.unwrap();
    drop(_guard);

    let logs = captured.text();
    // The successful call is traced.
    let event = capture::only_api_call_event(&logs);
    capture::assert_contains_all(
        event,
        &[
            " INFO ".to_owned(),
            login.fingerprint(),
            format!("url=\"{}/Authorize\"", sim.base_url),
            "http_status=200".to_owned(),
            "result=\"ok\"".to_owned(),
        ],
    );
    assert!(
        !logs.contains(login.as_str()),
        "the LoginId leaked:\n{logs}"
    );
}

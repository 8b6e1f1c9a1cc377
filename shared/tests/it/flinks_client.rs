//! The Flinks client over real HTTP: against the in-repo simulator (`flinks-sim`) for every
//! scenario, and against a tiny raw-TCP stub defined here for the transport edge cases the
//! simulator cannot produce on demand (HTML 502, truncated JSON, oversized body, hang,
//! refused connection, literal 429) and to see the exact request bytes sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use flinks_sim::{endpoint, Rules, Scenario, SimConfig, SimHandle, Throttle};
use secrecy::SecretString;
use shared::flinks::config::TraceLoginIds;
use shared::flinks::{
    Classification, DetailOutcome, Error, FlinksClient, FlinksConfig, RetryKind, TransportKind,
};
use shared::{FlinksCode, LoginId, RequestId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// Helpers

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

#[track_caller]
fn expect_retryable(err: &Error, kind: RetryKind) {
    match err {
        Error::Retryable { hint, .. } => assert_eq!(hint.kind, kind, "{err}"),
        other => panic!("expected retryable {kind:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Raw TCP stub: answers every connection with one canned behaviour and records requests.

#[derive(Clone)]
enum Canned {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Read the request, then say nothing for this long.
    Hang(Duration),
}

struct Stub {
    base_url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn response(status_line: &str, content_type: &str, body: &[u8]) -> Canned {
    let mut bytes = format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    Canned::Bytes(bytes)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = socket.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn stub(canned: Canned) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let canned = canned.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let request = read_request(&mut socket).await;
                seen.lock().unwrap().push(request);
                match canned {
                    Canned::Bytes(bytes) => {
                        let _ = socket.write_all(&bytes).await;
                        let _ = socket.shutdown().await;
                    }
                    Canned::Hang(duration) => tokio::time::sleep(duration).await,
                }
            });
        }
    });
    Stub {
        base_url: format!("http://{addr}/v3/cust/BankingServices"),
        requests,
    }
}

// ---------------------------------------------------------------------------------------
// Transport edge cases against the stub

#[tokio::test]
async fn an_html_502_page_is_retryable_transient_with_the_status_kept() {
    let stub = stub(response(
        "502 Bad Gateway",
        "text/html",
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    ))
    .await;
    let err = client(config(&stub.base_url))
        .authorize(&login(1, 1))
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::Transient);
    assert_eq!(err.status(), Some(502));
    assert_eq!(err.code(), None);
}

#[tokio::test]
async fn a_login_id_echoed_in_a_detail_error_message_is_replaced_by_its_fingerprint() {
    let login = login(3, 1);
    let body = format!(
        r#"{{"HttpStatusCode":400,"FlinksCode":"SESSION_NONEXISTENT","Message":"No session for LoginId {}","RequestId":"r-1"}}"#,
        login.as_str()
    );
    let stub = stub(response(
        "400 Bad Request",
        "application/json",
        body.as_bytes(),
    ))
    .await;
    let err = client(config(&stub.base_url))
        .get_accounts_detail_for(&login, &RequestId::new("r-1"))
        .await
        .unwrap_err();
    let message = err.failure().unwrap().message.clone().unwrap();
    assert!(!message.contains(login.as_str()), "{message}");
    assert!(message.contains(&login.fingerprint()), "{message}");
    assert!(!err.to_string().contains(login.as_str()), "{err}");
}

#[tokio::test]
async fn any_login_id_in_a_flinks_message_is_fingerprinted_unless_trace_login_ids_is_full() {
    let (login, other) = (login(3, 2), login(3, 3));
    let body = format!(
        r#"{{"HttpStatusCode":400,"FlinksCode":"SESSION_NONEXISTENT","Message":"Session of {} belongs to {}","RequestId":"r-1"}}"#,
        login.as_str(),
        other.as_str().to_uppercase()
    );
    for trace in [TraceLoginIds::Fingerprint, TraceLoginIds::Full] {
        let stub = stub(response(
            "400 Bad Request",
            "application/json",
            body.as_bytes(),
        ))
        .await;
        let mut config = config(&stub.base_url);
        config.trace_login_ids = trace;
        let err = client(config)
            .get_accounts_detail_for(&login, &RequestId::new("r-1"))
            .await
            .unwrap_err();
        let message = err.failure().unwrap().message.clone().unwrap();
        if trace == TraceLoginIds::Full {
            assert!(message.contains(login.as_str()), "{message}");
            continue;
        }
        assert!(!message.contains(login.as_str()), "{message}");
        assert!(
            !message.to_lowercase().contains(other.as_str()),
            "{message}"
        );
        assert_eq!(
            message,
            format!(
                "Session of {} belongs to {}",
                login.fingerprint(),
                other.fingerprint()
            )
        );
    }
}

#[tokio::test]
async fn a_truncated_json_200_is_retryable_as_a_bad_response() {
    let stub = stub(response(
        "200 OK",
        "application/json",
        br#"{"HttpStatusCode":200,"RequestId":"abc","Lo"#,
    ))
    .await;
    let err = client(config(&stub.base_url))
        .authorize(&login(2, 1))
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::BadResponse);
    let failure = err.failure().unwrap();
    assert_eq!(failure.transport, Some(TransportKind::Decode));
    assert_eq!(failure.status, Some(200));
}

/// A 4xx whose body was cut off says nothing about the login: its FlinksCode may have been
/// `SESSION_NONEXISTENT` as well as `INVALID_REQUEST`. It is retried like any unusable
/// answer, not failed for good as a bare 400 (a wrong URL) would be.
#[tokio::test]
async fn a_truncated_json_400_is_retryable_as_a_bad_response_not_permanent() {
    let stub = stub(response(
        "400 Bad Request",
        "application/json",
        br#"{"HttpStatusCode":400,"Links":[],"Message":"The RequestId is not va"#,
    ))
    .await;
    let err = client(config(&stub.base_url))
        .get_accounts_detail(&RequestId::new("abc"))
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::BadResponse);
    let failure = err.failure().unwrap();
    assert_eq!(failure.transport, Some(TransportKind::Decode));
    assert_eq!(failure.status, Some(400));
}

/// The same status with an HTML page (a proxy's error page, a wrong path) stays permanent:
/// nothing was cut off, and nothing in it is worth a retry.
#[tokio::test]
async fn an_html_400_stays_permanent() {
    let stub = stub(response(
        "400 Bad Request",
        "text/html",
        b"<html><body>Bad Request</body></html>",
    ))
    .await;
    let err = client(config(&stub.base_url))
        .get_accounts_detail(&RequestId::new("abc"))
        .await
        .unwrap_err();
    assert_eq!(err.classification(), Some(Classification::Permanent));
    assert_eq!(err.failure().unwrap().transport, None);
}

#[tokio::test]
async fn a_body_over_the_cap_is_abandoned_at_the_cap_and_retryable() {
    // No Content-Length: the cap must be enforced while reading chunks.
    let mut bytes =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
    bytes.extend(std::iter::repeat_n(b' ', 256 * 1024));
    bytes.extend_from_slice(b"{}");
    let stub = stub(Canned::Bytes(bytes)).await;
    let mut config = config(&stub.base_url);
    config.max_body_bytes = 1024;
    let err = client(config)
        .get_nightly_refresh_status()
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::BadResponse);
    assert_eq!(
        err.failure().unwrap().transport,
        Some(TransportKind::BodyTooLarge)
    );
}

#[tokio::test]
async fn a_declared_content_length_over_the_cap_is_refused_before_reading() {
    let stub = stub(response("200 OK", "application/json", &vec![b' '; 4096])).await;
    let mut config = config(&stub.base_url);
    config.max_body_bytes = 100;
    let err = client(config)
        .get_nightly_refresh_status()
        .await
        .unwrap_err();
    assert_eq!(
        err.failure().unwrap().transport,
        Some(TransportKind::BodyTooLarge)
    );
}

#[tokio::test]
async fn a_hang_beyond_the_timeout_is_a_retryable_timeout() {
    let stub = stub(Canned::Hang(Duration::from_secs(30))).await;
    let mut config = config(&stub.base_url);
    config.authorize_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let err = client(config).authorize(&login(3, 1)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    expect_retryable(&err, RetryKind::Transient);
    assert_eq!(
        err.failure().unwrap().transport,
        Some(TransportKind::Timeout)
    );
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}/v3/cust/BankingServices");
    let err = client(config(&base))
        .authorize(&login(4, 1))
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::Transient);
    assert_eq!(
        err.failure().unwrap().transport,
        Some(TransportKind::Connect)
    );
}

#[tokio::test]
async fn a_literal_429_is_retryable_and_flagged_throttled() {
    let stub = stub(response(
        "429 Too Many Requests",
        "text/plain",
        b"slow down",
    ))
    .await;
    let err = client(config(&stub.base_url))
        .authorize(&login(5, 1))
        .await
        .unwrap_err();
    let Error::Retryable { hint, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(hint.is_throttled());
    assert_eq!(err.status(), Some(429));
}

#[tokio::test]
async fn without_a_secret_key_authorize_sends_the_cached_body_and_no_auth_header() {
    let stub = stub(response(
        "200 OK",
        "application/json",
        br#"{"HttpStatusCode":200,"Login":{"LastRefresh":"0001-01-01T00:00:00"},"RequestId":"r-1"}"#,
    ))
    .await;
    let login = login(6, 1);
    let ok = client(config(&stub.base_url))
        .authorize(&login)
        .await
        .unwrap();
    assert_eq!(ok.request_id, RequestId::new("r-1"));
    assert_eq!(ok.login.last_refresh_known(), None);

    let requests = stub.requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        1,
        "no GenerateAuthorizeToken call without a secret key"
    );
    let request = requests[0].to_ascii_lowercase();
    assert!(
        request.starts_with("post /v3/cust/bankingservices/authorize "),
        "{request}"
    );
    assert!(!request.contains("flinks-auth-key"), "{request}");
    assert!(
        !request.contains("x-api-key") && !request.contains("authorization:"),
        "{request}"
    );
    assert!(
        request.contains("content-type: application/json"),
        "{request}"
    );
    assert!(request.contains("accept: application/json"), "{request}");
    assert!(
        requests[0].ends_with(&format!(
            r#"{{"LoginId":"{}","MostRecentCached":true}}"#,
            login.as_str()
        )),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn the_api_key_and_bearer_headers_are_sent_when_configured() {
    let stub = stub(response(
        "200 OK",
        "application/json",
        br#"{"HttpStatusCode":200,"IneligibleCards":null}"#,
    ))
    .await;
    let mut config = config(&stub.base_url);
    config.api_key = Some(SecretString::from("the-api-key"));
    config.bearer_secret = Some(SecretString::from("the-bearer"));
    let client = client(config);
    assert!(client
        .get_nightly_refresh_status()
        .await
        .unwrap()
        .is_empty());
    let _ = client
        .get_accounts_detail_async(&RequestId::new("r 1/x"))
        .await;
    let requests = stub.requests.lock().unwrap().clone();
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer the-bearer"),
        "{}",
        requests[0]
    );
    assert!(
        requests[1].starts_with("GET /v3/cust/BankingServices/GetAccountsDetailAsync/r%201%2Fx "),
        "{}",
        requests[1]
    );
    assert!(
        requests[1]
            .to_ascii_lowercase()
            .contains("x-api-key: the-api-key"),
        "{}",
        requests[1]
    );
}

#[tokio::test]
async fn an_invalid_config_is_refused_at_construction() {
    let mut config = config("http://127.0.0.1:1/v3/c/BankingServices");
    config.detail_timeout = Duration::from_secs(60);
    assert!(matches!(FlinksClient::new(config), Err(Error::Config(_))));
}

// ---------------------------------------------------------------------------------------
// Against the simulator

#[tokio::test]
async fn a_healthy_login_authorizes_then_gets_its_accounts_as_sent() {
    let sim = sim(SimConfig::default()).await;
    let client = client(config(&sim.base_url));
    let login = login(10, 1);

    let ok = client.authorize(&login).await.unwrap();
    let last_refresh = ok.login.last_refresh.expect("LastRefresh");
    assert!(Utc::now().naive_utc() - last_refresh < chrono::Duration::hours(24));
    assert_eq!(ok.login.id.as_ref(), Some(&login));
    assert!(ok.institution.name.is_some());

    let DetailOutcome::Ready(detail) = client.get_accounts_detail(&ok.request_id).await.unwrap()
    else {
        panic!("expected data")
    };
    assert_eq!(detail.request_id, ok.request_id);
    let accounts: serde_json::Value = serde_json::from_str(detail.accounts.get()).unwrap();
    let first = &accounts[0];
    assert!(first["AccountNumber"].is_string());
    assert!(!first["Transactions"].as_array().unwrap().is_empty());
    assert!(first["Balance"]["Current"].is_number());

    let stats = sim.stats().await;
    assert_eq!(stats.calls(endpoint::AUTHORIZE, 200), 1);
    assert_eq!(stats.calls(endpoint::GET_ACCOUNTS_DETAIL, 200), 1);
}

#[tokio::test]
async fn mfa_and_credential_failures_need_reauth_and_keep_the_request_id() {
    let (qnf, password, disabled) = (login(11, 1), login(11, 2), login(11, 3));
    let rules = Rules::default()
        .with_login(qnf.as_str(), Scenario::QuestionNotFound)
        .with_login(password.as_str(), Scenario::InvalidPassword)
        .with_login(disabled.as_str(), Scenario::DisabledLogin);
    let sim = sim(sim_with(rules)).await;
    let client = client(config(&sim.base_url));

    let err = client.authorize(&qnf).await.unwrap_err();
    assert!(matches!(err, Error::NeedsReauth(_)), "{err:?}");
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some(&FlinksCode::QuestionNotFound));
    let request_id = err
        .request_id()
        .expect("the 401 QUESTION_NOT_FOUND RequestId is kept")
        .clone();
    // The RequestId still fetches the stale cached data (contract §2).
    let DetailOutcome::Ready(stale) = client.get_accounts_detail(&request_id).await.unwrap() else {
        panic!("expected stale data")
    };
    let last = stale.last_refresh.expect("LastRefresh");
    assert!(Utc::now().naive_utc() - last > chrono::Duration::hours(24));

    for (login, code) in [
        (&password, FlinksCode::InvalidPassword),
        (&disabled, FlinksCode::DisabledLogin),
    ] {
        let err = client.authorize(login).await.unwrap_err();
        assert!(matches!(err, Error::NeedsReauth(_)), "{err:?}");
        assert_eq!(err.code(), Some(&code));
    }
}

#[tokio::test]
async fn an_unknown_login_is_permanent_by_the_invalid_login_message() {
    let unknown = login(12, 1);
    let sim = sim(sim_with(
        Rules::default().with_login(unknown.as_str(), Scenario::InvalidLogin),
    ))
    .await;
    let err = client(config(&sim.base_url))
        .authorize(&unknown)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Permanent(_)), "{err:?}");
    assert_eq!(err.code(), Some(&FlinksCode::InvalidLogin));
}

#[tokio::test]
async fn a_pending_detail_is_polled_on_the_async_endpoint_until_ready() {
    let login = login(13, 1);
    let sim = sim(sim_with(
        Rules::default().with_login(login.as_str(), Scenario::Pending { polls: 2 }),
    ))
    .await;
    let client = client(config(&sim.base_url));
    let ok = client.authorize(&login).await.unwrap();

    let DetailOutcome::Pending { request_id, code } =
        client.get_accounts_detail(&ok.request_id).await.unwrap()
    else {
        panic!("expected 202")
    };
    assert_eq!(request_id, ok.request_id);
    assert_eq!(code, Some(FlinksCode::OperationPending));
    let mut pending_polls = 0;
    let detail = loop {
        match client.get_accounts_detail_async(&request_id).await.unwrap() {
            DetailOutcome::Pending { .. } => pending_polls += 1,
            DetailOutcome::Ready(detail) => break detail,
        }
        assert!(pending_polls <= 5, "never ready");
    };
    assert_eq!(pending_polls, 2);
    let accounts: serde_json::Value = serde_json::from_str(detail.accounts.get()).unwrap();
    assert!(!accounts.as_array().unwrap().is_empty());
    assert_eq!(
        sim.stats()
            .await
            .calls(endpoint::GET_ACCOUNTS_DETAIL_ASYNC, 202),
        2
    );
}

#[tokio::test]
async fn retry_later_is_retryable_because_the_bank_is_unavailable() {
    let login = login(14, 1);
    let sim = sim(sim_with(
        Rules::default().with_login(login.as_str(), Scenario::RetryLater),
    ))
    .await;
    let err = client(config(&sim.base_url))
        .authorize(&login)
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::BankUnavailable);
    assert_eq!(err.code(), Some(&FlinksCode::RetryLater));
}

#[tokio::test]
async fn an_aggregation_error_is_transient_and_the_retry_succeeds() {
    let login = login(15, 1);
    let scenario = Scenario::AggregationError { failures: 1 };
    let sim = sim(sim_with(
        Rules::default().with_login(login.as_str(), scenario),
    ))
    .await;
    let client = client(config(&sim.base_url));
    let err = client.authorize(&login).await.unwrap_err();
    expect_retryable(&err, RetryKind::Transient);
    assert_eq!(
        (err.status(), err.code()),
        (Some(500), Some(&FlinksCode::AggregationError))
    );
    client
        .authorize(&login)
        .await
        .expect("healthy after one failure");
}

#[tokio::test]
async fn a_stale_login_reports_its_old_last_refresh() {
    let login = login(16, 1);
    let sim = sim(sim_with(
        Rules::default().with_login(login.as_str(), Scenario::Stale { hours: 30 }),
    ))
    .await;
    let ok = client(config(&sim.base_url))
        .authorize(&login)
        .await
        .unwrap();
    let age = Utc::now().naive_utc() - ok.login.last_refresh_known().expect("known LastRefresh");
    assert!(
        age >= chrono::Duration::hours(29) && age <= chrono::Duration::hours(31),
        "{age}"
    );
}

#[tokio::test]
async fn a_lapsed_session_asks_for_a_fresh_authorize_which_then_works() {
    let login = login(17, 1);
    let sim = sim(sim_with(
        Rules::default().with_login(login.as_str(), Scenario::SessionExpiredOnce),
    ))
    .await;
    let client = client(config(&sim.base_url));
    let first = client.authorize(&login).await.unwrap();
    let err = client
        .get_accounts_detail(&first.request_id)
        .await
        .unwrap_err();
    let Error::Retryable { hint, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(hint.is_session_lapsed(), "{err:?}");
    assert_eq!(hint.retry_cap, Some(2));

    let second = client.authorize(&login).await.unwrap();
    assert_ne!(second.request_id, first.request_id);
    assert!(matches!(
        client
            .get_accounts_detail(&second.request_id)
            .await
            .unwrap(),
        DetailOutcome::Ready(_)
    ));
}

#[tokio::test]
async fn with_a_secret_key_every_authorize_mints_its_own_single_use_token() {
    let sim = sim(SimConfig {
        secret_key: Some("sk-123".into()),
        ..SimConfig::default()
    })
    .await;
    let mut good = config(&sim.base_url);
    good.secret_key = Some(SecretString::from("sk-123"));
    let client = client(good);
    let login = login(18, 1);
    client.authorize(&login).await.unwrap();
    client.authorize(&login).await.unwrap();
    let stats = sim.stats().await;
    assert_eq!(stats.calls(endpoint::GENERATE_AUTHORIZE_TOKEN, 200), 2);
    assert_eq!(stats.calls(endpoint::AUTHORIZE, 200), 2);

    // A token is single-use: Flinks (the sim) refuses a replay with ACCESS_DENIED.
    let token = client.generate_authorize_token().await.unwrap();
    assert!(!format!("{token:?}").contains(token.expose_secret()));
    let http = reqwest::Client::new();
    let url = format!("{}/Authorize", sim.base_url);
    let body = serde_json::json!({"LoginId": login.as_str(), "MostRecentCached": true});
    let send = || {
        http.post(&url)
            .header("flinks-auth-key", token.expose_secret())
            .json(&body)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(send().await.unwrap().status(), 401);

    // A wrong secret key: ACCESS_DENIED, retry once (regenerating), then it is config.
    let mut bad = config(&sim.base_url);
    bad.secret_key = Some(SecretString::from("wrong"));
    let err = FlinksClient::new(bad)
        .unwrap()
        .authorize(&login)
        .await
        .unwrap_err();
    let Error::Retryable { hint, failure } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (hint.kind, hint.retry_cap),
        (RetryKind::AuthRejected, Some(1))
    );
    assert_eq!(
        failure.endpoint,
        shared::flinks::Endpoint::GenerateAuthorizeToken
    );
    assert_eq!(failure.code, Some(FlinksCode::AccessDenied));
}

#[tokio::test]
async fn the_api_key_is_required_by_the_data_endpoints_and_sent_when_configured() {
    let sim = sim(SimConfig {
        api_key: Some("ak-1".into()),
        ..SimConfig::default()
    })
    .await;
    let login = login(19, 1);
    let without = client(config(&sim.base_url));
    let ok = without.authorize(&login).await.unwrap();
    let err = without
        .get_accounts_detail(&ok.request_id)
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::AuthRejected);

    let mut with_key = config(&sim.base_url);
    with_key.api_key = Some(SecretString::from("ak-1"));
    let with_key = client(with_key);
    let ok = with_key.authorize(&login).await.unwrap();
    assert!(matches!(
        with_key.get_accounts_detail(&ok.request_id).await.unwrap(),
        DetailOutcome::Ready(_)
    ));
}

#[tokio::test]
async fn the_nightly_refresh_status_needs_the_bearer_and_lists_ineligible_cards() {
    let (qnf, healthy) = (login(20, 1), login(20, 2));
    let sim = sim(SimConfig {
        bearer_secret: Some("bs-1".into()),
        ..sim_with(
            Rules::default()
                .with_login(qnf.as_str(), Scenario::QuestionNotFound)
                .with_login(healthy.as_str(), Scenario::Healthy),
        )
    })
    .await;
    let err = client(config(&sim.base_url))
        .get_nightly_refresh_status()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&FlinksCode::AccessDenied));

    let mut with_bearer = config(&sim.base_url);
    with_bearer.bearer_secret = Some(SecretString::from("bs-1"));
    let cards = client(with_bearer)
        .get_nightly_refresh_status()
        .await
        .unwrap();
    let ids: Vec<_> = cards.iter().filter_map(|c| c.login_id.clone()).collect();
    assert_eq!(ids, vec![qnf]);
    assert_eq!(
        cards[0].last_refresh_state.as_deref(),
        Some("AnsweringSecurityChallenge")
    );
    assert!(cards[0].last_refresh_date.is_some());
}

#[tokio::test]
async fn set_scheduled_refresh_returns_the_bare_string_answer() {
    let sim = sim(SimConfig::default()).await;
    let login = login(21, 1);
    let answer = client(config(&sim.base_url))
        .set_scheduled_refresh(&login, false)
        .await
        .unwrap();
    assert!(
        answer.contains("deactivated for automatic refresh"),
        "{answer}"
    );
    assert_eq!(
        sim.stats()
            .await
            .calls(endpoint::SET_SCHEDULED_REFRESH, 200),
        1
    );
}

#[tokio::test]
async fn too_many_requests_is_throttled_whatever_its_status() {
    for status in [401, 403] {
        let sim = sim(SimConfig {
            throttle: Some(Throttle {
                status,
                ..Throttle::per_minute(1)
            }),
            ..SimConfig::default()
        })
        .await;
        let client = client(config(&sim.base_url));
        client.authorize(&login(22, 1)).await.unwrap();
        let err = client.authorize(&login(22, 2)).await.unwrap_err();
        let Error::Retryable { hint, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(hint.is_throttled(), "{err:?}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.code(), Some(&FlinksCode::TooManyRequests));
    }
}

#[tokio::test]
async fn a_truncated_body_from_the_simulator_is_a_bad_response_not_a_panic() {
    let sim = sim(SimConfig {
        faults: flinks_sim::Faults {
            malformed_rate: 1.0,
            ..flinks_sim::Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let err = client(config(&sim.base_url))
        .authorize(&login(23, 1))
        .await
        .unwrap_err();
    expect_retryable(&err, RetryKind::BadResponse);
    assert_eq!(
        err.failure().unwrap().transport,
        Some(TransportKind::Decode)
    );
}

#[test]
fn classification_is_reexported_for_the_worker() {
    // The worker routes on these without string matching.
    assert_eq!(
        shared::flinks::classify(202, Some(&FlinksCode::OperationDispatched), None),
        Classification::Pending
    );
}

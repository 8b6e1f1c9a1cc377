//! The API call trace: one structured event and the metric updates for every Flinks call,
//! emitted from one function (`record`) so logs and metrics cannot drift apart.
//!
//! The event (target [`API_CALL_TARGET`], `info` for 2xx, `warn` otherwise) carries the
//! fields `started_at` (RFC 3339, when the call started; the line's own timestamp is when
//! it ended), `endpoint`, `method`, `url` (a RequestId in it shortened), `login` (its
//! fingerprint, unless `TRACE_LOGIN_IDS=full`), `request_body` (secrets
//! removed: the LoginId replaced by its fingerprint; `SecurityResponses`, `Password`,
//! `Username` redacted), `http_status`, `flinks_code`, `flinks_message` (Flinks' `Message`;
//! not `message`, which tracing reserves for the event text; every UUID in it
//! fingerprinted), `request_id` (first 8 characters and `…`), `transport`,
//! `latency_ms`, `outcome` (the classification) and `result` (the metric outcome label). It never
//! carries a header value or the response body (account numbers, holders, balances,
//! transactions); SetScheduledRefresh's answer, a bare string, is traced by the client in an
//! event of its own ([`ANSWER_TARGET`]), scrubbed as a `Message` is. The metric name consts are public so
//! `shared::metrics` can re-export and describe them.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::classify::{Classification, TransportKind};
use crate::domain::{FlinksCode, LoginId, RequestId};

/// Tracing target of the per-call event.
pub const API_CALL_TARGET: &str = "flinks.api_call";
/// Tracing target of a Flinks answer kept beside its call's event (SetScheduledRefresh's
/// bare string): one [`API_CALL_TARGET`] event stays one HTTP call.
pub const ANSWER_TARGET: &str = "flinks.answer";
/// Counter: Flinks calls by `endpoint`, `outcome` and `status` ([`status_label`]).
pub const FLINKS_REQUESTS_TOTAL: &str = "nightly_refresh_flinks_requests_total";
/// Histogram: Flinks call latency in seconds, by `endpoint`.
pub const FLINKS_REQUEST_DURATION_SECONDS: &str = "nightly_refresh_flinks_request_duration_seconds";
/// Counter: failed Flinks calls that carried a FlinksCode, by `flinks_code`
/// (`FlinksCode::as_label`, unknown codes as `other`).
pub const FLINKS_ERRORS_TOTAL: &str = "nightly_refresh_flinks_errors_total";
/// Every value of the `outcome` label of [`FLINKS_REQUESTS_TOTAL`].
pub const OUTCOME_LABELS: [&str; 7] = [
    "ok",
    "pending",
    "unauthorized",
    "client_error",
    "server_error",
    "timeout",
    "transport_error",
];

/// HTTP statuses that get a label of their own; any other answer is `other`, and a call
/// that got no answer at all (timeout, refused connection) is `none`. A closed set keeps
/// the label bounded whatever a misbehaving server sends.
pub const STATUS_LABELS: [&str; 16] = [
    "200", "202", "203", "400", "401", "403", "404", "405", "408", "429", "500", "502", "503",
    "504", "other", "none",
];

/// The `status` label of a call: its HTTP status when in [`STATUS_LABELS`], else `other`
/// (or `none` without an answer).
pub fn status_label(status: Option<u16>) -> &'static str {
    let Some(status) = status else {
        return "none";
    };
    let text = status.to_string();
    STATUS_LABELS
        .iter()
        .find(|label| **label == text)
        .copied()
        .unwrap_or("other")
}

/// The Flinks endpoints this client calls; `as_str` is the stable `endpoint` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /GenerateAuthorizeToken`
    GenerateAuthorizeToken,
    /// `POST /Authorize`
    Authorize,
    /// `POST /GetAccountsDetail`
    GetAccountsDetail,
    /// `GET /GetAccountsDetailAsync/{RequestId}`
    GetAccountsDetailAsync,
    /// `PATCH /SetScheduledRefresh`
    SetScheduledRefresh,
    /// `GET /GetNightlyRefreshStatus`
    GetNightlyRefreshStatus,
}

impl Endpoint {
    /// Every endpoint (for zeroed metric series).
    pub const ALL: [Endpoint; 6] = [
        Endpoint::GenerateAuthorizeToken,
        Endpoint::Authorize,
        Endpoint::GetAccountsDetail,
        Endpoint::GetAccountsDetailAsync,
        Endpoint::SetScheduledRefresh,
        Endpoint::GetNightlyRefreshStatus,
    ];

    /// The stable snake_case name used as log field and metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Endpoint::GenerateAuthorizeToken => "generate_authorize_token",
            Endpoint::Authorize => "authorize",
            Endpoint::GetAccountsDetail => "get_accounts_detail",
            Endpoint::GetAccountsDetailAsync => "get_accounts_detail_async",
            Endpoint::SetScheduledRefresh => "set_scheduled_refresh",
            Endpoint::GetNightlyRefreshStatus => "get_nightly_refresh_status",
        }
    }

    /// The path segment Flinks uses for it.
    pub(crate) fn path(&self) -> &'static str {
        match self {
            Endpoint::GenerateAuthorizeToken => "GenerateAuthorizeToken",
            Endpoint::Authorize => "Authorize",
            Endpoint::GetAccountsDetail => "GetAccountsDetail",
            Endpoint::GetAccountsDetailAsync => "GetAccountsDetailAsync",
            Endpoint::SetScheduledRefresh => "SetScheduledRefresh",
            Endpoint::GetNightlyRefreshStatus => "GetNightlyRefreshStatus",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finished call, as logged and counted. Its trace fields (the redacted body, the
/// login's fingerprint, the shortened URL) are derived here, and only when the event is
/// kept.
pub(crate) struct ApiCall<'a> {
    pub(crate) endpoint: Endpoint,
    pub(crate) method: &'a str,
    pub(crate) url: &'a Url,
    /// The login the call is about.
    pub(crate) login: Option<&'a LoginId>,
    /// The body as sent: the trace shows it redacted with [`redact_body`].
    pub(crate) request_body: Option<&'a Value>,
    /// `TRACE_LOGIN_IDS=full`: the trace shows LoginIds as they are, not fingerprinted.
    pub(crate) keep_login_ids: bool,
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<&'a FlinksCode>,
    /// Flinks' `Message`, already scrubbed with [`scrub_login_ids`] and cut.
    pub(crate) message: Option<&'a str>,
    pub(crate) request_id: Option<&'a RequestId>,
    pub(crate) transport: Option<TransportKind>,
    pub(crate) latency: Duration,
    pub(crate) class: Classification,
}

/// The `outcome` label: what happened on the wire, coarser than the classification.
pub(crate) fn outcome_label(status: Option<u16>, transport: Option<TransportKind>) -> &'static str {
    match (transport, status) {
        (Some(TransportKind::Timeout), _) => "timeout",
        (Some(_), _) => "transport_error",
        (None, Some(202)) => "pending",
        (None, Some(203 | 401 | 403)) => "unauthorized",
        (None, Some(200..=299)) => "ok",
        (None, Some(500..=599)) => "server_error",
        (None, Some(_)) => "client_error",
        (None, None) => "transport_error",
    }
}

/// Emits the call's event and bumps its metrics.
pub(crate) fn record(call: &ApiCall<'_>) {
    let outcome = outcome_label(call.status, call.transport);
    let endpoint = call.endpoint.as_str();
    let succeeded = matches!(call.status, Some(200..=299)) && call.transport.is_none();
    // The event's fields cost two SHA-256 fingerprints, a redacted copy of the body and a
    // formatted time per call: with the event filtered out (RUST_LOG=warn keeps only the
    // failed calls' events) they are not built, and the call costs its metrics alone. The
    // question names the event's fields, as `emit` writes them: a filter that looks at an
    // event's field names answers it as it would the event.
    macro_rules! kept {
        ($level:expr) => {
            tracing::enabled!(
                target: API_CALL_TARGET,
                $level,
                started_at,
                endpoint,
                method,
                url,
                login,
                request_body,
                http_status,
                flinks_code,
                flinks_message,
                request_id,
                transport,
                latency_ms,
                outcome,
                result
            )
        };
    }
    let kept = if succeeded {
        kept!(tracing::Level::INFO)
    } else {
        kept!(tracing::Level::WARN)
    };
    if kept {
        emit(call, succeeded, outcome);
    }

    metrics::counter!(
        FLINKS_REQUESTS_TOTAL,
        "endpoint" => endpoint,
        "outcome" => outcome,
        "status" => status_label(call.status)
    )
    .increment(1);
    metrics::histogram!(FLINKS_REQUEST_DURATION_SECONDS, "endpoint" => endpoint)
        .record(call.latency.as_secs_f64());
    let failed = !matches!(
        call.class,
        Classification::Success | Classification::Pending
    );
    if let (true, Some(code)) = (failed, call.code) {
        metrics::counter!(FLINKS_ERRORS_TOTAL, "flinks_code" => code.as_label()).increment(1);
    }
}

/// The call's trace event: `info` for a call that succeeded, `warn` otherwise.
fn emit(call: &ApiCall<'_>, succeeded: bool, outcome: &'static str) {
    let endpoint = call.endpoint.as_str();
    // When the call started; the log line's own `timestamp` is when it ended.
    let started_at = (chrono::Utc::now()
        - chrono::Duration::from_std(call.latency).unwrap_or_default())
    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let url = traced_url(call.endpoint, call.url);
    let login = call
        .login
        .map(|login| traced_login(login, call.keep_login_ids));
    let body = call
        .request_body
        .map(|body| redact_body(body, call.keep_login_ids).to_string());
    let latency_ms = u64::try_from(call.latency.as_millis()).unwrap_or(u64::MAX);
    let code = call.code.map(FlinksCode::as_str);
    // Shortened: the full RequestId is a session token (see `RequestId`'s Display).
    let request_id = call.request_id.map(RequestId::to_string);
    let transport = call.transport.map(|kind| kind.as_str());
    let class = call.class.as_str();

    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                target: API_CALL_TARGET,
                started_at = %started_at,
                endpoint,
                method = call.method,
                url = url.as_str(),
                login = login.as_deref(),
                request_body = body.as_deref(),
                http_status = call.status,
                flinks_code = code,
                flinks_message = call.message,
                request_id = request_id.as_deref(),
                transport,
                latency_ms,
                outcome = class,
                result = outcome,
                "flinks api call"
            )
        };
    }
    if succeeded {
        emit!(info);
    } else {
        emit!(warn);
    }
}

/// How a trace names `login`: its fingerprint, or the LoginId itself with
/// `TRACE_LOGIN_IDS=full` (`keep_login_ids`).
pub(crate) fn traced_login(login: &LoginId, keep_login_ids: bool) -> String {
    if keep_login_ids {
        login.as_str().to_owned()
    } else {
        login.fingerprint()
    }
}

/// The call's URL for the trace: GetAccountsDetailAsync's RequestId segment shortened like
/// any RequestId (a session token).
fn traced_url(endpoint: Endpoint, url: &Url) -> String {
    let url = url.as_str();
    match (endpoint, url.rsplit_once('/')) {
        (Endpoint::GetAccountsDetailAsync, Some((base, segment))) => {
            format!("{base}/{}", RequestId::new(segment))
        }
        _ => url.to_owned(),
    }
}

const REDACTED: &str = "[REDACTED]";

/// A copy of a request body that is safe to log: `LoginId` values (and `LoginIds`
/// entries) become fingerprints, a `RequestId` (a session token) its first 8 characters
/// and `…`, `SecurityResponses`, `Password` and `Username` (any case, any depth) become
/// `[REDACTED]`.
///
/// With `keep_login_ids` (`TRACE_LOGIN_IDS=full`) the LoginId stays as it is; the other
/// secrets are redacted all the same.
pub(crate) fn redact_body(body: &Value, keep_login_ids: bool) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let lower = key.to_ascii_lowercase();
                    let value = match lower.as_str() {
                        "securityresponses" | "password" | "username" => Value::from(REDACTED),
                        "requestid" => match value {
                            Value::String(id) => {
                                Value::from(RequestId::new(id.as_str()).to_string())
                            }
                            _ => Value::from(REDACTED),
                        },
                        "loginid" | "loginids" if keep_login_ids => value.clone(),
                        "loginid" | "loginids" => fingerprint_all(value),
                        _ => redact_body(value, keep_login_ids),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| redact_body(item, keep_login_ids))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fingerprint_all(value: &Value) -> Value {
    match value {
        Value::String(raw) => match LoginId::parse(raw) {
            Ok(login) => Value::from(login.fingerprint()),
            Err(_) => Value::from(REDACTED),
        },
        Value::Array(items) => Value::Array(items.iter().map(fingerprint_all).collect()),
        Value::Null => Value::Null,
        _ => Value::from(REDACTED),
    }
}

/// Replaces every UUID-shaped run in `text` (hyphenated, any case, or 32 hex digits), the
/// way Flinks `Message`s echo a LoginId, by the fingerprint of that LoginId: a message may
/// name another login than the one of the call. With `keep_login_ids`
/// (`TRACE_LOGIN_IDS=full`) the text is kept as it is.
pub(crate) fn scrub_login_ids(text: &str, keep_login_ids: bool) -> String {
    if keep_login_ids {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let boundary = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let found = [36, 32].into_iter().find(|&len| {
            boundary
                && bytes.len() >= at + len
                && bytes
                    .get(at + len)
                    .is_none_or(|b| !b.is_ascii_alphanumeric())
                && uuid_shaped(&bytes[at..at + len])
        });
        match found {
            Some(len) => {
                // ASCII only, so `at..at + len` lies on character boundaries.
                let login = LoginId::parse(&text[at..at + len]);
                out.push_str(&text[copied..at]);
                match login {
                    Ok(login) => out.push_str(&login.fingerprint()),
                    Err(_) => out.push_str(REDACTED),
                }
                at += len;
                copied = at;
            }
            None => at += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// `8-4-4-4-12` hex digits with hyphens (36 bytes) or 32 hex digits.
fn uuid_shaped(candidate: &[u8]) -> bool {
    match candidate.len() {
        36 => candidate.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        32 => candidate.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_status_label_is_a_closed_set() {
        assert_eq!(status_label(Some(401)), "401");
        assert_eq!(status_label(Some(502)), "502");
        assert_eq!(status_label(Some(418)), "other");
        assert_eq!(status_label(Some(999)), "other");
        assert_eq!(status_label(None), "none");
    }

    const LOGIN: &str = "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10";

    #[test]
    fn redaction_replaces_the_login_id_by_its_fingerprint_and_hides_credentials() {
        let login = LoginId::parse(LOGIN).unwrap();
        let body = serde_json::json!({
            "LoginId": LOGIN,
            "MostRecentCached": true,
            "SecurityResponses": {"What is your pet?": ["Rex"]},
            "password": "hunter2",
            "Nested": [{"Username": "Greatday"}],
            "RequestId": "0a1b2c3d-0000-4000-8000-000000000001",
        });
        let redacted = redact_body(&body, false).to_string();
        assert!(!redacted.contains(LOGIN), "{redacted}");
        assert!(redacted.contains(&login.fingerprint()), "{redacted}");
        for secret in ["Rex", "hunter2", "Greatday"] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        assert!(redacted.contains("\"MostRecentCached\":true"), "{redacted}");
        assert!(
            redacted.contains("\"RequestId\":\"0a1b2c3d…\""),
            "{redacted}"
        );
        // TRACE_LOGIN_IDS=full keeps the LoginId, and only it.
        let full = redact_body(&body, true).to_string();
        assert!(full.contains(LOGIN), "{full}");
        for secret in ["Rex", "hunter2", "Greatday"] {
            assert!(!full.contains(secret), "{full}");
        }
    }

    #[test]
    fn messages_echoing_the_login_id_are_scrubbed_in_any_case() {
        let login = LoginId::parse(LOGIN).unwrap();
        let message = format!("LoginId {} is unknown", LOGIN.to_uppercase());
        let scrubbed = scrub_login_ids(&message, false);
        assert_eq!(
            scrubbed,
            format!("LoginId {} is unknown", login.fingerprint())
        );
    }

    #[test]
    fn every_login_id_shaped_uuid_in_a_message_is_fingerprinted_unless_kept() {
        const OTHER: &str = "6f6c2a67-1c7d-4d64-b4b5-3c3e8b4f0a21";
        let simple = OTHER.replace('-', "");
        let message = format!(
            "Logins {LOGIN}, ({OTHER}) and {simple} differ; x{LOGIN} is no UUID, é {OTHER}."
        );
        let scrubbed = scrub_login_ids(&message, false);
        let (a, b) = (
            LoginId::parse(LOGIN).unwrap().fingerprint(),
            LoginId::parse(OTHER).unwrap().fingerprint(),
        );
        assert_eq!(
            scrubbed,
            format!("Logins {a}, ({b}) and {b} differ; x{LOGIN} is no UUID, é {b}.")
        );
        assert_eq!(scrub_login_ids(&message, true), message);
        assert_eq!(scrub_login_ids("no id here", false), "no id here");
    }

    #[test]
    fn outcome_labels_cover_every_wire_result() {
        assert_eq!(outcome_label(Some(200), None), "ok");
        assert_eq!(outcome_label(Some(202), None), "pending");
        assert_eq!(outcome_label(Some(401), None), "unauthorized");
        assert_eq!(outcome_label(Some(429), None), "client_error");
        assert_eq!(outcome_label(Some(502), None), "server_error");
        assert_eq!(outcome_label(None, Some(TransportKind::Timeout)), "timeout");
        assert_eq!(
            outcome_label(None, Some(TransportKind::Connect)),
            "transport_error"
        );
        assert_eq!(
            outcome_label(Some(200), Some(TransportKind::Decode)),
            "transport_error"
        );
        for label in [
            outcome_label(Some(200), None),
            outcome_label(Some(404), None),
            outcome_label(None, None),
        ] {
            assert!(OUTCOME_LABELS.contains(&label));
        }
    }
}

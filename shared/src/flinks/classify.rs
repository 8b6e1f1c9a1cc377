//! The one classification of every Flinks outcome (contract §5), as a pure function.
//!
//! [`classify`] looks at the `FlinksCode` first and the HTTP status second, because the
//! docs disagree on statuses (`INVALID_LOGIN` is 400 or 401, `TOO_MANY_REQUESTS` 401 or
//! 403) but not on codes. Failures without an answer (timeouts, refused connections,
//! unreadable or oversized bodies) go through [`classify_transport`]. The result says what
//! the caller does next; it does not decide *when* (backoff, cool-down and escalation
//! after the caps are the worker's policy), and it does no I/O, so the table test below
//! is the whole specification.

use std::fmt;

use crate::domain::FlinksCode;

/// Retry cap for codes this version does not know (contract §5: "retryable with a small
/// cap, then escalated to permanent").
pub const UNKNOWN_CODE_RETRY_CAP: u32 = 3;

/// What the caller does next with an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    /// The call worked; use the body.
    Success,
    /// Accepted but still processing (202 `OPERATION_PENDING` / `OPERATION_DISPATCHED`):
    /// poll `GET /GetAccountsDetailAsync/{RequestId}`.
    Pending,
    /// Only the user can fix it, by reconnecting through Flinks Connect. Do not retry.
    NeedsReauth,
    /// Try again; the hint says why, how, and how many times at most.
    Retryable(RetryHint),
    /// Retrying cannot help (a bug, a configuration or a data condition): record and alert.
    Permanent,
}

/// Why an outcome is retryable and how the caller should retry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryHint {
    /// What kind of retry.
    pub kind: RetryKind,
    /// At most this many retries of this outcome (after the first attempt), then treat it
    /// as permanent. `None`: no cap from the contract; the caller's own policy applies.
    pub retry_cap: Option<u32>,
}

/// The reasons to retry, each with its own caller action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryKind {
    /// 5xx, `AGGREGATION_ERROR`, timeouts, connection errors: exponential backoff.
    Transient,
    /// An answer whose body could not be used: JSON cut off (on any status), a 2xx that
    /// is not the expected JSON, or a body over the size cap.
    BadResponse,
    /// `TOO_MANY_REQUESTS` or a literal 429: back off and start the global cool-down.
    Throttled,
    /// `SESSION_NONEXISTENT` / `SESSION_EXPIRED` / `ALREADY_AUTHORIZED`: the RequestId is
    /// no longer usable; start a fresh Authorize, then retry.
    SessionLapsed,
    /// `ACCESS_DENIED` or a bare 401/403: the authorize token or a key was refused.
    /// Retry once with a freshly generated token (`authorize` always mints one), then it
    /// is a configuration problem.
    AuthRejected,
    /// `CARD_IN_USE` / `CONCURRENT_SESSION`: the card is busy; back off for minutes.
    Busy,
    /// `UNAUTHORIZED`, `RETRY_LATER`, `BANK_MAINTENANCE_RETRY_LATER`,
    /// `DISABLED_INSTITUTION`: the bank side is unavailable; retry later or next run
    /// (these codes keep the card eligible for nightly refresh).
    BankUnavailable,
    /// A code or status this version does not know, or an outcome the endpoint should not
    /// produce: retry a few times ([`UNKNOWN_CODE_RETRY_CAP`]), then escalate.
    Unrecognised,
}

impl RetryHint {
    const fn new(kind: RetryKind, retry_cap: Option<u32>) -> Self {
        Self { kind, retry_cap }
    }

    /// True when the worker should trigger the global cool-down.
    pub fn is_throttled(&self) -> bool {
        self.kind == RetryKind::Throttled
    }

    /// True when the RequestId is dead and the worker must start a fresh Authorize.
    pub fn is_session_lapsed(&self) -> bool {
        self.kind == RetryKind::SessionLapsed
    }
}

/// Why no usable answer arrived (no HTTP status, or a 2xx body that could not be used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// The per-call timeout elapsed (connecting, waiting or reading the body).
    Timeout,
    /// The connection could not be established (refused, DNS, TLS).
    Connect,
    /// A body that is not the expected JSON: a success body that does not decode (HTML
    /// page, wrong shape), or JSON cut off on any status.
    Decode,
    /// The body was longer than `max_body_bytes`; reading stopped at the cap.
    BodyTooLarge,
    /// Anything else the HTTP stack reported (reset connection, protocol error...).
    Other,
}

impl TransportKind {
    /// A stable lower-case name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransportKind::Timeout => "timeout",
            TransportKind::Connect => "connect",
            TransportKind::Decode => "decode",
            TransportKind::BodyTooLarge => "body_too_large",
            TransportKind::Other => "other",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Classification {
    /// A stable lower-case name for logs (`success`, `pending`, `needs_reauth`,
    /// `retryable`, `permanent`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Classification::Success => "success",
            Classification::Pending => "pending",
            Classification::NeedsReauth => "needs_reauth",
            Classification::Retryable(_) => "retryable",
            Classification::Permanent => "permanent",
        }
    }
}

/// One answer to classify: what arrived and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// The HTTP status that counts: the body's `HttpStatusCode` when it has one (the body
    /// wins when it and the status line disagree), the status line otherwise.
    pub status: u16,
    /// The body's `FlinksCode`.
    pub code: Option<&'a FlinksCode>,
    /// The body's `Message`.
    pub message: Option<&'a str>,
    /// The body was a JSON object. An answer without one (HTML, empty, a bare string) and
    /// without a FlinksCode is never a re-auth: nothing in it says the user must act.
    pub json_body: bool,
    /// The answer is to a cached `/Authorize`, where the routine's own rule applies: a 401
    /// means the end user must reconnect unless its FlinksCode says otherwise.
    pub cached_authorize: bool,
}

/// Classifies an answer with a JSON body from an endpoint other than the cached Authorize
/// (see [`classify_answer`]).
pub fn classify(status: u16, code: Option<&FlinksCode>, message: Option<&str>) -> Classification {
    classify_answer(&Answer {
        status,
        code,
        message,
        json_body: true,
        cached_authorize: false,
    })
}

/// Classifies one answer: FlinksCode first, HTTP status second (contract §5).
///
/// Rules beyond the table, each a judgement call:
/// - `OK`/`CREATED` only mean success with a 2xx status; otherwise the status decides.
/// - A 203 (MFA prompted) with a JSON body or a FlinksCode is needs-reauth whatever the
///   code: nothing answers MFA unattended. A bare 203 says nothing: an unusable answer.
/// - On the cached Authorize, a 401 whose FlinksCode is unknown, or that has a JSON body
///   but no code, is needs-reauth at once (the routine's rule: 401 → ask the user to
///   reconnect); [`is_unrecognised_reauth`] tells the caller to flag it. A bare 401 with no
///   body, or one whose message names the authorize token, is a refused token (retry once).
/// - `INVALID_LOGIN` is permanent when the status is 400 (the request's LoginId was
///   rejected) or the `Message` says the LoginId itself is unknown, invalid or not owned by
///   this customer (see [`login_id_is_unknown`]); otherwise (stored bank credentials are
///   invalid, or no message) it is needs-reauth, the option that puts a human in the loop.
/// - Without a code: 2xx success, 202 pending, 429 throttled, 408 and 5xx transient, a
///   bare 401/403 is a refused token or key (retry once), any other 4xx is permanent (a
///   malformed call or a wrong URL), anything else is unrecognised.
pub fn classify_answer(answer: &Answer<'_>) -> Classification {
    use Classification::{NeedsReauth, Pending, Permanent, Retryable, Success};
    use RetryKind::*;

    let status = answer.status;
    if status == 203 {
        return if answer.json_body || answer.code.is_some() {
            NeedsReauth
        } else {
            Retryable(RetryHint::new(BadResponse, Some(UNKNOWN_CODE_RETRY_CAP)))
        };
    }
    let is_2xx = (200..300).contains(&status);
    if let Some(code) = answer.code {
        return match code {
            FlinksCode::Ok | FlinksCode::Created if is_2xx => Success,
            FlinksCode::Ok | FlinksCode::Created => classify_status(answer),
            FlinksCode::OperationPending | FlinksCode::OperationDispatched => Pending,
            FlinksCode::SessionNonexistent | FlinksCode::SessionExpired => {
                Retryable(RetryHint::new(SessionLapsed, Some(2)))
            }
            FlinksCode::AlreadyAuthorized => Retryable(RetryHint::new(SessionLapsed, Some(1))),
            FlinksCode::CardInUse | FlinksCode::ConcurrentSession => {
                Retryable(RetryHint::new(Busy, None))
            }
            FlinksCode::AccessDenied => Retryable(RetryHint::new(AuthRejected, Some(1))),
            FlinksCode::InvalidLogin if status == 400 || login_id_is_unknown(answer.message) => {
                Permanent
            }
            FlinksCode::InvalidLogin
            | FlinksCode::InvalidUsername
            | FlinksCode::InvalidPassword
            | FlinksCode::InvalidSecurityResponse
            | FlinksCode::InvalidSecurityResponseNoRetry
            | FlinksCode::QuestionNotFound
            | FlinksCode::UnknownChallengeKey
            | FlinksCode::SecurityResponsesIncomplete
            | FlinksCode::NewAccount
            | FlinksCode::DisabledLogin => NeedsReauth,
            FlinksCode::Unauthorized
            | FlinksCode::RetryLater
            | FlinksCode::BankMaintenanceRetryLater
            | FlinksCode::DisabledInstitution => Retryable(RetryHint::new(BankUnavailable, None)),
            FlinksCode::TooManyRequests => Retryable(RetryHint::new(Throttled, None)),
            FlinksCode::AggregationError => Retryable(RetryHint::new(Transient, None)),
            FlinksCode::InvalidRequest
            | FlinksCode::NoTransaction
            | FlinksCode::MethodNotAvailable => Permanent,
            FlinksCode::Other(_) if answer.cached_authorize && status == 401 => NeedsReauth,
            FlinksCode::Other(_) => {
                Retryable(RetryHint::new(Unrecognised, Some(UNKNOWN_CODE_RETRY_CAP)))
            }
        };
    }
    classify_status(answer)
}

/// True when a needs-reauth classification rests on the routine's 401 rule alone (an
/// unknown FlinksCode, or none), not on a code known to mean "reconnect": the ledger and
/// the report flag such outcomes so ops see new codes appear.
pub fn is_unrecognised_reauth(status: Option<u16>, code: Option<&FlinksCode>) -> bool {
    status == Some(401) && !code.is_some_and(FlinksCode::is_known)
}

fn classify_status(answer: &Answer<'_>) -> Classification {
    use RetryKind::*;
    match answer.status {
        202 => Classification::Pending,
        200..=299 => Classification::Success,
        429 => Classification::Retryable(RetryHint::new(Throttled, None)),
        408 | 500..=599 => Classification::Retryable(RetryHint::new(Transient, None)),
        401 if answer.cached_authorize && answer.json_body && !names_the_token(answer.message) => {
            Classification::NeedsReauth
        }
        401 | 403 => Classification::Retryable(RetryHint::new(AuthRejected, Some(1))),
        400..=499 => Classification::Permanent,
        _ => Classification::Retryable(RetryHint::new(Unrecognised, Some(UNKNOWN_CODE_RETRY_CAP))),
    }
}

/// Does a 401's message blame the authorize token or a key rather than the login?
fn names_the_token(message: Option<&str>) -> bool {
    message.is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("token") || m.contains("api key") || m.contains("x-api-key")
    })
}

/// Classifies a call that produced no usable answer.
///
/// Timeouts, refused connections and other I/O errors are transient (no cap: the caller's
/// backoff applies). A 2xx body that cannot be decoded or exceeds the cap is
/// [`RetryKind::BadResponse`] with a small cap, since it is unlikely to heal by itself.
pub fn classify_transport(kind: TransportKind) -> Classification {
    match kind {
        TransportKind::Timeout | TransportKind::Connect | TransportKind::Other => {
            Classification::Retryable(RetryHint::new(RetryKind::Transient, None))
        }
        TransportKind::Decode | TransportKind::BodyTooLarge => Classification::Retryable(
            RetryHint::new(RetryKind::BadResponse, Some(UNKNOWN_CODE_RETRY_CAP)),
        ),
    }
}

/// The `INVALID_LOGIN` heuristic: does `message` say the LoginId itself is bad (unknown,
/// invalid, not found, not owned by / associated with this customer) rather than the
/// stored bank credentials?
///
/// It matches, case-insensitively, a mention of the login id (`loginid`, `login id`) or
/// of the customer next to a word of rejection. Messages about credentials, username or
/// password never match. No message: false.
pub fn login_id_is_unknown(message: Option<&str>) -> bool {
    let Some(message) = message else {
        return false;
    };
    let text = message.to_ascii_lowercase();
    if ["credential", "password", "username"]
        .iter()
        .any(|word| text.contains(word))
    {
        return false;
    }
    let names_the_id = ["loginid", "login id", "login_id", "customer"]
        .iter()
        .any(|word| text.contains(word));
    let rejects = [
        "unknown",
        "invalid",
        "not valid",
        "not recognized",
        "not recognised",
        "not found",
        "does not exist",
        "doesn't exist",
        "not exist",
        "not owned",
        "not associated",
        "does not belong",
        "doesn't belong",
        "not linked",
    ]
    .iter()
    .any(|word| text.contains(word));
    names_the_id && rejects
}

#[cfg(test)]
mod tests {
    use super::*;
    use Classification::*;

    fn retry(kind: RetryKind, cap: Option<u32>) -> Classification {
        Retryable(RetryHint::new(kind, cap))
    }

    #[test]
    fn every_row_of_the_contract_table_classifies_as_documented() {
        use RetryKind::*;
        let code = |s: &str| Some(FlinksCode::parse(s));
        // (status, code, message, expected) — one line per §5 row, with every status the
        // sources disagree on.
        let table: Vec<(u16, Option<FlinksCode>, Option<&str>, Classification)> = vec![
            (200, None, None, Success),
            (200, code("OK"), None, Success),
            (201, code("CREATED"), None, Success),
            (202, code("OPERATION_PENDING"), None, Pending),
            (202, code("OPERATION_DISPATCHED"), None, Pending),
            (203, None, None, NeedsReauth),
            (
                400,
                code("SESSION_NONEXISTENT"),
                None,
                retry(SessionLapsed, Some(2)),
            ),
            (
                400,
                code("SESSION_EXPIRED"),
                None,
                retry(SessionLapsed, Some(2)),
            ),
            (
                401,
                code("SESSION_EXPIRED"),
                None,
                retry(SessionLapsed, Some(2)),
            ),
            (400, code("CARD_IN_USE"), None, retry(Busy, None)),
            (400, code("INVALID_REQUEST"), None, Permanent),
            (401, code("INVALID_REQUEST"), None, Permanent),
            (
                401,
                code("ACCESS_DENIED"),
                Some("You must provide a valid authorize token"),
                retry(AuthRejected, Some(1)),
            ),
            (
                401,
                code("INVALID_LOGIN"),
                Some("The LoginId is invalid or does not belong to this customer"),
                Permanent,
            ),
            (
                400,
                code("INVALID_LOGIN"),
                Some("Unknown LoginId"),
                Permanent,
            ),
            (
                401,
                code("INVALID_LOGIN"),
                Some("The stored credentials are invalid"),
                NeedsReauth,
            ),
            (401, code("INVALID_LOGIN"), None, NeedsReauth),
            (401, code("INVALID_USERNAME"), None, NeedsReauth),
            (401, code("INVALID_PASSWORD"), None, NeedsReauth),
            (401, code("INVALID_SECURITY_RESPONSE"), None, NeedsReauth),
            (
                401,
                code("INVALID_SECURITY_RESPONSE_NO_RETRY"),
                None,
                NeedsReauth,
            ),
            (401, code("QUESTION_NOT_FOUND"), None, NeedsReauth),
            (401, code("UNKNOWN_CHALLENGE_KEY"), None, NeedsReauth),
            (401, code("SECURITYRESPONSES_INCOMPLETE"), None, NeedsReauth),
            (401, code("NEW_ACCOUNT"), None, NeedsReauth),
            (401, code("DISABLED_LOGIN"), None, NeedsReauth),
            (
                401,
                code("UNAUTHORIZED"),
                None,
                retry(BankUnavailable, None),
            ),
            (401, code("RETRY_LATER"), None, retry(BankUnavailable, None)),
            (
                503,
                code("BANK_MAINTENANCE_RETRY_LATER"),
                None,
                retry(BankUnavailable, None),
            ),
            (401, code("CONCURRENT_SESSION"), None, retry(Busy, None)),
            (401, code("TOO_MANY_REQUESTS"), None, retry(Throttled, None)),
            (403, code("TOO_MANY_REQUESTS"), None, retry(Throttled, None)),
            (
                405,
                code("DISABLED_INSTITUTION"),
                None,
                retry(BankUnavailable, None),
            ),
            (500, code("AGGREGATION_ERROR"), None, retry(Transient, None)),
            (
                400,
                code("ALREADY_AUTHORIZED"),
                None,
                retry(SessionLapsed, Some(1)),
            ),
            (400, code("NO_TRANSACTION"), None, Permanent),
            (400, code("METHOD_NOT_AVAILABLE"), None, Permanent),
            (502, None, None, retry(Transient, None)),
            (500, None, None, retry(Transient, None)),
            (504, None, None, retry(Transient, None)),
            // Beyond the table: literal 429, unknown codes, bare statuses.
            (429, None, None, retry(Throttled, None)),
            (
                400,
                code("SOMETHING_NEW"),
                None,
                retry(Unrecognised, Some(UNKNOWN_CODE_RETRY_CAP)),
            ),
            (
                401,
                None,
                Some("You must provide a valid authorize token"),
                retry(AuthRejected, Some(1)),
            ),
            (403, None, None, retry(AuthRejected, Some(1))),
            (404, None, None, Permanent),
            (408, None, None, retry(Transient, None)),
            (
                302,
                None,
                None,
                retry(Unrecognised, Some(UNKNOWN_CODE_RETRY_CAP)),
            ),
            (500, code("OK"), None, retry(Transient, None)),
            (203, code("QUESTION_NOT_FOUND"), None, NeedsReauth),
        ];
        for (status, code, message, expected) in table {
            assert_eq!(
                classify(status, code.as_ref(), message),
                expected,
                "status {status}, code {code:?}, message {message:?}"
            );
        }
    }

    fn authorize_answer(
        status: u16,
        code: Option<&FlinksCode>,
        message: Option<&str>,
        json_body: bool,
    ) -> Classification {
        classify_answer(&Answer {
            status,
            code,
            message,
            json_body,
            cached_authorize: true,
        })
    }

    #[test]
    fn a_401_from_the_cached_authorize_is_a_reauth_unless_its_code_says_otherwise() {
        use RetryKind::*;
        let new_code = FlinksCode::parse("SOME_NEW_CODE");
        assert_eq!(
            authorize_answer(401, Some(&new_code), Some("Reconnect"), true),
            NeedsReauth
        );
        assert!(is_unrecognised_reauth(Some(401), Some(&new_code)));
        // A JSON 401 without a code is the routine's rule too, and flagged.
        assert_eq!(authorize_answer(401, None, None, true), NeedsReauth);
        assert!(is_unrecognised_reauth(Some(401), None));
        // Known retryable 401 codes keep their handling.
        for (code, expected) in [
            ("RETRY_LATER", retry(BankUnavailable, None)),
            ("UNAUTHORIZED", retry(BankUnavailable, None)),
            ("CONCURRENT_SESSION", retry(Busy, None)),
            ("ACCESS_DENIED", retry(AuthRejected, Some(1))),
            ("TOO_MANY_REQUESTS", retry(Throttled, None)),
        ] {
            assert_eq!(
                authorize_answer(401, Some(&FlinksCode::parse(code)), None, true),
                expected,
                "{code}"
            );
        }
        assert!(!is_unrecognised_reauth(
            Some(401),
            Some(&FlinksCode::QuestionNotFound)
        ));
        // A refused token is not the user's problem, and a bare 401 says nothing.
        assert_eq!(
            authorize_answer(
                401,
                None,
                Some("You must provide a valid authorize token"),
                true
            ),
            retry(AuthRejected, Some(1))
        );
        assert_eq!(
            authorize_answer(401, None, None, false),
            retry(AuthRejected, Some(1))
        );
        // Elsewhere an unknown code is retried with a small cap.
        assert_eq!(
            classify(401, Some(&new_code), None),
            retry(Unrecognised, Some(UNKNOWN_CODE_RETRY_CAP))
        );
        assert_eq!(
            authorize_answer(500, Some(&new_code), None, true),
            retry(Unrecognised, Some(UNKNOWN_CODE_RETRY_CAP))
        );
    }

    #[test]
    fn an_answer_without_a_json_body_or_a_code_is_never_a_reauth() {
        for status in [203, 401, 200, 400, 403, 500] {
            assert_ne!(
                authorize_answer(status, None, None, false),
                NeedsReauth,
                "HTTP {status}"
            );
        }
        assert_eq!(
            authorize_answer(203, None, None, false),
            retry(RetryKind::BadResponse, Some(UNKNOWN_CODE_RETRY_CAP))
        );
        assert_eq!(authorize_answer(203, None, None, true), NeedsReauth);
    }

    #[test]
    fn invalid_login_on_a_400_names_the_login_id_whatever_the_message() {
        let code = FlinksCode::InvalidLogin;
        assert_eq!(authorize_answer(400, Some(&code), None, true), Permanent);
        assert_eq!(
            authorize_answer(401, Some(&code), Some("Invalid credentials"), true),
            NeedsReauth
        );
        assert_eq!(
            authorize_answer(401, Some(&code), Some("loginId is not valid"), true),
            Permanent
        );
    }

    #[test]
    fn every_known_code_has_a_class() {
        for code in FlinksCode::KNOWN {
            // Must not panic and must not fall through to "unrecognised".
            let class = classify(401, Some(code), None);
            assert_ne!(
                class,
                retry(RetryKind::Unrecognised, Some(UNKNOWN_CODE_RETRY_CAP)),
                "{code}"
            );
        }
    }

    #[test]
    fn transport_failures_are_retryable() {
        assert_eq!(
            classify_transport(TransportKind::Timeout),
            retry(RetryKind::Transient, None)
        );
        assert_eq!(
            classify_transport(TransportKind::Connect),
            retry(RetryKind::Transient, None)
        );
        assert_eq!(
            classify_transport(TransportKind::BodyTooLarge),
            retry(RetryKind::BadResponse, Some(UNKNOWN_CODE_RETRY_CAP))
        );
        assert_eq!(
            classify_transport(TransportKind::Decode),
            retry(RetryKind::BadResponse, Some(UNKNOWN_CODE_RETRY_CAP))
        );
    }

    #[test]
    fn throttle_and_session_flags_are_exposed_on_the_hint() {
        let Retryable(hint) = classify(401, Some(&FlinksCode::TooManyRequests), None) else {
            panic!("not retryable")
        };
        assert!(hint.is_throttled() && !hint.is_session_lapsed());
        let Retryable(hint) = classify(400, Some(&FlinksCode::SessionNonexistent), None) else {
            panic!("not retryable")
        };
        assert!(hint.is_session_lapsed() && !hint.is_throttled());
    }

    #[test]
    fn the_invalid_login_heuristic_reads_the_message() {
        assert!(login_id_is_unknown(Some("LoginId not found")));
        assert!(login_id_is_unknown(Some("Login id does not exist")));
        assert!(login_id_is_unknown(Some(
            "The LoginId is not owned by this CustomerId"
        )));
        assert!(!login_id_is_unknown(Some("Invalid username or password")));
        assert!(!login_id_is_unknown(Some(
            "The credentials for this LoginId are invalid"
        )));
        assert!(!login_id_is_unknown(Some("Something went wrong")));
        assert!(!login_id_is_unknown(None));
    }
}

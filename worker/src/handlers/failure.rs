//! The pure decision after a failed Flinks call: (error, attempt) → what the job does
//! next. Kept apart from I/O so the whole policy is one table test.
//!
//! The classification (`shared::flinks::classify`) says what *kind* of failure it is; this
//! adds the worker's policy: `MAX_ATTEMPTS`, the per-kind retry caps, the cool-down on
//! throttling, and the session restart on a lapsed RequestId.

use shared::flinks::{Error, RetryKind};

/// What a job does after a failed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Record a re-auth and stop: only the user can fix it.
    NeedsReauth,
    /// Try again; the queue applies backoff and counts the attempt.
    Retry,
    /// Flinks throttled us: pause every worker (the global cool-down) and run the job
    /// again afterwards without spending an attempt — a throttle is nobody's fault and
    /// must never fail a login.
    CoolDown,
    /// The RequestId lapsed: start a fresh authorize for the same login and date.
    RestartSession,
    /// Record a failure and stop.
    Fail,
}

/// Decides what to do after `error` on delivery number `attempt` (1-based) of a job whose
/// queue allows `max_attempts`.
pub fn decide(error: &Error, attempt: u32, max_attempts: u32) -> Decision {
    match error {
        Error::NeedsReauth(_) => Decision::NeedsReauth,
        Error::Permanent(_) | Error::Config(_) => Decision::Fail,
        Error::Retryable { hint, .. } => {
            if hint.kind == RetryKind::SessionLapsed {
                return Decision::RestartSession;
            }
            if hint.is_throttled() {
                return Decision::CoolDown;
            }
            let allowed = hint
                .retry_cap
                .map_or(max_attempts, |cap| (cap + 1).min(max_attempts));
            if attempt >= allowed {
                Decision::Fail
            } else {
                Decision::Retry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::flinks::{classify, Endpoint, Failure};
    use shared::FlinksCode;

    fn error_for(status: u16, code: Option<&str>) -> Error {
        let code = code.map(FlinksCode::parse);
        let class = classify(status, code.as_ref(), None);
        let failure = Failure {
            endpoint: Endpoint::Authorize,
            status: Some(status),
            code,
            message: None,
            request_id: None,
            transport: None,
        };
        match class {
            shared::flinks::Classification::NeedsReauth => Error::NeedsReauth(Box::new(failure)),
            shared::flinks::Classification::Permanent => Error::Permanent(Box::new(failure)),
            shared::flinks::Classification::Retryable(hint) => Error::Retryable {
                hint,
                failure: Box::new(failure),
            },
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn the_policy_table() {
        use Decision::*;
        let retry = Retry;
        #[rustfmt::skip]
        let table: &[(u16, Option<&str>, u32, Decision)] = &[
            (401, Some("QUESTION_NOT_FOUND"), 1, NeedsReauth),
            (401, Some("INVALID_PASSWORD"), 1, NeedsReauth),
            (401, Some("DISABLED_LOGIN"), 1, NeedsReauth),
            (400, Some("INVALID_REQUEST"), 1, Fail),
            (401, Some("RETRY_LATER"), 1, retry.clone()),
            (401, Some("RETRY_LATER"), 4, retry.clone()),
            (401, Some("RETRY_LATER"), 5, Fail),            // MAX_ATTEMPTS = 5 honoured exactly
            (500, Some("AGGREGATION_ERROR"), 2, retry.clone()),
            (503, None, 1, retry.clone()),
            (401, Some("TOO_MANY_REQUESTS"), 1, CoolDown),
            (401, Some("TOO_MANY_REQUESTS"), 5, CoolDown),  // never fails a login
            (429, None, 9, CoolDown),
            (401, Some("ACCESS_DENIED"), 1, retry.clone()), // one retry with a fresh token
            (401, Some("ACCESS_DENIED"), 2, Fail),
            (400, Some("SOMETHING_NEW"), 3, retry),         // unknown codes: a small cap
            (400, Some("SOMETHING_NEW"), 4, Fail),
            (400, Some("SESSION_NONEXISTENT"), 1, RestartSession),
            (400, Some("SESSION_EXPIRED"), 1, RestartSession),
        ];
        for (status, code, attempt, expected) in table {
            let error = error_for(*status, *code);
            assert_eq!(
                &decide(&error, *attempt, 5),
                expected,
                "HTTP {status} {code:?} on attempt {attempt}"
            );
        }
    }
}

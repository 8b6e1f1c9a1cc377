//! `flinks::Error`: a failed Flinks call, with variants named by what the caller does next.
//!
//! The worker routes on the variant (and, for [`Error::Retryable`], on
//! [`RetryHint::kind`]), never on strings. Every variant that came from a call carries a
//! [`Failure`] with what Flinks said: HTTP status, `FlinksCode`, `Message` and `RequestId`
//! when present (a cached Authorize that fails with 401 `QUESTION_NOT_FOUND` still returns
//! a RequestId that can fetch stale data, contract §2). The `Message` is kept with the
//! raw LoginId replaced by its fingerprint, so an error can be logged as it is.

use std::fmt;

use super::call_log::Endpoint;
use super::classify::{Classification, RetryHint, TransportKind};
use crate::domain::{FlinksCode, RequestId};

/// What a failed call produced, for logs, reports and routing details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The endpoint called.
    pub endpoint: Endpoint,
    /// The HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// The `FlinksCode` of the body, when present.
    pub code: Option<FlinksCode>,
    /// The `Message` of the body, when present (raw LoginId replaced by its fingerprint).
    pub message: Option<String>,
    /// The `RequestId` of the body, when present.
    pub request_id: Option<RequestId>,
    /// Set when no usable answer arrived (timeout, connection, decode, size cap).
    pub transport: Option<TransportKind>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.endpoint.as_str())?;
        if let Some(status) = self.status {
            write!(f, " HTTP {status}")?;
        }
        if let Some(kind) = self.transport {
            write!(f, " transport {kind}")?;
        }
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(request_id) = &self.request_id {
            write!(f, " (RequestId {request_id})")?;
        }
        Ok(())
    }
}

/// A failed Flinks call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Only the user can fix it by reconnecting through Flinks Connect. Do not retry.
    #[error("Flinks needs the user to reconnect: {0}")]
    NeedsReauth(Box<Failure>),
    /// Try again later; `hint` says how (throttled, session lapsed, token refused...).
    #[error("Flinks call failed, retryable ({hint:?}): {failure}")]
    Retryable {
        /// How to retry.
        hint: RetryHint,
        /// What happened.
        failure: Box<Failure>,
    },
    /// Retrying cannot help: record, alert, and move on.
    #[error("Flinks call failed permanently: {0}")]
    Permanent(Box<Failure>),
    /// The client configuration is unusable (raised by [`super::FlinksClient::new`]).
    #[error("invalid Flinks configuration: {0}")]
    Config(String),
}

impl Error {
    /// Builds the error for a classified failure. `Success`/`Pending` are not failures;
    /// if one reaches here (the endpoint could not use it), it becomes retryable
    /// `Unrecognised` so the caller's cap applies.
    pub(crate) fn from_classification(class: Classification, failure: Failure) -> Self {
        let failure = Box::new(failure);
        match class {
            Classification::NeedsReauth => Error::NeedsReauth(failure),
            Classification::Permanent => Error::Permanent(failure),
            Classification::Retryable(hint) => Error::Retryable { hint, failure },
            Classification::Success | Classification::Pending => Error::Retryable {
                hint: RetryHint {
                    kind: super::classify::RetryKind::Unrecognised,
                    retry_cap: Some(super::classify::UNKNOWN_CODE_RETRY_CAP),
                },
                failure,
            },
        }
    }

    /// What Flinks said, when the error came from a call.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::NeedsReauth(failure) | Error::Permanent(failure) => Some(failure),
            Error::Retryable { failure, .. } => Some(failure),
            Error::Config(_) => None,
        }
    }

    /// The classification this error stands for (`None` for configuration errors).
    pub fn classification(&self) -> Option<Classification> {
        match self {
            Error::NeedsReauth(_) => Some(Classification::NeedsReauth),
            Error::Permanent(_) => Some(Classification::Permanent),
            Error::Retryable { hint, .. } => Some(Classification::Retryable(*hint)),
            Error::Config(_) => None,
        }
    }

    /// The HTTP status, when an answer arrived.
    pub fn status(&self) -> Option<u16> {
        self.failure().and_then(|f| f.status)
    }

    /// The `FlinksCode`, when the body had one.
    pub fn code(&self) -> Option<&FlinksCode> {
        self.failure().and_then(|f| f.code.as_ref())
    }

    /// The `RequestId`, when the body had one (e.g. to fetch stale data after a 401).
    pub fn request_id(&self) -> Option<&RequestId> {
        self.failure().and_then(|f| f.request_id.as_ref())
    }
}

//! The typed async Flinks client (the API as `docs/design-notes.md` summarises it).
//!
//! - [`config`]: where Flinks is, which credentials to send, timeouts and body cap.
//! - [`client`]: [`FlinksClient`], one method per endpoint the routine calls.
//! - [`model`]: wire types (PascalCase JSON, `Accounts` kept as sent, naive-UTC timestamps).
//! - [`classify`](mod@classify): the pure (status, FlinksCode, Message) → [`Classification`] table.
//! - [`error`]: [`Error`], with variants named by what the caller does next.
//! - [`call_log`]: the one trace event and the metrics of every call.
//!
//! This module does not retry, poll, sleep or rate-limit: those are the worker's policy,
//! driven by the classification.

pub mod call_log;
pub mod classify;
pub mod client;
pub mod config;
pub mod error;
pub mod model;

pub use call_log::Endpoint;
pub use classify::{
    classify, classify_answer, classify_transport, is_unrecognised_reauth, Answer, Classification,
    RetryHint, RetryKind, TransportKind, UNKNOWN_CODE_RETRY_CAP,
};
pub use client::{AuthorizeToken, FlinksClient};
pub use config::FlinksConfig;
pub use error::{Error, Failure};
pub use model::{
    format_flinks_timestamp, AccountsDetail, AuthorizeOk, AuthorizeOutcome, DetailOutcome,
    IneligibleCard, Institution, LoginInfo,
};

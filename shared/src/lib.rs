//! nightly-refresh's library: everything the `producer` and `worker` binaries do lives here
//! so that tests drive the same code that ships.
//!
//! - [`domain`]: newtypes at the boundary (`LoginId`, `RequestId`, `FlinksCode`).
//! - [`keys`]: the only place Redis keys are built (namespace per deployment and per test).
//! - [`flinks`]: the typed Flinks client, outcome classification and the API call trace.
//! - [`queue`]: the durable Redis queue backend that apalis workers run on.
//! - [`ratelimit`]: the global, Redis-backed authorization rate limit shared by all pods.
//! - [`metrics`], [`ops_http`], [`telemetry`], [`shutdown`]: the process plumbing every
//!   binary shares (Prometheus recorder, ops port, logs, one shutdown path).
//! - [`config`]: `Settings`, loaded from defaults < TOML file < environment.

pub mod config;
pub mod domain;
pub mod flinks;
pub mod keys;
pub mod metrics;
pub mod ops_http;
pub mod queue;
pub mod ratelimit;
pub mod shutdown;
pub mod telemetry;

pub use domain::{FlinksCode, LoginId, RequestId};
pub use keys::KeySpace;

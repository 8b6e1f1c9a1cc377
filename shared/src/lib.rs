//! nightly-refresh's library: everything the `producer` and `worker` binaries do lives here
//! so that tests drive the same code that ships.
//!
//! - [`domain`]: newtypes at the boundary (`LoginId`, `RequestId`, `FlinksCode`).
//! - [`keys`]: the only place Redis keys are built (namespace per deployment and per test).
//! - [`flinks`]: the typed Flinks client, outcome classification and the API call trace.
//! - [`queue`]: the durable Redis queue backend that apalis workers run on.
//! - [`results`]: the capped results stream, written atomically with the ledger.
//! - [`results_crypto`]: optional AES-256-GCM encryption of the stream's account data.
//! - [`jobs`]: job payloads, queue names, and the dedupe and supersede keys of the routine.
//! - [`routine`]: enqueue a routine date (idempotent) and the once-a-day schedule.
//! - [`schedule_daemon`]: the `producer schedule` process around that schedule.
//! - [`ratelimit`]: the global, Redis-backed authorization rate limit shared by all pods.
//! - [`control`]: operator control at run time: the stored rate limit, queue pause flags.
//! - [`metrics`], [`ops_http`], [`telemetry`], [`shutdown`]: the process plumbing every
//!   binary shares (Prometheus recorder, ops port, logs, one shutdown path).
//! - [`gauges`]: the sampler that sets queue, worker and routine-progress gauges from Redis.
//! - [`config`]: `Settings`, loaded from defaults < TOML file < environment.
//! - [`redis_conn`]: connecting to Redis with timeouts; "Redis unreachable at <url>".
//! - [`registry`]: the LoginId registry (active/inactive, latest state, outcome history).
//! - [`scheduled_refresh`]: keeps each login's nightly refresh at Flinks in step with the
//!   registry (durable SetScheduledRefresh changes, confirm, sweep).
//! - [`import`]: validating a customer's CSV of LoginIds before anything is written.
//! - [`ledger`]: one outcome per (LoginId, routine date); the routine's effectively-once.
//! - [`outcomes`]: recording an outcome in the ledger and the registry (transactional
//!   outbox, so no script spans two Cluster slots).
//! - [`report`]: a routine date's report (refreshed, stale, re-auth, failed, pending, ETA).
//! - [`live`]: the live view of a running routine (`producer report --watch`), rendered
//!   purely from a report and the stats snapshot.
//! - [`stores`]: every Redis store of a namespace (queues, ledger, registry, outcomes,
//!   results, rate limiter), opened once from `Settings`.
//! - [`ops`]: operator functions: queue stats, crash-safe requeue and purge, deactivate /
//!   activate / reconnected logins, GetNightlyRefreshStatus, the audit trail.
//! - [`text`]: the terminal text of the operator commands (tables, escaping, summaries).
//! - [`console`]: the operators' web console (`producer console`) over the same operator
//!   functions, with its login, sessions, CSRF tokens and security headers.
//!
//! Every Lua script lives under `src/lua/`, one folder per store (`queue`, `ledger`,
//! `registry`, `outcomes`, `ratelimit`, `scheduled_refresh`, `ops`, `routine`), each
//! opening with the KEYS and ARGV it takes and what it returns; the store's module loads
//! it once with `include_str!`.

pub mod config;
pub mod console;
pub mod control;
pub mod domain;
pub mod events;
pub mod flinks;
pub mod forecast;
pub mod gauges;
pub mod import;
pub mod jobs;
pub mod keys;
pub mod layout;
pub mod ledger;
pub mod live;
pub mod login_index;
pub mod metrics;
pub mod ops;
pub mod ops_http;
pub mod outcomes;
pub mod queue;
pub mod ratelimit;
pub mod redis_conn;
pub mod registry;
pub mod report;
pub mod results;
pub mod results_crypto;
pub mod routine;
pub mod schedule_daemon;
pub mod scheduled_refresh;
pub mod shutdown;
pub mod stores;
pub mod telemetry;
pub mod text;
pub mod write_marks;

pub use domain::{FlinksCode, LoginId, RequestId};
pub use keys::KeySpace;

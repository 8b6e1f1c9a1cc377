//! shared's integration tests: one binary, a module per concern, real Redis and the
//! in-repo Flinks simulator on port 0.

mod control;
mod events;
mod flinks_client;
mod layout;
mod ledger;
mod observability;
mod ops;
mod ops_http;
mod outcomes;
mod own_redis;
mod queue;
mod ratelimit;
mod registry;
mod results_stream;
mod routine;
mod scheduled_refresh;
mod secure_redis;
mod spread;
mod support;

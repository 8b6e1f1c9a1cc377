//! The one integration-test binary of flinks-sim: every test spawns its own simulator on
//! port 0 and talks to it over HTTP with reqwest, as the worker does.

mod auth;
mod cli;
mod faults;
mod helpers;
mod rules;
mod scenarios;
mod stats;
mod throttle;

//! Tracing subscriber set-up: JSON lines in containers, readable lines on a terminal,
//! filtered by `RUST_LOG` (default `info`). Logs go to stderr so stdout stays for
//! command output (`--json` reports, tables).
//!
//! `LOG_FORMAT=auto` (the default) picks by looking at stderr itself: a terminal gets
//! pretty lines, anything else (a container's log driver, a pipe, a file) gets JSON.
//! An explicit `LOG_FORMAT=json|pretty` always wins.

use std::io::IsTerminal as _;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are ignored (tests call it freely).
pub fn init(format: LogFormat) {
    init_at(format, "info");
}

/// Like [`init`], logging at `default_level` (e.g. `warn`) unless `RUST_LOG` says
/// otherwise: a one-shot command prints nothing before its own output.
pub fn init_at(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format.resolve(std::io::stderr().is_terminal()) {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty | LogFormat::Auto => builder.compact().try_init(),
    };
}

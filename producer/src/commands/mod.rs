//! Command handlers: each parses nothing, validates its input, calls `shared`, prints.
//! Text goes to stdout, JSON (with `--json`) too; progress and warnings go to stderr.

pub(crate) mod audit;
pub(crate) mod control;
pub(crate) mod logins;
pub(crate) mod ops_logins;
pub(crate) mod queues;
pub(crate) mod report;
pub(crate) mod results;
pub(crate) mod routine;

use anyhow::Context as _;
use serde::Serialize;
use shared::config::Settings;
use shared::keys::KeySpace;
use shared::redis_conn::RedisConn;

/// An error the user fixes by changing the command line (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Some items of a bulk operation failed (exit code 3); each result was printed.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} failed")]
pub struct PartialFailure {
    /// Items that failed.
    pub failed: usize,
    /// Items attempted.
    pub total: usize,
}

/// What every handler needs.
pub(crate) struct Ctx {
    pub(crate) settings: Settings,
    pub(crate) keys: KeySpace,
    pub(crate) json: bool,
}

impl Ctx {
    pub(crate) fn new(settings: Settings, json: bool) -> Self {
        let keys = KeySpace::new(settings.namespace.clone());
        Self {
            settings,
            keys,
            json,
        }
    }

    /// Connects to Redis (fails fast, naming the redacted URL).
    pub(crate) async fn redis(&self) -> anyhow::Result<RedisConn> {
        Ok(shared::redis_conn::connect(&self.settings.redis).await?)
    }

    /// Prints `value` as pretty JSON on stdout.
    pub(crate) fn print_json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value).context("encoding JSON output")?;
        println!("{text}");
        Ok(())
    }
}

//! Command handlers: each module owns its clap `Args` and its `run`, validates its input,
//! calls `shared` and prints. Text goes to stdout, JSON (with `--json`) too; progress and
//! warnings go to stderr.

pub(crate) mod audit;
pub(crate) mod control;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod logins;
pub(crate) mod ops_logins;
pub(crate) mod queues;
pub(crate) mod report;
pub(crate) mod results;
pub(crate) mod routine;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use shared::config::Settings;
use shared::domain::{LoginId, RoutineDay};
use shared::keys::KeySpace;
use shared::ops::audit::AuditLog;
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

/// `Err(PartialFailure)` when some of `total` items failed.
pub(crate) fn partial(failed: usize, total: usize) -> anyhow::Result<()> {
    if failed > 0 {
        return Err(PartialFailure { failed, total }.into());
    }
    Ok(())
}

/// What every handler needs.
pub(crate) struct Ctx {
    pub(crate) settings: Settings,
    pub(crate) keys: KeySpace,
    pub(crate) json: bool,
    /// Who runs the command, for the audit trail (sanitized when stored).
    pub(crate) actor: String,
    /// One connection per command, opened on first use and shared by every store.
    conn: tokio::sync::OnceCell<RedisConn>,
}

impl Ctx {
    pub(crate) fn new(settings: Settings, json: bool, actor: String) -> Self {
        let keys = KeySpace::new(settings.namespace.clone());
        Self {
            settings,
            keys,
            json,
            actor: shared::ops::audit::sanitize_actor(&actor),
            conn: tokio::sync::OnceCell::new(),
        }
    }

    /// The Redis connection, connecting on first use (fails fast, naming the redacted
    /// URL). Jobs queued by the previous version are moved to the current storage layout
    /// first, so every command sees them.
    pub(crate) async fn redis(&self) -> anyhow::Result<RedisConn> {
        // Boxed: every command awaits this, and inlining the migration's future into each
        // command's future overflows the compiler's layout depth limit.
        let connect = || -> futures::future::BoxFuture<'_, anyhow::Result<RedisConn>> {
            Box::pin(async {
                let conn = shared::redis_conn::connect(&self.settings.redis).await?;
                shared::stores::Stores::open(conn.clone(), &self.keys, &self.settings)
                    .migrate_queues()
                    .await
                    .context("moving queued jobs to the current storage layout")?;
                Ok(conn)
            })
        };
        Ok(self.conn.get_or_try_init(connect).await?.clone())
    }

    /// The routine date a `--date` names (today in ROUTINE_TZ when absent).
    pub(crate) fn date(&self, day: Option<RoutineDay>) -> NaiveDate {
        day.unwrap_or(RoutineDay::Today)
            .resolve(Utc::now(), self.settings.routine_tz)
    }

    /// Prints `value` as pretty JSON on stdout.
    pub(crate) fn print_json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value).context("encoding JSON output")?;
        println!("{text}");
        Ok(())
    }

    /// Appends one entry to the audit trail.
    pub(crate) async fn audit(
        &self,
        command: &str,
        args: impl Into<String>,
        count: usize,
        failed: usize,
    ) -> anyhow::Result<()> {
        AuditLog::new(self.redis().await?, &self.keys)
            .record(&self.actor, command, args, count as u64, failed as u64)
            .await
            .context("writing the audit trail")?;
        Ok(())
    }
}

/// Parses LoginIds given on the command line.
pub(crate) fn parse_logins(raw: &[String]) -> anyhow::Result<Vec<LoginId>> {
    raw.iter().map(|l| Ok(LoginId::parse(l)?)).collect()
}

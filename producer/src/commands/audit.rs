//! `producer audit`, and [`record`]: the one way mutating commands append to the audit
//! trail (who, what, when, how many; argument summaries never hold secrets).

use anyhow::Context as _;
use chrono::Utc;
use shared::ops::audit::{AuditEntry, AuditLog};

use super::Ctx;
use crate::cli::AuditArgs;

/// Appends one entry to the audit trail.
pub(crate) async fn record(
    ctx: &Ctx,
    actor: &str,
    command: &str,
    args: String,
    count: usize,
    failed: usize,
) -> anyhow::Result<()> {
    let log = AuditLog::new(ctx.redis().await?, &ctx.keys);
    log.append(&AuditEntry {
        id: String::new(),
        actor: actor.to_string(),
        command: command.to_string(),
        args,
        count: count as u64,
        failed: failed as u64,
        at: Utc::now(),
    })
    .await
    .context("writing the audit trail")?;
    Ok(())
}

/// `producer audit [--limit N]`
pub(crate) async fn list(ctx: &Ctx, args: AuditArgs) -> anyhow::Result<()> {
    let log = AuditLog::new(ctx.redis().await?, &ctx.keys);
    let entries = log
        .recent(args.limit)
        .await
        .context("reading the audit trail")?;
    if ctx.json {
        return ctx.print_json(&entries);
    }
    if entries.is_empty() {
        println!("no audit entries");
        return Ok(());
    }
    println!(
        "{:<26} {:<12} {:<28} {:>6} {:>6}  ARGS",
        "WHEN", "WHO", "COMMAND", "COUNT", "FAILED"
    );
    for e in &entries {
        println!(
            "{:<26} {:<12} {:<28} {:>6} {:>6}  {}",
            e.at.format("%Y-%m-%d %H:%M:%S UTC"),
            e.actor,
            e.command,
            e.count,
            e.failed,
            e.args
        );
    }
    Ok(())
}

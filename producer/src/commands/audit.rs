//! `producer audit`: the audit trail of mutating commands, newest first. Commands append
//! to it through [`super::Ctx::audit`].

use anyhow::Context as _;
use clap::Args;
use shared::ops::audit::AuditLog;

use super::Ctx;
use crate::table::{self, col};

/// `producer audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// At most this many entries.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

pub(crate) async fn run(ctx: &Ctx, args: AuditArgs) -> anyhow::Result<()> {
    let log = AuditLog::new(ctx.redis().await?, &ctx.keys);
    let entries = log
        .recent(args.limit)
        .await
        .context("reading the audit trail")?;
    if ctx.json {
        return ctx.print_json(&entries);
    }
    let headers = [
        col::AT,
        col::ACTOR,
        col::COMMAND,
        col::COUNT,
        col::FAILED,
        col::ARGS,
    ];
    table::print(
        &headers,
        entries.iter().map(|e| {
            vec![
                table::time(e.at),
                e.actor.clone(),
                e.command.clone(),
                e.count.to_string(),
                e.failed.to_string(),
                e.args.clone(),
            ]
        }),
    );
    Ok(())
}

//! `producer audit`: the audit trail of mutating commands, newest first. Commands append
//! to it through `Session::audit`.

use anyhow::Context as _;
use clap::Args;

use super::Ctx;

/// `producer audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// At most this many entries.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

pub(crate) async fn run(ctx: &Ctx, args: AuditArgs) -> anyhow::Result<()> {
    let audit = ctx.stores().await?.audit;
    let entries = audit.recent(args.limit).await;
    let entries = entries.context("reading the audit trail")?;
    ctx.print(&entries, |e| shared::text::audit(e))
}

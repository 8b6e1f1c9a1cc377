//! `producer ratelimit show|set` and `producer queues pause|resume`: thin wrappers over
//! `shared::control` that print (or `--json`) and append every change to the audit trail.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use shared::control::{pause_summary, QueueSelection};
use shared::text::control as text;

use super::Ctx;

/// `producer ratelimit ...`
#[derive(Debug, Subcommand)]
pub enum RatelimitCommand {
    /// The limit in force, whether it is stored, and this process' RATE_LIMIT_PER_MINUTE.
    Show,
    /// Store a new limit (LoginIds per minute across every worker; 0 turns it off). It
    /// survives restarts: RATE_LIMIT_PER_MINUTE only seeds it when none is stored.
    Set(RatelimitSetArgs),
}

/// `producer ratelimit set`
#[derive(Debug, Args)]
pub struct RatelimitSetArgs {
    /// LoginIds per minute, 0 (off) to 60000.
    #[arg(value_name = "PER_MINUTE", value_parser = parse_rate_arg, allow_hyphen_values = true)]
    pub per_minute: f64,
}

fn parse_rate_arg(raw: &str) -> Result<f64, String> {
    shared::control::parse_rate(raw).map_err(|e| e.to_string())
}

/// `producer queues pause`
#[derive(Debug, Args)]
pub struct QueuesPauseArgs {
    /// authorize, detail, deactivation, or all.
    #[arg(value_name = "QUEUE|all")]
    pub queues: QueueSelection,
    /// Why (shown by `queues stats` and `report`, kept in the audit trail).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `producer queues resume`
#[derive(Debug, Args)]
pub struct QueuesResumeArgs {
    /// authorize, detail, deactivation, or all.
    #[arg(value_name = "QUEUE|all")]
    pub queues: QueueSelection,
}

pub(crate) async fn run(ctx: &Ctx, cmd: RatelimitCommand) -> anyhow::Result<()> {
    let control = ctx.stores().await?.control;
    let configured = ctx.settings().rate_limit_per_minute;
    let RatelimitCommand::Set(args) = cmd else {
        let state = control.view(configured).await;
        let state = state.context("reading the control state")?.rate_limit;
        return ctx.print(&state, text::rate_limit);
    };
    let change = control.change_rate_limit(args.per_minute).await;
    let change = change.context("storing the rate limit")?;
    ctx.audit("ratelimit set", change.summary(), 1, 0).await?;
    ctx.print(&change, |c| text::rate_limit_set(c, configured))
}

/// `producer queues pause <QUEUE|all> [--reason TEXT]`
pub(crate) async fn pause(ctx: &Ctx, args: QueuesPauseArgs) -> anyhow::Result<()> {
    let (queues, reason) = (&args.queues.0, args.reason.as_deref());
    let control = ctx.stores().await?.control;
    let now = chrono::Utc::now();
    let changes = control.pause_all(queues, reason, ctx.actor(), now).await;
    let changes = changes.context("pausing")?;
    let count = changes.iter().filter(|c| c.changed).count();
    ctx.audit("queues pause", pause_summary(queues, reason), count, 0)
        .await?;
    ctx.print(&changes, |c| {
        text::queue_changes(c, "paused", "already paused")
    })
}

/// `producer queues resume <QUEUE|all>`
pub(crate) async fn resume(ctx: &Ctx, args: QueuesResumeArgs) -> anyhow::Result<()> {
    let control = ctx.stores().await?.control;
    let changes = control.resume_all(&args.queues.0).await;
    let changes = changes.context("resuming")?;
    let count = changes.iter().filter(|c| c.changed).count();
    ctx.audit("queues resume", args.queues.0.join(","), count, 0)
        .await?;
    ctx.print(&changes, |c| {
        text::queue_changes(c, "resumed", "was not paused")
    })
}

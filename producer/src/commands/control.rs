//! `producer ratelimit show|set` and `producer queues pause|resume`: thin wrappers over
//! `shared::control` that print (or `--json`) and append every change to the audit trail;
//! [`view`] is the control section `queues stats` and `report` show.

use anyhow::Context as _;
use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;
use shared::control::{Control, RateLimitState};

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

/// The queues a `queues pause|resume` argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSelection(pub Vec<&'static str>);

fn parse_queue_arg(raw: &str) -> Result<QueueSelection, String> {
    shared::control::parse_queues(raw)
        .map(QueueSelection)
        .map_err(|e| e.to_string())
}

/// `producer queues pause`
#[derive(Debug, Args)]
pub struct QueuesPauseArgs {
    /// authorize, detail, deactivation, or all.
    #[arg(value_name = "QUEUE|all", value_parser = parse_queue_arg)]
    pub queues: QueueSelection,
    /// Why (shown by `queues stats` and `report`, kept in the audit trail).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `producer queues resume`
#[derive(Debug, Args)]
pub struct QueuesResumeArgs {
    /// authorize, detail, deactivation, or all.
    #[arg(value_name = "QUEUE|all", value_parser = parse_queue_arg)]
    pub queues: QueueSelection,
}

pub(crate) async fn run(ctx: &Ctx, cmd: RatelimitCommand) -> anyhow::Result<()> {
    match cmd {
        RatelimitCommand::Show => show(ctx).await,
        RatelimitCommand::Set(args) => set(ctx, args).await,
    }
}

pub(crate) use shared::control::ControlView;

/// Reads the control state.
pub(crate) async fn view(ctx: &Ctx) -> anyhow::Result<ControlView> {
    let control = Control::new(ctx.redis().await?, &ctx.keys);
    let configured = ctx.settings.rate_limit_per_minute;
    control
        .view(configured)
        .await
        .context("reading the control state")
}

async fn show(ctx: &Ctx) -> anyhow::Result<()> {
    let state = view(ctx).await?.rate_limit;
    if ctx.json {
        return ctx.print_json(&state);
    }
    println!("rate limit: {}", state.describe());
    if state.stored && state.per_minute != state.configured {
        println!(
            "note: RATE_LIMIT_PER_MINUTE here is {}; the stored limit applies",
            state.configured
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct SetResult {
    per_minute: f64,
    previous: Option<f64>,
}

async fn set(ctx: &Ctx, args: RatelimitSetArgs) -> anyhow::Result<()> {
    let control = Control::new(ctx.redis().await?, &ctx.keys);
    let previous = control
        .set_rate_limit(args.per_minute)
        .await
        .context("storing the rate limit")?;
    let summary = match previous {
        Some(p) => format!("per_minute={} (was {p})", args.per_minute),
        None => format!("per_minute={} (none stored)", args.per_minute),
    };
    ctx.audit("ratelimit set", summary, 1, 0).await?;
    if ctx.json {
        return ctx.print_json(&SetResult {
            per_minute: args.per_minute,
            previous,
        });
    }
    let now = RateLimitState {
        per_minute: args.per_minute,
        stored: true,
        configured: ctx.settings.rate_limit_per_minute,
    };
    println!(
        "rate limit set to {} (was {}); workers apply it at their next permit",
        now.describe(),
        previous.map_or_else(|| "none stored".to_string(), |p| p.to_string())
    );
    Ok(())
}

#[derive(Serialize)]
struct QueueChange {
    queue: &'static str,
    paused: bool,
    /// False when the queue already was in that state.
    changed: bool,
}

/// `producer queues pause <QUEUE|all> [--reason TEXT]`
pub(crate) async fn pause(ctx: &Ctx, args: QueuesPauseArgs) -> anyhow::Result<()> {
    let control = Control::new(ctx.redis().await?, &ctx.keys);
    let now = Utc::now();
    let mut changes = Vec::new();
    for queue in &args.queues.0 {
        let changed = control
            .pause(queue, args.reason.as_deref(), &ctx.actor, now)
            .await
            .with_context(|| format!("pausing {queue}"))?;
        changes.push(QueueChange {
            queue,
            paused: true,
            changed,
        });
    }
    let summary = format!(
        "{}{}",
        args.queues.0.join(","),
        args.reason
            .as_deref()
            .map(|r| format!(" reason={r}"))
            .unwrap_or_default()
    );
    let count = changes.iter().filter(|c| c.changed).count();
    ctx.audit("queues pause", summary, count, 0).await?;
    print_changes(ctx, &changes, "paused", "already paused")
}

/// `producer queues resume <QUEUE|all>`
pub(crate) async fn resume(ctx: &Ctx, args: QueuesResumeArgs) -> anyhow::Result<()> {
    let control = Control::new(ctx.redis().await?, &ctx.keys);
    let mut changes = Vec::new();
    for queue in &args.queues.0 {
        let changed = control
            .resume(queue)
            .await
            .with_context(|| format!("resuming {queue}"))?;
        changes.push(QueueChange {
            queue,
            paused: false,
            changed,
        });
    }
    let count = changes.iter().filter(|c| c.changed).count();
    ctx.audit("queues resume", args.queues.0.join(","), count, 0)
        .await?;
    print_changes(ctx, &changes, "resumed", "was not paused")
}

fn print_changes(
    ctx: &Ctx,
    changes: &[QueueChange],
    done: &str,
    unchanged: &str,
) -> anyhow::Result<()> {
    if ctx.json {
        return ctx.print_json(&changes);
    }
    for c in changes {
        println!("{}: {}", c.queue, if c.changed { done } else { unchanged });
    }
    Ok(())
}

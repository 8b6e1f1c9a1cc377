//! `producer routine run` and `producer schedule`: start a routine date by hand, or let a
//! long-running daemon fire it once a day at ROUTINE_AT in ROUTINE_TZ (replicas fire once
//! between them; a due and missing run is caught up on start).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use shared::domain::RoutineDay;

use super::Ctx;

/// `producer routine ...`
#[derive(Debug, Subcommand)]
pub enum RoutineCommand {
    /// Enqueue one authorize job per active LoginId for a date. Idempotent: running it
    /// again, or from two producers at once, never enqueues a login twice for one date,
    /// and resumes a run that crashed half-way. Prints how many were enqueued and the ETA.
    Run(RoutineRunArgs),
}

/// `producer routine run`
#[derive(Debug, Args)]
pub struct RoutineRunArgs {
    /// The routine date: YYYY-MM-DD, today or yesterday (default: today in ROUTINE_TZ); at
    /// most one day after today.
    #[arg(long, value_name = "DATE")]
    pub date: Option<RoutineDay>,
}

/// `producer routine run [--date D]`
pub(crate) async fn run(ctx: &Ctx, cmd: RoutineCommand) -> anyhow::Result<()> {
    let RoutineCommand::Run(args) = cmd;
    let date = ctx.date(args.date);
    let stores = ctx.stores().await?;
    let configured = ctx.settings().rate_limit_per_minute;
    let rate = stores.control.rate_limit(configured).await;
    let rate = rate.context("reading the rate limit")?.per_minute;
    let run = shared::routine::start_now(&stores, ctx.settings(), date, rate).await;
    let run = run.with_context(|| format!("starting the routine of {date}"))?;
    let enqueued = run.enqueued as usize;
    ctx.audit("routine run", format!("date {date}"), enqueued, 0)
        .await?;
    ctx.print(&run, |r| shared::text::routine::run(r, configured, rate))
}

/// `producer schedule`
pub(crate) async fn schedule(ctx: &Ctx) -> anyhow::Result<()> {
    Ok(ctx.run_scheduler(shared::shutdown::on_signal()).await?)
}

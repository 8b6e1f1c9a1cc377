//! `producer routine run` and `producer schedule`: start a routine date by hand, or let a
//! long-running daemon fire it once a day at ROUTINE_AT in ROUTINE_TZ (replicas fire once
//! between them; a due and missing run is caught up on start).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use shared::domain::RoutineDay;
use shared::jobs::{queue_config, AuthorizeJob, AUTHORIZE_QUEUE};
use shared::ledger::Ledger;
use shared::queue::Queue;
use shared::registry::Registry;
use shared::routine::{routine_deadline, start_routine};

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
    /// The routine date: YYYY-MM-DD, today or yesterday (default: today in ROUTINE_TZ).
    #[arg(long, value_name = "DATE")]
    pub date: Option<RoutineDay>,
}

/// `producer schedule`
#[derive(Debug, Args)]
pub struct ScheduleArgs {}

struct Parts {
    registry: Registry,
    ledger: Ledger,
    queue: Queue<AuthorizeJob>,
    conn: shared::redis_conn::RedisConn,
}

async fn parts(ctx: &Ctx) -> anyhow::Result<Parts> {
    let conn = ctx.redis().await?;
    Ok(Parts {
        registry: Registry::new(conn.clone(), &ctx.keys),
        ledger: Ledger::new(conn.clone(), &ctx.keys),
        queue: Queue::new(
            conn.clone(),
            &ctx.keys,
            queue_config(&ctx.settings, AUTHORIZE_QUEUE),
        ),
        conn,
    })
}

pub(crate) async fn run(ctx: &Ctx, cmd: RoutineCommand) -> anyhow::Result<()> {
    let RoutineCommand::Run(args) = cmd;
    run_routine(ctx, args).await
}

/// `producer routine run [--date D]`
async fn run_routine(ctx: &Ctx, args: RoutineRunArgs) -> anyhow::Result<()> {
    let date = ctx.date(args.date);
    let p = parts(ctx).await?;
    let control = shared::control::Control::new(p.conn.clone(), &ctx.keys);
    let rate = control
        .rate_limit(ctx.settings.rate_limit_per_minute)
        .await
        .context("reading the rate limit")?
        .per_minute;
    let deadline = routine_deadline(
        chrono::Utc::now(),
        ctx.settings.routine_deadline,
        ctx.settings.routine_at,
        ctx.settings.routine_tz,
    );
    let run = start_routine(
        &control,
        &p.registry,
        &p.ledger,
        &p.queue,
        date,
        rate,
        deadline,
    )
    .await
    .with_context(|| format!("starting the routine of {date}"))?;
    ctx.audit(
        "routine run",
        format!("date {date}"),
        run.enqueued as usize,
        0,
    )
    .await?;
    if ctx.json {
        return ctx.print_json(&run);
    }
    let configured = ctx.settings.rate_limit_per_minute;
    print!("{}", shared::text::routine::run(&run, configured, rate));
    Ok(())
}

/// `producer schedule`
pub(crate) async fn schedule(ctx: &Ctx, _args: ScheduleArgs) -> anyhow::Result<()> {
    let conn = ctx.redis().await?;
    let shutdown = shared::shutdown::on_signal();
    shared::schedule_daemon::run(conn, &ctx.keys, &ctx.settings, shutdown).await?;
    Ok(())
}

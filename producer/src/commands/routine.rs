//! `producer routine run` and `producer schedule`: start a routine date by hand, or let a
//! long-running daemon fire it once a day at ROUTINE_AT in ROUTINE_TZ (replicas fire once
//! between them; a due and missing run is caught up on start).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use shared::domain::RoutineDay;
use shared::flinks::{FlinksClient, FlinksConfig};
use shared::jobs::{queue_config, AuthorizeJob, AUTHORIZE_QUEUE};
use shared::ledger::Ledger;
use shared::ops::logins::LoginOps;
use shared::queue::Queue;
use shared::registry::Registry;
use shared::routine::{enqueue_routine, DayClaim, RefreshStatusPrecheck, Schedule};

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
    conn: shared::redis_conn::Connection,
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
    let rate = shared::control::Control::new(p.conn.clone(), &ctx.keys)
        .rate_limit(ctx.settings.rate_limit_per_minute)
        .await
        .context("reading the rate limit")?
        .per_minute;
    let run = enqueue_routine(&p.registry, &p.ledger, &p.queue, date, rate)
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
    println!(
        "routine {}: {} active LoginIds, {} enqueued now, {} already queued, {} skipped (listed ineligible by GetNightlyRefreshStatus)",
        run.date, run.active, run.enqueued, run.already_queued, run.skipped_ineligible
    );
    if run.superseded > 0 {
        println!(
            "{} waiting jobs of earlier dates superseded by this date's (recorded as superseded there)",
            run.superseded
        );
    }
    match (run.capacity_per_day, run.coverage_days) {
        (Some(capacity), Some(days)) if run.over_capacity => println!(
            "over capacity: {} active logins, {} a day at {}/min: each login is refreshed once every {} days",
            run.active, capacity, ctx.settings.rate_limit_per_minute, days
        ),
        (Some(capacity), _) => println!(
            "capacity: {} logins a day at {}/min; {} active fit in one day",
            capacity, ctx.settings.rate_limit_per_minute, run.active
        ),
        _ => println!("capacity: unbounded (RATE_LIMIT_PER_MINUTE=0, the limiter is off)"),
    }
    match run.eta_seconds {
        Some(eta) => println!(
            "ETA of the backlog ({} authorize jobs, all dates) at {}/min: {}",
            run.backlog,
            rate,
            humantime::format_duration(std::time::Duration::from_secs(eta))
        ),
        None => println!("ETA: unknown (the rate limit is 0: the limiter is off)"),
    }
    Ok(())
}

/// The GetNightlyRefreshStatus pre-check, when a bearer secret is configured.
fn precheck(ctx: &Ctx, p: &Parts) -> anyhow::Result<Option<RefreshStatusPrecheck>> {
    if ctx.settings.flinks_bearer_secret.is_none() {
        return Ok(None);
    }
    let config = FlinksConfig::from_settings(&ctx.settings)?;
    Ok(Some(RefreshStatusPrecheck {
        client: FlinksClient::new(config).context("Flinks client")?,
        ops: LoginOps::new(p.conn.clone(), &ctx.keys, &ctx.settings),
    }))
}

/// `producer schedule`
pub(crate) async fn schedule(ctx: &Ctx, _args: ScheduleArgs) -> anyhow::Result<()> {
    let p = parts(ctx).await?;
    let shutdown = shared::shutdown::on_signal();
    let metrics = shared::metrics::install().context("metrics recorder")?;
    let ops = shared::ops_http::serve(
        ctx.settings.metrics_addr,
        shared::ops_http::OpsLimits::from_settings(&ctx.settings),
        metrics,
        p.conn.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "cannot serve the ops port on METRICS_ADDR={}",
            ctx.settings.metrics_addr
        )
    })?;
    // The same Redis-sampled gauges as the worker's, so queue depth, routine progress and
    // the deadline stay visible while no worker runs (e.g. before the routine fires).
    let _sampler = shared::gauges::spawn_sampler(
        p.conn.clone(),
        ctx.keys.clone(),
        shared::gauges::SamplerConfig::from_settings(&ctx.settings),
        shutdown.clone(),
    );
    let replica = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "producer".into()),
        std::process::id()
    );
    let schedule = Schedule {
        claim: DayClaim::new(p.conn.clone(), &ctx.keys, replica),
        at: ctx.settings.routine_at,
        tz: ctx.settings.routine_tz,
        rate_per_minute: ctx.settings.rate_limit_per_minute,
        precheck: precheck(ctx, &p)?,
    };
    tracing::info!(
        at = %ctx.settings.routine_at,
        tz = %ctx.settings.routine_tz,
        ops = %ops,
        "schedule running; fires the routine once a day"
    );
    schedule
        .run(&p.registry, &p.ledger, &p.queue, &shutdown)
        .await;
    Ok(())
}

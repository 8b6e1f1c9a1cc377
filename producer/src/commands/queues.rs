//! `producer queues ...`: stats, a page of jobs or records, one job by id, requeue and
//! purge, over `shared::ops`; pause and resume are in `control`. Mutations are appended to
//! the audit trail.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use shared::domain::{FlinksCode, LoginId, RoutineDay};
use shared::ops::input::{parse_age, parse_logins};
use shared::ops::job::JobAction;
use shared::ops::list::{ListRequest, ListState, ListTarget};
use shared::ops::requeue::{RequeueOptions, Selection, Source};
use shared::text::queues as text;

use super::control::{QueuesPauseArgs, QueuesResumeArgs};
use super::Ctx;

/// `producer queues ...`
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Per queue: ready, delayed, in flight (per worker), dead letters; re-auth and failed
    /// record counts; worker processes with their last heartbeat.
    Stats,
    /// A page of failed / re-auth records, a queue's jobs (with their age), or the dead
    /// letters. Job listings print the --cursor of the next page.
    List(QueuesListArgs),
    /// One job by id, in whichever queue holds it: state, login, date, attempts, error.
    Show(JobArgs),
    /// Delete one job (ready, delayed or dead; never one a worker holds). A deleted routine
    /// job records no outcome: its login stays pending for that date.
    Delete(JobArgs),
    /// Run one delayed job (a retry or a poll waiting for its time) now: it goes to the
    /// front of its ready list. Exit 2 when the job is not delayed or unknown.
    Promote(JobArgs),
    /// Move failed / re-auth records (or dead letters) back to the authorize queue, with
    /// fresh attempts. Crash-safe and safe to run from two terminals at once: nothing is
    /// lost or enqueued twice; a crashed run is finished by the next one. A login already
    /// refreshed for that date is never requeued; nor is a dead authorize job whose detail
    /// fetch is still running, nor a dead letter of a date whose ledger expired (a --date
    /// like that exits 2). A dead detail job restarts from a fresh authorize. Without a
    /// filter, --all is required. Requeued work still goes through the global rate limit.
    Requeue(RequeueArgs),
    /// Delete failed / re-auth records (the index; the ledger keeps its entries until
    /// they expire) or dead letters older than a duration.
    Purge(PurgeArgs),
    /// Stop workers from fetching a queue (within a second; jobs already running finish).
    /// Enqueueing goes on; the jobs wait until `queues resume`.
    Pause(QueuesPauseArgs),
    /// Let workers fetch a paused queue again.
    Resume(QueuesResumeArgs),
}

/// A job id argument.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job id, as `queues list` prints it.
    #[arg(value_name = "JOB_ID")]
    pub id: String,
}

/// `producer queues list`
#[derive(Debug, Args)]
pub struct QueuesListArgs {
    /// What to list.
    pub target: ListTarget,
    /// Only this FlinksCode (jobs: the last error names it).
    #[arg(long, value_name = "FLINKSCODE")]
    pub code: Option<String>,
    /// Only this routine date: YYYY-MM-DD, today or yesterday.
    #[arg(long, value_name = "DATE")]
    pub date: Option<RoutineDay>,
    /// Only this LoginId.
    #[arg(long, value_name = "ID")]
    pub login: Option<String>,
    /// Only jobs in this state (jobs only; default: every state).
    #[arg(long)]
    pub state: Option<ListState>,
    /// At most this many entries per page.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Continue a job listing where the last page ended (its printed next cursor).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

/// `producer queues requeue`
#[derive(Debug, Args)]
pub struct RequeueArgs {
    /// What to requeue.
    pub source: Source,
    /// Only this LoginId (repeatable).
    #[arg(long = "login", value_name = "ID")]
    pub logins: Vec<String>,
    /// Only records with this FlinksCode (dead: the last error contains it).
    #[arg(long, value_name = "FLINKSCODE")]
    pub code: Option<String>,
    /// Only this routine date: YYYY-MM-DD, today or yesterday.
    #[arg(long, value_name = "DATE")]
    pub date: Option<RoutineDay>,
    /// Requeue everything of the source (required when no filter is given).
    #[arg(long)]
    pub all: bool,
    /// Print what would move; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Dead letters only: also requeue poison letters (payloads the workers could not
    /// decode, e.g. before an upgrade).
    #[arg(long)]
    pub force: bool,
}

/// `producer queues purge`
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// What to purge.
    pub source: Source,
    /// Only entries older than this (e.g. 7d, 36h).
    #[arg(long, value_name = "DURATION", value_parser = parse_age, allow_hyphen_values = true)]
    pub older_than: Duration,
    /// Print how many would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(crate) async fn run(ctx: &Ctx, cmd: QueuesCommand) -> anyhow::Result<()> {
    match cmd {
        QueuesCommand::Stats => {
            let stats = ctx.queue_stats().await.context("reading queue stats")?;
            ctx.print(&stats, |s| {
                let (date, deadline) = (s.routine.date, s.routine.deadline);
                text::stats(&s.snapshot, &s.control, date, deadline)
            })
        }
        QueuesCommand::List(args) => list(ctx, args).await,
        QueuesCommand::Show(args) => job(ctx, JobAction::Show, args).await,
        QueuesCommand::Delete(args) => job(ctx, JobAction::Delete, args).await,
        QueuesCommand::Promote(args) => job(ctx, JobAction::Promote, args).await,
        QueuesCommand::Requeue(args) => requeue(ctx, args).await,
        QueuesCommand::Purge(args) => purge(ctx, args).await,
        QueuesCommand::Pause(args) => super::control::pause(ctx, args).await,
        QueuesCommand::Resume(args) => super::control::resume(ctx, args).await,
    }
}

/// `queues show|delete|promote <JOB_ID>`; delete and promote are audited.
async fn job(ctx: &Ctx, action: JobAction, args: JobArgs) -> anyhow::Result<()> {
    let job = ctx.job_ops().await?.apply(action, &args.id).await?;
    if let Some(command) = action.command() {
        ctx.audit(command, action.summary(&job), 1, 0).await?;
    }
    ctx.print(&job, |j| text::job(j, action.done()))
}

async fn list(ctx: &Ctx, args: QueuesListArgs) -> anyhow::Result<()> {
    let request = ListRequest {
        target: args.target,
        state: args.state,
        login: args.login.as_deref().map(LoginId::parse).transpose()?,
        code: args.code.as_deref().map(FlinksCode::parse),
        date: args.date.map(|d| ctx.date(Some(d))),
        limit: args.limit as usize,
        cursor: args.cursor,
    };
    let listing = ctx.list(&request).await?;
    ctx.print(&listing, text::listing)
}

async fn requeue(ctx: &Ctx, args: RequeueArgs) -> anyhow::Result<()> {
    let selection = Selection {
        logins: parse_logins(&args.logins)?,
        code: args.code.as_deref().map(FlinksCode::parse),
        date: args.date.map(|d| ctx.date(Some(d))),
    };
    selection.check(args.source, args.all, args.force)?;
    let options = RequeueOptions {
        dry_run: args.dry_run,
        force: args.force,
        ..RequeueOptions::default()
    };
    let requeuer = ctx.requeuer().await?;
    let run = requeuer.requeue(args.source, &selection, options).await;
    let run = run.with_context(|| format!("requeueing {}", args.source.entries()))?;
    let done = text::Requeued::of(&run);
    ctx.print(&run, |_| done.render(args.source.name()))?;
    for login in run.unmatched(&selection.logins) {
        let (entries, id) = (args.source.entries(), login.as_str());
        eprintln!("warning: no {entries} matched --login {id}; nothing requeued for it");
    }
    if !args.dry_run {
        let summary = selection.summary(args.source, args.code.as_deref(), args.all, args.force);
        ctx.audit("queues requeue", summary, done.count, 0).await?;
    }
    Ok(())
}

async fn purge(ctx: &Ctx, args: PurgeArgs) -> anyhow::Result<()> {
    let requeuer = ctx.requeuer().await?;
    let report = requeuer
        .purge(args.source, args.older_than, args.dry_run)
        .await;
    let report = report.with_context(|| format!("purging {}", args.source.entries()))?;
    ctx.print(&report, |r| text::purge(r, args.older_than))?;
    if !args.dry_run {
        let age = humantime::format_duration(args.older_than);
        let summary = format!("{} --older-than {age}", args.source.name());
        ctx.audit("queues purge", summary, report.total() as usize, 0)
            .await?;
    }
    Ok(())
}

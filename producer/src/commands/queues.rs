//! `producer queues ...`: stats, a page of jobs or records, requeue and purge, over
//! `shared::ops`; the single-job commands are in `jobs`, pause and resume in `control`.
//! Mutations are appended to the audit trail.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use shared::domain::{FlinksCode, LoginId, RoutineDay};
use shared::jobs::{AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::ledger::{IndexFilter, IndexKind};
use shared::ops::list::{self, JobQuery};
use shared::ops::requeue::{PurgeReport, RequeueOptions, Requeuer, Selection};
use shared::ops::stats;
use shared::queue::JobState;

use super::control::{QueuesPauseArgs, QueuesResumeArgs};
use super::jobs::JobArgs;
use super::{Ctx, UsageError};
use crate::cli::parse_age;
use crate::table::{self, col, or_dash};

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

/// What `queues list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListTarget {
    /// The authorize queue's jobs.
    Authorize,
    /// The detail queue's jobs.
    Detail,
    /// Failed records (all dates).
    Failed,
    /// Records needing re-authentication (all dates).
    Reauth,
    /// Dead letters of both queues, with their last error.
    Dead,
}

/// A job state for `queues list --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Ready to run.
    Ready,
    /// Waiting for a retry or a poll.
    Delayed,
    /// Leased to a worker.
    InFlight,
    /// Dead letters.
    Dead,
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
    pub state: Option<StateArg>,
    /// At most this many entries per page.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Continue a job listing where the last page ended (its printed next cursor).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

/// What `queues requeue|purge` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordSource {
    /// Failed records.
    Failed,
    /// Records needing re-authentication.
    Reauth,
    /// Dead letters of the authorize and detail queues.
    Dead,
}

impl RecordSource {
    fn index(self) -> Option<IndexKind> {
        match self {
            Self::Failed => Some(IndexKind::Failed),
            Self::Reauth => Some(IndexKind::Reauth),
            Self::Dead => None,
        }
    }

    fn name(self) -> &'static str {
        self.index().map_or("dead", |k| k.as_str())
    }
}

/// `producer queues requeue`
#[derive(Debug, Args)]
pub struct RequeueArgs {
    /// What to requeue.
    pub source: RecordSource,
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
    pub source: RecordSource,
    /// Only entries older than this (e.g. 7d, 36h).
    #[arg(long, value_name = "DURATION", value_parser = parse_age, allow_hyphen_values = true)]
    pub older_than: Duration,
    /// Print how many would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(crate) async fn run(ctx: &Ctx, cmd: QueuesCommand) -> anyhow::Result<()> {
    match cmd {
        QueuesCommand::Stats => stats(ctx).await,
        QueuesCommand::List(args) => list(ctx, args).await,
        QueuesCommand::Show(args) => super::jobs::show(ctx, args).await,
        QueuesCommand::Delete(args) => super::jobs::delete(ctx, args).await,
        QueuesCommand::Promote(args) => super::jobs::promote(ctx, args).await,
        QueuesCommand::Requeue(args) => requeue(ctx, args).await,
        QueuesCommand::Purge(args) => purge(ctx, args).await,
        QueuesCommand::Pause(args) => super::control::pause(ctx, args).await,
        QueuesCommand::Resume(args) => super::control::resume(ctx, args).await,
    }
}

async fn stats(ctx: &Ctx) -> anyhow::Result<()> {
    let conn = ctx.redis().await?;
    let snap = stats::snapshot(&conn, &ctx.keys, &ctx.settings)
        .await
        .context("reading queue stats")?;
    let control = super::control::view(ctx).await?;
    if ctx.json {
        #[derive(Serialize)]
        struct StatsOut<'a> {
            #[serde(flatten)]
            snap: &'a stats::Snapshot,
            control: &'a super::control::ControlView,
        }
        return ctx.print_json(&StatsOut {
            snap: &snap,
            control: &control,
        });
    }
    print!(
        "{}\n\n",
        table::escape_lines(control.render_text().trim_end())
    );
    let headers = [
        col::QUEUE,
        col::READY,
        col::DELAYED,
        col::IN_FLIGHT,
        col::DEAD,
    ];
    table::print(
        &headers,
        snap.queues.iter().map(|q| {
            let counts = [q.ready, q.delayed, q.in_flight, q.dead];
            let mut row = vec![q.queue.clone()];
            row.extend(counts.iter().map(u64::to_string));
            row
        }),
    );
    println!(
        "\nre-auth records: {}\nfailed records:  {}",
        snap.reauth, snap.failed
    );
    if snap.requeue_pending > 0 {
        println!(
            "requeue pending: {} (a requeue crashed; the next `queues requeue` finishes it)",
            snap.requeue_pending
        );
    }
    let alive = snap.workers.iter().filter(|w| w.alive).count();
    println!("\nworkers: {alive} alive of {} seen", snap.workers.len());
    let in_flight = |worker: &str| -> u64 {
        let on = |q: &stats::QueueSnapshot| q.in_flight_by_worker.get(worker).copied();
        snap.queues.iter().filter_map(on).sum()
    };
    let headers = [
        col::WORKER,
        col::STATUS,
        col::AT,
        col::IN_FLIGHT,
        col::QUEUE,
    ];
    table::print(
        &headers,
        snap.workers.iter().map(|w| {
            vec![
                w.worker.clone(),
                (if w.alive { "alive" } else { "gone" }).to_string(),
                table::ms_time(w.last_heartbeat_ms),
                in_flight(&w.worker).to_string(),
                w.queues.join(","),
            ]
        }),
    );
    Ok(())
}

fn parse_login(raw: Option<&str>) -> anyhow::Result<Option<LoginId>> {
    Ok(raw.map(LoginId::parse).transpose()?)
}

async fn list(ctx: &Ctx, args: QueuesListArgs) -> anyhow::Result<()> {
    let login = parse_login(args.login.as_deref())?;
    let code = args.code.as_deref().map(FlinksCode::parse);
    let date = args.date.map(|d| ctx.date(Some(d)));
    let limit = args.limit as usize;
    let conn = ctx.redis().await?;
    let state = args.state.map(|s| match s {
        StateArg::Ready => JobState::Ready,
        StateArg::Delayed => JobState::Delayed,
        StateArg::InFlight => JobState::InFlight,
        StateArg::Dead => JobState::Dead,
    });
    let mut query = match args.target {
        ListTarget::Failed | ListTarget::Reauth => {
            if args.state.is_some() || args.cursor.is_some() {
                return Err(
                    UsageError("--state and --cursor apply to jobs, not records".into()).into(),
                );
            }
            let kind = if args.target == ListTarget::Failed {
                IndexKind::Failed
            } else {
                IndexKind::Reauth
            };
            let filter = IndexFilter {
                date,
                code,
                login,
                limit: Some(limit),
            };
            let rows = list::records(&conn, &ctx.keys, kind, &filter).await?;
            return print_records(ctx, &rows);
        }
        ListTarget::Dead if state.is_some_and(|s| s != JobState::Dead) => {
            return Err(UsageError("`queues list dead` lists dead letters only".into()).into());
        }
        ListTarget::Dead => JobQuery::dead(),
        ListTarget::Authorize => JobQuery::queue(AUTHORIZE_QUEUE, state),
        ListTarget::Detail => JobQuery::queue(DETAIL_QUEUE, state),
    };
    (query.login, query.date, query.code) = (login, date, code);
    let page = list::jobs(
        &conn,
        &ctx.keys,
        &ctx.settings,
        &query,
        args.cursor.as_deref(),
        limit,
    )
    .await?;
    if ctx.json {
        return ctx.print_json(&page);
    }
    super::jobs::print_jobs(&page.jobs);
    match &page.next_cursor {
        Some(next) => println!("{} job(s); next page: --cursor {next}", page.jobs.len()),
        None => println!("{} job(s)", page.jobs.len()),
    }
    Ok(())
}

fn print_records(ctx: &Ctx, rows: &[list::RecordRow]) -> anyhow::Result<()> {
    if ctx.json {
        return ctx.print_json(&rows);
    }
    let headers = [
        col::LOGIN_ID,
        col::DATE,
        col::ATTEMPTS,
        col::FLINKS_CODE,
        col::AT,
        col::DETAIL,
    ];
    table::print(
        &headers,
        rows.iter().map(|r| {
            let http = r.http_status.map(|s| format!("HTTP {s}"));
            vec![
                r.login_id.clone(),
                r.date.to_string(),
                or_dash(r.attempts),
                or_dash(r.flinks_code.clone().or(http)),
                table::time(r.at),
                r.message.clone().unwrap_or_default(),
            ]
        }),
    );
    println!("{} record(s)", rows.len());
    Ok(())
}

fn selection(ctx: &Ctx, args: &RequeueArgs) -> anyhow::Result<Selection> {
    let selection = Selection {
        logins: super::parse_logins(&args.logins)?,
        code: args.code.as_deref().map(FlinksCode::parse),
        date: args.date.map(|d| ctx.date(Some(d))),
    };
    if selection.is_everything() != args.all {
        let why = if args.all {
            "--all cannot be combined with a filter"
        } else {
            "nothing selected: give --login, --code or --date, or --all to requeue everything"
        };
        return Err(UsageError(why.into()).into());
    }
    if args.force && args.source != RecordSource::Dead {
        let why = "--force applies to dead letters only (a refreshed login is never requeued)";
        return Err(UsageError(why.into()).into());
    }
    Ok(selection)
}

fn summary(args: &RequeueArgs, selection: &Selection) -> String {
    let mut parts = vec![args.source.name().to_string()];
    parts.extend(
        selection
            .logins
            .iter()
            .map(|l| format!("--login {}", l.as_str())),
    );
    parts.extend(args.code.as_ref().map(|c| format!("--code {c}")));
    parts.extend(selection.date.map(|d| format!("--date {d}")));
    parts.extend(args.all.then(|| "--all".to_string()));
    parts.extend(args.force.then(|| "--force".to_string()));
    parts.join(" ")
}

async fn requeue(ctx: &Ctx, args: RequeueArgs) -> anyhow::Result<()> {
    let selection = selection(ctx, &args)?;
    let options = RequeueOptions {
        dry_run: args.dry_run,
        force: args.force,
        ..RequeueOptions::default()
    };
    let requeuer = Requeuer::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let verb = if args.dry_run {
        "would requeue"
    } else {
        "requeued"
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (count, skipped) = match args.source.index() {
        None => {
            let report = requeuer
                .requeue_dead(&selection, options)
                .await
                .context("requeueing dead letters")?;
            if ctx.json {
                ctx.print_json(&report)?;
            }
            for (d, what) in report
                .moved
                .iter()
                .map(|d| (d, verb))
                .chain(report.skipped.iter().map(|d| (d, "skipped")))
            {
                let why = match d.reason {
                    None => String::new(),
                    Some("already_refreshed") => "already refreshed for that date".into(),
                    Some("detail_in_progress") => "its detail fetch is still running".into(),
                    Some("ledger_expired") => "the ledger of that date has expired".into(),
                    Some(_) => "poison payload (--force to requeue)".into(),
                };
                rows.push(vec![
                    what.into(),
                    d.queue.clone(),
                    d.job_id.clone(),
                    or_dash(d.login_id.clone()),
                    or_dash(d.date),
                    why,
                ]);
            }
            (report.moved.len(), report.skipped.len())
        }
        Some(kind) => {
            let report = requeuer
                .requeue_index(kind, &selection, options)
                .await
                .with_context(|| format!("requeueing {} records", kind.as_str()))?;
            if ctx.json {
                ctx.print_json(&report)?;
            }
            let resumed = report.resumed.iter().filter(|m| m.new);
            for m in resumed.clone() {
                let why = format!("left pending by an interrupted requeue; job {}", m.job_id);
                rows.push(vec![
                    "resumed".into(),
                    AUTHORIZE_QUEUE.into(),
                    m.job_id.clone(),
                    m.login_id.as_str().into(),
                    m.date.to_string(),
                    why,
                ]);
            }
            for m in &report.moved {
                rows.push(vec![
                    verb.into(),
                    AUTHORIZE_QUEUE.into(),
                    m.job_id.clone(),
                    m.login_id.as_str().into(),
                    m.date.to_string(),
                    String::new(),
                ]);
            }
            for s in &report.skipped {
                let why = "already refreshed for that date".to_string();
                rows.push(vec![
                    "skipped".into(),
                    "-".into(),
                    "-".into(),
                    s.login_id.as_str().into(),
                    s.date.to_string(),
                    why,
                ]);
            }
            (report.moved.len() + resumed.count(), report.skipped.len())
        }
    };
    if !ctx.json {
        let headers = [
            "RESULT",
            col::QUEUE,
            col::JOB_ID,
            col::LOGIN_ID,
            col::DATE,
            col::DETAIL,
        ];
        table::print(&headers, rows);
        println!(
            "{verb} {count} {} entr(ies) to the authorize queue; skipped {skipped}",
            args.source.name()
        );
    }
    if !args.dry_run {
        ctx.audit("queues requeue", summary(&args, &selection), count, 0)
            .await?;
    }
    Ok(())
}

async fn purge(ctx: &Ctx, args: PurgeArgs) -> anyhow::Result<()> {
    let requeuer = Requeuer::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let removed: Vec<(String, u64)> = match args.source.index() {
        None => requeuer
            .purge_dead(args.older_than, args.dry_run)
            .await
            .context("purging dead letters")?,
        Some(kind) => {
            let n = requeuer
                .purge_index(kind, args.older_than, args.dry_run)
                .await
                .with_context(|| format!("purging {} records", kind.as_str()))?;
            vec![(kind.as_str().to_string(), n)]
        }
    };
    let total: u64 = removed.iter().map(|(_, n)| n).sum();
    let age = humantime::format_duration(args.older_than);
    let report = PurgeReport {
        dry_run: args.dry_run,
        removed,
    };
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        let verb = if args.dry_run {
            "would purge"
        } else {
            "purged"
        };
        for (what, n) in &report.removed {
            let entries = if *n == 1 { "entry" } else { "entries" };
            println!("{verb} {n} {what} {entries} older than {age}");
        }
    }
    if !args.dry_run {
        let summary = format!("{} --older-than {age}", args.source.name());
        ctx.audit("queues purge", summary, total as usize, 0)
            .await?;
    }
    Ok(())
}

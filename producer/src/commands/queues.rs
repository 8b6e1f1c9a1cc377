//! `producer queues stats|list|requeue|purge`: thin wrappers over `shared::ops` that print
//! tables (or JSON with `--json`) and append mutating runs to the audit trail.

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use shared::domain::{FlinksCode, LoginId};
use shared::jobs::{queue_config, AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::ledger::{IndexFilter, IndexKind, Ledger, LedgerOutcome};
use shared::ops::requeue::{RequeueOptions, Requeuer, Selection};
use shared::ops::stats;
use shared::ops::OpsError;
use shared::queue::{JobFilter, JobInfo, JobState, Queue};

use super::{audit, Ctx, UsageError};
use crate::cli::{
    ListTarget, PurgeArgs, QueuesListArgs, QueuesStatsArgs, RecordSource, RequeueArgs, StateArg,
};

fn ms_time(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `producer queues stats`
pub(crate) async fn stats(ctx: &Ctx, _args: QueuesStatsArgs) -> anyhow::Result<()> {
    let conn = ctx.redis().await?;
    let snap = stats::snapshot(&conn, &ctx.keys, &ctx.settings)
        .await
        .context("reading queue stats")?;
    let control = super::control::view(ctx).await?;
    // The due routine date's deadline: the authorize backlog of that date is called until then.
    let due =
        shared::routine::due_date(Utc::now(), ctx.settings.routine_at, ctx.settings.routine_tz);
    let deadline = shared::control::Control::new(conn.clone(), &ctx.keys)
        .routine_deadline(due)
        .await
        .context("reading the routine deadline")?;
    if ctx.json {
        #[derive(Serialize)]
        struct Deadline {
            date: chrono::NaiveDate,
            deadline: Option<DateTime<Utc>>,
        }
        #[derive(Serialize)]
        struct StatsOut<'a> {
            #[serde(flatten)]
            snap: &'a stats::Snapshot,
            control: &'a super::control::ControlView,
            routine: Deadline,
        }
        return ctx.print_json(&StatsOut {
            snap: &snap,
            control: &control,
            routine: Deadline {
                date: due,
                deadline,
            },
        });
    }
    print!("{}", control.render_text());
    println!(
        "routine:         {due}, deadline {}",
        deadline.map_or("- (none stored)".to_string(), |d| d
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string())
    );
    println!();
    println!(
        "{:<10} {:>8} {:>8} {:>10} {:>6}",
        "QUEUE", "READY", "DELAYED", "IN FLIGHT", "DEAD"
    );
    for q in &snap.queues {
        println!(
            "{:<10} {:>8} {:>8} {:>10} {:>6}",
            q.queue, q.ready, q.delayed, q.in_flight, q.dead
        );
        for (worker, n) in &q.in_flight_by_worker {
            println!("  in flight on {worker}: {n}");
        }
    }
    println!();
    println!("re-auth records: {}", snap.reauth);
    println!("failed records:  {}", snap.failed);
    if snap.requeue_pending > 0 {
        println!(
            "requeue pending: {} (a requeue crashed; the next `queues requeue` finishes it)",
            snap.requeue_pending
        );
    }
    println!();
    let alive = snap.workers.iter().filter(|w| w.alive).count();
    println!("workers: {alive} alive of {} seen", snap.workers.len());
    for w in &snap.workers {
        println!(
            "  {:<40} {:<6} last heartbeat {} UTC ({})",
            w.worker,
            if w.alive { "alive" } else { "gone" },
            ms_time(w.last_heartbeat_ms),
            w.queues.join(",")
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct RecordRow {
    login_id: String,
    date: NaiveDate,
    kind: &'static str,
    attempts: Option<u32>,
    flinks_code: Option<String>,
    http_status: Option<u16>,
    message: Option<String>,
    at: DateTime<Utc>,
}

impl From<shared::ledger::IndexEntry> for RecordRow {
    fn from(e: shared::ledger::IndexEntry) -> Self {
        let (attempts, http_status) = match &e.outcome {
            LedgerOutcome::Failed {
                attempts,
                http_status,
                ..
            } => (Some(*attempts), *http_status),
            _ => (None, None),
        };
        RecordRow {
            login_id: e.login_id.as_str().to_string(),
            date: e.date,
            kind: e.outcome.kind(),
            attempts,
            flinks_code: e.outcome.flinks_code().map(|c| c.as_str().to_string()),
            http_status,
            message: e.outcome.message().map(str::to_string),
            at: e.outcome.at(),
        }
    }
}

#[derive(Serialize)]
struct JobRow {
    queue: String,
    id: String,
    state: &'static str,
    login_id: Option<String>,
    date: Option<NaiveDate>,
    attempts: u32,
    last_error: Option<String>,
    owner: Option<String>,
    /// Delayed: due; in flight: lease deadline; dead: died (ms since the epoch).
    at_ms: Option<u64>,
    /// The raw payload when it does not decode (poison jobs).
    poison_payload: Option<String>,
}

#[derive(Deserialize)]
struct Identity {
    login_id: String,
    routine_date: NaiveDate,
}

fn job_row(queue: &str, job: JobInfo) -> JobRow {
    let identity = serde_json::from_str::<Identity>(&job.payload).ok();
    JobRow {
        queue: queue.to_string(),
        id: job.id.as_str().to_string(),
        state: job.state.as_str(),
        login_id: identity.as_ref().map(|i| i.login_id.clone()),
        date: identity.as_ref().map(|i| i.routine_date),
        attempts: job.attempts,
        last_error: job.last_error,
        owner: job.owner,
        at_ms: job.at_ms,
        poison_payload: identity.is_none().then_some(job.payload),
    }
}

fn parse_login(raw: &str) -> anyhow::Result<LoginId> {
    Ok(LoginId::parse(raw)?)
}

/// `producer queues list <target>`
pub(crate) async fn list(ctx: &Ctx, args: QueuesListArgs) -> anyhow::Result<()> {
    let login = args.login.as_deref().map(parse_login).transpose()?;
    let code = args.code.as_deref().map(FlinksCode::parse);
    let conn = ctx.redis().await?;
    let kind = match args.target {
        ListTarget::Failed => Some(IndexKind::Failed),
        ListTarget::Reauth => Some(IndexKind::Reauth),
        _ => None,
    };
    if let Some(kind) = kind {
        if args.state.is_some() {
            return Err(UsageError("--state applies to queues, not records".into()).into());
        }
        let ledger = Ledger::new(conn, &ctx.keys);
        let filter = IndexFilter {
            date: args.date,
            code,
            login,
            limit: Some(args.limit),
        };
        let entries = match kind {
            IndexKind::Failed => ledger.list_failed(&filter).await?,
            IndexKind::Reauth => ledger.list_reauth(&filter).await?,
        };
        let rows: Vec<RecordRow> = entries.into_iter().map(RecordRow::from).collect();
        if ctx.json {
            return ctx.print_json(&rows);
        }
        println!(
            "{:<36}  {:<10}  {:>8}  {:<24}  {:<20}  MESSAGE",
            "LOGINID", "DATE", "ATTEMPTS", "FLINKSCODE", "AT (UTC)"
        );
        for r in &rows {
            println!(
                "{:<36}  {:<10}  {:>8}  {:<24}  {:<20}  {}",
                r.login_id,
                r.date,
                r.attempts
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.flinks_code
                    .clone()
                    .or(r.http_status.map(|s| format!("HTTP {s}")))
                    .unwrap_or_else(|| "-".into()),
                r.at.format("%Y-%m-%d %H:%M:%S"),
                r.message.as_deref().unwrap_or("")
            );
        }
        println!("{} record(s)", rows.len());
        return Ok(());
    }

    let (queues, states): (Vec<&str>, Vec<JobState>) = match args.target {
        ListTarget::Dead => {
            if args.state.is_some_and(|s| s != StateArg::Dead) {
                return Err(UsageError("`queues list dead` lists dead letters only".into()).into());
            }
            (vec![AUTHORIZE_QUEUE, DETAIL_QUEUE], vec![JobState::Dead])
        }
        target => {
            let queue = if target == ListTarget::Authorize {
                AUTHORIZE_QUEUE
            } else {
                DETAIL_QUEUE
            };
            let states = match args.state {
                None => vec![
                    JobState::Ready,
                    JobState::Delayed,
                    JobState::InFlight,
                    JobState::Dead,
                ],
                Some(StateArg::Ready) => vec![JobState::Ready],
                Some(StateArg::Delayed) => vec![JobState::Delayed],
                Some(StateArg::InFlight) => vec![JobState::InFlight],
                Some(StateArg::Dead) => vec![JobState::Dead],
            };
            (vec![queue], states)
        }
    };
    let filter = JobFilter {
        error_contains: code.as_ref().map(|c| c.as_str().to_string()),
        payload_contains: match (&login, args.date) {
            (Some(l), _) => Some(l.as_str().to_string()),
            (None, Some(d)) => Some(format!("\"routine_date\":\"{d}\"")),
            (None, None) => None,
        },
        ..JobFilter::default()
    };
    let mut rows = Vec::new();
    'outer: for name in queues {
        let queue: Queue<()> =
            Queue::new(conn.clone(), &ctx.keys, queue_config(&ctx.settings, name));
        for state in &states {
            let remaining = args.limit.saturating_sub(rows.len());
            if remaining == 0 {
                break 'outer;
            }
            for job in queue.list(*state, &filter, remaining).await? {
                let row = job_row(name, job);
                if args.date.is_some() && row.date.is_some() && row.date != args.date {
                    continue;
                }
                rows.push(row);
            }
        }
    }
    if ctx.json {
        return ctx.print_json(&rows);
    }
    println!(
        "{:<10} {:<34} {:<9} {:<36} {:<10} {:>3}  {:<20} DETAIL",
        "QUEUE", "ID", "STATE", "LOGINID", "DATE", "ATT", "AT (UTC)"
    );
    for r in &rows {
        let detail = match (&r.last_error, &r.owner, &r.poison_payload) {
            (_, _, Some(raw)) => format!("poison payload: {raw}"),
            (Some(e), _, _) => e.clone(),
            (None, Some(o), _) => format!("worker {o}"),
            _ => String::new(),
        };
        println!(
            "{:<10} {:<34} {:<9} {:<36} {:<10} {:>3}  {:<20} {}",
            r.queue,
            r.id,
            r.state,
            r.login_id.as_deref().unwrap_or("-"),
            r.date.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            r.attempts,
            r.at_ms.map(ms_time).unwrap_or_else(|| "-".into()),
            detail
        );
    }
    println!("{} job(s)", rows.len());
    Ok(())
}

fn selection(args: &RequeueArgs) -> anyhow::Result<Selection> {
    let selection = Selection {
        logins: args
            .logins
            .iter()
            .map(|l| parse_login(l))
            .collect::<anyhow::Result<_>>()?,
        code: args.code.as_deref().map(FlinksCode::parse),
        date: args.date,
    };
    if selection.is_everything() && !args.all {
        return Err(UsageError(
            "nothing selected: give --login, --code or --date, or --all to requeue everything"
                .into(),
        )
        .into());
    }
    if !selection.is_everything() && args.all {
        return Err(UsageError("--all cannot be combined with a filter".into()).into());
    }
    Ok(selection)
}

fn summary(args: &RequeueArgs) -> String {
    let mut parts = vec![format!("{:?}", args.source).to_lowercase()];
    parts.extend(args.logins.iter().map(|l| format!("--login {l}")));
    if let Some(c) = &args.code {
        parts.push(format!("--code {c}"));
    }
    if let Some(d) = args.date {
        parts.push(format!("--date {d}"));
    }
    for (set, flag) in [(args.all, "--all"), (args.force, "--force")] {
        if set {
            parts.push(flag.into());
        }
    }
    parts.join(" ")
}

/// `producer queues requeue <failed|reauth|dead>`
pub(crate) async fn requeue(ctx: &Ctx, actor: &str, args: RequeueArgs) -> anyhow::Result<()> {
    let selection = selection(&args)?;
    if args.force && args.source != RecordSource::Dead {
        return Err(UsageError(
            "--force applies to dead letters only (a refreshed login is never requeued)".into(),
        )
        .into());
    }
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
    let count = match args.source {
        RecordSource::Dead => {
            let report = match requeuer.requeue_dead(&selection, options).await {
                Err(OpsError::LedgerExpired(date)) => {
                    return Err(UsageError(OpsError::LedgerExpired(date).to_string()).into())
                }
                other => other.context("requeueing dead letters")?,
            };
            let n = report.moved.len();
            if ctx.json {
                ctx.print_json(&report)?;
            } else {
                for d in &report.moved {
                    println!(
                        "{verb} {} job {} ({} {})",
                        d.queue,
                        d.job_id,
                        d.login_id.as_deref().unwrap_or("-"),
                        d.date.map(|d| d.to_string()).unwrap_or_default()
                    );
                }
                for d in &report.skipped {
                    println!(
                        "skipped {} job {} ({}): {}",
                        d.queue,
                        d.job_id,
                        d.login_id.as_deref().unwrap_or("undecodable payload"),
                        match d.reason {
                            Some("already_refreshed") => "already refreshed for that date",
                            Some("detail_in_progress") => "its detail fetch is still running",
                            Some("ledger_expired") => "the ledger of that date has expired",
                            _ => "poison payload (--force to requeue)",
                        }
                    );
                }
                println!(
                    "{verb} {n} dead letter(s); skipped {}",
                    report.skipped.len()
                );
            }
            n
        }
        source => {
            let kind = if source == RecordSource::Failed {
                IndexKind::Failed
            } else {
                IndexKind::Reauth
            };
            let report = requeuer
                .requeue_index(kind, &selection, options)
                .await
                .with_context(|| format!("requeueing {} records", kind.as_str()))?;
            let n = report.moved.len() + report.resumed.iter().filter(|m| m.new).count();
            if ctx.json {
                ctx.print_json(&report)?;
            } else {
                for m in report.resumed.iter().filter(|m| m.new) {
                    println!(
                        "resumed {} {} (left pending by an interrupted requeue) -> job {}",
                        m.login_id.as_str(),
                        m.date,
                        m.job_id
                    );
                }
                for m in &report.moved {
                    println!("{verb} {} {}", m.login_id.as_str(), m.date);
                }
                for s in &report.skipped {
                    println!(
                        "skipped {} {}: already refreshed for that date",
                        s.login_id.as_str(),
                        s.date
                    );
                }
                println!(
                    "{verb} {} {} record(s) to the authorize queue; skipped {}",
                    report.moved.len(),
                    kind.as_str(),
                    report.skipped.len()
                );
            }
            n
        }
    };
    if !args.dry_run {
        audit::record(ctx, actor, "queues requeue", summary(&args), count, 0).await?;
    }
    Ok(())
}

/// `producer queues purge <failed|reauth|dead> --older-than D`
pub(crate) async fn purge(ctx: &Ctx, actor: &str, args: PurgeArgs) -> anyhow::Result<()> {
    let requeuer = Requeuer::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let removed: Vec<(String, u64)> = match args.source {
        RecordSource::Dead => requeuer
            .purge_dead(args.older_than, args.dry_run)
            .await
            .context("purging dead letters")?,
        source => {
            let kind = if source == RecordSource::Failed {
                IndexKind::Failed
            } else {
                IndexKind::Reauth
            };
            let n = requeuer
                .purge_index(kind, args.older_than, args.dry_run)
                .await
                .with_context(|| format!("purging {} records", kind.as_str()))?;
            vec![(kind.as_str().to_string(), n)]
        }
    };
    let total: u64 = removed.iter().map(|(_, n)| n).sum();
    let report = shared::ops::requeue::PurgeReport {
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
            println!(
                "{verb} {n} {what} entr{} older than {}",
                if *n == 1 { "y" } else { "ies" },
                humantime::format_duration(args.older_than)
            );
        }
    }
    if !args.dry_run {
        let summary = format!(
            "{} --older-than {}",
            format!("{:?}", args.source).to_lowercase(),
            humantime::format_duration(args.older_than)
        );
        audit::record(ctx, actor, "queues purge", summary, total as usize, 0).await?;
    }
    Ok(())
}

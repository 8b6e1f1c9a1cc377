//! `producer queues show|delete|promote <JOB_ID>`: one job by id, over
//! `shared::ops::job`, and the job table `queues list` prints too. Delete and promote are
//! audited.

use clap::Args;
use shared::ops::job::JobOps;
use shared::ops::list::JobRow;

use super::Ctx;
use crate::table::{self, col, or_dash};

/// A job id argument.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job id, as `queues list` prints it.
    #[arg(value_name = "JOB_ID")]
    pub id: String,
}

/// Prints jobs as a table; the detail column holds the error, the worker or the payload of
/// a job that names no login.
pub(crate) fn print_jobs(jobs: &[JobRow]) {
    let headers = [
        col::QUEUE,
        col::JOB_ID,
        col::STATE,
        col::LOGIN_ID,
        col::DATE,
        col::ATTEMPTS,
        col::AGE,
        col::AT,
        col::DETAIL,
    ];
    table::print(
        &headers,
        jobs.iter().map(|r| {
            let detail = match (&r.poison_payload, &r.last_error, &r.owner) {
                (Some(raw), _, _) => format!("payload: {raw}"),
                (None, Some(error), _) => error.clone(),
                (None, None, Some(owner)) => format!("worker {owner}"),
                _ => String::new(),
            };
            vec![
                r.queue.clone(),
                r.id.clone(),
                r.state.to_string(),
                or_dash(r.login_id.clone()),
                or_dash(r.date),
                r.attempts.to_string(),
                or_dash(r.age_seconds.map(table::age)),
                or_dash(r.at_ms.map(table::ms_time)),
                detail,
            ]
        }),
    );
}

fn print_one(ctx: &Ctx, job: &JobRow, done: &str) -> anyhow::Result<()> {
    if ctx.json {
        return ctx.print_json(job);
    }
    print_jobs(std::slice::from_ref(job));
    if !done.is_empty() {
        println!("{done} job {} of the {} queue", job.id, job.queue);
    }
    Ok(())
}

pub(crate) async fn show(ctx: &Ctx, args: JobArgs) -> anyhow::Result<()> {
    let job = JobOps::new(&ctx.redis().await?, &ctx.keys, &ctx.settings)
        .show(&args.id)
        .await?;
    print_one(ctx, &job, "")
}

pub(crate) async fn delete(ctx: &Ctx, args: JobArgs) -> anyhow::Result<()> {
    let job = JobOps::new(&ctx.redis().await?, &ctx.keys, &ctx.settings)
        .delete(&args.id)
        .await?;
    let summary = format!("{} {} (was {})", job.queue, job.id, job.state);
    ctx.audit("queues delete", summary, 1, 0).await?;
    print_one(ctx, &job, "deleted")
}

pub(crate) async fn promote(ctx: &Ctx, args: JobArgs) -> anyhow::Result<()> {
    let job = JobOps::new(&ctx.redis().await?, &ctx.keys, &ctx.settings)
        .promote(&args.id)
        .await?;
    ctx.audit("queues promote", format!("{} {}", job.queue, job.id), 1, 0)
        .await?;
    print_one(ctx, &job, "promoted (runs next)")
}

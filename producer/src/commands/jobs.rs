//! `producer queues show|delete|promote <JOB_ID>`: one job by id, over
//! `shared::ops::job`. Delete and promote are
//! audited.

use clap::Args;
use shared::ops::job::JobOps;
use shared::ops::list::JobRow;

use super::Ctx;

/// A job id argument.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job id, as `queues list` prints it.
    #[arg(value_name = "JOB_ID")]
    pub id: String,
}

fn print_one(ctx: &Ctx, job: &JobRow, done: &str) -> anyhow::Result<()> {
    if ctx.json {
        return ctx.print_json(job);
    }
    print!("{}", shared::text::queues::job(job, done));
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

//! `producer report`: the report of one routine date (today in ROUTINE_TZ by default), its
//! ETA at the rate limit in force, and the control state (rate limit, paused queues).

use chrono::Utc;
use clap::Args;
use shared::domain::RoutineDay;
use shared::jobs::{queue_config, AUTHORIZE_QUEUE};
use shared::ledger::Ledger;
use shared::queue::Queue;
use shared::registry::Registry;

use super::Ctx;
use crate::table::escape_lines;

/// `producer report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The routine date: YYYY-MM-DD, today or yesterday (default: today in ROUTINE_TZ).
    #[arg(long, value_name = "DATE")]
    pub date: Option<RoutineDay>,
    /// At most this many LoginIds per list in the text report ("… and N more" after);
    /// `--json` always lists them all.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

pub(crate) async fn run(ctx: &Ctx, args: ReportArgs) -> anyhow::Result<()> {
    let now = Utc::now();
    let date = ctx.date(args.date);
    let control = super::control::view(ctx).await?;
    let conn = ctx.redis().await?;
    let ledger = Ledger::new(conn.clone(), &ctx.keys);
    let registry = Registry::new(conn.clone(), &ctx.keys);
    let queue: Queue<serde_json::Value> = Queue::new(
        conn,
        &ctx.keys,
        queue_config(&ctx.settings, AUTHORIZE_QUEUE),
    );
    let stats = queue.stats().await?;
    let report = shared::report::build(
        &ledger,
        &registry,
        date,
        control.rate_limit.per_minute,
        stats.ready + stats.delayed + stats.in_flight,
        now,
    )
    .await?;
    if ctx.json {
        #[derive(serde::Serialize)]
        struct ReportOut<'a> {
            #[serde(flatten)]
            report: &'a shared::report::Report,
            control: &'a super::control::ControlView,
        }
        return ctx.print_json(&ReportOut {
            report: &report,
            control: &control,
        });
    }
    print!("{}", escape_lines(&report.render_text(args.limit)));
    print!("\n{}", escape_lines(&control.render_text()));
    Ok(())
}

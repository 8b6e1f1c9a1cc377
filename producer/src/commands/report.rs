//! `producer report`: the report of one routine date (today in ROUTINE_TZ by default), its
//! ETA at the rate limit in force, and the control state (rate limit, paused queues);
//! `--json --cursor` pages its lists; `--watch` keeps a live view on screen.

use std::io::IsTerminal as _;
use std::time::Duration;

use clap::Args;
use shared::domain::RoutineDay;
use shared::ops::input::parse_interval;
use shared::ops::watch::Watch;

use super::Ctx;
use crate::UsageError;

/// `producer report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The routine date: YYYY-MM-DD, today or yesterday (default: today in ROUTINE_TZ).
    #[arg(long, value_name = "DATE")]
    pub date: Option<RoutineDay>,
    /// At most this many LoginIds per list in the text report ("… and N more" after);
    /// `--json` lists them all, or this many listed logins per page with `--cursor`.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Page the JSON report's lists: `start`, then the `next_cursor` of the page before
    /// (needs `--json`).
    #[arg(long, value_name = "CURSOR", conflicts_with = "watch")]
    pub cursor: Option<shared::report::Cursor>,
    /// Keep the report on screen: redraw it in place every `--interval` on a terminal,
    /// print one line per interval otherwise. Ctrl-C stops.
    #[arg(long)]
    pub watch: bool,
    /// Time between two `--watch` updates (100ms to 1h).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval, requires = "watch")]
    pub interval: Duration,
}

pub(crate) async fn run(ctx: &Ctx, args: ReportArgs) -> anyhow::Result<()> {
    if args.cursor.is_some() && !ctx.json {
        return Err(UsageError("--cursor pages the JSON report: add --json".into()).into());
    }
    if args.watch {
        return watch(ctx, &args).await;
    }
    let reading = ctx.reading(ctx.date(args.date)).await?;
    let json = reading.json(args.cursor.as_ref(), args.limit);
    ctx.print(&json, |_| reading.render_text(args.limit))
}

/// Shows the live view every `--interval` until ctrl-c or SIGTERM.
async fn watch(ctx: &Ctx, args: &ReportArgs) -> anyhow::Result<()> {
    let watch = Watch {
        day: args.date,
        interval: args.interval,
        json: ctx.json,
        terminal: std::io::stdout().is_terminal(),
    };
    let stop = shared::shutdown::on_signal();
    let (out, errors) = (&mut std::io::stdout(), &mut std::io::stderr());
    Ok(shared::ops::watch::watch(ctx, watch, &stop, out, errors).await?)
}

//! `producer report`: the report of one routine date (today in ROUTINE_TZ by default), its
//! ETA at the rate limit in force, and the control state (rate limit, paused queues);
//! `--json --cursor` pages its lists; `--watch` keeps a live view on screen.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use shared::domain::RoutineDay;
use shared::jobs::AUTHORIZE_QUEUE;
use shared::ledger::Ledger;
use shared::live::LiveView;
use shared::ops::stats;
use shared::registry::Registry;

use super::{Ctx, UsageError};
use shared::text::escape_lines;

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

/// Parses `--interval`: a humantime duration from 100 ms to an hour.
fn parse_interval(raw: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("expected a duration like 5s or 1m ({e})"))?;
    if !(Duration::from_millis(100)..=Duration::from_secs(3_600)).contains(&interval) {
        return Err("expected a duration from 100ms to 1h".into());
    }
    Ok(interval)
}

/// One reading of everything the report and the live view show.
struct Reading {
    report: shared::report::Report,
    control: super::control::ControlView,
    snapshot: stats::Snapshot,
}

async fn read(ctx: &Ctx, day: Option<RoutineDay>) -> anyhow::Result<Reading> {
    let now = Utc::now();
    let date = ctx.date(day);
    let control = super::control::view(ctx).await?;
    let conn = ctx.redis().await?;
    let snapshot = stats::snapshot(&conn, &ctx.keys, ctx.settings.worker_lease).await?;
    let backlog = snapshot
        .queue(AUTHORIZE_QUEUE)
        .map_or(0, |q| q.ready + q.delayed + q.in_flight);
    let mut report = shared::report::build(
        &Ledger::new(conn.clone(), &ctx.keys),
        &Registry::new(conn.clone(), &ctx.keys),
        date,
        control.rate_limit.per_minute,
        backlog,
        now,
    )
    .await?;
    report.deadline = shared::control::Control::new(conn, &ctx.keys)
        .routine_deadline(date)
        .await?;
    Ok(Reading {
        report,
        control,
        snapshot,
    })
}

pub(crate) async fn run(ctx: &Ctx, args: ReportArgs) -> anyhow::Result<()> {
    if args.cursor.is_some() && !ctx.json {
        return Err(UsageError("--cursor pages the JSON report: add --json".into()).into());
    }
    if args.watch {
        return watch(ctx, &args).await;
    }
    let Reading {
        report, control, ..
    } = read(ctx, args.date).await?;
    if ctx.json {
        #[derive(serde::Serialize)]
        struct ReportOut<'a, R: serde::Serialize> {
            #[serde(flatten)]
            report: R,
            control: &'a super::control::ControlView,
        }
        return match &args.cursor {
            Some(cursor) => ctx.print_json(&ReportOut {
                report: report.page(cursor, args.limit),
                control: &control,
            }),
            None => ctx.print_json(&ReportOut {
                report: &report,
                control: &control,
            }),
        };
    }
    print!("{}", escape_lines(&report.render_text(args.limit)));
    print!("\n{}", escape_lines(&control.render_text()));
    Ok(())
}

/// Reads and shows the live view every `--interval` until ctrl-c or SIGTERM. A failed
/// reading is reported on stderr and the next one tried: an eight-hour watch outlives a
/// Redis blip.
async fn watch(ctx: &Ctx, args: &ReportArgs) -> anyhow::Result<()> {
    let stop = shared::shutdown::on_signal();
    let terminal = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(args.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let reading = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            reading = read(ctx, args.date) => reading,
        };
        let reading = match reading {
            Ok(reading) => reading,
            Err(error) => {
                eprintln!("report --watch: {error:#}; trying again");
                continue;
            }
        };
        let paused = reading
            .control
            .pauses
            .iter()
            .filter(|p| p.paused)
            .map(|p| p.queue.clone())
            .collect();
        let view = LiveView::new(
            &reading.report,
            &reading.snapshot,
            reading.control.rate_limit.per_minute,
            reading.report.deadline,
            paused,
        );
        let text = if ctx.json {
            format!("{}\n", serde_json::to_string(&view)?)
        } else if terminal {
            // Home, clear the screen, draw: the frame replaces the previous one.
            format!("\x1b[H\x1b[2J{}", escape_lines(&view.render_frame()))
        } else {
            format!("{}\n", escape_lines(&view.render_line()))
        };
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            // `report --watch | head -3`: the reader is gone, so is the point of watching.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
}

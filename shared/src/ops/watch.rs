//! `producer report --watch`: read and show the live view ([`crate::live`]) every interval
//! until a signal. A failed reading is reported and the next one tried, so an eight-hour
//! watch outlives a Redis blip; a reader that goes away (`report --watch | head -3`) ends
//! the watch quietly, since the point of watching went with it.

use std::io::{ErrorKind, Write};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::session::Session;
use crate::domain::RoutineDay;
use crate::live::LiveView;

/// How to watch.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// The routine date (today in ROUTINE_TZ, read anew at each update, when `None`).
    pub day: Option<RoutineDay>,
    /// Time between two updates.
    pub interval: Duration,
    /// One JSON line per update.
    pub json: bool,
    /// Redraw in place (a terminal) rather than one line per update.
    pub terminal: bool,
}

/// Writes an update to `out` every `watch.interval` until `stop`; a failed reading goes to
/// `errors` as one line with its causes.
pub async fn watch(
    session: &Session,
    watch: Watch,
    stop: &CancellationToken,
    out: &mut impl Write,
    errors: &mut impl Write,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(watch.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let reading = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            reading = session.reading(session.date(watch.day)) => reading,
        };
        let reading = match reading {
            Ok(reading) => reading,
            Err(error) => {
                let mut text = error.to_string();
                let mut cause = std::error::Error::source(&error);
                while let Some(c) = cause {
                    text += &format!(": {c}");
                    cause = c.source();
                }
                writeln!(errors, "report --watch: {text}; trying again")?;
                continue;
            }
        };
        let view = LiveView::of(&reading);
        let text = view.render(watch.json, watch.terminal)?;
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
}

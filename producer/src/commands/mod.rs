//! Command handlers: each module owns its clap `Args` and its `run`, calls `shared` through
//! the command's [`Session`] and prints. Text goes to stdout, JSON (with `--json`) too;
//! progress and warnings go to stderr.

pub(crate) mod audit;
pub(crate) mod console;
pub(crate) mod control;
pub(crate) mod events;
pub(crate) mod logins;
pub(crate) mod queues;
pub(crate) mod report;
pub(crate) mod results;
pub(crate) mod routine;

use anyhow::Context as _;
use serde::Serialize;
use shared::ops::session::Session;

/// What every handler needs: the session (settings, stores, audit trail) and whether to
/// print JSON.
pub(crate) struct Ctx {
    pub(crate) session: Session,
    pub(crate) json: bool,
}

impl std::ops::Deref for Ctx {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

/// Prints stream keys, one a line, or with `--json` as `{"streams": [...]}`.
/// A `--count` of a stream read: a whole number, at least 1 (a page of nothing would
/// print no next position to go on from).
pub(crate) fn page_count(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{raw:?} is not a whole number of at least 1")),
    }
}

pub(crate) fn print_streams(ctx: &Ctx, streams: Vec<String>) -> anyhow::Result<()> {
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "streams": streams }));
    }
    for stream in streams {
        println!("{stream}");
    }
    Ok(())
}

impl Ctx {
    /// Prints `value` as pretty JSON on stdout.
    pub(crate) fn print_json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value).context("encoding JSON output")?;
        println!("{text}");
        Ok(())
    }

    /// Prints `value` as JSON with `--json`, else its `text`.
    pub(crate) fn print<T: Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            return self.print_json(&value);
        }
        print!("{}", text(value));
        Ok(())
    }
}

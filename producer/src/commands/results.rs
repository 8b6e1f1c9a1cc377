//! `producer results read`: reads the results stream (XRANGE) for the customer's
//! consumers, decrypting entries stored encrypted (`RESULTS_ENCRYPTION_KEY`, every key id
//! listed there can be read). With a key configured, entries stored in clear are refused
//! unless `--allow-plaintext`: a plain entry is what someone who can write to Redis would
//! forge. An entry that cannot be read is reported with its stream id and skipped (exit
//! 3), so one bad entry never hides the rest of the page.
//!
//! Output is the account data itself, so it goes to stdout only and is never logged:
//! JSON Lines (one entry a line) by default, one JSON document with `--json`. Paging: the
//! next `--from` value is printed on stderr (text) or as `next` (JSON). It does not ack,
//! trim or consume anything: consumer groups (`XREADGROUP`) remain the customer's.

use clap::{Args, Subcommand};
use serde::Serialize;
use shared::domain::{LoginId, RoutineDay};
use shared::results::{self, EntryError, ReadPolicy, ResultRecord};

use super::{Ctx, PartialFailure, UsageError};

/// `producer results ...`
#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Print results stream entries oldest first (XRANGE), one JSON object per line
    /// (`--json`: one document with `entries` and `next`). Entries stored encrypted are
    /// decrypted with RESULTS_ENCRYPTION_KEY (any key id listed there); with a key set (or
    /// RESULTS_ENCRYPTION_REQUIRED=true), entries stored in clear are refused unless
    /// --allow-plaintext. An entry that cannot be read is reported on stderr (`--json`: in
    /// `errors`) with its id and skipped; the exit code is then 3. With --login and --date,
    /// the one entry of that login's refresh that date (exit 2 when there is none). Reads
    /// only: nothing is acknowledged or trimmed.
    Read(ResultsReadArgs),
}

/// `producer results read`
#[derive(Debug, Args)]
pub struct ResultsReadArgs {
    /// At most this many entries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub count: usize,
    /// First entry id (`-` = the oldest; `(ID` = after ID, as printed for the next page).
    #[arg(long, value_name = "ID", default_value = "-", conflicts_with = "login")]
    pub from: String,
    /// Only the entry of this LoginId's refresh (with --date).
    #[arg(long, value_name = "ID", requires = "date")]
    pub login: Option<String>,
    /// The routine date of --login: YYYY-MM-DD, today or yesterday.
    #[arg(long, value_name = "DATE", requires = "login")]
    pub date: Option<RoutineDay>,
    /// Read entries stored in clear even though RESULTS_ENCRYPTION_KEY is set (e.g. those
    /// written before encryption was turned on).
    #[arg(long)]
    pub allow_plaintext: bool,
}

pub(crate) async fn run(ctx: &Ctx, cmd: ResultsCommand) -> anyhow::Result<()> {
    let ResultsCommand::Read(args) = cmd;
    read(ctx, args).await
}

#[derive(Serialize)]
struct Page {
    entries: Vec<ResultRecord>,
    /// Entries skipped: their stream id and why.
    errors: Vec<EntryError>,
    /// The `--from` value of the next page, `None` when this page was not full.
    next: Option<String>,
}

async fn read(ctx: &Ctx, args: ResultsReadArgs) -> anyhow::Result<()> {
    let conn = ctx.redis().await?;
    let policy = ReadPolicy {
        cipher: ctx.settings.results_cipher.as_ref(),
        allow_plaintext: args.allow_plaintext,
        require_encryption: ctx.settings.results_encryption_required,
    };
    let page = match &args.login {
        Some(raw) => {
            let login = LoginId::parse(raw)?;
            let date = ctx.date(args.date);
            results::read_login(&conn, &ctx.keys, &login, date, policy)
                .await?
                .ok_or_else(|| {
                    let why = "has no refresh with a results entry (not refreshed, or trimmed)";
                    UsageError(format!("LoginId {} on {date} {why}", login.as_str()))
                })?
        }
        None => results::read(&conn, &ctx.keys, &args.from, args.count, policy).await?,
    };
    // The page's last entry, read or skipped, so paging never stops at a bad entry.
    let next = match &page.last_id {
        Some(last) if args.login.is_none() && page.scanned == args.count => {
            Some(format!("({last}"))
        }
        _ => None,
    };
    let failure = (!page.errors.is_empty()).then_some(PartialFailure {
        failed: page.errors.len(),
        total: page.scanned,
    });
    if ctx.json {
        ctx.print_json(&Page {
            entries: page.records,
            errors: page.errors,
            next,
        })?;
    } else {
        for entry in &page.records {
            println!("{}", serde_json::to_string(entry)?);
        }
        for skipped in &page.errors {
            eprintln!("skipped entry {}: {}", skipped.id, skipped.error);
        }
        if let Some(next) = next {
            eprintln!("more entries: --from '{next}'");
        }
    }
    match failure {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}

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

use serde::Serialize;
use shared::results::{self, EntryError, ReadPolicy, ResultRecord};

use super::{Ctx, PartialFailure};
use crate::cli::ResultsReadArgs;

#[derive(Serialize)]
struct Page {
    entries: Vec<ResultRecord>,
    /// Entries skipped: their stream id and why.
    errors: Vec<EntryError>,
    /// The `--from` value of the next page, `None` when this page was not full.
    next: Option<String>,
}

pub(crate) async fn read(ctx: &Ctx, args: ResultsReadArgs) -> anyhow::Result<()> {
    let conn = ctx.redis().await?;
    let policy = ReadPolicy {
        cipher: ctx.settings.results_cipher.as_ref(),
        allow_plaintext: args.allow_plaintext,
        require_encryption: ctx.settings.results_encryption_required,
    };
    let page = results::read(&conn, &ctx.keys, &args.from, args.count, policy).await?;
    // The page's last entry, read or skipped, so paging never stops at a bad entry.
    let next = match &page.last_id {
        Some(last) if page.scanned == args.count => Some(format!("({last}")),
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

//! `producer results read`: reads the results stream (XRANGE) for the customer's
//! consumers, decrypting entries stored encrypted (`RESULTS_ENCRYPTION_KEY`, every key id
//! listed there can be read) and passing plain ones through.
//!
//! Output is the account data itself, so it goes to stdout only and is never logged:
//! JSON Lines (one entry a line) by default, one JSON document with `--json`. Paging: the
//! next `--from` value is printed on stderr (text) or as `next` (JSON). It does not ack,
//! trim or consume anything: consumer groups (`XREADGROUP`) remain the customer's.

use serde::Serialize;
use shared::results::{self, ResultRecord};

use super::Ctx;
use crate::cli::ResultsReadArgs;

#[derive(Serialize)]
struct Page {
    entries: Vec<ResultRecord>,
    /// The `--from` value of the next page, `None` when this page was not full.
    next: Option<String>,
}

pub(crate) async fn read(ctx: &Ctx, args: ResultsReadArgs) -> anyhow::Result<()> {
    let conn = ctx.redis().await?;
    let entries = results::read(
        &conn,
        &ctx.keys,
        &args.from,
        args.count,
        ctx.settings.results_cipher.as_ref(),
    )
    .await?;
    let next = match entries.last() {
        Some(last) if entries.len() == args.count => Some(format!("({}", last.id)),
        _ => None,
    };
    if ctx.json {
        return ctx.print_json(&Page { entries, next });
    }
    for entry in &entries {
        println!("{}", serde_json::to_string(entry)?);
    }
    if let Some(next) = next {
        eprintln!("more entries: --from '{next}'");
    }
    Ok(())
}

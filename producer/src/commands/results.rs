//! `producer results read`: one page of the results streams, decrypted under the read
//! policy of `shared::ops::results`. Output is the account data itself, so it goes to stdout
//! only and is never logged: JSON Lines by default, one JSON document with `--json`; the
//! next `--from` and each skipped entry go to stderr (text) or `next` / `errors` (JSON).
//! Nothing is acked, trimmed or consumed: consumer groups remain the customer's.

use clap::{Args, Subcommand};
use shared::domain::{LoginId, RoutineDay};
use shared::ops::results::ReadRequest;

use super::Ctx;

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
    /// Print the results streams' keys, one a line (`--json`: a document with `streams`):
    /// one stream, or one per ledger bucket with LEDGER_BUCKETS above 1. Consumer groups
    /// are created on each.
    Streams,
}

/// `producer results read`
#[derive(Debug, Args)]
pub struct ResultsReadArgs {
    /// At most this many entries (with LEDGER_BUCKETS above 1, a few more when the page would
    /// end between entries of one id in two streams).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = super::page_count)]
    pub count: usize,
    /// First entry id (`-` = the oldest; `(ID` = after ID, as printed for the next page).
    #[arg(
        long,
        value_name = "ID",
        default_value = "-",
        conflicts_with = "login",
        value_parser = shared::domain::parse_stream_from
    )]
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
    let args = match cmd {
        ResultsCommand::Read(args) => args,
        ResultsCommand::Streams => {
            let results = ctx.stores().await?.results;
            return super::print_streams(ctx, results.stream_keys());
        }
    };
    let login = args.login.as_deref().map(LoginId::parse).transpose()?;
    let request = ReadRequest {
        login: login.map(|l| (l, ctx.date(args.date))),
        from: args.from,
        count: args.count,
        allow_plaintext: args.allow_plaintext,
    };
    let page = ctx.read_results(&request).await?;
    if ctx.json {
        ctx.print_json(&page)?;
    } else {
        print!("{}", shared::text::json_lines(&page.entries)?);
        for skipped in &page.errors {
            eprintln!("skipped entry {}: {}", skipped.id, skipped.error);
        }
        if let Some(next) = &page.next {
            eprintln!("more entries: --from '{next}'");
        }
    }
    Ok(page.partial()?)
}

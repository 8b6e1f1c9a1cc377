//! `producer events read|streams|redeliver`: the outcome events stream for
//! operators and scripts (the customer's services consume it; see `shared::events`). `read`
//! prints events oldest first as JSON Lines (`--json`: one document), the next `--from` on
//! stderr, and acknowledges nothing; `redeliver` resends the webhook's parked batches.

use std::time::Duration;

use clap::{Args, Subcommand};
use shared::events::webhook::{WebhookClient, WebhookConfig};
use shared::events::{EventType, ReadFilter};
use shared::ops::exit::partial;
use shared::ops::input::{ago, parse_age};

use super::Ctx;
use crate::UsageError;

/// `producer events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print outcome events oldest first, one JSON object per line (`--json`: one document
    /// with `events` and `next`). Reads only: nothing is acknowledged or trimmed.
    Read(EventsReadArgs),
    /// Print the events streams' keys, one a line (`--json`: a document with `streams`):
    /// one stream, or one per ledger bucket with LEDGER_BUCKETS above 1. Consumer groups
    /// are created on each.
    Streams,
    /// Send the webhook's dead-letter batches (parked after WEBHOOK_MAX_AGE) again to
    /// WEBHOOK_URL, signed anew; a batch acknowledged with a 2xx leaves the list. Exit 3
    /// when some still fail (they stay parked).
    Redeliver,
}

/// `producer events read`
#[derive(Debug, Args)]
pub struct EventsReadArgs {
    /// Only events of this type (repeatable): needs_reauth, reauth_resolved,
    /// invalid_login, failed, deactivated, activated.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_event_type)]
    pub types: Vec<EventType>,
    /// Only events appended within this age, e.g. 24h or 7d.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub since: Option<Duration>,
    /// At most this many events (with LEDGER_BUCKETS above 1, a few more when the page would
    /// end between events of one id in two streams).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = super::page_count)]
    pub count: usize,
    /// First entry id (`-` = the oldest; `(ID` = after ID, as printed for the next page).
    #[arg(long, value_name = "ID", default_value = "-", value_parser = shared::domain::parse_stream_from)]
    pub from: String,
}

fn parse_event_type(raw: &str) -> Result<EventType, String> {
    EventType::parse(raw).map_err(|e| e.to_string())
}

pub(crate) async fn run(ctx: &Ctx, cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Read(args) => read(ctx, args).await,
        EventsCommand::Streams => {
            let events = ctx.stores().await?.events;
            super::print_streams(ctx, events.stream_keys())
        }
        EventsCommand::Redeliver => redeliver(ctx).await,
    }
}

async fn read(ctx: &Ctx, args: EventsReadArgs) -> anyhow::Result<()> {
    let events = ctx.stores().await?.events;
    let since = args.since.map(|age| ago(chrono::Utc::now(), age));
    let filter = ReadFilter {
        types: args.types,
        since,
    };
    let page = events.read(&args.from, args.count, &filter).await?;
    if ctx.json {
        return ctx.print_json(&page);
    }
    print!("{}", shared::text::json_lines(&page.events)?);
    if let Some(next) = &page.next {
        eprintln!("more events: --from '{next}'");
    }
    Ok(())
}

async fn redeliver(ctx: &Ctx) -> anyhow::Result<()> {
    let config = WebhookConfig::from_settings(ctx.settings()).ok_or_else(|| {
        UsageError("WEBHOOK_URL is not set: there is no webhook to redeliver to".into())
    })?;
    let report = ctx.redeliver(&WebhookClient::new(config)?).await?;
    let failed = report.failed_batches;
    let total = report.delivered_batches + failed;
    ctx.audit("events redeliver", String::new(), total, failed)
        .await?;
    ctx.print(&report, shared::text::redelivered)?;
    if let (false, Some(error)) = (ctx.json, &report.first_error) {
        eprintln!("first failure: {error}");
    }
    Ok(partial(failed, total)?)
}

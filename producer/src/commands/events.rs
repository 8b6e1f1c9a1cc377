//! `producer events read` and `producer events redeliver`: the outcome events stream for
//! operators and scripts (the customer's services consume it with consumer groups or
//! webhooks; see `shared::events`).
//!
//! `read` prints events oldest first: JSON Lines by default (one event a line, easy to pipe
//! into `jq`), one JSON document with `--json`. The next page's `--from` goes to stderr
//! (text) or `next` (JSON). It acknowledges and trims nothing. `redeliver` sends the
//! webhook's parked batches again and is recorded in the audit trail.

use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Args, Subcommand};
use shared::events::webhook::{self, WebhookClient, WebhookConfig};
use shared::events::{EventType, Events, ReadFilter};

use super::{Ctx, PartialFailure, UsageError};
use crate::cli::parse_age;

/// `producer events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print outcome events oldest first, one JSON object per line (`--json`: one document
    /// with `events` and `next`). Reads only: nothing is acknowledged or trimmed.
    Read(EventsReadArgs),
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
    /// At most this many events.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub count: usize,
    /// First entry id (`-` = the oldest; `(ID` = after ID, as printed for the next page).
    #[arg(long, value_name = "ID", default_value = "-")]
    pub from: String,
}

fn parse_event_type(raw: &str) -> Result<EventType, String> {
    EventType::parse(raw).map_err(|e| e.to_string())
}

pub(crate) async fn run(ctx: &Ctx, cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Read(args) => read(ctx, args).await,
        EventsCommand::Redeliver => redeliver(ctx).await,
    }
}

async fn read(ctx: &Ctx, args: EventsReadArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        return Err(UsageError("--count must be at least 1".into()).into());
    }
    let events = Events::new(ctx.redis().await?, &ctx.keys);
    let since = match args.since {
        Some(age) => {
            Some(Utc::now() - chrono::Duration::from_std(age).context("--since is out of range")?)
        }
        None => None,
    };
    let filter = ReadFilter {
        types: args.types,
        since,
    };
    let page = events.read(&args.from, args.count, &filter).await?;
    if ctx.json {
        ctx.print_json(&page)?;
    } else {
        for record in &page.events {
            println!("{}", serde_json::to_string(record)?);
        }
        if let Some(next) = &page.next {
            eprintln!("more events: --from '{next}'");
        }
    }
    Ok(())
}

async fn redeliver(ctx: &Ctx) -> anyhow::Result<()> {
    let config = WebhookConfig::from_settings(&ctx.settings).ok_or_else(|| {
        UsageError("WEBHOOK_URL is not set: there is no webhook to redeliver to".into())
    })?;
    let conn = ctx.redis().await?;
    let client = WebhookClient::new(config)?;
    let report = webhook::redeliver(&conn, &ctx.keys, &client).await?;
    let total = report.delivered_batches + report.failed_batches;
    ctx.audit(
        "events redeliver",
        String::new(),
        total,
        report.failed_batches,
    )
    .await?;
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        println!(
            "{} parked batch(es) delivered ({} events), {} still failing",
            report.delivered_batches, report.delivered_events, report.failed_batches
        );
        if let Some(error) = &report.first_error {
            eprintln!("first failure: {error}");
        }
    }
    if report.failed_batches > 0 {
        return Err(PartialFailure {
            failed: report.failed_batches,
            total,
        }
        .into());
    }
    Ok(())
}

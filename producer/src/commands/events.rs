//! `producer events read` and `producer events redeliver`: the outcome events stream for
//! operators and scripts (the customer's services consume it with consumer groups or
//! webhooks; see `shared::events`).
//!
//! `read` prints events oldest first: JSON Lines by default (one event a line, easy to pipe
//! into `jq`), one JSON document with `--json`. The next page's `--from` goes to stderr
//! (text) or `next` (JSON). It acknowledges and trims nothing. `redeliver` sends the
//! webhook's parked batches again and is recorded in the audit trail.

use anyhow::Context as _;
use chrono::Utc;
use shared::events::webhook::{self, WebhookClient, WebhookConfig};
use shared::events::{Events, ReadFilter};

use super::{audit, Ctx, PartialFailure, UsageError};
use crate::cli::EventsReadArgs;

pub(crate) async fn read(ctx: &Ctx, args: EventsReadArgs) -> anyhow::Result<()> {
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

pub(crate) async fn redeliver(ctx: &Ctx, actor: &str) -> anyhow::Result<()> {
    let config = WebhookConfig::from_settings(&ctx.settings).ok_or_else(|| {
        UsageError("WEBHOOK_URL is not set: there is no webhook to redeliver to".into())
    })?;
    let conn = ctx.redis().await?;
    let client = WebhookClient::new(config)?;
    let report = webhook::redeliver(&conn, &ctx.keys, &client).await?;
    let total = report.delivered_batches + report.failed_batches;
    audit::record(
        ctx,
        actor,
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

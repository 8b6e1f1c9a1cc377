//! `producer logins deactivate|activate|reconnected` and `producer refresh-status`: the
//! login lifecycle commands that call Flinks or re-enqueue work. The logic lives in
//! `shared::ops::logins`; this file validates input, prints each result, appends to the
//! audit trail and turns per-item failures into exit code 3.

use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;
use shared::domain::LoginId;
use shared::flinks::{FlinksClient, FlinksConfig};
use shared::ops::logins::{LoginOps, ScheduleChange};
use tokio_util::sync::CancellationToken;

use super::{parse_logins, partial, Ctx};
use crate::cli::parse_age;

/// `producer logins deactivate`
#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// The LoginIds.
    #[arg(
        value_name = "ID",
        required_unless_present = "idle_since",
        conflicts_with = "idle_since"
    )]
    pub login_ids: Vec<String>,
    /// Instead: every active LoginId without a successful refresh for this long (e.g.
    /// 30d); never-refreshed logins count from when they were added.
    #[arg(long, value_name = "DURATION", value_parser = parse_age, allow_hyphen_values = true)]
    pub idle_since: Option<Duration>,
    /// Print which LoginIds would be deactivated; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait up to this long (e.g. 30s) for Flinks to confirm each change.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// `producer logins activate`
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The LoginIds.
    #[arg(value_name = "ID", required = true)]
    pub login_ids: Vec<String>,
    /// Wait up to this long (e.g. 30s) for Flinks to confirm each change.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// `producer logins reconnected`
#[derive(Debug, Args)]
pub struct ReconnectedArgs {
    /// The LoginIds.
    #[arg(value_name = "ID", required = true)]
    pub login_ids: Vec<String>,
}

/// `producer refresh-status`
#[derive(Debug, Args)]
pub struct RefreshStatusArgs {}

fn flinks(ctx: &Ctx) -> anyhow::Result<FlinksClient> {
    let config = FlinksConfig::from_settings(&ctx.settings)?;
    FlinksClient::new(config).context("Flinks client")
}

async fn set_scheduled(
    ctx: &Ctx,
    command: &str,
    summary: String,
    logins: &[LoginId],
    activate: bool,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let ops = LoginOps::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let shutdown = CancellationToken::new();
    let results = ops
        .set_scheduled_refresh(logins, activate, wait, &shutdown)
        .await
        .with_context(|| command.to_string())?;
    let failed = results.iter().filter(|r| !r.ok).count();
    print_changes(ctx, &results, activate)?;
    ctx.audit(command, summary, results.len() - failed, failed)
        .await?;
    partial(failed, results.len())
}

fn print_changes(ctx: &Ctx, results: &[ScheduleChange], activate: bool) -> anyhow::Result<()> {
    if ctx.json {
        return ctx.print_json(&results);
    }
    let done = if activate { "activated" } else { "deactivated" };
    for r in results {
        let state = r
            .flinks_scheduled_refresh
            .map(|s| s.as_str())
            .unwrap_or("-");
        if r.ok {
            println!(
                "{done} {} (flinks_scheduled_refresh: {state}): {}",
                r.login_id, r.message
            );
        } else {
            println!(
                "FAILED {} (flinks_scheduled_refresh: {state}): {}",
                r.login_id, r.message
            );
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    println!("{} {done}, {failed} failed", results.len() - failed);
    Ok(())
}

/// `producer logins deactivate ID... | --idle-since D`
pub(crate) async fn deactivate(ctx: &Ctx, args: DeactivateArgs) -> anyhow::Result<()> {
    let (logins, summary) = match args.idle_since {
        Some(idle) => {
            let cutoff = Utc::now() - chrono::Duration::from_std(idle).unwrap_or_default();
            let ops = LoginOps::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
            let logins = ops
                .idle_since(cutoff)
                .await
                .context("finding idle logins")?;
            (
                logins,
                format!("--idle-since {}", humantime::format_duration(idle)),
            )
        }
        None => (parse_logins(&args.login_ids)?, args.login_ids.join(" ")),
    };
    if args.dry_run {
        let ids: Vec<&str> = logins.iter().map(LoginId::as_str).collect();
        if ctx.json {
            return ctx.print_json(&ids);
        }
        for id in &ids {
            println!("would deactivate {id}");
        }
        println!("would deactivate {} login(s)", ids.len());
        return Ok(());
    }
    set_scheduled(ctx, "logins deactivate", summary, &logins, false, args.wait).await
}

/// `producer logins activate ID...`
pub(crate) async fn activate(ctx: &Ctx, args: ActivateArgs) -> anyhow::Result<()> {
    let logins = parse_logins(&args.login_ids)?;
    let summary = args.login_ids.join(" ");
    set_scheduled(ctx, "logins activate", summary, &logins, true, args.wait).await
}

/// `producer logins reconnected ID...`
pub(crate) async fn reconnected(ctx: &Ctx, args: ReconnectedArgs) -> anyhow::Result<()> {
    let logins = parse_logins(&args.login_ids)?;
    let ops = LoginOps::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let date = ctx.date(None);
    let mut done = Vec::new();
    let mut unknown = Vec::new();
    for login in &logins {
        match ops
            .reconnected(login, date)
            .await
            .with_context(|| format!("reconnecting {}", login.as_str()))?
        {
            Some(r) => done.push(r),
            None => unknown.push(login.as_str().to_string()),
        }
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "reconnected": done, "unknown": unknown }))?;
    } else {
        for r in &done {
            println!(
                "reconnected {}: cleared {} re-auth record(s), authorize job {} enqueued for {}",
                r.login_id, r.reauth_cleared, r.job_id, r.date
            );
        }
        for id in &unknown {
            println!("FAILED {id}: not registered");
        }
    }
    let summary = args.login_ids.join(" ");
    ctx.audit("logins reconnected", summary, done.len(), unknown.len())
        .await?;
    partial(unknown.len(), logins.len())
}

/// `producer refresh-status`
pub(crate) async fn refresh_status(ctx: &Ctx, _args: RefreshStatusArgs) -> anyhow::Result<()> {
    let client = flinks(ctx)?;
    let cards = client
        .get_nightly_refresh_status()
        .await
        .context("GetNightlyRefreshStatus")?;
    let ops = LoginOps::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let report = ops
        .apply_refresh_status(&cards, ctx.date(None))
        .await
        .context("recording re-auth outcomes")?;
    for id in &report.unknown {
        eprintln!(
            "warning: LoginId {id} is listed by Flinks but not an active login of the registry"
        );
    }
    if report.invalid > 0 {
        eprintln!(
            "warning: {} card(s) without a valid LoginId were ignored",
            report.invalid
        );
    }
    if ctx.json {
        ctx.print_json(&report)?;
    } else {
        println!(
            "{} LoginId(s) listed as no longer eligible; {} marked as needing re-auth for {}; \
             {} already refreshed today; {} unknown",
            report.listed,
            report.marked.len(),
            report.date,
            report.already_refreshed.len(),
            report.unknown.len()
        );
    }
    let summary = format!("date {}", report.date);
    ctx.audit("refresh-status", summary, report.marked.len(), 0)
        .await
}

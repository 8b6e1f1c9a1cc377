//! `producer logins deactivate|activate|reconnected` and `producer refresh-status`: the
//! login lifecycle commands that call Flinks or re-enqueue work. The logic lives in
//! `shared::ops::logins`; this file validates input, prints each result, appends to the
//! audit trail and turns per-item failures into exit code 3.

use anyhow::Context as _;
use chrono::Utc;
use shared::domain::LoginId;
use shared::flinks::{FlinksClient, FlinksConfig};
use shared::ops::logins::{LoginOps, ScheduleChange};
use tokio_util::sync::CancellationToken;

use super::{audit, Ctx, PartialFailure};
use crate::cli::{ActivateArgs, DeactivateArgs, ReconnectedArgs, RefreshStatusArgs};

fn parse_logins(raw: &[String]) -> anyhow::Result<Vec<LoginId>> {
    raw.iter()
        .map(|l| Ok(LoginId::parse(l)?))
        .collect::<anyhow::Result<Vec<_>>>()
}

fn flinks(ctx: &Ctx) -> anyhow::Result<FlinksClient> {
    let config = FlinksConfig::from_settings(&ctx.settings)?;
    FlinksClient::new(config).context("Flinks client")
}

fn today(ctx: &Ctx) -> chrono::NaiveDate {
    Utc::now()
        .with_timezone(&ctx.settings.routine_tz)
        .date_naive()
}

fn partial(failed: usize, total: usize) -> anyhow::Result<()> {
    if failed > 0 {
        return Err(PartialFailure { failed, total }.into());
    }
    Ok(())
}

async fn set_scheduled(
    ctx: &Ctx,
    actor: &str,
    command: &str,
    summary: String,
    logins: &[LoginId],
    activate: bool,
    wait: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let ops = LoginOps::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let shutdown = CancellationToken::new();
    let results = ops
        .set_scheduled_refresh(logins, activate, wait, &shutdown)
        .await
        .with_context(|| command.to_string())?;
    let failed = results.iter().filter(|r| !r.ok).count();
    print_changes(ctx, &results, activate)?;
    audit::record(ctx, actor, command, summary, results.len() - failed, failed).await?;
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
pub(crate) async fn deactivate(ctx: &Ctx, actor: &str, args: DeactivateArgs) -> anyhow::Result<()> {
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
    set_scheduled(
        ctx,
        actor,
        "logins deactivate",
        summary,
        &logins,
        false,
        args.wait,
    )
    .await
}

/// `producer logins activate ID...`
pub(crate) async fn activate(ctx: &Ctx, actor: &str, args: ActivateArgs) -> anyhow::Result<()> {
    let logins = parse_logins(&args.login_ids)?;
    let summary = args.login_ids.join(" ");
    set_scheduled(
        ctx,
        actor,
        "logins activate",
        summary,
        &logins,
        true,
        args.wait,
    )
    .await
}

/// `producer logins reconnected ID...`
pub(crate) async fn reconnected(
    ctx: &Ctx,
    actor: &str,
    args: ReconnectedArgs,
) -> anyhow::Result<()> {
    let logins = parse_logins(&args.login_ids)?;
    let ops = LoginOps::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let date = today(ctx);
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
    audit::record(
        ctx,
        actor,
        "logins reconnected",
        args.login_ids.join(" "),
        done.len(),
        unknown.len(),
    )
    .await?;
    partial(unknown.len(), logins.len())
}

/// `producer refresh-status`
pub(crate) async fn refresh_status(
    ctx: &Ctx,
    actor: &str,
    _args: RefreshStatusArgs,
) -> anyhow::Result<()> {
    let client = flinks(ctx)?;
    let cards = client
        .get_nightly_refresh_status()
        .await
        .context("GetNightlyRefreshStatus")?;
    let ops = LoginOps::new(ctx.redis().await?, &ctx.keys, &ctx.settings);
    let report = ops
        .apply_refresh_status(&cards, today(ctx))
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
    audit::record(
        ctx,
        actor,
        "refresh-status",
        format!("date {}", report.date),
        report.marked.len(),
        0,
    )
    .await
}

//! `producer logins ...` and `producer refresh-status`: import a CSV, add, list, show and
//! look up LoginIds, and the lifecycle commands that call Flinks or re-enqueue work
//! (deactivate, activate, reconnected, refresh-status). The logic lives in
//! `shared::ops::logins`; this file prints each result, appends mutations to the audit
//! trail and turns per-item failures into exit code 3.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use shared::domain::LoginId;
use shared::flinks::{FlinksClient, FlinksConfig};
use shared::import::{self, ImportOptions};
use shared::ops::exit::partial;
use shared::ops::input::{ago, parse_age, parse_logins};
use shared::registry::{LoginFilter, LoginRecordInput};
use shared::text::{self, logins as login_text};
use tokio_util::sync::CancellationToken;

use super::Ctx;

/// `producer logins ...`
#[derive(Debug, Subcommand)]
pub enum LoginsCommand {
    /// Import LoginIds from a CSV file (header `LoginId`, optional `Active`, `Tag`).
    /// Re-importing updates existing logins. Any invalid row fails the whole import
    /// (nothing is written) unless --skip-invalid.
    Import(ImportArgs),
    /// Add or update one LoginId.
    Add(AddArgs),
    /// List LoginIds (the first 100 unless --limit).
    List(ListArgs),
    /// Show one LoginId: status, last outcome, last success, LastRefresh, history.
    Show(LoginArg),
    /// Resolve a LoginId fingerprint from a log line or trace (`lid:…`) to the LoginId,
    /// e.g. to open a Flinks support ticket. Exit 2 when no login or several match.
    Lookup(LookupArgs),
    /// Mark LoginIds inactive; the same registry step queues SetScheduledRefresh
    /// IsActivated=false, which the worker sends (retrying until Flinks confirms). With
    /// --wait, wait for the confirmation; exit 3 if some are unknown, refused or unconfirmed.
    Deactivate(DeactivateArgs),
    /// Mark LoginIds active; queues SetScheduledRefresh IsActivated=true like deactivate.
    Activate(ActivateArgs),
    /// The user reconnected these LoginIds: clear their re-auth state (every date) and
    /// enqueue an authorize job for today (ROUTINE_TZ). Exit 3 if some are unknown.
    Reconnected(ReconnectedArgs),
}

/// `producer logins import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file.
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
    /// Import the valid rows and list the invalid ones instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// `producer logins add`
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The LoginId (a UUID).
    pub login_id: String,
    /// Register it as inactive (not refreshed).
    #[arg(long)]
    pub inactive: bool,
    /// A free-form tag: at most 256 printable characters, as in an import.
    #[arg(long, value_parser = import::check_tag)]
    pub tag: Option<String>,
    /// Refresh priority, 0 to 100: when a day's budget cannot cover every login, higher
    /// priorities are authorized first. Omitted: keep the current one (0 for a new login).
    #[arg(long, value_parser = import::parse_priority)]
    pub priority: Option<u8>,
}

/// `producer logins list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only active logins.
    #[arg(long, conflicts_with = "inactive")]
    pub active: bool,
    /// Only inactive logins.
    #[arg(long, conflicts_with = "flinks_pending")]
    pub inactive: bool,
    /// Only logins whose nightly-refresh change Flinks has not confirmed yet
    /// (flinks_scheduled_refresh pending or failed).
    #[arg(long, conflicts_with = "active")]
    pub flinks_pending: bool,
    /// At most this many logins.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

/// One LoginId argument.
#[derive(Debug, Args)]
pub struct LoginArg {
    /// The LoginId (a UUID).
    pub login_id: String,
}

/// `producer logins lookup`
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The fingerprint as logged (`lid:` and 16 hex characters), or a leading part of at
    /// least 8 hex characters.
    pub fingerprint: String,
}

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
    #[command(flatten)]
    pub ids: ReconnectedArgs,
    /// Wait up to this long (e.g. 30s) for Flinks to confirm each change.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// `producer logins reconnected` (and the LoginIds of `activate`)
#[derive(Debug, Args)]
pub struct ReconnectedArgs {
    /// The LoginIds.
    #[arg(value_name = "ID", required = true)]
    pub login_ids: Vec<String>,
}

pub(crate) async fn run(ctx: &Ctx, cmd: LoginsCommand) -> anyhow::Result<()> {
    match cmd {
        LoginsCommand::Import(args) => import(ctx, args).await,
        LoginsCommand::Add(args) => add(ctx, args).await,
        LoginsCommand::List(args) => {
            let filter = match (args.active, args.inactive, args.flinks_pending) {
                (true, _, _) => LoginFilter::Active,
                (_, true, _) => LoginFilter::Inactive,
                (_, _, true) => LoginFilter::FlinksUnconfirmed,
                _ => LoginFilter::All,
            };
            let logins = ctx.login_ops().await?.list(filter, args.limit).await?;
            ctx.print(&logins, |l| login_text::list(l))
        }
        LoginsCommand::Show(args) => {
            let login = LoginId::parse(&args.login_id)?;
            let detail = ctx.login_ops().await?.show(&login).await?;
            ctx.print(&detail, |d| login_text::show(&d.status, &d.history))
        }
        LoginsCommand::Lookup(args) => {
            let login = ctx.login_ops().await?.lookup(&args.fingerprint).await?;
            let json = serde_json::json!({
                "fingerprint": login.fingerprint(),
                "login_id": login.as_str(),
            });
            ctx.print(&json, |_| format!("{}\n", login.as_str()))
        }
        LoginsCommand::Deactivate(args) => deactivate(ctx, args).await,
        LoginsCommand::Activate(args) => activate(ctx, args).await,
        LoginsCommand::Reconnected(args) => reconnected(ctx, args).await,
    }
}

async fn import(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<()> {
    let options = ImportOptions {
        skip_invalid: args.skip_invalid,
    };
    let parsed = import::parse_file(&args.file, options)?;
    let registry = ctx.stores().await?.registry;
    let bar = if std::io::stderr().is_terminal() {
        let style =
            ProgressStyle::with_template("{bar:40} {pos}/{len} logins ({per_sec}, eta {eta})");
        ProgressBar::new(parsed.records.len() as u64)
            .with_style(style.context("progress bar template")?)
    } else {
        ProgressBar::hidden()
    };
    let written = registry
        .upsert_many_with_progress(&parsed.records, |done| bar.set_position(done))
        .await
        .with_context(|| format!("importing {}", args.file.display()))?;
    bar.finish_and_clear();
    let summary = format!("{} ({} rows)", args.file.display(), parsed.rows);
    let (upserted, skipped) = (written.upserted as usize, parsed.skipped_total);
    ctx.audit("logins import", summary, upserted, skipped)
        .await?;
    let summary = import::ImportSummary::new(&args.file, &parsed, &written);
    if ctx.json {
        return ctx.print_json(&summary);
    }
    for warning in summary.warnings() {
        eprintln!("warning: {}", text::escape(&warning));
    }
    println!("{}", text::escape(&summary.render_text()));
    Ok(())
}

async fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<()> {
    let record = LoginRecordInput {
        login_id: LoginId::parse(&args.login_id)?,
        active: !args.inactive,
        tag: args.tag,
        priority: args.priority,
    };
    let (summary, new) = ctx.login_ops().await?.add(&record).await?;
    let audited = format!("{} active={}", record.login_id.as_str(), record.active);
    ctx.audit("logins add", audited, 1, 0).await?;
    ctx.print(&summary, |s| login_text::added(s, new))
}

async fn set_scheduled(
    ctx: &Ctx,
    command: &str,
    summary: String,
    logins: &[LoginId],
    activate: bool,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let ops = ctx.login_ops().await?;
    let cancel = CancellationToken::new();
    let results = ops.set_scheduled_refresh(logins, activate, wait, &cancel);
    let results = results.await.with_context(|| command.to_string())?;
    let failed = results.iter().filter(|r| !r.ok).count();
    ctx.print(&results, |r| login_text::schedule_changes(r, activate))?;
    ctx.audit(command, summary, results.len() - failed, failed)
        .await?;
    Ok(partial(failed, results.len())?)
}

/// `producer logins deactivate ID... | --idle-since D`
pub(crate) async fn deactivate(ctx: &Ctx, args: DeactivateArgs) -> anyhow::Result<()> {
    let (logins, summary) = match args.idle_since {
        Some(idle) => {
            let ops = ctx.login_ops().await?;
            let logins = ops.idle_since(ago(chrono::Utc::now(), idle)).await;
            let logins = logins.context("finding idle logins")?;
            let summary = format!("--idle-since {}", humantime::format_duration(idle));
            (logins, summary)
        }
        None => (parse_logins(&args.login_ids)?, args.login_ids.join(" ")),
    };
    if args.dry_run {
        let ids: Vec<&str> = logins.iter().map(LoginId::as_str).collect();
        return ctx.print(&ids, |ids| login_text::would_deactivate(ids));
    }
    set_scheduled(ctx, "logins deactivate", summary, &logins, false, args.wait).await
}

/// `producer logins activate ID...`
pub(crate) async fn activate(ctx: &Ctx, args: ActivateArgs) -> anyhow::Result<()> {
    let logins = parse_logins(&args.ids.login_ids)?;
    let summary = args.ids.login_ids.join(" ");
    set_scheduled(ctx, "logins activate", summary, &logins, true, args.wait).await
}

/// `producer logins reconnected ID...`
pub(crate) async fn reconnected(ctx: &Ctx, args: ReconnectedArgs) -> anyhow::Result<()> {
    let logins = parse_logins(&args.login_ids)?;
    let ops = ctx.login_ops().await?;
    let report = ops.reconnect_all(&logins, ctx.date(None)).await?;
    // As a JSON value: its objects print with sorted keys, as they always have.
    let json = serde_json::to_value(&report)?;
    ctx.print(&json, |_| {
        login_text::reconnected(&report.reconnected, &report.unknown)
    })?;
    let (done, unknown) = (report.reconnected.len(), report.unknown.len());
    let summary = args.login_ids.join(" ");
    ctx.audit("logins reconnected", summary, done, unknown)
        .await?;
    Ok(partial(unknown, logins.len())?)
}

/// `producer refresh-status`
pub(crate) async fn refresh_status(ctx: &Ctx) -> anyhow::Result<()> {
    let config = FlinksConfig::from_settings(ctx.settings())?;
    let client = FlinksClient::new(config).context("Flinks client")?;
    let cards = client.get_nightly_refresh_status().await;
    let cards = cards.context("GetNightlyRefreshStatus")?;
    let ops = ctx.login_ops().await?;
    let report = ops.apply_refresh_status(&cards, ctx.date(None)).await;
    let report = report.context("recording re-auth outcomes")?;
    let (warnings, summary) = login_text::refresh_status(&report);
    eprint!("{warnings}");
    ctx.print(&report, |_| summary)?;
    let summary = format!("date {}", report.date);
    ctx.audit("refresh-status", summary, report.marked.len(), 0)
        .await?;
    Ok(())
}

//! `producer logins ...`: import a CSV, add, list, show and look up LoginIds; the
//! lifecycle subcommands (deactivate, activate, reconnected) are in `ops_logins`. Import
//! and add are audited.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shared::domain::{Fingerprint, LoginId};
use shared::import::{self, ImportOptions};
use shared::registry::{LoginFilter, LoginRecordInput, LoginSummary, Registry};
use shared::scheduled_refresh::ScheduledRefreshState;

use super::ops_logins::{ActivateArgs, DeactivateArgs, ReconnectedArgs};
use super::{Ctx, UsageError};
use crate::table::{self, col, or_dash};

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
    /// A free-form tag.
    #[arg(long)]
    pub tag: Option<String>,
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

pub(crate) async fn run(ctx: &Ctx, cmd: LoginsCommand) -> anyhow::Result<()> {
    use super::ops_logins as ops;
    match cmd {
        LoginsCommand::Import(args) => import(ctx, args).await,
        LoginsCommand::Add(args) => add(ctx, args).await,
        LoginsCommand::List(args) => list(ctx, args).await,
        LoginsCommand::Show(args) => show(ctx, args).await,
        LoginsCommand::Lookup(args) => lookup(ctx, args).await,
        LoginsCommand::Deactivate(args) => ops::deactivate(ctx, args).await,
        LoginsCommand::Activate(args) => ops::activate(ctx, args).await,
        LoginsCommand::Reconnected(args) => ops::reconnected(ctx, args).await,
    }
}

/// Logins fetched per SSCAN page when listing.
const LIST_PAGE: usize = 1_000;

async fn import(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<()> {
    let options = ImportOptions {
        skip_invalid: args.skip_invalid,
    };
    let parsed = import::parse_file(&args.file, options)?;
    let registry = Registry::new(ctx.redis().await?, &ctx.keys);
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(parsed.records.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} logins ({per_sec}, eta {eta})")
                .context("progress bar template")?,
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let written = registry
        .upsert_many_with_progress(&parsed.records, |done| bar.set_position(done))
        .await
        .with_context(|| format!("importing {}", args.file.display()))?;
    bar.finish_and_clear();
    let summary = format!("{} ({} rows)", args.file.display(), parsed.rows);
    ctx.audit(
        "logins import",
        summary,
        written.upserted as usize,
        parsed.skipped_total,
    )
    .await?;
    let summary = import::ImportSummary::new(&args.file, &parsed, &written);
    if ctx.json {
        return ctx.print_json(&summary);
    }
    for warning in summary.warnings() {
        eprintln!("warning: {}", crate::table::escape(&warning));
    }
    println!("{}", crate::table::escape(&summary.render_text()));
    Ok(())
}

fn parse_login(raw: &str) -> anyhow::Result<LoginId> {
    Ok(LoginId::parse(raw)?)
}

async fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<()> {
    let record = LoginRecordInput {
        login_id: parse_login(&args.login_id)?,
        active: !args.inactive,
        tag: args.tag,
    };
    let registry = Registry::new(ctx.redis().await?, &ctx.keys);
    let written = registry.add(&record).await?;
    let summary = format!("{} active={}", record.login_id.as_str(), record.active);
    ctx.audit("logins add", summary, 1, 0).await?;
    let state = registry
        .get(&record.login_id)
        .await?
        .and_then(|s| s.flinks_scheduled_refresh);
    let summary = LoginSummary {
        login_id: record.login_id,
        active: record.active,
        tag: record.tag,
        flinks_scheduled_refresh: state,
    };
    if ctx.json {
        return ctx.print_json(&summary);
    }
    println!(
        "{} {} ({}, flinks_scheduled_refresh: {})",
        if written.new > 0 { "added" } else { "updated" },
        summary.login_id.as_str(),
        if summary.active { "active" } else { "inactive" },
        flinks_state(summary.flinks_scheduled_refresh)
    );
    Ok(())
}

async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let filter = match (args.active, args.inactive, args.flinks_pending) {
        (true, _, _) => LoginFilter::Active,
        (_, true, _) => LoginFilter::Inactive,
        (_, _, true) => LoginFilter::FlinksUnconfirmed,
        _ => LoginFilter::All,
    };
    let limit = args.limit;
    let registry = Registry::new(ctx.redis().await?, &ctx.keys);
    let mut logins = Vec::new();
    let mut cursor = 0;
    while logins.len() < limit {
        let page = registry.list(filter, cursor, LIST_PAGE.min(limit)).await?;
        logins.extend(page.logins);
        match page.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    logins.truncate(limit);
    if ctx.json {
        return ctx.print_json(&logins);
    }
    let headers = [col::LOGIN_ID, col::STATUS, col::FLINKS, col::TAG];
    table::print(
        &headers,
        logins.iter().map(|l| {
            let status = if l.active { "active" } else { "inactive" };
            let flinks = flinks_state(l.flinks_scheduled_refresh);
            let tag = l.tag.clone().unwrap_or_default();
            vec![
                l.login_id.as_str().to_string(),
                status.into(),
                flinks.into(),
                tag,
            ]
        }),
    );
    Ok(())
}

/// `flinks_scheduled_refresh` as shown: on, off, pending, failed, or `-` when unknown.
fn flinks_state(state: Option<ScheduledRefreshState>) -> &'static str {
    state.map(ScheduledRefreshState::as_str).unwrap_or("-")
}

#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    status: shared::registry::LoginStatus,
    history: Vec<shared::ledger::LedgerOutcome>,
}

async fn lookup(ctx: &Ctx, args: LookupArgs) -> anyhow::Result<()> {
    let fingerprint = Fingerprint::parse(&args.fingerprint).map_err(UsageError)?;
    let registry = Registry::new(ctx.redis().await?, &ctx.keys);
    let found = registry.find_by_fingerprint(&fingerprint).await?;
    match found.as_slice() {
        [] => Err(UsageError(format!(
            "no registered LoginId has the fingerprint {}",
            args.fingerprint.trim()
        ))
        .into()),
        [login] if ctx.json => ctx.print_json(&serde_json::json!({
            "fingerprint": login.fingerprint(),
            "login_id": login.as_str(),
        })),
        [login] => {
            println!("{}", login.as_str());
            Ok(())
        }
        several => Err(UsageError(format!(
            "{} registered LoginIds match the fingerprint {}; give more of it",
            several.len(),
            args.fingerprint.trim()
        ))
        .into()),
    }
}

async fn show(ctx: &Ctx, args: LoginArg) -> anyhow::Result<()> {
    let login = parse_login(&args.login_id)?;
    let registry = Registry::new(ctx.redis().await?, &ctx.keys);
    let Some(status) = registry.get(&login).await? else {
        return Err(UsageError(format!("LoginId {} is not registered", login.as_str())).into());
    };
    let history = registry.history(&login).await?;
    if ctx.json {
        return ctx.print_json(&Shown { status, history });
    }
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| or_dash(t.map(table::time));
    let mut pairs = vec![
        ("login id", login.as_str().to_string()),
        (
            "status",
            (if status.active { "active" } else { "inactive" }).into(),
        ),
        (
            "flinks_scheduled_refresh",
            flinks_state(status.flinks_scheduled_refresh).into(),
        ),
        ("flinks error", or_dash(status.flinks_error.as_ref())),
        ("tag", or_dash(status.tag.as_ref())),
        ("added", time(status.added_at)),
        (
            "last outcome",
            format!(
                "{} at {}",
                or_dash(status.last_outcome.as_ref()),
                time(status.last_outcome_at)
            ),
        ),
        ("last success", time(status.last_success_at)),
        ("flinks lastrefresh", or_dash(status.last_refresh)),
        ("stale", or_dash(status.stale)),
        ("last error", or_dash(status.last_error.as_ref())),
    ];
    if let Some(code) = &status.reauth_code {
        let message = status.reauth_message.clone().unwrap_or_default();
        pairs.push(("needs re-auth", format!("{} {message}", code.as_str())));
    }
    table::print(&[], pairs.into_iter().map(|(k, v)| vec![k.to_string(), v]));
    if !history.is_empty() {
        println!("\nhistory (newest first):");
        let headers = [col::AT, col::STATE, col::FLINKS_CODE, col::DETAIL];
        table::print(
            &headers,
            history.iter().map(|o| {
                let code = o.flinks_code().map(|c| c.as_str().to_string());
                vec![
                    table::time(o.at()),
                    o.kind().into(),
                    or_dash(code),
                    o.message().unwrap_or("").into(),
                ]
            }),
        );
    }
    Ok(())
}

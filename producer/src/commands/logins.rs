//! `producer logins ...`: import a CSV, add, list and show LoginIds.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shared::domain::{Fingerprint, LoginId};
use shared::import::{self, ImportOptions, RowError};
use shared::registry::{LoginFilter, LoginRecordInput, LoginSummary, Registry};
use shared::scheduled_refresh::ScheduledRefreshState;

use super::{Ctx, UsageError};
use crate::cli::{AddArgs, ImportArgs, ListArgs, LookupArgs, ShowArgs};

/// Logins fetched per SSCAN page when listing.
const LIST_PAGE: usize = 1_000;

#[derive(Serialize)]
struct ImportSummary<'a> {
    file: String,
    rows: u64,
    imported: u64,
    active: u64,
    inactive: u64,
    new: u64,
    flinks_changes: u64,
    duplicates: u64,
    skipped: usize,
    skipped_rows: &'a [RowError],
}

pub(crate) async fn import(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<()> {
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
    let summary = ImportSummary {
        file: args.file.display().to_string(),
        rows: parsed.rows,
        imported: written.upserted,
        active: written.active,
        inactive: written.inactive,
        new: written.new,
        flinks_changes: written.flinks_changes,
        duplicates: parsed.duplicates,
        skipped: parsed.skipped_total,
        skipped_rows: &parsed.skipped,
    };
    if ctx.json {
        return ctx.print_json(&summary);
    }
    for row in &parsed.skipped {
        eprintln!("warning: skipped {row}");
    }
    if parsed.skipped_total > parsed.skipped.len() {
        eprintln!(
            "warning: ... and {} more skipped rows",
            parsed.skipped_total - parsed.skipped.len()
        );
    }
    if parsed.duplicates > 0 {
        eprintln!(
            "warning: {} duplicate LoginId row(s); the last row of each won",
            parsed.duplicates
        );
    }
    println!(
        "imported {} logins from {} ({} active, {} inactive, {} new); skipped {} invalid row(s); \
         {} nightly-refresh change(s) queued for Flinks",
        summary.imported,
        summary.file,
        summary.active,
        summary.inactive,
        summary.new,
        summary.skipped,
        summary.flinks_changes
    );
    Ok(())
}

fn parse_login(raw: &str) -> anyhow::Result<LoginId> {
    Ok(LoginId::parse(raw)?)
}

pub(crate) async fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<()> {
    let record = LoginRecordInput {
        login_id: parse_login(&args.login_id)?,
        active: !args.inactive,
        tag: args.tag,
        priority: args.priority,
    };
    let registry = Registry::new(ctx.redis().await?, &ctx.keys);
    let written = registry.add(&record).await?;
    let status = registry.get(&record.login_id).await?;
    let summary = LoginSummary {
        login_id: record.login_id,
        active: record.active,
        tag: record.tag,
        priority: status.as_ref().map_or(0, |s| s.priority),
        flinks_scheduled_refresh: status.and_then(|s| s.flinks_scheduled_refresh),
    };
    if ctx.json {
        return ctx.print_json(&summary);
    }
    println!(
        "{} {} ({}, priority {}, flinks_scheduled_refresh: {})",
        if written.new > 0 { "added" } else { "updated" },
        summary.login_id.as_str(),
        if summary.active { "active" } else { "inactive" },
        summary.priority,
        flinks_state(summary.flinks_scheduled_refresh)
    );
    Ok(())
}

pub(crate) async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let filter = match (args.active, args.inactive, args.flinks_pending) {
        (true, _, _) => LoginFilter::Active,
        (_, true, _) => LoginFilter::Inactive,
        (_, _, true) => LoginFilter::FlinksUnconfirmed,
        _ => LoginFilter::All,
    };
    let limit = args.limit.unwrap_or(usize::MAX);
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
    for login in &logins {
        println!(
            "{}\t{}\tflinks:{}\t{}",
            login.login_id.as_str(),
            if login.active { "active" } else { "inactive" },
            flinks_state(login.flinks_scheduled_refresh),
            login.tag.as_deref().unwrap_or("")
        );
    }
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

/// `producer logins lookup <FINGERPRINT>`
pub(crate) async fn lookup(ctx: &Ctx, args: LookupArgs) -> anyhow::Result<()> {
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

pub(crate) async fn show(ctx: &Ctx, args: ShowArgs) -> anyhow::Result<()> {
    let login = parse_login(&args.login_id)?;
    let registry = Registry::new(ctx.redis().await?, &ctx.keys);
    let Some(status) = registry.get(&login).await? else {
        return Err(UsageError(format!("LoginId {} is not registered", login.as_str())).into());
    };
    let history = registry.history(&login).await?;
    if ctx.json {
        return ctx.print_json(&Shown { status, history });
    }
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
    };
    println!("{:<18}{}", "login id", login.as_str());
    println!(
        "{:<18}{}",
        "status",
        if status.active { "active" } else { "inactive" }
    );
    println!(
        "{:<18}{}",
        "flinks_scheduled_refresh ",
        flinks_state(status.flinks_scheduled_refresh)
    );
    if let Some(error) = &status.flinks_error {
        println!("{:<18}{}", "flinks error", error);
    }
    println!("{:<18}{}", "tag", status.tag.as_deref().unwrap_or("-"));
    println!("{:<18}{}", "priority", status.priority);
    println!("{:<18}{}", "added", time(status.added_at));
    println!(
        "{:<18}{} at {}",
        "last outcome",
        status.last_outcome.as_deref().unwrap_or("-"),
        time(status.last_outcome_at)
    );
    println!("{:<18}{}", "last success", time(status.last_success_at));
    println!(
        "{:<18}{}",
        "flinks lastrefresh",
        status
            .last_refresh
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".into())
    );
    println!(
        "{:<18}{}",
        "stale",
        status
            .stale
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into())
    );
    if let Some(code) = &status.reauth_code {
        println!(
            "{:<18}{} {}",
            "needs re-auth",
            code.as_str(),
            status.reauth_message.as_deref().unwrap_or("")
        );
    }
    if let Some(error) = &status.last_error {
        println!("{:<18}{}", "last error", error);
    }
    if !history.is_empty() {
        println!("history (newest first):");
        for outcome in &history {
            println!(
                "  {}  {:<13}{} {}",
                outcome.at().to_rfc3339(),
                outcome.kind(),
                outcome.flinks_code().map(|c| c.as_str()).unwrap_or(""),
                outcome.message().unwrap_or("")
            );
        }
    }
    Ok(())
}

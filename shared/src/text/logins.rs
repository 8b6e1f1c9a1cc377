//! The text of `producer logins ...` and `producer refresh-status`: one login's status and
//! history, the login list, and the result lines of the lifecycle commands.

use super::{col, or_dash, table, time};
use crate::ledger::LedgerOutcome;
use crate::ops::logins::{Reconnected, RefreshStatusReport, ScheduleChange};
use crate::registry::{LoginStatus, LoginSummary};
use crate::scheduled_refresh::ScheduledRefreshState;

/// `flinks_scheduled_refresh` as shown: on, off, pending, failed, or `-` when unknown.
pub fn flinks_state(state: Option<ScheduledRefreshState>) -> &'static str {
    state.map(ScheduledRefreshState::as_str).unwrap_or("-")
}

fn activity(active: bool) -> &'static str {
    if active {
        "active"
    } else {
        "inactive"
    }
}

/// `logins add`: whether the login was `new`, and its state.
pub fn added(login: &LoginSummary, new: bool) -> String {
    format!(
        "{} {} ({}, priority {}, flinks_scheduled_refresh: {})\n",
        if new { "added" } else { "updated" },
        login.login_id.as_str(),
        activity(login.active),
        login.priority,
        flinks_state(login.flinks_scheduled_refresh)
    )
}

/// `logins list`.
pub fn list(logins: &[LoginSummary]) -> String {
    let headers = [col::LOGIN_ID, col::STATUS, col::FLINKS, col::TAG];
    table(
        &headers,
        logins.iter().map(|l| {
            vec![
                l.login_id.as_str().to_string(),
                activity(l.active).into(),
                flinks_state(l.flinks_scheduled_refresh).into(),
                l.tag.clone().unwrap_or_default(),
            ]
        }),
    )
}

/// `logins show`: the status as name/value pairs, then the history newest first.
pub fn show(status: &LoginStatus, history: &[LedgerOutcome]) -> String {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| or_dash(t.map(time));
    let last_outcome = or_dash(status.last_outcome.as_ref());
    let mut pairs = vec![
        ("login id", status.login_id.as_str().to_string()),
        ("status", activity(status.active).into()),
        (
            "flinks_scheduled_refresh",
            flinks_state(status.flinks_scheduled_refresh).into(),
        ),
        ("flinks error", or_dash(status.flinks_error.as_ref())),
        ("tag", or_dash(status.tag.as_ref())),
        ("priority", status.priority.to_string()),
        ("added", at(status.added_at)),
        (
            "last outcome",
            format!("{last_outcome} at {}", at(status.last_outcome_at)),
        ),
        ("last success", at(status.last_success_at)),
        ("flinks lastrefresh", or_dash(status.last_refresh)),
        ("stale", or_dash(status.stale)),
        ("last error", or_dash(status.last_error.as_ref())),
    ];
    if let Some(code) = &status.reauth_code {
        let message = status.reauth_message.clone().unwrap_or_default();
        pairs.push(("needs re-auth", format!("{} {message}", code.as_str())));
    }
    let mut out = table(&[], pairs.into_iter().map(|(k, v)| vec![k.to_string(), v]));
    if !history.is_empty() {
        out += "\nhistory (newest first):\n";
        let headers = [col::AT, col::STATE, col::FLINKS_CODE, col::DETAIL];
        out += &table(
            &headers,
            history.iter().map(|o| {
                let code = o.flinks_code().map(|c| c.as_str().to_string());
                vec![
                    time(o.at()),
                    o.kind().into(),
                    or_dash(code),
                    o.message().unwrap_or("").into(),
                ]
            }),
        );
    }
    out
}

/// `logins deactivate|activate`: one line per login and a count.
pub fn schedule_changes(results: &[ScheduleChange], activate: bool) -> String {
    let done = if activate { "activated" } else { "deactivated" };
    let mut out = String::new();
    for r in results {
        let state = flinks_state(r.flinks_scheduled_refresh);
        let what = if r.ok { done } else { "FAILED" };
        out += &format!(
            "{what} {} (flinks_scheduled_refresh: {state}): {}\n",
            r.login_id, r.message
        );
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    out + &format!("{} {done}, {failed} failed\n", results.len() - failed)
}

/// `logins deactivate --dry-run`.
pub fn would_deactivate(ids: &[&str]) -> String {
    let lines: String = ids
        .iter()
        .map(|id| format!("would deactivate {id}\n"))
        .collect();
    lines + &format!("would deactivate {} login(s)\n", ids.len())
}

/// `logins reconnected`: one line per login done, one per unknown login.
pub fn reconnected(done: &[Reconnected], unknown: &[String]) -> String {
    let done = done.iter().map(|r| match &r.job_id {
        Some(job) => format!(
            "reconnected {}: cleared {} re-auth record(s), authorize job {} enqueued for {}\n",
            r.login_id, r.reauth_cleared, job, r.date
        ),
        None => format!(
            "reconnected {}: cleared {} re-auth record(s); no authorize job: the login is \
             inactive (`logins activate` it to refresh it)\n",
            r.login_id, r.reauth_cleared
        ),
    });
    let unknown = unknown
        .iter()
        .map(|id| format!("FAILED {id}: not registered\n"));
    done.chain(unknown).collect()
}

/// `refresh-status`: the warnings (for stderr) and the summary line (for stdout).
pub fn refresh_status(report: &RefreshStatusReport) -> (String, String) {
    let mut warnings: String = report
        .unknown
        .iter()
        .map(|id| {
            format!(
                "warning: LoginId {id} is listed by Flinks but not an active login of the registry\n"
            )
        })
        .collect();
    if report.invalid > 0 {
        warnings += &format!(
            "warning: {} card(s) without a valid LoginId were ignored\n",
            report.invalid
        );
    }
    let summary = format!(
        "{} LoginId(s) listed as no longer eligible; {} marked as needing re-auth for {}; \
         {} already refreshed today; {} unknown\n",
        report.listed,
        report.marked.len(),
        report.date,
        report.already_refreshed.len(),
        report.unknown.len()
    );
    (warnings, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(ok: bool) -> ScheduleChange {
        ScheduleChange {
            login_id: "L1".into(),
            ok,
            flinks_scheduled_refresh: None,
            message: "m".into(),
        }
    }

    #[test]
    fn schedule_changes_name_each_login_and_count_failures() {
        let text = schedule_changes(&[change(true), change(false)], false);
        assert_eq!(
            text,
            "deactivated L1 (flinks_scheduled_refresh: -): m\n\
             FAILED L1 (flinks_scheduled_refresh: -): m\n\
             1 deactivated, 1 failed\n"
        );
    }

    #[test]
    fn a_dry_run_deactivation_lists_and_counts() {
        assert_eq!(
            would_deactivate(&["a", "b"]),
            "would deactivate a\nwould deactivate b\nwould deactivate 2 login(s)\n"
        );
    }

    #[test]
    fn unknown_logins_of_a_refresh_status_are_warnings() {
        let report = RefreshStatusReport {
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            listed: 2,
            marked: vec!["a".into()],
            already_refreshed: vec![],
            unknown: vec!["b".into()],
            invalid: 1,
        };
        let (warnings, summary) = refresh_status(&report);
        assert_eq!(warnings.lines().count(), 2);
        assert!(warnings.contains("LoginId b is listed by Flinks"));
        assert!(summary.starts_with("2 LoginId(s) listed as no longer eligible; 1 marked"));
    }
}

//! The text of `producer queues ...`: stats, job and record listings, requeue and purge.

use std::time::Duration;

use chrono::NaiveDate;

use super::{age, col, escape_lines, ms_time, or_dash, table, time};
use crate::control::ControlView;
use crate::domain::LoginId;
use crate::jobs::AUTHORIZE_QUEUE;
use crate::ops::list::{JobPage, JobRow, Listing, RecordRow};
use crate::ops::requeue::{DeadRequeueReport, PurgeReport, RequeueReport, RequeueRun};
use crate::ops::stats::{QueueSnapshot, Snapshot};

/// `queues stats`: the control section, per-queue counts, record counts and workers.
pub fn stats(
    snap: &Snapshot,
    control: &ControlView,
    due: chrono::NaiveDate,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    let mut out = format!("{}\n", escape_lines(control.render_text().trim_end()));
    out.push_str(&format!(
        "routine:         {due}, deadline {}\n\n",
        deadline.map_or("- (none stored)".to_string(), |d| d
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string())
    ));
    let headers = [
        col::QUEUE,
        col::READY,
        col::DELAYED,
        col::IN_FLIGHT,
        col::DEAD,
    ];
    out += &table(
        &headers,
        snap.queues.iter().map(|q| {
            let counts = [q.ready, q.delayed, q.in_flight, q.dead];
            let mut row = vec![q.queue.clone()];
            row.extend(counts.iter().map(u64::to_string));
            row
        }),
    );
    out += &format!(
        "\nre-auth records: {}\nfailed records:  {}\n",
        snap.reauth, snap.failed
    );
    if snap.requeue_pending > 0 {
        out += &format!(
            "requeue pending: {} (a requeue crashed; the next `queues requeue` finishes it)\n",
            snap.requeue_pending
        );
    }
    let alive = snap.workers.iter().filter(|w| w.alive).count();
    out += &format!("\nworkers: {alive} alive of {} seen\n", snap.workers.len());
    let in_flight = |worker: &str| -> u64 {
        let on = |q: &QueueSnapshot| q.in_flight_by_worker.get(worker).copied();
        snap.queues.iter().filter_map(on).sum()
    };
    let headers = [
        col::WORKER,
        col::STATUS,
        col::AT,
        col::IN_FLIGHT,
        col::QUEUE,
    ];
    out += &table(
        &headers,
        snap.workers.iter().map(|w| {
            vec![
                w.worker.clone(),
                (if w.alive { "alive" } else { "gone" }).to_string(),
                ms_time(w.last_heartbeat_ms),
                in_flight(&w.worker).to_string(),
                w.queues.join(","),
            ]
        }),
    );
    out
}

/// Jobs as a table; the detail column holds the error, the worker or the payload of a job
/// that names no login.
pub fn jobs(jobs: &[JobRow]) -> String {
    let headers = [
        col::QUEUE,
        col::JOB_ID,
        col::STATE,
        col::LOGIN_ID,
        col::DATE,
        col::ATTEMPTS,
        col::AGE,
        col::AT,
        col::DETAIL,
    ];
    table(
        &headers,
        jobs.iter().map(|r| {
            let detail = match (&r.poison_payload, &r.last_error, &r.owner) {
                (Some(raw), _, _) => format!("payload: {raw}"),
                (None, Some(error), _) => error.clone(),
                (None, None, Some(owner)) => format!("worker {owner}"),
                _ => String::new(),
            };
            vec![
                r.queue.clone(),
                r.id.clone(),
                r.state.to_string(),
                or_dash(r.login_id.clone()),
                or_dash(r.date),
                r.attempts.to_string(),
                or_dash(r.age_seconds.map(age)),
                or_dash(r.at_ms.map(ms_time)),
                detail,
            ]
        }),
    )
}

/// One page of `queues list <queue>`, with the cursor of the next page.
pub fn job_page(page: &JobPage) -> String {
    let count = page.jobs.len();
    let footer = match &page.next_cursor {
        Some(next) => format!("{count} job(s); next page: --cursor {next}\n"),
        None => format!("{count} job(s)\n"),
    };
    jobs(&page.jobs) + &footer
}

/// One job after `queues show|delete|promote`; `done` (empty for show) says what happened.
pub fn job(job: &JobRow, done: &str) -> String {
    let mut out = jobs(std::slice::from_ref(job));
    if !done.is_empty() {
        out += &format!("{done} job {} of the {} queue\n", job.id, job.queue);
    }
    out
}

/// `queues list failed|reauth`.
pub fn records(rows: &[RecordRow]) -> String {
    let headers = [
        col::LOGIN_ID,
        col::DATE,
        col::ATTEMPTS,
        col::FLINKS_CODE,
        col::AT,
        col::DETAIL,
    ];
    let text = table(
        &headers,
        rows.iter().map(|r| {
            let http = r.http_status.map(|s| format!("HTTP {s}"));
            vec![
                r.login_id.clone(),
                r.date.to_string(),
                or_dash(r.attempts),
                or_dash(r.flinks_code.clone().or(http)),
                time(r.at),
                r.message.clone().unwrap_or_default(),
            ]
        }),
    );
    text + &format!("{} record(s)\n", rows.len())
}

/// `queues list`: the records' table or the page of jobs.
pub fn listing(listing: &Listing) -> String {
    match listing {
        Listing::Records(rows) => records(rows),
        Listing::Jobs(page) => job_page(page),
    }
}

/// Why a requeue leaves an inactive login's entry where it is.
const INACTIVE_WHY: &str = "inactive: not refreshed until `logins activate`";

/// What a requeue did, one row per entry, and how many it moved (the audited count).
#[derive(Debug, Default)]
pub struct Requeued {
    rows: Vec<Vec<String>>,
    /// Entries moved (or that would move), resumed ones included.
    pub count: usize,
    /// Entries left where they were.
    pub skipped: usize,
    dry_run: bool,
}

fn verb(dry_run: bool) -> &'static str {
    if dry_run {
        "would requeue"
    } else {
        "requeued"
    }
}

impl Requeued {
    /// The rows of a dead-letter requeue.
    pub fn dead(report: &DeadRequeueReport) -> Self {
        let verb = verb(report.dry_run);
        let moved = report.moved.iter().map(|d| (d, verb));
        let skipped = report.skipped.iter().map(|d| (d, "skipped"));
        let rows = moved.chain(skipped).map(|(d, what)| {
            let why = match d.reason {
                None => "",
                Some("already_refreshed") => "already refreshed for that date",
                Some("inactive") => INACTIVE_WHY,
                Some("detail_in_progress") => "its detail fetch is still running",
                Some("ledger_expired") => "the ledger of that date may have expired",
                Some(_) => "poison payload (--force to requeue)",
            };
            vec![
                what.into(),
                d.queue.clone(),
                d.job_id.clone(),
                or_dash(d.login_id.clone()),
                or_dash(d.date),
                why.into(),
            ]
        });
        Self {
            rows: rows.collect(),
            count: report.moved.len(),
            skipped: report.skipped.len(),
            dry_run: report.dry_run,
        }
    }

    /// The rows of a failed / re-auth record requeue.
    pub fn index(report: &RequeueReport) -> Self {
        let row =
            |what: &str, queue: &str, job: &str, login: &LoginId, date: NaiveDate, why: String| {
                let head = [what, queue, job, login.as_str()].map(String::from);
                head.into_iter().chain([date.to_string(), why]).collect()
            };
        let resumed: Vec<_> = report.resumed.iter().filter(|m| m.new).collect();
        let mut rows: Vec<Vec<String>> = Vec::new();
        for m in &resumed {
            let why = format!("left pending by an interrupted requeue; job {}", m.job_id);
            rows.push(row(
                "resumed",
                AUTHORIZE_QUEUE,
                &m.job_id,
                &m.login_id,
                m.date,
                why,
            ));
        }
        for m in &report.moved {
            let what = verb(report.dry_run);
            rows.push(row(
                what,
                AUTHORIZE_QUEUE,
                &m.job_id,
                &m.login_id,
                m.date,
                String::new(),
            ));
        }
        for s in &report.skipped {
            let why = match s.reason {
                "inactive" => INACTIVE_WHY,
                _ => "already refreshed for that date",
            };
            rows.push(row("skipped", "-", "-", &s.login_id, s.date, why.into()));
        }
        Self {
            rows,
            count: report.moved.len() + resumed.len(),
            skipped: report.skipped.len(),
            dry_run: report.dry_run,
        }
    }

    /// The rows of either kind of requeue.
    pub fn of(run: &RequeueRun) -> Self {
        match run {
            RequeueRun::Index(report) => Self::index(report),
            RequeueRun::Dead(report) => Self::dead(report),
        }
    }

    /// The table and the summary line; `source` is `failed`, `needs_reauth` or `dead`.
    pub fn render(&self, source: &str) -> String {
        let headers = [
            "RESULT",
            col::QUEUE,
            col::JOB_ID,
            col::LOGIN_ID,
            col::DATE,
            col::DETAIL,
        ];
        let (verb, count, skipped) = (verb(self.dry_run), self.count, self.skipped);
        table(&headers, self.rows.clone())
            + &format!(
                "{verb} {count} {source} entr(ies) to the authorize queue; skipped {skipped}\n"
            )
    }
}

/// `queues purge`: one line per kind of entry removed (or that would be).
pub fn purge(report: &PurgeReport, older_than: Duration) -> String {
    let verb = if report.dry_run {
        "would purge"
    } else {
        "purged"
    };
    let age = humantime::format_duration(older_than);
    let line = |(what, n): &(String, u64)| {
        let entries = if *n == 1 { "entry" } else { "entries" };
        format!("{verb} {n} {what} {entries} older than {age}\n")
    };
    report.removed.iter().map(line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::requeue::{Moved, Skipped};

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    }

    fn login() -> LoginId {
        LoginId::parse("5e0e5f50-6b4e-4a4a-9d7e-3c1c6d1e2f10").unwrap()
    }

    #[test]
    fn a_record_requeue_lists_resumed_moved_and_skipped() {
        let moved = |job_id: &str, new| Moved {
            login_id: login(),
            date: day(),
            job_id: job_id.into(),
            new,
        };
        let report = RequeueReport {
            source: "failed",
            dry_run: false,
            resumed: vec![moved("j1", true), moved("j0", false)],
            moved: vec![moved("j2", true)],
            skipped: vec![Skipped {
                login_id: login(),
                date: day(),
                reason: "already_refreshed",
            }],
        };
        let done = Requeued::index(&report);
        assert_eq!((done.count, done.skipped), (2, 1));
        let text = done.render("failed");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].starts_with("resumed") && lines[1].ends_with("job j1"));
        assert!(lines[2].starts_with("requeued") && lines[2].contains("j2"));
        assert!(lines[3].ends_with("already refreshed for that date"));
        assert_eq!(
            lines[4],
            "requeued 2 failed entr(ies) to the authorize queue; skipped 1"
        );
    }

    #[test]
    fn purge_lines_say_entry_or_entries() {
        let report = PurgeReport {
            dry_run: true,
            removed: vec![("authorize".into(), 1), ("detail".into(), 3)],
        };
        assert_eq!(
            purge(&report, Duration::from_secs(7 * 86_400)),
            "would purge 1 authorize entry older than 7days\n\
             would purge 3 detail entries older than 7days\n"
        );
    }

    #[test]
    fn a_job_page_ends_with_its_count_and_cursor() {
        let page = JobPage {
            jobs: vec![],
            next_cursor: Some("c1".into()),
        };
        assert!(job_page(&page).ends_with("0 job(s); next page: --cursor c1\n"));
    }
}

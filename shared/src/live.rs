//! The live view of a routine (`producer report --watch`): what an operator watching an
//! eight-hour run needs on one screen. Done and pending, the pace over the last five
//! minutes against the live rate limit, the ETA at that limit for the remaining work, the
//! routine's deadline and whether the ETA meets it, outcomes per kind and per FlinksCode,
//! and the workers with their in-flight jobs and how long ago they last beat.
//!
//! Pure: [`LiveView::new`] combines a [`Report`], the stats [`Snapshot`] and the control
//! state that the caller read, and the two renderings are plain strings, so they are unit
//! tested with fixed inputs. Reading Redis, looping and writing to the screen are the
//! binary's job.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ops::stats::Snapshot;
use crate::report::{Report, RECENT_WINDOW_MINUTES};
use crate::text::escape_lines;

/// A worker as the live view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveWorker {
    /// The worker id.
    pub worker: String,
    /// Heartbeat within the liveness window.
    pub alive: bool,
    /// Jobs it holds, all queues together.
    pub in_flight: u64,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
}

/// Everything one frame shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveView {
    /// The routine date.
    pub date: chrono::NaiveDate,
    /// When the data was read.
    pub at: DateTime<Utc>,
    /// LoginIds enqueued for the date.
    pub expected: u64,
    /// LoginIds with an outcome.
    pub done: u64,
    /// LoginIds without one.
    pub pending: u64,
    /// Logins done per minute over the last five minutes.
    pub recent_per_minute: Option<f64>,
    /// The rate limit in force, per minute (0 = off).
    pub limit_per_minute: f64,
    /// Seconds until the remaining work is authorized at the live limit.
    pub eta_seconds: Option<u64>,
    /// The routine's deadline, when the control state holds one.
    pub deadline: Option<DateTime<Utc>>,
    /// Whether the ETA falls before the deadline (`None`: no deadline or no ETA).
    pub meets_deadline: Option<bool>,
    /// Counts per outcome, in display order (`refreshed` includes `stale`).
    pub outcomes: Vec<(&'static str, u64)>,
    /// Re-auth and failed logins per (outcome, FlinksCode), most frequent first.
    pub by_code: Vec<(&'static str, String, u64)>,
    /// Paused queues.
    pub paused: Vec<String>,
    /// Workers, newest heartbeat first.
    pub workers: Vec<LiveWorker>,
}

impl LiveView {
    /// The view of `report` with the `snapshot` of queues and workers, the live rate limit
    /// (`limit_per_minute`), the routine's `deadline` if one is stored, and the queues
    /// paused by an operator.
    pub fn new(
        report: &Report,
        snapshot: &Snapshot,
        limit_per_minute: f64,
        deadline: Option<DateTime<Utc>>,
        paused: Vec<String>,
    ) -> Self {
        let mut codes: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
        for (kind, items) in [("needs_reauth", &report.reauth), ("failed", &report.failed)] {
            for i in items {
                let code = i
                    .flinks_code
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |c| c.as_str().to_string());
                *codes.entry((kind, code)).or_default() += 1;
            }
        }
        let mut by_code: Vec<(&'static str, String, u64)> =
            codes.into_iter().map(|((k, c), n)| (k, c, n)).collect();
        by_code.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (a.0, &a.1).cmp(&(b.0, &b.1))));
        let meets_deadline = match (deadline, report.eta_seconds) {
            (Some(_), _) if report.pending == 0 => Some(true),
            (Some(deadline), Some(eta)) => {
                Some(report.generated_at + chrono::Duration::seconds(eta as i64) <= deadline)
            }
            _ => None,
        };
        Self {
            date: report.date,
            at: report.generated_at,
            expected: report.expected,
            done: report.done,
            pending: report.pending,
            recent_per_minute: report.recent_per_minute,
            limit_per_minute,
            eta_seconds: report.eta_seconds,
            deadline,
            meets_deadline,
            outcomes: vec![
                ("refreshed", report.refreshed),
                ("stale", report.stale.len() as u64),
                ("needs_reauth", report.reauth.len() as u64),
                ("failed", report.failed.len() as u64),
                ("superseded", report.superseded),
            ],
            by_code,
            paused,
            workers: snapshot
                .workers
                .iter()
                .map(|w| LiveWorker {
                    worker: w.worker.clone(),
                    alive: w.alive,
                    in_flight: w.in_flight,
                    heartbeat_age_ms: w.heartbeat_age_ms,
                })
                .collect(),
        }
    }

    /// Workers whose heartbeat is recent.
    pub fn workers_alive(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }

    /// Jobs held by workers, all queues together.
    pub fn in_flight(&self) -> u64 {
        self.workers.iter().map(|w| w.in_flight).sum()
    }

    /// `19.8/min (last 5 min) vs limit 20/min`.
    pub fn rate_text(&self) -> String {
        let recent = self
            .recent_per_minute
            .map_or_else(|| "-".to_string(), |r| format!("{r:.1}/min"));
        format!(
            "{recent} (last {RECENT_WINDOW_MINUTES} min) vs limit {}",
            limit_text(self.limit_per_minute)
        )
    }

    /// The deadline and whether the ETA meets it, or `none stored`.
    pub fn deadline_text(&self) -> String {
        let Some(deadline) = self.deadline else {
            return "none stored".to_string();
        };
        let verdict = match self.meets_deadline {
            Some(true) => "will be met".to_string(),
            Some(false) => {
                let late = self.at
                    + chrono::Duration::seconds(self.eta_seconds.unwrap_or(0) as i64)
                    - deadline;
                format!(
                    "will be MISSED by {}",
                    duration_text(late.num_seconds().max(0) as u64)
                )
            }
            None => "unknown (no ETA)".to_string(),
        };
        format!("{} UTC: {verdict}", deadline.format("%Y-%m-%d %H:%M"))
    }

    /// "N of M done (x.y %)", the percentage left out while nothing is expected.
    pub fn progress_text(&self) -> String {
        if self.expected == 0 {
            return format!("{} of {} done", self.done, self.expected);
        }
        format!(
            "{} of {} done ({:.1} %)",
            self.done,
            self.expected,
            self.done as f64 * 100.0 / self.expected as f64
        )
    }

    /// The frame for a terminal: several lines, redrawn in place by the caller.
    pub fn render_frame(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "routine {}  ·  {} UTC",
            self.date,
            self.at.format("%H:%M:%S")
        );
        let _ = writeln!(
            out,
            "{:<12}{}, {} pending",
            "progress",
            self.progress_text(),
            self.pending
        );
        let _ = writeln!(out, "{:<12}{}", "rate", self.rate_text());
        let _ = writeln!(
            out,
            "{:<12}{}",
            "eta",
            self.eta_seconds
                .map_or_else(|| "-".to_string(), duration_text)
        );
        let _ = writeln!(out, "{:<12}{}", "deadline", self.deadline_text());
        if !self.paused.is_empty() {
            let _ = writeln!(out, "{:<12}{}", "paused", self.paused.join(", "));
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let _ = writeln!(out, "{:<12}{}", "outcomes", outcomes.join("  ·  "));
        for (kind, code, n) in &self.by_code {
            let _ = writeln!(out, "{:<12}{kind:<14}{code:<36}{n}", "");
        }
        let _ = writeln!(
            out,
            "{:<12}{} alive of {} seen, {} jobs in flight",
            "workers",
            self.workers_alive(),
            self.workers.len(),
            self.in_flight()
        );
        for w in &self.workers {
            let _ = writeln!(
                out,
                "  {:<44}{:<7}{:>4} in flight   heartbeat {}",
                w.worker,
                if w.alive { "alive" } else { "gone" },
                w.in_flight,
                ago(w.heartbeat_age_ms)
            );
        }
        out
    }

    /// One line per interval, for logs and pipes: `key=value` pairs, no padding.
    pub fn render_line(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        let codes: Vec<String> = self
            .by_code
            .iter()
            .map(|(kind, code, n)| format!("{kind}:{code}:{n}"))
            .collect();
        let on_track = match self.meets_deadline {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let freshest = self
            .workers
            .iter()
            .filter(|w| w.alive)
            .map(|w| w.heartbeat_age_ms)
            .min();
        format!(
            "{} date={} done={}/{} pending={} rate_5m={} limit={} eta={} deadline={} on_track={} {} codes={} workers_alive={} in_flight={} last_heartbeat={}",
            self.at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.date,
            self.done,
            self.expected,
            self.pending,
            opt(self.recent_per_minute.map(|r| format!("{r:.1}/min"))),
            limit_text(self.limit_per_minute),
            opt(self.eta_seconds.map(|s| format!("{s}s"))),
            opt(self.deadline.map(|d| d.format("%Y-%m-%dT%H:%MZ").to_string())),
            on_track,
            outcomes.join(" "),
            if codes.is_empty() { "-".to_string() } else { codes.join(",") },
            self.workers_alive(),
            self.in_flight(),
            opt(freshest.map(|ms| ago(ms).replace(' ', ""))),
        )
    }
}

fn limit_text(per_minute: f64) -> String {
    if per_minute > 0.0 {
        format!("{per_minute}/min")
    } else {
        "off".to_string()
    }
}

/// A duration for people: `42 s`, `7 min 5 s`, `8 h 3 min`, `2 d 4 h`.
pub fn duration_text(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// How long ago, from milliseconds: `3 s ago`, `2 min 5 s ago`; under a second is `now`.
pub fn ago(ms: u64) -> String {
    if ms < 1_000 {
        "now".to_string()
    } else {
        format!("{} ago", duration_text(ms / 1_000))
    }
}

impl LiveView {
    /// The view of one [`Reading`](crate::report::Reading).
    pub fn of(reading: &crate::report::Reading) -> Self {
        let paused = reading.control.pauses.iter().filter(|p| p.paused);
        Self::new(
            &reading.report,
            &reading.snapshot,
            reading.control.rate_limit.per_minute,
            reading.report.deadline,
            paused.map(|p| p.queue.clone()).collect(),
        )
    }

    /// One update as the watcher prints it: a JSON line (`json`), a frame that replaces
    /// the previous one on a `terminal` (home, clear, draw), or else one line.
    pub fn render(&self, json: bool, terminal: bool) -> Result<String, serde_json::Error> {
        Ok(if json {
            format!("{}\n", serde_json::to_string(self)?)
        } else if terminal {
            format!("\x1b[H\x1b[2J{}", escape_lines(&self.render_frame()))
        } else {
            format!("{}\n", escape_lines(&self.render_line()))
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::domain::{FlinksCode, LoginId};
    use crate::ops::stats::{ResultsSnapshot, WorkerSnapshot};
    use crate::report::ReportItem;

    fn login(n: u32) -> LoginId {
        LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
    }

    fn item(n: u32, code: &str) -> ReportItem {
        ReportItem {
            login_id: login(n),
            flinks_code: Some(FlinksCode::parse(code)),
            message: None,
            unrecognised_code: false,
            reason: None,
        }
    }

    fn report(now: DateTime<Utc>) -> Report {
        Report {
            date: NaiveDate::from_ymd_opt(2025, 6, 10).unwrap(),
            generated_at: now,
            active: 10_000,
            expected: 10_000,
            done: 412,
            pending: 9_588,
            refreshed: 400,
            stale: vec![login(1), login(2), login(3)],
            reauth: vec![
                item(4, "QUESTION_NOT_FOUND"),
                item(5, "QUESTION_NOT_FOUND"),
                item(6, "INVALID_USERNAME"),
            ],
            failed: vec![item(7, "UNKNOWN_CODE_X")],
            superseded: 8,
            invalid_login: vec![],
            new_reauth: vec![login(6)],
            retries: 2,
            started_at: Some(now - chrono::Duration::minutes(30)),
            throughput_per_minute: Some(13.7),
            recent_per_minute: Some(19.8),
            backlog: 9_588,
            eta_seconds: Some(9_588 * 3),
            deadline: None,
            oldest_refresh_at: None,
            oldest_data_age_seconds: None,
            never_refreshed: 0,
        }
    }

    fn snapshot() -> Snapshot {
        let worker = |id: &str, age: u64, alive: bool, in_flight: u64| WorkerSnapshot {
            worker: id.to_string(),
            queues: vec!["authorize".into()],
            last_heartbeat_ms: 1_000_000 - age,
            heartbeat_age_ms: age,
            alive,
            in_flight,
        };
        Snapshot {
            taken_at_ms: 1_000_000,
            queues: vec![],
            reauth: 0,
            failed: 0,
            requeue_pending: 0,
            workers: vec![
                worker("w-1", 3_200, true, 2),
                worker("w-2", 400, true, 1),
                worker("w-3", 600_000, false, 0),
            ],
            results: ResultsSnapshot::default(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 10, 3, 0, 5).unwrap()
    }

    #[test]
    fn the_frame_shows_progress_rate_eta_deadline_outcomes_codes_and_workers() {
        // 9,588 left at 20/min is 8 h; the deadline is 22 h away.
        let deadline = Utc.with_ymd_and_hms(2025, 6, 11, 2, 0, 0).unwrap();
        let view = LiveView::new(
            &report(now()),
            &snapshot(),
            20.0,
            Some(deadline),
            vec!["detail".into()],
        );

        let frame = view.render_frame();

        assert_eq!(view.meets_deadline, Some(true));
        for expected in [
            "routine 2025-06-10  ·  03:00:05 UTC",
            "progress    412 of 10000 done (4.1 %), 9588 pending",
            "rate        19.8/min (last 5 min) vs limit 20/min",
            "eta         7 h 59 min",
            "deadline    2025-06-11 02:00 UTC: will be met",
            "paused      detail",
            "outcomes    refreshed 400  ·  stale 3  ·  needs_reauth 3  ·  failed 1  ·  superseded 8",
            "needs_reauth  QUESTION_NOT_FOUND                  2",
            "needs_reauth  INVALID_USERNAME                    1",
            "failed        UNKNOWN_CODE_X                      1",
            "workers     2 alive of 3 seen, 3 jobs in flight",
            "w-1",
            "alive     2 in flight   heartbeat 3 s ago",
            "heartbeat now",
            "gone      0 in flight   heartbeat 10 min 0 s ago",
        ] {
            assert!(frame.contains(expected), "{expected:?} missing:\n{frame}");
        }
        // The most frequent code comes first.
        assert!(frame.find("QUESTION_NOT_FOUND") < frame.find("INVALID_USERNAME"));
    }

    #[test]
    fn an_eta_past_the_deadline_says_by_how_much_it_will_be_missed() {
        // 8 h of work, 6 h left.
        let deadline = now() + chrono::Duration::hours(6);
        let view = LiveView::new(&report(now()), &snapshot(), 20.0, Some(deadline), vec![]);

        assert_eq!(view.meets_deadline, Some(false));
        let frame = view.render_frame();
        assert!(frame.contains("will be MISSED by 1 h 59 min"), "{frame}");
        assert!(
            view.render_line().contains(" on_track=no "),
            "{}",
            view.render_line()
        );
    }

    #[test]
    fn without_a_stored_deadline_the_view_says_so_and_judges_nothing() {
        let view = LiveView::new(&report(now()), &snapshot(), 0.0, None, vec![]);

        assert_eq!(view.meets_deadline, None);
        let frame = view.render_frame();
        assert!(frame.contains("deadline    none stored"), "{frame}");
        assert!(frame.contains("vs limit off"), "{frame}");
    }

    #[test]
    fn the_line_form_is_one_line_of_key_value_pairs() {
        let deadline = Utc.with_ymd_and_hms(2025, 6, 11, 2, 0, 0).unwrap();
        let view = LiveView::new(&report(now()), &snapshot(), 20.0, Some(deadline), vec![]);

        let line = view.render_line();

        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            line,
            "2025-06-10T03:00:05Z date=2025-06-10 done=412/10000 pending=9588 rate_5m=19.8/min \
             limit=20/min eta=28764s deadline=2025-06-11T02:00Z on_track=yes refreshed=400 \
             stale=3 needs_reauth=3 failed=1 superseded=8 \
             codes=needs_reauth:QUESTION_NOT_FOUND:2,failed:UNKNOWN_CODE_X:1,needs_reauth:INVALID_USERNAME:1 \
             workers_alive=2 in_flight=3 last_heartbeat=now"
        );
    }

    #[test]
    fn a_finished_routine_meets_its_deadline_whatever_the_eta() {
        let mut done = report(now());
        done.pending = 0;
        done.eta_seconds = None;
        let view = LiveView::new(&done, &snapshot(), 20.0, Some(now()), vec![]);
        assert_eq!(view.meets_deadline, Some(true));
    }

    #[test]
    fn durations_and_ages_read_like_speech() {
        assert_eq!(duration_text(42), "42 s");
        assert_eq!(duration_text(425), "7 min 5 s");
        assert_eq!(duration_text(8 * 3600 + 180), "8 h 3 min");
        assert_eq!(duration_text(2 * 86_400 + 4 * 3600), "2 d 4 h");
        assert_eq!(ago(999), "now");
        assert_eq!(ago(3_200), "3 s ago");
    }
}

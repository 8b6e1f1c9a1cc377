//! The text of `producer routine run`: what was enqueued, the daily capacity and the ETA.

use std::time::Duration;

use crate::routine::RoutineRun;

/// `routine run`; `rate` is the limit in force (the capacity's and the ETA's basis) and
/// `configured` this process' RATE_LIMIT_PER_MINUTE, named when a stored limit
/// (`ratelimit set`) overrides it.
pub fn run(run: &RoutineRun, configured: f64, rate: f64) -> String {
    let mut out = format!(
        "routine {}: {} active LoginIds, {} enqueued now, {} already queued, {} skipped (listed ineligible by GetNightlyRefreshStatus)\n",
        run.date, run.active, run.enqueued, run.already_queued, run.skipped_ineligible
    );
    if run.superseded > 0 {
        out += &format!(
            "{} waiting jobs of earlier dates superseded by this date's (recorded as superseded there)\n",
            run.superseded
        );
    }
    if run.superseded_on_arrival > 0 {
        out += &format!(
            "{} of the already queued have a later date's job: not queued for this date (recorded as superseded here unless it has an outcome)\n",
            run.superseded_on_arrival
        );
    }
    let stored = if configured == rate {
        String::new()
    } else {
        format!(" (the stored limit; RATE_LIMIT_PER_MINUTE is {configured})")
    };
    out += &match (run.capacity_per_day, run.coverage_days) {
        (Some(capacity), Some(days)) if run.over_capacity => format!(
            "over capacity: {} active logins, {} a day at {}/min{stored}: each login is refreshed once every {} days\n",
            run.active, capacity, rate, days
        ),
        (Some(capacity), _) => format!(
            "capacity: {} logins a day at {}/min{stored}; {} active fit in one day\n",
            capacity, rate, run.active
        ),
        _ if configured == rate => {
            "capacity: unbounded (RATE_LIMIT_PER_MINUTE=0, the limiter is off)\n".into()
        }
        _ => "capacity: unbounded (the stored limit is 0: the limiter is off)\n".into(),
    };
    if let Some(deadline) = run.deadline {
        out += &format!(
            "deadline: {} (jobs of {} not started by then are superseded, not called; the next date's routine covers those logins)\n",
            deadline.format("%Y-%m-%d %H:%M:%S UTC"),
            run.date
        );
    }
    out += &match run.eta_seconds {
        Some(eta) => format!(
            "ETA of the backlog ({} authorize jobs, all dates) at {}/min: {}\n",
            run.backlog,
            rate,
            humantime::format_duration(Duration::from_secs(eta))
        ),
        None => "ETA: unknown (the rate limit is 0: the limiter is off)\n".into(),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_over_capacity_says_how_often_each_login_is_refreshed() {
        let r = RoutineRun {
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            active: 3_000,
            enqueued: 3_000,
            capacity_per_day: Some(1_440),
            over_capacity: true,
            coverage_days: Some(3),
            eta_seconds: Some(90),
            backlog: 3_000,
            ..RoutineRun::default()
        };
        let text = run(&r, 1.0, 1.0);
        let stored = run(&r, 1000.0, 1.0);
        assert!(text.starts_with("routine 2026-11-30: 3000 active LoginIds, 3000 enqueued now"));
        assert!(!text.contains("superseded"));
        assert!(text.contains("\nover capacity: 3000 active logins, 1440 a day at 1/min: each login is refreshed once every 3 days\n"));
        assert!(text
            .ends_with("ETA of the backlog (3000 authorize jobs, all dates) at 1/min: 1m 30s\n"));
        // The capacity is the stored limit's, as the ETA is, and says so.
        assert!(stored.contains("\nover capacity: 3000 active logins, 1440 a day at 1/min (the stored limit; RATE_LIMIT_PER_MINUTE is 1000): each login"));
    }

    #[test]
    fn rate_zero_is_unbounded_with_unknown_eta() {
        let text = run(&RoutineRun::default(), 0.0, 0.0);
        let stored = run(&RoutineRun::default(), 20.0, 0.0);
        assert!(text.contains("capacity: unbounded (RATE_LIMIT_PER_MINUTE=0"));
        assert!(stored.contains("capacity: unbounded (the stored limit is 0"));
        assert!(text.ends_with("ETA: unknown (the rate limit is 0: the limiter is off)\n"));
    }
}

//! The Authorize throttle and the sliding-window maths shared with the stats.
//!
//! A call is *accepted* if fewer than `max_calls` calls were accepted in the trailing window
//! `(now - window, now]`; otherwise it is a *violation* and gets `TOO_MANY_REQUESTS`.
//! Rejected calls do not use up the budget. This file keeps no stats of its own; the
//! violation count lives in `stats.rs`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Throttle;

/// Sliding-window limiter over accepted call instants.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: Throttle,
    accepted: VecDeque<Instant>,
}

impl Limiter {
    pub(crate) fn new(config: Throttle) -> Self {
        Limiter {
            config,
            accepted: VecDeque::new(),
        }
    }

    /// Records a call arriving at `now`; `true` if it is accepted.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> bool {
        while let Some(front) = self.accepted.front() {
            if now.saturating_duration_since(*front) >= self.config.window {
                self.accepted.pop_front();
            } else {
                break;
            }
        }
        if self.accepted.len() < self.config.max_calls as usize {
            self.accepted.push_back(now);
            true
        } else {
            false
        }
    }

    pub(crate) fn status(&self) -> u16 {
        self.config.status
    }

    pub(crate) fn clear(&mut self) {
        self.accepted.clear();
    }
}

/// The largest number of `times_ms` (milliseconds, any order) inside any half-open window
/// of `window_ms`: what tests and benchmarks use to check a rate limit from arrival times.
pub fn busiest_window_ms(times_ms: &[u64], window_ms: u64) -> u64 {
    let mut times: Vec<Duration> = times_ms
        .iter()
        .map(|&ms| Duration::from_millis(ms))
        .collect();
    times.sort_unstable();
    max_in_window(&times, Duration::from_millis(window_ms))
}

/// The largest number of `times` (sorted ascending) inside any half-open window of length
/// `window`, i.e. any `[t, t + window)`.
pub(crate) fn max_in_window(times: &[Duration], window: Duration) -> u64 {
    let mut best = 0usize;
    let mut start = 0usize;
    for (end, t) in times.iter().enumerate() {
        while t.saturating_sub(times[start]) >= window {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn max_in_window_counts_calls_strictly_inside_the_window() {
        let times = [ms(0), ms(100), ms(999), ms(1000), ms(1500), ms(1600)];
        assert_eq!(max_in_window(&times, ms(1000)), 4); // 999, 1000, 1500, 1600
        assert_eq!(max_in_window(&[], ms(1000)), 0);
        assert_eq!(max_in_window(&times, ms(1)), 1);
    }

    #[test]
    fn limiter_rejects_the_call_over_the_budget_and_frees_it_after_the_window() {
        let mut l = Limiter::new(Throttle {
            max_calls: 2,
            window: ms(1000),
            status: 401,
        });
        let t0 = Instant::now();
        assert!(l.try_acquire(t0));
        assert!(l.try_acquire(t0 + ms(10)));
        assert!(!l.try_acquire(t0 + ms(20)));
        assert!(l.try_acquire(t0 + ms(1000)));
        assert!(!l.try_acquire(t0 + ms(1005)));
        assert!(l.try_acquire(t0 + ms(1010)));
    }
}

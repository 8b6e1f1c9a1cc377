//! Capacity forecast: how many logins the routine can authorize in a day, and whether the
//! registry fits in it.
//!
//! The rate limiter admits `RATE_LIMIT_PER_MINUTE` authorizes a minute, so a day holds at
//! most `rate × 1440` of them. With more active logins than that, no routine date can
//! finish before the next one starts: each login is then refreshed once every
//! `coverage_days = ceil(active ÷ capacity)` days, in rotation (a later date's job replaces
//! a login's job still waiting, see `jobs::AuthorizeJob::supersede`). The ways out are a
//! higher rate agreed with Flinks, or accepting the rotation.

use serde::Serialize;

/// Minutes in a day.
pub const MINUTES_PER_DAY: u64 = 1_440;

/// The forecast for `active` logins at a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Forecast {
    /// Authorizes a day at the configured rate (`None`: the limiter is off, no bound).
    pub capacity_per_day: Option<u64>,
    /// Active logins (one authorize each per routine date).
    pub active: u64,
    /// More active logins than a day's capacity: dates overlap and logins rotate.
    pub over_capacity: bool,
    /// Days to authorize every active login once: `ceil(active ÷ capacity)` (`None` when
    /// the capacity is unbounded or zero).
    pub coverage_days: Option<u64>,
}

/// Authorizes a day at `rate_per_minute` (`None` when the limiter is off: 0 or not finite).
pub fn capacity_per_day(rate_per_minute: f64) -> Option<u64> {
    (rate_per_minute.is_finite() && rate_per_minute > 0.0)
        .then(|| (rate_per_minute * MINUTES_PER_DAY as f64).floor() as u64)
}

impl Forecast {
    /// The forecast for `active` logins at `rate_per_minute`.
    pub fn new(rate_per_minute: f64, active: u64) -> Self {
        let capacity_per_day = capacity_per_day(rate_per_minute);
        let coverage_days = capacity_per_day
            .filter(|c| *c > 0)
            .map(|c| active.div_ceil(c));
        Self {
            capacity_per_day,
            active,
            over_capacity: capacity_per_day.is_some_and(|c| active > c),
            coverage_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_logins_at_20_per_minute_take_35_days() {
        let f = Forecast::new(20.0, 1_000_000);
        assert_eq!(f.capacity_per_day, Some(28_800));
        assert!(f.over_capacity);
        assert_eq!(f.coverage_days, Some(35));
    }

    #[test]
    fn a_registry_that_fits_in_a_day_is_covered_daily() {
        let exactly = Forecast::new(20.0, 28_800);
        assert!(!exactly.over_capacity);
        assert_eq!(exactly.coverage_days, Some(1));
        let one_more = Forecast::new(20.0, 28_801);
        assert!(one_more.over_capacity);
        assert_eq!(one_more.coverage_days, Some(2));
        assert_eq!(Forecast::new(20.0, 0).coverage_days, Some(0));
    }

    #[test]
    fn no_limit_means_no_capacity_bound() {
        let f = Forecast::new(0.0, 1_000_000);
        assert_eq!((f.capacity_per_day, f.coverage_days), (None, None));
        assert!(!f.over_capacity);
        assert_eq!(capacity_per_day(0.5), Some(720));
    }
}

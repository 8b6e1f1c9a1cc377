//! A routine date as an operator types it: `today`, `yesterday` or `YYYY-MM-DD`. The words
//! are resolved in ROUTINE_TZ, the zone the routine's dates are counted in, not the zone of
//! the operator's shell, so `--date today` names the same routine on every machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;

/// A `--date` value, before it is resolved against a clock and a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutineDay {
    /// The current date in ROUTINE_TZ.
    Today,
    /// The day before it.
    Yesterday,
    /// This date.
    On(NaiveDate),
}

impl RoutineDay {
    /// The date this names at `now` in `tz`.
    pub fn resolve(self, now: DateTime<Utc>, tz: Tz) -> NaiveDate {
        let today = now.with_timezone(&tz).date_naive();
        match self {
            Self::Today => today,
            Self::Yesterday => today.checked_sub_days(Days::new(1)).unwrap_or(today),
            Self::On(date) => date,
        }
    }
}

/// Why a `--date` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected today, yesterday or a date like 2026-11-25, got \"{0}\"")]
pub struct RoutineDayError(String);

impl FromStr for RoutineDay {
    type Err = RoutineDayError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "today" => Ok(Self::Today),
            "yesterday" => Ok(Self::Yesterday),
            other => NaiveDate::parse_from_str(other, "%Y-%m-%d")
                .map(Self::On)
                .map_err(|_| RoutineDayError(raw.escape_debug().to_string())),
        }
    }
}

impl fmt::Display for RoutineDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Today => f.write_str("today"),
            Self::Yesterday => f.write_str("yesterday"),
            Self::On(date) => write!(f, "{date}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::Toronto;

    #[test]
    fn today_and_yesterday_are_counted_in_the_routine_zone() {
        // 03:00 UTC on the 25th is still the 24th in Toronto.
        let now = DateTime::parse_from_rfc3339("2026-11-25T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(RoutineDay::Today.resolve(now, Toronto), day(24));
        assert_eq!(RoutineDay::Yesterday.resolve(now, Toronto), day(23));
        assert_eq!(RoutineDay::On(day(2)).resolve(now, Toronto), day(2));
    }

    #[test]
    fn a_date_parses_from_words_or_iso_and_refuses_the_rest() {
        assert_eq!(" Today ".parse(), Ok(RoutineDay::Today));
        assert_eq!("yesterday".parse(), Ok(RoutineDay::Yesterday));
        assert_eq!(
            "2026-11-25".parse(),
            Ok(RoutineDay::On(
                NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
            ))
        );
        for bad in ["tomorrow", "2026-13-01", "25/11/2026", ""] {
            let err = bad.parse::<RoutineDay>().unwrap_err().to_string();
            assert!(err.contains("expected today, yesterday"), "{bad}: {err}");
        }
    }
}

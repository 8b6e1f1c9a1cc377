//! Operator input that arrives as text: duration flags, the live view's interval, LoginIds
//! given on a command line. Each parser names what is wrong, so the command line can report
//! it against the flag it came from (clap adds the flag's name and exits 2).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{LoginId, LoginIdError};

/// The longest age a duration flag accepts. Every duration flag is an age subtracted from
/// now; anything longer than a century means "everything" and is a typo, and larger values
/// would overflow the millisecond arithmetic downstream and wrap to a cutoff in the future.
pub const MAX_AGE: Duration = Duration::from_secs(100 * 31_557_600); // humantime's "100y"

/// Parses a duration flag (`7d`, `36h`, `90m`): a positive humantime duration of at most
/// [`MAX_AGE`].
pub fn parse_age(raw: &str) -> Result<Duration, String> {
    let trimmed = raw.trim();
    if trimmed.starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let age = humantime::parse_duration(trimmed)
        .map_err(|e| format!("expected a duration like 7d, 36h or 90m ({e})"))?;
    if age > MAX_AGE {
        return Err(format!(
            "at most {} is accepted",
            humantime::format_duration(MAX_AGE)
        ));
    }
    Ok(age)
}

/// The instant `age` before `now` (an age from [`parse_age`] always fits).
pub fn ago(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(age).unwrap_or_default()
}

/// Parses the live view's `--interval`: a humantime duration from 100 ms to an hour.
pub fn parse_interval(raw: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("expected a duration like 5s or 1m ({e})"))?;
    if !(Duration::from_millis(100)..=Duration::from_secs(3_600)).contains(&interval) {
        return Err("expected a duration from 100ms to 1h".into());
    }
    Ok(interval)
}

/// Parses the LoginIds given on a command line; the first invalid one is the error.
pub fn parse_logins(raw: &[String]) -> Result<Vec<LoginId>, LoginIdError> {
    raw.iter().map(|l| LoginId::parse(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_is_kept_between_100ms_and_an_hour() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        for bad in ["50ms", "2h", "soon"] {
            assert!(parse_interval(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn ago_subtracts_the_age_from_now() {
        let now = Utc::now();
        assert_eq!(
            ago(now, Duration::from_secs(60)),
            now - chrono::Duration::minutes(1)
        );
    }
}

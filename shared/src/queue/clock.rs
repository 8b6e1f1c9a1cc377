//! What Redis' clock says now, estimated in the process, so a call that leases jobs needs
//! no `TIME` of its own.
//!
//! Leases, delays and the reaper keep time on Redis' clock, so processes with skewed
//! clocks agree on deadlines. A script can read that clock, but at the cost of a command in
//! every call that leases, two per login. The heartbeat's renewal reads it anyway and
//! answers what it read ([`RedisClock::sample`]); until the next one, the estimate is that
//! reading plus the time passed since the renewal was *sent*. Redis read its clock after
//! the send, so the estimate is never behind Redis' clock (at the same clock rate), only
//! ahead by the time the call took to run: a lease's deadline computed from it is never
//! earlier than one Redis computes, and the watchdog's local deadline, also counted from a
//! send (see `lease.rs`), still comes first.
//!
//! A sample whose call took longer than [`MAX_SAMPLE_ROUND_TRIP`] is dropped (the estimate
//! would run that far ahead), and an estimate older than [`MAX_AGE`] is not used: the
//! script then reads `TIME` itself, as it does before the first renewal. A Redis whose clock
//! jumped (a failover to a replica with another clock) is followed at the next renewal,
//! a third of a lease later.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A renewal that took longer than this tells too little about when Redis read its clock.
pub(crate) const MAX_SAMPLE_ROUND_TRIP: Duration = Duration::from_millis(250);

/// How long one reading is trusted: several renewals (every lease / 3) are missed before
/// the scripts go back to reading `TIME`.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// The last reading of one Redis' clock (shared by every clone of a queue).
#[derive(Debug, Default)]
pub struct RedisClock {
    reading: Mutex<Option<Reading>>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Redis' clock (epoch ms) as a call read it.
    redis_ms: i64,
    /// When that call was sent.
    sent: Instant,
}

impl RedisClock {
    /// Records that a call sent at `sent` and answered at `received` read `redis_ms` on
    /// Redis' clock. A reading older than the one held is ignored.
    pub fn sample(&self, redis_ms: i64, sent: Instant, received: Instant) {
        if received.saturating_duration_since(sent) > MAX_SAMPLE_ROUND_TRIP {
            return;
        }
        let mut reading = self.reading.lock().expect("redis clock lock");
        if reading.is_none_or(|r| r.sent <= sent) {
            *reading = Some(Reading { redis_ms, sent });
        }
    }

    /// Redis' clock at `at` (epoch ms), or `None` without a reading of the last
    /// [`MAX_AGE`].
    pub fn estimate_at(&self, at: Instant) -> Option<i64> {
        let reading = (*self.reading.lock().expect("redis clock lock"))?;
        let passed = at.checked_duration_since(reading.sent)?;
        if passed > MAX_AGE {
            return None;
        }
        // Redis reads its clock in whole milliseconds, rounded down: one more, and the time
        // passed rounded up, keep the estimate from falling behind by a rounding.
        Some(reading.redis_ms + 1 + passed.as_micros().div_ceil(1_000) as i64)
    }

    /// Redis' clock now, as a script argument: the estimate in ms, or `""` for none (the
    /// script reads `TIME`).
    pub(crate) fn script_arg(&self) -> String {
        self.estimate_at(Instant::now())
            .map_or_else(String::new, |ms| ms.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_before_the_first_reading() {
        assert_eq!(RedisClock::default().estimate_at(Instant::now()), None);
        assert_eq!(RedisClock::default().script_arg(), "");
    }

    #[test]
    fn the_estimate_counts_from_the_send() {
        let clock = RedisClock::default();
        let sent = Instant::now();
        clock.sample(1_000_000, sent, sent + Duration::from_millis(5));
        // A millisecond over the reading (Redis rounds its clock down), the time passed
        // rounded up.
        assert_eq!(clock.estimate_at(sent), Some(1_000_001));
        assert_eq!(
            clock.estimate_at(sent + Duration::from_micros(1_500_001)),
            Some(1_001_502)
        );
    }

    #[test]
    fn a_slow_call_tells_nothing() {
        let clock = RedisClock::default();
        let sent = Instant::now();
        clock.sample(
            1_000_000,
            sent,
            sent + MAX_SAMPLE_ROUND_TRIP + Duration::from_millis(1),
        );
        assert_eq!(clock.estimate_at(sent), None);
    }

    #[test]
    fn an_old_reading_is_not_used() {
        let clock = RedisClock::default();
        let sent = Instant::now();
        clock.sample(1_000_000, sent, sent);
        assert!(clock.estimate_at(sent + MAX_AGE).is_some());
        assert_eq!(
            clock.estimate_at(sent + MAX_AGE + Duration::from_millis(1)),
            None
        );
    }

    #[test]
    fn a_reading_sent_earlier_than_the_one_held_is_ignored() {
        let clock = RedisClock::default();
        let first = Instant::now();
        let later = first + Duration::from_millis(100);
        clock.sample(2_000_000, later, later);
        clock.sample(1_000_000, first, later);
        assert_eq!(clock.estimate_at(later), Some(2_000_001));
    }
}

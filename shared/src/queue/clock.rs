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
//! script then reads `TIME` itself, as it does before the first renewal. The time passed is
//! measured on both the monotonic clock and the wall clock, and the larger counts: the
//! monotonic clock stands still while the host is suspended, the wall clock can be stepped.
//! When the two disagree by more than [`MAX_CLOCK_DISAGREEMENT`] (a suspend, a step), no
//! estimate is made until the next renewal. A Redis whose own clock jumped (a failover to
//! a master with another clock) is followed at the next renewal, a third of a lease later;
//! between two renewals the estimate is as good as the two hosts' clock rates agree.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A renewal that took longer than this tells too little about when Redis read its clock.
pub(crate) const MAX_SAMPLE_ROUND_TRIP: Duration = Duration::from_millis(250);

/// How long one reading is trusted: several renewals (every lease / 3) are missed before
/// the scripts go back to reading `TIME`.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// How far the monotonic and the wall clock may disagree on the time since a reading
/// before it is not trusted: more means the host was suspended or a clock was stepped.
pub(crate) const MAX_CLOCK_DISAGREEMENT: Duration = Duration::from_millis(100);

/// The last reading of one Redis' clock (shared by every clone of a queue).
#[derive(Debug, Default)]
pub struct RedisClock {
    reading: Mutex<Option<Reading>>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Redis' clock (epoch ms) as a call read it.
    redis_ms: i64,
    /// When that call was sent, on the monotonic and on the wall clock.
    sent: Instant,
    sent_wall: SystemTime,
}

impl RedisClock {
    /// Records that a call sent at `sent` and answered at `received` read `redis_ms` on
    /// Redis' clock. A reading older than the one held is ignored.
    pub fn sample(&self, redis_ms: i64, sent: Instant, received: Instant) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        if let Some(sent_wall) = wall.checked_sub(now.saturating_duration_since(sent)) {
            self.sample_with_wall(redis_ms, sent, sent_wall, received);
        }
    }

    fn sample_with_wall(
        &self,
        redis_ms: i64,
        sent: Instant,
        sent_wall: SystemTime,
        received: Instant,
    ) {
        if received.saturating_duration_since(sent) > MAX_SAMPLE_ROUND_TRIP {
            return;
        }
        let mut reading = self.reading.lock().expect("redis clock lock");
        if reading.is_none_or(|r| r.sent <= sent) {
            *reading = Some(Reading {
                redis_ms,
                sent,
                sent_wall,
            });
        }
    }

    /// Redis' clock at `at` (epoch ms), or `None` without a reading of the last
    /// [`MAX_AGE`] or when the host's clocks disagree on the time since it.
    pub fn estimate_at(&self, at: Instant) -> Option<i64> {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let wall_at = if at >= now {
            wall.checked_add(at - now)?
        } else {
            wall.checked_sub(now - at)?
        };
        self.estimate(at, wall_at)
    }

    fn estimate(&self, at: Instant, wall_at: SystemTime) -> Option<i64> {
        let reading = (*self.reading.lock().expect("redis clock lock"))?;
        let passed = at.checked_duration_since(reading.sent)?;
        let passed_wall = wall_at.duration_since(reading.sent_wall).ok()?;
        if passed.max(passed_wall) > MAX_AGE
            || passed.abs_diff(passed_wall) > MAX_CLOCK_DISAGREEMENT
        {
            return None;
        }
        // Redis reads its clock in whole milliseconds, rounded down: one more, and the time
        // passed rounded up, keep the estimate from falling behind by a rounding.
        let passed = passed.max(passed_wall);
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

    const MS: Duration = Duration::from_millis(1);

    /// A clock holding `redis_ms` as read by a call sent at (`sent`, `wall`).
    fn read(redis_ms: i64, sent: Instant, wall: SystemTime) -> RedisClock {
        let clock = RedisClock::default();
        clock.sample_with_wall(redis_ms, sent, wall, sent + 5 * MS);
        clock
    }

    fn start() -> (Instant, SystemTime) {
        (
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        )
    }

    #[test]
    fn none_before_the_first_reading() {
        assert_eq!(RedisClock::default().estimate_at(Instant::now()), None);
        assert_eq!(RedisClock::default().script_arg(), "");
    }

    #[test]
    fn the_estimate_counts_from_the_send() {
        let (sent, wall) = start();
        let clock = read(1_000_000, sent, wall);
        // A millisecond over the reading (Redis rounds its clock down), the time passed
        // rounded up.
        assert_eq!(clock.estimate(sent, wall), Some(1_000_001));
        let passed = Duration::from_micros(1_500_001);
        assert_eq!(
            clock.estimate(sent + passed, wall + passed),
            Some(1_001_502)
        );
    }

    #[test]
    fn the_larger_of_the_two_clocks_counts_and_a_disagreement_stops_the_estimate() {
        let (sent, wall) = start();
        let clock = read(1_000_000, sent, wall);
        let (mono, ahead) = (Duration::from_secs(2), Duration::from_secs(2) + 50 * MS);
        assert_eq!(clock.estimate(sent + mono, wall + ahead), Some(1_002_051));
        assert_eq!(clock.estimate(sent + ahead, wall + mono), Some(1_002_051));
        // A suspend (the monotonic clock stood still) or a step of the wall clock.
        let far = mono + MAX_CLOCK_DISAGREEMENT + MS;
        assert_eq!(clock.estimate(sent + mono, wall + far), None);
        assert_eq!(clock.estimate(sent + far, wall + mono), None);
        // The wall clock went back past the reading.
        assert_eq!(clock.estimate(sent + mono, wall - MS), None);
    }

    #[test]
    fn a_slow_call_tells_nothing() {
        let (sent, wall) = start();
        let clock = RedisClock::default();
        clock.sample_with_wall(1_000_000, sent, wall, sent + MAX_SAMPLE_ROUND_TRIP + MS);
        assert_eq!(clock.estimate(sent, wall), None);
    }

    #[test]
    fn an_old_reading_is_not_used() {
        let (sent, wall) = start();
        let clock = read(1_000_000, sent, wall);
        assert!(clock.estimate(sent + MAX_AGE, wall + MAX_AGE).is_some());
        let old = MAX_AGE + MS;
        assert_eq!(clock.estimate(sent + old, wall + old), None);
    }

    #[test]
    fn a_reading_sent_earlier_than_the_one_held_is_ignored() {
        let (first, wall) = start();
        let later = first + 100 * MS;
        let clock = read(2_000_000, later, wall + 100 * MS);
        clock.sample_with_wall(1_000_000, first, wall, later);
        assert_eq!(clock.estimate(later, wall + 100 * MS), Some(2_000_001));
    }

    #[test]
    fn a_sample_taken_now_is_used_now() {
        let clock = RedisClock::default();
        let sent = Instant::now();
        clock.sample(1_000_000, sent, Instant::now());
        let estimate = clock.estimate_at(Instant::now()).expect("an estimate");
        assert!((1_000_001..1_000_100).contains(&estimate), "{estimate}");
    }
}

//! How often one process's leasing calls may promote due delayed jobs.
//!
//! A call that leases jobs and finds the ready list dry promotes the delayed jobs that are
//! due first, which reads the delayed set. A worker waiting on a queue that is nearly always
//! empty (the detail queue between two chained jobs, an idle queue polled) would read the
//! delayed set at every call, to find nothing nearly every time: at thousands of calls a
//! second, one command in ten of the whole drain. So a process offers its calls the
//! promotion at most once per interval; a due job then waits at most that long past its due
//! time (it is a retry's backoff or a poll's delay, seconds), and the heartbeat task's own
//! promotion stays the backstop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether a leasing call may promote, shared by a queue's clones.
#[derive(Debug)]
pub(crate) struct PromoteGate {
    every: Duration,
    epoch: Instant,
    /// When a call was last offered the promotion: ms since `epoch`, plus one (0: never).
    last: AtomicU64,
}

impl PromoteGate {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// `chunk` when a call may promote now (none was offered it within the interval), and
    /// the interval starts again; 0 (no promotion) otherwise.
    pub(crate) fn chunk(&self, chunk: usize) -> usize {
        self.chunk_at(chunk, Instant::now())
    }

    fn chunk_at(&self, chunk: usize, now: Instant) -> usize {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        let every = self.every.as_millis() as u64;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now_ms < last.saturating_add(every) {
            return 0;
        }
        // One caller of several at once wins the interval.
        match self
            .last
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => chunk.max(1),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_may_promote_once_per_interval() {
        let gate = PromoteGate::new(Duration::from_millis(100));
        let t0 = gate.epoch;
        assert_eq!(gate.chunk_at(1_000, t0), 1_000, "the first call");
        assert_eq!(gate.chunk_at(1_000, t0 + Duration::from_millis(99)), 0);
        assert_eq!(gate.chunk_at(1_000, t0 + Duration::from_millis(100)), 1_000);
        assert_eq!(gate.chunk_at(1_000, t0 + Duration::from_millis(150)), 0);
        assert_eq!(gate.chunk_at(1_000, t0 + Duration::from_millis(200)), 1_000);
    }

    #[test]
    fn with_no_interval_every_call_may_promote() {
        let gate = PromoteGate::new(Duration::ZERO);
        let t0 = gate.epoch;
        assert_eq!(gate.chunk_at(1_000, t0), 1_000);
        assert_eq!(gate.chunk_at(1_000, t0), 1_000);
        assert_eq!(gate.chunk_at(0, t0), 1, "a chunk of at least one");
    }
}

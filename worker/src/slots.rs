//! Worker slot saturation: how many of this process' handler slots (its concurrency, per
//! queue) are busy, published as `nightly_refresh_worker_slot_saturation_ratio{queue}` on
//! every change. A ratio pinned at 1 means the pod's concurrency, not the rate limit or
//! Flinks, bounds its throughput; near 0 with work ready points at the fetch gate (pause,
//! rate limit) instead.
//!
//! Per process, unlike the sampler's gauges read from Redis: each pod knows its own
//! concurrency. Jobs a backend has claimed but not started (the detail batch) do not count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use shared::metrics::WORKER_SLOT_SATURATION_RATIO;

/// The handler slots of one queue in this process.
#[derive(Debug)]
pub struct Slots {
    queue: &'static str,
    capacity: usize,
    busy: AtomicUsize,
}

impl Slots {
    /// `capacity` slots (the worker's concurrency) for `queue`, all idle.
    pub fn new(queue: &'static str, capacity: usize) -> Arc<Self> {
        let slots = Arc::new(Self {
            queue,
            capacity: capacity.max(1),
            busy: AtomicUsize::new(0),
        });
        slots.publish(0);
        slots
    }

    /// Marks one slot busy until the guard drops (the handler ends or is cancelled).
    pub fn enter(self: &Arc<Self>) -> SlotGuard {
        let busy = self.busy.fetch_add(1, Ordering::Relaxed) + 1;
        self.publish(busy);
        SlotGuard(self.clone())
    }

    fn publish(&self, busy: usize) {
        metrics::gauge!(WORKER_SLOT_SATURATION_RATIO, "queue" => self.queue)
            .set(busy as f64 / self.capacity as f64);
    }
}

/// A busy slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard(Arc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let busy = self
            .0
            .busy
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        self.0.publish(busy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(rendered: &str) -> f64 {
        rendered
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"nightly_refresh_worker_slot_saturation_ratio{queue="authorize"} "#,
                )
            })
            .unwrap_or_else(|| panic!("no saturation gauge:\n{rendered}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn saturation_is_busy_handlers_over_concurrency_and_falls_when_they_end() {
        let recorder = shared::metrics::builder().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let slots = Slots::new("authorize", 4);
            assert_eq!(ratio(&handle.render()), 0.0);
            let first = slots.enter();
            let second = slots.enter();
            assert_eq!(ratio(&handle.render()), 0.5);
            drop(first);
            assert_eq!(ratio(&handle.render()), 0.25);
            drop(second);
            assert_eq!(ratio(&handle.render()), 0.0);
        });
    }
}

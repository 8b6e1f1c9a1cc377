//! Seeded fault injection: latency, 5xx, hangs and truncated bodies.
//!
//! One `StdRng` seeded from [`Faults::seed`] is drawn from once per faultable call
//! (Authorize, GetAccountsDetail, GetAccountsDetailAsync), in arrival order, so a sequence of
//! calls made one after another gets the same faults on every run. Concurrent calls get the
//! same multiset of faults but possibly in another order. This file decides; `routes.rs`
//! applies the decision.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Faults;

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer normally.
    None,
    /// 500 with a JSON Flinks error body.
    ErrorJson,
    /// 500 with an HTML body (a gateway page), not JSON.
    ErrorHtml,
    /// Sleep for the hang duration, then 504.
    Hang,
    /// The normal answer with its body cut in half.
    Malformed,
}

/// The draw for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) latency: Duration,
    pub(crate) fault: Fault,
}

pub(crate) struct Injector {
    config: Faults,
    rng: StdRng,
}

impl Injector {
    pub(crate) fn new(config: Faults) -> Self {
        Injector {
            config,
            rng: StdRng::seed_from_u64(config.seed),
        }
    }

    /// Back to the state right after construction (same seed).
    pub(crate) fn reseed(&mut self) {
        self.rng = StdRng::seed_from_u64(self.config.seed);
    }

    pub(crate) fn hang_for(&self) -> Duration {
        self.config.hang_for
    }

    /// Draws the plan for the next faultable call. Draws nothing when no fault is configured.
    pub(crate) fn next(&mut self) -> Plan {
        let c = self.config;
        if !c.is_active() {
            return Plan {
                latency: Duration::ZERO,
                fault: Fault::None,
            };
        }
        let latency_ms = if c.latency_max_ms > c.latency_min_ms {
            self.rng.random_range(c.latency_min_ms..=c.latency_max_ms)
        } else {
            c.latency_min_ms
        };
        let roll: f64 = self.rng.random();
        let html: bool = self.rng.random();
        let fault = if roll < c.error_rate {
            if html {
                Fault::ErrorHtml
            } else {
                Fault::ErrorJson
            }
        } else if roll < c.error_rate + c.hang_rate {
            Fault::Hang
        } else if roll < c.error_rate + c.hang_rate + c.malformed_rate {
            Fault::Malformed
        } else {
            Fault::None
        };
        Plan {
            latency: Duration::from_millis(latency_ms),
            fault,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_plans() {
        let faults = Faults {
            seed: 7,
            latency_min_ms: 1,
            latency_max_ms: 30,
            error_rate: 0.3,
            hang_rate: 0.1,
            malformed_rate: 0.2,
            ..Faults::default()
        };
        let draw = || {
            let mut i = Injector::new(faults);
            (0..50).map(|_| i.next()).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
        let plans = draw();
        assert!(plans.iter().any(|p| p.fault == Fault::None));
        assert!(plans.iter().any(|p| p.fault != Fault::None));
        assert!(plans.iter().all(|p| p.latency <= Duration::from_millis(30)));
    }
}

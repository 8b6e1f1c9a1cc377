//! The text of `producer ratelimit show|set` and `producer queues pause|resume`.

use crate::control::{QueueChange, RateChange, RateLimitState};

/// `ratelimit show`, with a note when this process' RATE_LIMIT_PER_MINUTE differs from the
/// stored limit in force.
pub fn rate_limit(state: &RateLimitState) -> String {
    let mut out = format!("rate limit: {}\n", state.describe());
    if state.stored && state.per_minute != state.configured {
        out += &format!(
            "note: RATE_LIMIT_PER_MINUTE here is {}; the stored limit applies\n",
            state.configured
        );
    }
    out
}

/// `ratelimit set`: the limit now in force and the one it replaced; `configured` is this
/// process' RATE_LIMIT_PER_MINUTE.
pub fn rate_limit_set(change: &RateChange, configured: f64) -> String {
    let now = RateLimitState {
        per_minute: change.per_minute,
        stored: true,
        configured,
    };
    format!(
        "rate limit set to {} (was {}); workers apply it at their next permit\n",
        now.describe(),
        change
            .previous
            .map_or_else(|| "none stored".to_string(), |p| p.to_string())
    )
}

/// `queues pause|resume`: one line per queue, `done` or `unchanged`.
pub fn queue_changes(changes: &[QueueChange], done: &str, unchanged: &str) -> String {
    let line = |c: &QueueChange| {
        let what = if c.changed { done } else { unchanged };
        format!("{}: {what}\n", c.queue)
    };
    changes.iter().map(line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_limit_that_differs_from_the_configured_one_gets_a_note() {
        let state = RateLimitState {
            per_minute: 30.0,
            stored: true,
            configured: 60.0,
        };
        let text = rate_limit(&state);
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.ends_with("note: RATE_LIMIT_PER_MINUTE here is 60; the stored limit applies\n")
        );
        let change = RateChange {
            per_minute: 30.0,
            previous: None,
        };
        assert!(rate_limit_set(&change, 60.0).contains("(was none stored)"));
    }

    #[test]
    fn queue_changes_say_whether_each_queue_changed() {
        let change = |queue, changed| QueueChange {
            queue,
            paused: true,
            changed,
        };
        let changes = [change("authorize", true), change("detail", false)];
        assert_eq!(
            queue_changes(&changes, "paused", "already paused"),
            "authorize: paused\ndetail: already paused\n"
        );
    }
}

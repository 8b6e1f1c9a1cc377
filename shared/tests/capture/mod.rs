//! What a `tracing_subscriber::fmt` subscriber writes, kept in memory for a test to read.
//! Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

/// A writer that appends to a shared buffer: clone it into the subscriber, read it after.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("log lines are UTF-8")
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `fmt` subscriber that keeps what `filter` (an `EnvFilter` directive) lets through, and
/// the buffer it writes to.
pub(crate) fn subscriber(filter: &str) -> (Captured, impl tracing::Subscriber + Send + Sync) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (captured, subscriber)
}

/// The one API call event in `logs`; fails naming the logs when there is none or more.
pub(crate) fn only_api_call_event(logs: &str) -> &str {
    let events: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("flinks.api_call: flinks api call"))
        .collect();
    assert_eq!(events.len(), 1, "one API call event expected:\n{logs}");
    events[0]
}

/// Fails naming the first of `expected` that `event` does not contain.
pub(crate) fn assert_contains_all(event: &str, expected: &[String]) {
    for part in expected {
        assert!(
            event.contains(part),
            "{part:?} missing from the event:\n{event}"
        );
    }
}

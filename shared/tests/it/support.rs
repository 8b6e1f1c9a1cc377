//! Test support: a real Redis connection with a namespace of its own per test, whose keys
//! are deleted when the test ends — so tests run in parallel on one Redis, never FLUSHALL.

use chrono::NaiveDate;
use shared::domain::LoginId;
use shared::ledger::{Ledger, LedgerOutcome, Overwrite};
use shared::outcomes::Outcomes;
use shared::redis_conn::RedisConn;
use shared::KeySpace;

/// A registry record of the test LoginId numbered `n` (`00000000-0000-4000-8000-<n>`, as
/// the suites' own `login(n)` make it), without tag or priority.
pub(crate) fn record(n: u32, active: bool) -> shared::registry::LoginRecordInput {
    shared::registry::LoginRecordInput {
        login_id: LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}"))
            .expect("a valid test LoginId"),
        active,
        tag: None,
        priority: None,
    }
}

/// The Redis tests talk to (`REDIS_URL`, default the local one).
pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The environment that names the suite's Redis deployment: `REDIS_URL` and, on a Cluster or
/// Sentinel run, `REDIS_MODE` and `REDIS_SENTINEL_MASTER`.
pub(crate) fn redis_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k == "REDIS_MODE" || k == "REDIS_SENTINEL_MASTER")
        .collect();
    env.push(("REDIS_URL".to_string(), redis_url()));
    env
}

/// One test's slice of the real Redis.
pub(crate) struct TestRedis {
    pub(crate) conn: RedisConn,
    pub(crate) keys: KeySpace,
}

impl TestRedis {
    /// Connects and picks a namespace unique to this test run.
    pub(crate) async fn new(test: &str) -> Self {
        let conn = shared::redis_conn::connect_in_env_mode(&redis_url())
            .await
            .expect("a Redis must answer at REDIS_URL (scripts/ensure-redis starts one)");
        let namespace = format!("test-{test}-{}", uuid::Uuid::new_v4().simple());
        Self {
            conn,
            keys: shared::config::key_space_in_env(&namespace),
        }
    }

    /// Deletes every key of this test's namespace (plain and hash-tagged forms).
    pub(crate) async fn cleanup(&self) {
        self.keys
            .delete_all(&self.conn)
            .await
            .expect("cleanup of the test namespace");
    }
}

/// `record` with the ordinary overwrite rule (anything but a final `Refreshed`), unwrapped:
/// how most tests write an outcome.
pub(crate) trait RecordExt {
    /// Records `outcome` for (`login`, `date`); true when written.
    async fn put(&self, date: NaiveDate, login: &LoginId, outcome: &LedgerOutcome) -> bool;
}

impl RecordExt for Ledger {
    async fn put(&self, date: NaiveDate, login: &LoginId, outcome: &LedgerOutcome) -> bool {
        self.record(date, login, outcome, Overwrite::AllButRefreshed)
            .await
            .unwrap()
    }
}

impl RecordExt for Outcomes {
    async fn put(&self, date: NaiveDate, login: &LoginId, outcome: &LedgerOutcome) -> bool {
        self.record(date, login, outcome, Overwrite::AllButRefreshed)
            .await
            .unwrap()
    }
}

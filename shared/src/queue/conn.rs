//! Connecting the queue to Redis: a thin adapter over [`crate::redis_conn`], the one
//! connect implementation of the workspace (same timeouts, reconnect policy, `PING` check
//! and password redaction), that reports failures as [`QueueError::Unreachable`].
//!
//! The `RedisConn` reconnects by itself after an error; commands in flight during a
//! blip fail with a `QueueError::Redis` and the queue's loops retry them with backoff.

use crate::redis_conn::RedisConn;

use super::error::QueueError;
use crate::redis_conn::{self, RedisConnError};

pub use crate::redis_conn::{manager_config, redact, RESPONSE_TIMEOUT};

/// Timeout of one connection attempt (the same as [`redis_conn::CONNECT_TIMEOUT`]).
pub const CONNECTION_TIMEOUT: std::time::Duration = redis_conn::CONNECT_TIMEOUT;

/// Connects to `url` (redis:// or rediss://). The error names the URL without its password.
pub async fn connect(url: &str) -> Result<RedisConn, QueueError> {
    redis_conn::connect_url(url).await.map_err(|e| match e {
        RedisConnError::Unreachable { url, source } => QueueError::Unreachable { url, source },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("redis://user:hunter2@redis:6379/0"),
            "redis://user:***@redis:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}

//! Connecting to Redis with timeouts and reconnects that survive blips.
//!
//! The `ConnectionManager` reconnects by itself after an error; commands in flight during a
//! blip fail with a `QueueError::Redis` and the queue's loops retry them with backoff. The
//! response timeout is 5 s (apalis-redis' 500 ms turned every stall into a dead worker).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::QueueError;

/// Response timeout of every command.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one connection attempt.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// The manager configuration used by [`connect`].
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_number_of_retries(6)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
}

/// Connects to `url` (redis:// or rediss://). The error names the URL without its password.
pub async fn connect(url: &str) -> Result<ConnectionManager, QueueError> {
    let unreachable = |source| QueueError::Unreachable {
        url: redact(url),
        source,
    };
    let client = redis::Client::open(url).map_err(unreachable)?;
    ConnectionManager::new_with_config(client, manager_config())
        .await
        .map_err(unreachable)
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<invalid url>".to_string(),
    }
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

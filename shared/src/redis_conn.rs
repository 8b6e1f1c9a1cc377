//! Connecting to Redis with timeouts, so a dead or unreachable Redis fails fast with a
//! message that names it, instead of hanging a CLI or a worker at boot.
//!
//! This is the one connect path of the workspace: [`connect`] (settings' [`SecretUrl`]),
//! [`connect_url`] (a plain string) and `shared::queue::connect` all end in
//! [`connect_url`], with one [`manager_config`]. `redis://` and `rediss://` (TLS, rustls
//! with the system's and webpki roots) both work, with or without `user:password@`.
//!
//! One [`ConnectionManager`] per process: it multiplexes every caller over one connection
//! and reconnects on its own (exponential backoff with jitter). Commands in flight during a
//! blip fail and the caller decides (the queue's loops retry with backoff). This module
//! does not retry commands.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::SecretUrl;

/// Each connection attempt gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A command without an answer after this long fails (apalis-redis' 500 ms turned every
/// stall into a dead worker).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect attempts before a connection error is returned to the caller (about 5 s of
/// backoff in all, so a Redis restart or failover is ridden out).
pub const RECONNECT_RETRIES: usize = 6;
/// First reconnect delay; it grows exponentially (jittered) up to [`RECONNECT_MAX_DELAY`].
pub const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between two reconnect attempts.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// Why Redis could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnError {
    /// The URL was rejected, the server did not answer, or refused the connection.
    /// The URL is redacted (no password).
    #[error("Redis unreachable at {url}: {source}")]
    Unreachable {
        /// The redacted URL.
        url: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
    },
}

/// The connection-manager settings every process uses.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_min_delay(RECONNECT_MIN_DELAY)
        .set_max_delay(RECONNECT_MAX_DELAY)
}

/// The connection every store takes: reconnecting, cheap to clone. Binaries name it
/// through this alias so they need no Redis client of their own.
pub type Connection = ConnectionManager;

/// Connects to `url` and checks the connection with a `PING`.
pub async fn connect(url: &SecretUrl) -> Result<ConnectionManager, RedisConnError> {
    connect_url(url.expose()).await
}

/// Connects to a plain `url` (redis:// or rediss://) and checks it with a `PING`. Errors
/// name the URL without its password (see [`redact`]); so does their `Debug`.
pub async fn connect_url(url: &str) -> Result<ConnectionManager, RedisConnError> {
    let unreachable = |source| RedisConnError::Unreachable {
        url: redact(url),
        source,
    };
    let client = redis::Client::open(url).map_err(unreachable)?;
    let mut conn = ConnectionManager::new_with_config(client, manager_config())
        .await
        .map_err(unreachable)?;
    ping_raw(&mut conn).await.map_err(unreachable)?;
    Ok(conn)
}

/// `url` without its credentials ([`crate::config::redact_url`]), safe for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => crate::config::redact_url(&u),
        Err(_) => "<invalid url>".to_string(),
    }
}

/// Sends a `PING`; `Ok` when Redis answered.
pub async fn ping(conn: &ConnectionManager) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    ping_raw(&mut conn).await
}

async fn ping_raw(conn: &mut ConnectionManager) -> Result<(), redis::RedisError> {
    let _: String = redis::cmd("PING").query_async(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("rediss://user:hunter2@redis:6380/0"),
            "rediss://user:***@redis:6380/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://hunter2@redis:6379"),
            "redis://***@redis:6379",
            "a password in the user-name position"
        );
        assert_eq!(redact("not a url hunter2"), "<invalid url>");
    }
}

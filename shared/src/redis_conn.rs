//! Connecting to Redis with timeouts, so a dead or unreachable Redis fails fast with a
//! message that names it, instead of hanging a CLI or a worker at boot.
//!
//! One [`ConnectionManager`] per process: it multiplexes every caller over one connection
//! and reconnects on its own (exponential backoff with jitter). This module does not
//! retry commands; callers decide what a failed command means.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::SecretUrl;

/// Each connection attempt gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A command without an answer after this long fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect attempts before a connection error is returned to the caller.
pub const RECONNECT_RETRIES: usize = 3;
/// First reconnect delay; it grows exponentially (jittered) up to [`RECONNECT_MAX_DELAY`].
pub const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
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

/// Connects to `url` and checks the connection with a `PING`.
pub async fn connect(url: &SecretUrl) -> Result<ConnectionManager, RedisConnError> {
    let unreachable = |source| RedisConnError::Unreachable {
        url: url.redacted(),
        source,
    };
    let client = redis::Client::open(url.expose()).map_err(unreachable)?;
    let mut conn = ConnectionManager::new_with_config(client, manager_config())
        .await
        .map_err(unreachable)?;
    ping_raw(&mut conn).await.map_err(unreachable)?;
    Ok(conn)
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

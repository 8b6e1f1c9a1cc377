//! Connecting to Redis with timeouts, so a dead or unreachable Redis fails fast with a
//! message that names it, instead of hanging a CLI or a worker at boot.
//!
//! This is the one connect path of the workspace: [`connect`] (the settings'
//! [`RedisTarget`]: standalone, Cluster or Sentinel), [`connect_url`] (one plain URL) and
//! `shared::queue::connect` all end here, with one [`manager_config`]. `redis://` and
//! `rediss://` (TLS, rustls with the system's and webpki roots) both work, with or without
//! `user:password@`, in every mode.
//!
//! Every store takes a [`RedisConn`], one handle whatever the deployment:
//!
//! - **Standalone**: one [`ConnectionManager`]; it multiplexes every caller over one
//!   connection and reconnects on its own (exponential backoff with jitter).
//! - **Cluster**: the redis crate's async cluster client. It follows MOVED/ASK, loads scripts
//!   on every node (`SCRIPT LOAD` goes to all of them, `EVALSHA` to the key's slot) and
//!   refreshes the slot map after a failover. Every script's keys share one hash tag, so a
//!   script runs on one node. A plain pipeline whose commands touch several slots (a bulk
//!   import over many logins) is split here into one request per command, sent at once, with
//!   the answers put back in order; a transaction must stay within one slot.
//! - **Sentinel**: a [`ConnectionManager`] on the master the sentinels name. When a command
//!   fails the way a failover makes it fail (connection refused or dropped, `READONLY` from a
//!   demoted master), the sentinels are asked again and the handle moves to the new master;
//!   the failed command's error is returned, and callers retry as they do after any blip.
//!
//! Commands in flight during a blip fail and the caller decides (the queue's loops retry
//! with backoff). This module does not retry commands.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;

use crate::config::{RedisMode, RedisTarget, SecretUrl};

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
        /// The redacted URL (a comma-separated list for Cluster and Sentinel).
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

/// A connection to Redis, whatever the deployment (see the module docs). Cheap to clone:
/// every clone shares the same connections.
#[derive(Clone)]
pub enum RedisConn {
    /// One server.
    Standalone(ConnectionManager),
    /// Redis Cluster.
    Cluster(ClusterConnection),
    /// The master the sentinels name.
    Sentinel(SentinelConn),
    /// One primary of a cluster (from [`RedisConn::primaries`]): every command goes to it.
    Node(NodeConn),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConn({})", self.mode())
    }
}

impl From<ConnectionManager> for RedisConn {
    fn from(conn: ConnectionManager) -> Self {
        RedisConn::Standalone(conn)
    }
}

impl RedisConn {
    /// The deployment this handle talks to.
    pub fn mode(&self) -> RedisMode {
        match self {
            RedisConn::Standalone(_) => RedisMode::Standalone,
            RedisConn::Sentinel(_) => RedisMode::Sentinel,
            RedisConn::Cluster(_) | RedisConn::Node(_) => RedisMode::Cluster,
        }
    }

    /// One handle per primary node, for the few commands that work node by node (`SCAN`):
    /// the cluster's masters, or this handle itself otherwise.
    pub async fn primaries(&self) -> redis::RedisResult<Vec<RedisConn>> {
        let RedisConn::Cluster(cluster) = self else {
            return Ok(vec![self.clone()]);
        };
        let mut cluster = cluster.clone();
        let nodes: String = cluster
            .route_command(
                redis::cmd("CLUSTER").arg("NODES").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .and_then(|v| Ok(redis::from_redis_value(v)?))?;
        Ok(masters_of(&nodes)
            .into_iter()
            .map(|slot| {
                RedisConn::Node(NodeConn {
                    cluster: cluster.clone(),
                    slot,
                })
            })
            .collect())
    }
}

/// One primary of a cluster, reached through the cluster connection by a slot it serves
/// (routing by slot always finds a connection; routing by address only finds one the
/// client already opened).
#[derive(Clone)]
pub struct NodeConn {
    cluster: ClusterConnection,
    slot: u16,
}

impl NodeConn {
    fn route(&self) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::SpecificNode(Route::new(self.slot, SlotAddr::Master))
    }
}

/// One slot served by each master that serves any, from a `CLUSTER NODES` answer.
fn masters_of(nodes: &str) -> Vec<u16> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            // Slot fields: `0-5460` or `5461`; `[…]` marks a slot being migrated.
            fields.get(8..)?.iter().find_map(|range| {
                if range.starts_with('[') {
                    return None;
                }
                range.split('-').next()?.parse().ok()
            })
        })
        .collect()
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Standalone(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(c) => Box::pin(c.command(cmd)),
            RedisConn::Node(n) => Box::pin(async move {
                let route = RoutingInfo::SingleNode(n.route());
                n.cluster.route_command(cmd.clone(), route).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => Box::pin(cluster_pipeline(c, pipeline, offset, count)),
            RedisConn::Sentinel(c) => Box::pin(c.pipeline(pipeline, offset, count)),
            RedisConn::Node(n) => Box::pin(async move {
                let route = n.route();
                n.cluster
                    .route_pipeline(pipeline.clone(), offset, count, route)
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Standalone(c) => c.get_db(),
            RedisConn::Cluster(_) | RedisConn::Node(_) => 0,
            RedisConn::Sentinel(c) => c.current().get_db(),
        }
    }
}

/// A pipeline on a cluster. A transaction (or a single command) goes as one request, and
/// the server checks its keys share a slot. A plain pipeline may span slots (a bulk write
/// over many logins), so each command goes on its own, all at once over the multiplexed
/// connections, and the answers come back in the pipeline's order. As on one server, every
/// command runs even when one fails, and the first failure is the pipeline's error.
async fn cluster_pipeline(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> redis::RedisResult<Vec<Value>> {
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let plain = offset == 0 && count == commands.len();
    if !plain || commands.len() < 2 {
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    let sends = commands.into_iter().map(|cmd| {
        let mut conn = conn.clone();
        async move { conn.req_packed_command(cmd).await }
    });
    join_all(sends).await.into_iter().collect()
}

/// A handle on the master the sentinels name, moved to the new master after a failover.
#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<(ConnectionAddr, ConnectionManager)>,
    redacted: String,
}

impl SentinelConn {
    async fn open(target: &RedisTarget) -> redis::RedisResult<Self> {
        let mut client = sentinel_client(target)?;
        let (addr, conn) = master_connection(&mut client).await?;
        Ok(SentinelConn {
            shared: Arc::new(SentinelShared {
                sentinels: tokio::sync::Mutex::new(client),
                current: RwLock::new((addr, conn)),
                redacted: target.redacted(),
            }),
        })
    }

    fn current(&self) -> ConnectionManager {
        self.shared.current.read().expect("lock").1.clone()
    }

    async fn command(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let result = self.current().req_packed_command(cmd).await;
        self.after(result).await
    }

    async fn pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let result = self
            .current()
            .req_packed_commands(pipeline, offset, count)
            .await;
        self.after(result).await
    }

    /// Passes `result` through; when it failed as a failover makes commands fail, first asks
    /// the sentinels where the master is now and moves there.
    async fn after<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(e) = &result {
            if is_failover_symptom(e) {
                self.rediscover().await;
            }
        }
        result
    }

    async fn rediscover(&self) {
        let mut sentinels = self.shared.sentinels.lock().await;
        match master_connection(&mut sentinels).await {
            Ok((addr, conn)) => {
                let mut current = self.shared.current.write().expect("lock");
                if current.0 != addr {
                    tracing::warn!(sentinels = %self.shared.redacted, master = %addr,
                        "Redis master moved (Sentinel failover); using the new master");
                    *current = (addr, conn);
                }
            }
            Err(e) => tracing::warn!(sentinels = %self.shared.redacted, error = %e,
                "the sentinels did not name a reachable master; retrying on the next error"),
        }
    }
}

/// Errors a failover produces on the old master's connection.
fn is_failover_symptom(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        || e.code() == Some("READONLY")
        || e.code() == Some("MASTERDOWN")
}

fn sentinel_client(target: &RedisTarget) -> redis::RedisResult<SentinelClient> {
    let master = target.sentinel_master.as_deref().unwrap_or_default();
    let mut data_node = None;
    let mut sentinels = Vec::new();
    for url in &target.urls {
        let info = url.expose().into_connection_info()?;
        data_node.get_or_insert_with(|| info.redis_settings().clone());
        let mut own = redis::RedisConnectionInfo::default();
        if let Some(password) = &target.sentinel_password {
            own = own.set_password(password.expose_secret());
        }
        sentinels.push(info.set_redis_settings(own));
    }
    let tls = target.urls[0].expose().starts_with("rediss://");
    let mut node = SentinelNodeConnectionInfo::default();
    if let Some(data_node) = data_node {
        node = node.set_redis_connection_info(data_node);
    }
    if tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)
}

async fn master_connection(
    client: &mut SentinelClient,
) -> redis::RedisResult<(ConnectionAddr, ConnectionManager)> {
    let master = client.async_get_client().await?;
    let addr = master.get_connection_info().addr().clone();
    let mut conn = ConnectionManager::new_with_config(master, manager_config()).await?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    Ok((addr, conn))
}

/// Connects to the deployment `target` describes and checks it with a `PING`. Errors name
/// the URLs without their passwords.
pub async fn connect(target: &RedisTarget) -> Result<RedisConn, RedisConnError> {
    let unreachable = |source| RedisConnError::Unreachable {
        url: target.redacted(),
        source,
    };
    let mut conn = match target.mode {
        RedisMode::Standalone => return connect_url(target.urls[0].expose()).await,
        RedisMode::Cluster => {
            let client = ClusterClient::builder(target.urls.iter().map(SecretUrl::expose))
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(RECONNECT_RETRIES as u32)
                .build()
                .map_err(unreachable)?;
            RedisConn::Cluster(client.get_async_connection().await.map_err(unreachable)?)
        }
        RedisMode::Sentinel => {
            RedisConn::Sentinel(SentinelConn::open(target).await.map_err(unreachable)?)
        }
    };
    ping_raw(&mut conn).await.map_err(unreachable)?;
    Ok(conn)
}

/// Connects to `urls` (one URL, or a comma-separated list) in the mode the environment's
/// `REDIS_MODE` and `REDIS_SENTINEL_MASTER` name (standalone when unset): how tests,
/// benchmarks and test fixtures reach the same Redis deployment the processes they start do.
pub async fn connect_in_env_mode(urls: &str) -> Result<RedisConn, RedisConnError> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k == "REDIS_MODE" || k == "REDIS_SENTINEL_MASTER")
        .collect();
    env.push(("REDIS_URL".into(), urls.into()));
    match crate::config::Settings::load_from(None, env) {
        Ok(settings) => connect(&settings.redis).await,
        Err(e) => Err(RedisConnError::Unreachable {
            url: crate::config::redact_url_str(urls),
            source: redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "bad Redis settings",
                e.to_string(),
            )),
        }),
    }
}

/// Connects to one standalone server at a plain `url` (redis:// or rediss://) and checks it
/// with a `PING`. Errors name the URL without its password (see [`redact`]); so does their
/// `Debug`.
pub async fn connect_url(url: &str) -> Result<RedisConn, RedisConnError> {
    let unreachable = |source| RedisConnError::Unreachable {
        url: redact(url),
        source,
    };
    let client = redis::Client::open(url).map_err(unreachable)?;
    let conn = ConnectionManager::new_with_config(client, manager_config())
        .await
        .map_err(unreachable)?;
    let mut conn = RedisConn::Standalone(conn);
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
pub async fn ping(conn: &RedisConn) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    ping_raw(&mut conn).await
}

async fn ping_raw(conn: &mut RedisConn) -> Result<(), redis::RedisError> {
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

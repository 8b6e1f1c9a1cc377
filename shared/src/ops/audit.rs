//! The audit trail: every mutating ops command appends who, what, when and how many to a
//! capped Redis stream (`ns:audit`, `MAXLEN ~` [`AUDIT_MAXLEN`]), and `producer audit`
//! reads it back, newest first.
//!
//! Entries hold an argument *summary* built by the caller (LoginIds, codes, dates, flags);
//! callers never put secrets in it. Appending is best effort for the caller's purposes,
//! but this module returns the error so the caller decides.

use crate::redis_conn::RedisConn;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::keys::KeySpace;

/// Approximate cap of the audit stream.
pub const AUDIT_MAXLEN: usize = 10_000;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// The stream id (`<ms>-<seq>`); empty before it is written.
    pub id: String,
    /// Who ran it (`--actor`, or `USER`).
    pub actor: String,
    /// The command, e.g. `queues requeue failed`.
    pub command: String,
    /// An argument summary (never secrets).
    pub args: String,
    /// Items affected.
    pub count: u64,
    /// Items that failed, in bulk operations.
    pub failed: u64,
    /// When it ran.
    pub at: DateTime<Utc>,
}

/// The audit stream of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    conn: RedisConn,
    key: String,
}

impl AuditLog {
    /// The audit stream of the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        Self {
            conn,
            key: keys.global("audit"),
        }
    }

    /// Appends `entry` (its `id` is ignored) and returns the new stream id.
    pub async fn append(&self, entry: &AuditEntry) -> Result<String, redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(AUDIT_MAXLEN)
            .arg("*")
            .arg("actor")
            .arg(&entry.actor)
            .arg("command")
            .arg(&entry.command)
            .arg("args")
            .arg(&entry.args)
            .arg("count")
            .arg(entry.count)
            .arg("failed")
            .arg(entry.failed)
            .arg("at")
            .arg(entry.at.to_rfc3339())
            .query_async(&mut conn)
            .await
    }

    /// The `limit` newest entries, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<AuditEntry>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .into_iter()
            .map(|(id, fields)| {
                let get = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                AuditEntry {
                    actor: get("actor"),
                    command: get("command"),
                    args: get("args"),
                    count: get("count").parse().unwrap_or(0),
                    failed: get("failed").parse().unwrap_or(0),
                    at: DateTime::parse_from_rfc3339(&get("at"))
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_default(),
                    id,
                }
            })
            .collect())
    }
}

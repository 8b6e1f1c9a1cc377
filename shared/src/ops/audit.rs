//! The audit trail: every mutating ops command appends who, what, when and how many to a
//! capped Redis stream (`ns:audit`, `MAXLEN ~` [`AUDIT_MAXLEN`]), and `producer audit`
//! reads it back, newest first.
//!
//! Entries hold an argument *summary* built by the caller (LoginIds, codes, dates, flags);
//! callers never put secrets in it. Appending is best effort for the caller's purposes,
//! but this module returns the error so the caller decides.
//!
//! The actor comes from `--actor` or the environment, so anyone who runs a command picks
//! it: [`sanitize_actor`] keeps it to one short, printable word before it is stored, so an
//! actor can never forge a second line or hide escape sequences in `producer audit`.

use crate::redis_conn::RedisConn;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::keys::KeySpace;

/// Approximate cap of the audit stream.
pub const AUDIT_MAXLEN: usize = 10_000;

/// The longest actor stored; longer ones are cut.
pub const MAX_ACTOR_CHARS: usize = 64;

/// The actor as stored: letters, digits and `. _ - @ :` kept, every other character
/// replaced by `_`, cut to [`MAX_ACTOR_CHARS`]; `unknown` when nothing is left.
pub fn sanitize_actor(raw: &str) -> String {
    let clean: String = raw
        .trim()
        .chars()
        .take(MAX_ACTOR_CHARS)
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.chars().all(|c| c == '_') {
        "unknown".to_string()
    } else {
        clean
    }
}

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

    /// Appends one entry stamped now, with the actor sanitized; returns its stream id.
    pub async fn record(
        &self,
        actor: &str,
        command: &str,
        args: impl Into<String>,
        count: u64,
        failed: u64,
    ) -> Result<String, redis::RedisError> {
        self.append(&AuditEntry {
            id: String::new(),
            actor: actor.to_string(),
            command: command.to_string(),
            args: args.into(),
            count,
            failed,
            at: Utc::now(),
        })
        .await
    }

    /// Appends `entry` (its `id` is ignored, its actor sanitized) and returns the new
    /// stream id.
    pub async fn append(&self, entry: &AuditEntry) -> Result<String, redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(AUDIT_MAXLEN)
            .arg("*")
            .arg("actor")
            .arg(sanitize_actor(&entry.actor))
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
        self.page(None, limit).await
    }

    /// The `limit` newest entries older than the entry `before` (a stream id a previous
    /// page ended with; the newest when `None`), newest first: a page of the trail without
    /// reading what precedes it.
    pub async fn page(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let end = before.map_or_else(|| "+".to_string(), |id| format!("({id}"));
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg(end)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_is_kept_to_one_short_printable_word() {
        assert_eq!(sanitize_actor("alice"), "alice");
        assert_eq!(sanitize_actor(" ops@host-1 "), "ops@host-1");
        assert_eq!(sanitize_actor("schedule:pod-7"), "schedule:pod-7");
        assert_eq!(sanitize_actor("eve\nadmin\u{1b}[31m"), "eve_admin__31m");
        assert_eq!(sanitize_actor("a b"), "a_b");
        assert_eq!(sanitize_actor(""), "unknown");
        assert_eq!(sanitize_actor("\u{1b}\u{7}"), "unknown");
        assert_eq!(sanitize_actor(&"x".repeat(500)).len(), MAX_ACTOR_CHARS);
    }
}

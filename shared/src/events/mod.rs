//! Outcome events: what the customer's application must act on (ask a user to reconnect, drop
//! an invalid LoginId, look at a failure), in one Redis stream it can consume like the
//! results stream, and optionally pushed to it by signed webhooks ([`webhook`]).
//!
//! # A transactional outbox
//!
//! The ledger script (`ledger_record.lua`) appends each event in the same atomic step as the
//! outcome it reports: no outcome without its event, no event without its outcome. The
//! stream `{ns:ledger}:events` shares the ledger's hash tag for that (Redis Cluster); with
//! several ledger buckets each has its own (`{ns:ledger:<b>}:events`), and a login's events
//! are all in its bucket's, in order. The
//! other two sources append in one step with their own change: `producer logins
//! reconnected` (`reconnected.lua`, with the re-auth index it clears) and Flinks' confirmed
//! SetScheduledRefresh (`flinks.lua`, deduplicated by the change's stamp, because the
//! confirmation itself lives in the login's hash in another slot).
//!
//! | `type` | when |
//! |---|---|
//! | `needs_reauth` | a login needs the user to reconnect; once per episode, however many days it lasts |
//! | `reauth_resolved` | that episode ended: the login refreshed again (`source=refreshed`) or `logins reconnected` (`source=reconnected`) |
//! | `invalid_login` | Flinks does not know the LoginId; once per episode |
//! | `failed` | a permanent failure or retries exhausted; once per (login, routine date) |
//! | `deactivated` / `activated` | Flinks confirmed the login's nightly refresh off / on |
//!
//! An episode is kept per login in its bucket's `{ns:ledger}:events:episodes` and closed by
//! its next refresh (or reconnect). Entry fields: `event_id` (a digest that is the same every time
//! this event is read or delivered), `type`, `login_id`, `routine_date`, `at` (RFC 3339
//! UTC), and when known `flinks_code`, `message`, `unrecognised_code`, `http_status`,
//! `source`. Never account data.
//!
//! # Capped without losing what is unread
//!
//! Appends never trim. [`Events::trim`] (every worker, now and then) removes the oldest
//! entries beyond `EVENTS_STREAM_MAXLEN`, but never one a consumer group of the stream has
//! not acknowledged, nor one the webhook has not delivered. What the cap would remove but
//! must keep is reported ([`TrimReport::held`]): a warning, a gauge and an alert.

pub mod webhook;

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDate, Utc};
use redis::Script;
use serde::Serialize;

use crate::domain::LoginId;
use crate::keys::KeySpace;

static RECONNECTED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("reconnected.lua")));
static FLINKS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("flinks.lua")));

/// Gauge: entries beyond `EVENTS_STREAM_MAXLEN` that the trim keeps because a consumer
/// group or the webhook has not acknowledged them.
pub const EVENTS_STREAM_HELD_ENTRIES: &str = "nightly_refresh_events_stream_held_entries";
/// Counter: entries removed from the events stream by the cap.
pub const EVENTS_TRIMMED_TOTAL: &str = "nightly_refresh_events_trimmed_total";

/// Entries read per `XRANGE` page while trimming or filtering.
const PAGE: usize = 1_000;

/// Why an events operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Redis did not answer or refused the command; the caller retries later.
    #[error("events: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A caller's argument is not usable (names it).
    #[error("events: {0}")]
    Invalid(String),
}

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// The user must reconnect the login.
    NeedsReauth,
    /// A login that needed re-auth refreshed again or was reconnected.
    ReauthResolved,
    /// Flinks does not know the LoginId.
    InvalidLogin,
    /// A permanent failure, or retries exhausted.
    Failed,
    /// Flinks confirmed the login's nightly refresh off.
    Deactivated,
    /// Flinks confirmed the login's nightly refresh on.
    Activated,
}

impl EventType {
    /// Every type, in the order of the docs.
    pub const ALL: [EventType; 6] = [
        EventType::NeedsReauth,
        EventType::ReauthResolved,
        EventType::InvalidLogin,
        EventType::Failed,
        EventType::Deactivated,
        EventType::Activated,
    ];

    /// The wire name (`needs_reauth`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NeedsReauth => "needs_reauth",
            EventType::ReauthResolved => "reauth_resolved",
            EventType::InvalidLogin => "invalid_login",
            EventType::Failed => "failed",
            EventType::Deactivated => "deactivated",
            EventType::Activated => "activated",
        }
    }

    /// The type named `raw`, or an error listing the names.
    pub fn parse(raw: &str) -> Result<Self, EventsError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                EventsError::Invalid(format!(
                    "unknown event type {raw:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// One event as consumers and the webhook see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Stable id: receivers dedupe on it (delivery is at-least-once).
    pub event_id: String,
    /// The event's type (its wire name; an unknown one is passed through).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The login.
    pub login_id: String,
    /// The routine date of the outcome (for `activated` / `deactivated`: the UTC date
    /// Flinks confirmed).
    pub routine_date: String,
    /// When the outcome happened, RFC 3339 UTC.
    pub at: String,
    /// The FlinksCode, when the outcome had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flinks_code: Option<String>,
    /// Flinks' message, when the outcome had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `needs_reauth` only (always there): true when it rests on the routine's 401 rule, not on a
    /// FlinksCode known to mean re-auth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unrecognised_code: Option<bool>,
    /// `failed` only: the last HTTP status, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// `reauth_resolved` only: `refreshed` or `reconnected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Event {
    /// The event of one stream entry's fields; `None` when a required field is missing.
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<Self> {
        let get = |name: &str| fields.get(name).cloned();
        Some(Event {
            event_id: get("event_id")?,
            event_type: get("type")?,
            login_id: get("login_id")?,
            routine_date: get("routine_date").unwrap_or_default(),
            at: get("at").unwrap_or_default(),
            flinks_code: get("flinks_code"),
            message: get("message"),
            unrecognised_code: get("unrecognised_code").map(|v| v == "true"),
            http_status: get("http_status").and_then(|v| v.parse().ok()),
            source: get("source"),
        })
    }
}

/// One event with its stream entry id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// The stream entry id (what `XREADGROUP` / `XACK` use).
    pub id: String,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Which events [`Events::read`] returns.
#[derive(Debug, Clone, Default)]
pub struct ReadFilter {
    /// Only these types (all when empty).
    pub types: Vec<EventType>,
    /// Only events appended at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// One page of [`Events::read`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPage {
    /// The events read, oldest first.
    pub events: Vec<EventRecord>,
    /// The start of the next page (`(ID`), `None` when the stream was read to its end.
    pub next: Option<String>,
}

/// What one [`Events::trim`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimReport {
    /// Entries removed.
    pub trimmed: u64,
    /// Entries beyond the cap kept because a consumer has not acknowledged them.
    pub held: u64,
}

/// The stream-entry time (milliseconds) of an id `ms-seq`.
pub fn id_millis(id: &str) -> Option<i64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

/// Stream ids compare by (ms, seq), not as text.
fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Puts `entries` of several streams in stream-id order and cuts them to a page of `count`
/// (none when `count` is 0), and past it only the entries of the page's last id: two
/// streams can each hold one, and a page that ended between them would lose the second to
/// the next page's exclusive start. Returns true when it cut entries off.
pub(crate) fn merge_page<T>(
    entries: &mut Vec<T>,
    count: usize,
    id_of: impl Fn(&T) -> &str,
) -> bool {
    entries.sort_by_key(|e| id_key(id_of(e)));
    if count == 0 || entries.len() <= count {
        return false;
    }
    let last = id_key(id_of(&entries[count - 1]));
    let ties = entries[count..]
        .iter()
        .take_while(|e| id_key(id_of(e)) == last)
        .count();
    entries.truncate(count + ties);
    true
}

/// The id just after `id`, for an exclusive XRANGE start that also works on Redis < 6.2.
fn after(id: &str) -> String {
    format!("({id}")
}

/// Turns an XRANGE reply into records, skipping entries without the required fields.
fn records(reply: redis::streams::StreamRangeReply) -> Vec<EventRecord> {
    reply
        .ids
        .into_iter()
        .filter_map(|entry| {
            let fields: HashMap<String, String> = entry
                .map
                .iter()
                .filter_map(|(k, v)| {
                    redis::from_redis_value_ref::<String>(v)
                        .ok()
                        .map(|v| (k.clone(), v))
                })
                .collect();
            Event::from_fields(&fields).map(|event| EventRecord {
                id: entry.id.clone(),
                event,
            })
        })
        .collect()
}

/// The events stream of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    conn: RedisConn,
    keys: KeySpace,
}

impl Events {
    /// The events of the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        Self {
            conn,
            keys: keys.clone(),
        }
    }

    /// The streams' keys, one per ledger bucket, for consumers (`XREADGROUP`).
    pub fn stream_keys(&self) -> Vec<String> {
        self.keys
            .all_ledger_buckets()
            .map(|b| self.keys.events_stream(b))
            .collect()
    }

    /// Entries in the streams.
    pub async fn entries(&self) -> Result<u64, EventsError> {
        let mut pipe = redis::pipe();
        for key in self.stream_keys() {
            pipe.cmd("XLEN").arg(key);
        }
        let mut conn = self.conn.clone();
        let lengths: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(lengths.iter().sum())
    }

    /// Up to `count` events from `from` (an XRANGE start: `-`, an id, or `(id` for after
    /// it) that pass `filter`, oldest first across every ledger bucket's stream. Reads only:
    /// acknowledges and trims nothing. The page never ends between two entries of one id
    /// (two buckets' streams can each hold one), so reading on from `next` misses nothing.
    pub async fn read(
        &self,
        from: &str,
        count: usize,
        filter: &ReadFilter,
    ) -> Result<EventPage, EventsError> {
        if count == 0 {
            return Ok(EventPage {
                events: Vec::new(),
                next: None,
            });
        }
        let start = match filter.since {
            Some(since) if from == "-" => since.timestamp_millis().max(0).to_string(),
            _ => from.to_string(),
        };
        let mut merged = Vec::new();
        let mut more = false;
        for key in self.stream_keys() {
            let (events, cut) = self.read_stream(&key, &start, count, filter).await?;
            merged.extend(events);
            more |= cut;
        }
        more |= merge_page(&mut merged, count, |r| &r.id);
        let next = if more {
            merged.last().map(|r| after(&r.id))
        } else {
            None
        };
        Ok(EventPage {
            events: merged,
            next,
        })
    }

    /// Up to `count` events of one stream from `start` that pass `filter`, and whether the
    /// stream may hold more after them.
    async fn read_stream(
        &self,
        key: &str,
        start: &str,
        count: usize,
        filter: &ReadFilter,
    ) -> Result<(Vec<EventRecord>, bool), EventsError> {
        let mut start = start.to_string();
        let mut conn = self.conn.clone();
        let mut events = Vec::new();
        loop {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(key)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            let scanned = reply.ids.len();
            let last = reply.ids.last().map(|e| e.id.clone());
            for record in records(reply) {
                let wanted = filter.types.is_empty()
                    || filter
                        .types
                        .iter()
                        .any(|t| t.as_str() == record.event.event_type);
                let recent = filter.since.is_none_or(|since| {
                    id_millis(&record.id).is_some_and(|ms| ms >= since.timestamp_millis())
                });
                if wanted && recent {
                    events.push(record);
                    if events.len() == count {
                        return Ok((events, true));
                    }
                }
            }
            match last {
                Some(last) if scanned == PAGE => start = after(&last),
                _ => return Ok((events, false)),
            }
        }
    }

    /// `producer logins reconnected`: removes `members` (the login's entries of the re-auth
    /// index) and closes its needs_reauth episode with a `reauth_resolved` event, in one
    /// step. Returns (entries removed, the event id when one was appended).
    pub async fn reconnected(
        &self,
        login: &LoginId,
        date: NaiveDate,
        members: &[String],
        now: DateTime<Utc>,
    ) -> Result<(u64, Option<String>), EventsError> {
        let bucket = self.keys.ledger_bucket_of(login.as_str());
        let mut invocation = RECONNECTED.prepare_invoke();
        invocation
            .key(self.keys.events_stream(bucket))
            .key(self.keys.events_episodes(bucket))
            .key(self.keys.ledger_index("reauth", bucket))
            .arg(login.as_str())
            .arg(date.to_string())
            .arg(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .arg(now.timestamp_millis());
        for member in members {
            invocation.arg(member);
        }
        let mut conn = self.conn.clone();
        let (removed, event_id): (u64, String) = invocation.invoke_async(&mut conn).await?;
        Ok((removed, (!event_id.is_empty()).then_some(event_id)))
    }

    /// Flinks confirmed `login`'s nightly refresh on (`activate`) or off for the change
    /// `stamp`: appends `activated` / `deactivated` unless this change (or a later one)
    /// already has its event. Returns the event id when appended.
    pub async fn flinks_confirmed(
        &self,
        login: &LoginId,
        activate: bool,
        stamp: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, EventsError> {
        let event_type = if activate {
            EventType::Activated
        } else {
            EventType::Deactivated
        };
        let bucket = self.keys.ledger_bucket_of(login.as_str());
        let mut conn = self.conn.clone();
        let event_id: String = FLINKS
            .key(self.keys.events_stream(bucket))
            .key(self.keys.events_flinks_stamps(bucket))
            .arg(login.as_str())
            .arg(event_type.as_str())
            .arg(stamp)
            .arg(now.date_naive().to_string())
            .arg(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .invoke_async(&mut conn)
            .await?;
        Ok((!event_id.is_empty()).then_some(event_id))
    }

    /// The oldest id of stream `key` every consumer still needs: the first pending or
    /// undelivered entry of each consumer group, and the entry after `webhook_cursor` when
    /// the webhook delivers. `None` when nothing constrains the trim.
    async fn keep_from(
        &self,
        key: &str,
        webhook_cursor: Option<&str>,
    ) -> Result<Option<(u64, u64)>, EventsError> {
        let mut conn = self.conn.clone();
        let exists: bool = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
        if !exists {
            return Ok(None);
        }
        let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        // An entry is still needed when it is pending (delivered, not acked) or was never
        // delivered to the group (after its last-delivered-id).
        let mut floors: Vec<(u64, u64)> = Vec::new();
        for group in &groups.groups {
            let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
                .arg(key)
                .arg(&group.name)
                .query_async(&mut conn)
                .await?;
            let (ms, seq) = id_key(&group.last_delivered_id);
            floors.push((ms, seq.saturating_add(1)));
            if let redis::streams::StreamPendingReply::Data(data) = pending {
                floors.push(id_key(&data.start_id));
            }
        }
        if let Some(cursor) = webhook_cursor {
            let (ms, seq) = id_key(cursor);
            floors.push((ms, seq.saturating_add(1)));
        }
        Ok(floors.into_iter().min())
    }

    /// Removes the oldest entries beyond `max_len` (in all: each ledger bucket's stream
    /// keeps its share), except those a consumer group has not acknowledged and (with
    /// `webhook`, when the webhook delivers) those the webhook has not delivered. Works in
    /// pages of 1,000.
    pub async fn trim(&self, max_len: u64, webhook: bool) -> Result<TrimReport, EventsError> {
        let share = max_len.div_ceil(u64::from(self.keys.ledger_buckets()));
        let mut report = TrimReport::default();
        // A bucket that fails does not hold up the others; its error is returned at the end.
        let mut failed = None;
        for bucket in self.keys.all_ledger_buckets() {
            match self.trim_bucket(bucket, share, webhook).await {
                Ok(trimmed) => {
                    report.trimmed += trimmed.trimmed;
                    report.held += trimmed.held;
                }
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        metrics::counter!(EVENTS_TRIMMED_TOTAL).increment(report.trimmed);
        metrics::gauge!(EVENTS_STREAM_HELD_ENTRIES).set(report.held as f64);
        if report.held > 0 {
            tracing::warn!(
                held = report.held,
                max_len,
                "events stream above EVENTS_STREAM_MAXLEN: entries not yet acknowledged by a \
                 consumer group or delivered by the webhook are kept"
            );
        }
        failed.map_or(Ok(report), Err)
    }

    /// [`Events::trim`] of `bucket`'s stream to `max_len`.
    async fn trim_bucket(
        &self,
        bucket: u16,
        max_len: u64,
        webhook: bool,
    ) -> Result<TrimReport, EventsError> {
        let cursor = if webhook {
            Some(webhook::cursor(&self.conn, &self.keys, bucket).await?)
        } else {
            None
        };
        let key = self.keys.events_stream(bucket);
        self.trim_stream(&key, max_len, cursor.as_deref()).await
    }

    /// [`Events::trim`] of one stream to `max_len`, `webhook_cursor` the webhook's position
    /// in it (`Some("0-0")` before its first delivery).
    async fn trim_stream(
        &self,
        key: &str,
        max_len: u64,
        webhook_cursor: Option<&str>,
    ) -> Result<TrimReport, EventsError> {
        let mut conn = self.conn.clone();
        let keep = self.keep_from(key, webhook_cursor).await?;
        let mut report = TrimReport::default();
        loop {
            let len: u64 = redis::cmd("XLEN").arg(key).query_async(&mut conn).await?;
            let excess = len.saturating_sub(max_len);
            if excess == 0 {
                break;
            }
            let page = excess.min(PAGE as u64);
            // The cap would keep entries from the (page+1)-th on; consumers may need older.
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(page + 1)
                .query_async(&mut conn)
                .await?;
            let Some(cap_from) = reply.ids.get(page as usize).map(|e| id_key(&e.id)) else {
                break;
            };
            let min_id = match keep {
                Some(keep) if keep < cap_from => keep,
                _ => cap_from,
            };
            let trimmed: u64 = redis::cmd("XTRIM")
                .arg(key)
                .arg("MINID")
                .arg(format!("{}-{}", min_id.0, min_id.1))
                .query_async(&mut conn)
                .await?;
            report.trimmed += trimmed;
            if trimmed < page {
                report.held = excess - trimmed;
                break;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_and_an_unknown_one_names_the_choices() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()).unwrap(), t);
        }
        let err = EventType::parse("reauth").unwrap_err().to_string();
        assert!(
            err.contains("\"reauth\"") && err.contains("needs_reauth"),
            "{err}"
        );
    }

    #[test]
    fn stream_ids_compare_as_numbers_not_text() {
        assert!(id_key("9-0") < id_key("10-0"));
        assert!(id_key("10-2") < id_key("10-10"));
        assert_eq!(id_millis("1735787045000-3"), Some(1_735_787_045_000));
    }

    #[test]
    fn an_event_serializes_without_absent_fields() {
        let fields: HashMap<String, String> = [
            ("event_id", "abc"),
            ("type", "needs_reauth"),
            ("login_id", "l"),
            ("routine_date", "2026-11-30"),
            ("at", "2026-11-30T10:00:00.000Z"),
            ("unrecognised_code", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let event = Event::from_fields(&fields).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "needs_reauth");
        assert_eq!(json["unrecognised_code"], true);
        assert!(json.get("message").is_none(), "{json}");
        let mut missing = fields.clone();
        missing.remove("event_id");
        assert!(Event::from_fields(&missing).is_none());
    }
}

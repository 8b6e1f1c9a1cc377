//! Webhook delivery of the events stream (optional: `WEBHOOK_URL`). One pod at a time sends,
//! in stream order, batches of at most [`BATCH_MAX`] events as `{"events": [...]}`, each
//! signed with `X-Nightly-Refresh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" keyed with WEBHOOK_SECRET>`.
//!
//! - **Cursor and lease.** The delivery position is a cursor key (the last delivered entry
//!   id) per stream (one per ledger bucket, taken in turn, all beside the one lease). A pod
//!   sends only while it holds the lease (`lease.lua`, renewed
//!   before every attempt and longer than one attempt can take), and moves the cursor only if
//!   it still does (`advance.lua`), so two pods never send a batch at the same time. A pod
//!   that dies mid-batch leaves the cursor where it was: the next holder resends the batch
//!   (at-least-once; receivers dedupe on `event_id`).
//! - **Retries.** A 2xx acknowledges the batch; anything else (status, timeout, refused
//!   connection) is retried with exponential backoff and jitter while the batch's oldest
//!   event is younger than `WEBHOOK_MAX_AGE`. Then the batch is parked in a dead-letter list
//!   in the same step that moves the cursor past it, and [`redeliver`] (`producer events
//!   redeliver`) sends the parked batches again. Head-of-line retries keep each login's
//!   events in order; a parked batch is the exception, delivered when redelivered.
//!
//! The secret is a [`SecretString`], never logged; errors and logs name the URL's host only
//! through [`crate::config::redact_url`].

use std::sync::LazyLock;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{after, id_millis, records, Event, EventsError};
use crate::config::Settings;
use crate::keys::KeySpace;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Nightly-Refresh-Signature";
/// Events per batch, at most.
pub const BATCH_MAX: usize = 100;

/// Counter: events a receiver acknowledged with a 2xx (redeliveries included).
pub const WEBHOOK_DELIVERED_TOTAL: &str = "nightly_refresh_events_webhook_delivered_total";
/// Counter, `reason` ([`FAILURE_REASONS`]): delivery attempts that got no 2xx.
pub const WEBHOOK_FAILED_ATTEMPTS_TOTAL: &str =
    "nightly_refresh_events_webhook_failed_attempts_total";
/// Counter: events parked in the dead-letter list after `WEBHOOK_MAX_AGE`.
pub const WEBHOOK_DEAD_LETTERED_TOTAL: &str = "nightly_refresh_events_webhook_dead_lettered_total";
/// Gauge: age of the oldest event the webhook has not delivered (0 when none).
pub const WEBHOOK_OLDEST_UNDELIVERED_AGE_SECONDS: &str =
    "nightly_refresh_events_webhook_oldest_undelivered_age_seconds";
/// The `reason` label values of [`WEBHOOK_FAILED_ATTEMPTS_TOTAL`].
pub const FAILURE_REASONS: [&str; 5] = [
    "server_error",
    "client_error",
    "timeout",
    "connect",
    "other",
];

static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
static ADVANCE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("advance.lua")));

/// How often an idle or lease-less pod looks again.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The lease outlives one attempt (`WEBHOOK_TIMEOUT`) by this much beyond a second timeout,
/// so a pod stalled mid-attempt cannot overlap the next holder.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

type HmacSha256 = Hmac<Sha256>;

/// The header value for `body` sent at unix time `t`: `t=<t>,v1=<hex HMAC-SHA256>`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver checks: `header` is a valid signature of `body` with `secret`, made
/// within `tolerance` of `now` (unix seconds). Compares in constant time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance: Duration) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if now.abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

/// The webhook settings (`WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `WEBHOOK_URL`: https, or http to a loopback host.
    pub url: Url,
    /// `WEBHOOK_SECRET`: the HMAC key.
    pub secret: SecretString,
    /// `WEBHOOK_MAX_AGE`: how long a batch is retried before it is parked.
    pub max_age: Duration,
    /// `WEBHOOK_TIMEOUT`: one attempt's limit.
    pub timeout: Duration,
    /// `WEBHOOK_RETRY_BASE_DELAY`: the first retry's delay, doubled after each failure.
    pub retry_base: Duration,
    /// `WEBHOOK_RETRY_MAX_DELAY`: the longest delay between attempts.
    pub retry_max: Duration,
}

impl WebhookConfig {
    /// The webhook of `settings`, `None` when `WEBHOOK_URL` is not set (the settings loader
    /// already refused a URL without its secret).
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        Some(Self {
            url: settings.webhook_url.clone()?,
            secret: settings.webhook_secret.clone()?,
            max_age: settings.webhook_max_age,
            timeout: settings.webhook_timeout,
            retry_base: settings.webhook_retry_base_delay,
            retry_max: settings.webhook_retry_max_delay,
        })
    }

    /// The delay before retry `attempt` (1-based): exponential, capped, with jitter in
    /// its upper half so that pods and receivers do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.retry_max);
        capped.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Why an attempt got no 2xx.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The receiver answered with a status other than 2xx.
    #[error("webhook answered HTTP {0}")]
    Status(u16),
    /// No answer within `WEBHOOK_TIMEOUT`.
    #[error("webhook did not answer within the timeout")]
    Timeout,
    /// The connection could not be made.
    #[error("webhook connection failed")]
    Connect,
    /// Anything else (TLS, a broken connection).
    #[error("webhook request failed: {0}")]
    Other(String),
}

impl AttemptError {
    /// The bounded `reason` label ([`FAILURE_REASONS`]).
    pub fn label(&self) -> &'static str {
        match self {
            AttemptError::Status(s) if *s >= 500 => "server_error",
            AttemptError::Status(_) => "client_error",
            AttemptError::Timeout => "timeout",
            AttemptError::Connect => "connect",
            AttemptError::Other(_) => "other",
        }
    }
}

/// Posts signed batches to `WEBHOOK_URL`. Cheap to clone.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    config: WebhookConfig,
}

impl WebhookClient {
    /// A client for `config`. Redirects are not followed: a signed batch goes only to the
    /// configured URL.
    pub fn new(config: WebhookConfig) -> Result<Self, EventsError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EventsError::Invalid(format!("webhook HTTP client: {e}")))?;
        Ok(Self { http, config })
    }

    /// The settings it posts with.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Posts `events` as one signed batch; `Ok` on a 2xx.
    pub async fn post(&self, events: &[Event]) -> Result<(), AttemptError> {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events }))
            .map_err(|e| AttemptError::Other(e.to_string()))?;
        let signature = sign(
            self.config.secret.expose_secret().as_bytes(),
            Utc::now().timestamp(),
            &body,
        );
        let answer = self
            .http
            .post(self.config.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let result = match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(AttemptError::Status(response.status().as_u16())),
            Err(e) if e.is_timeout() => Err(AttemptError::Timeout),
            Err(e) if e.is_connect() => Err(AttemptError::Connect),
            // The error's text may carry the URL; its kind is enough.
            Err(e) => Err(AttemptError::Other(
                if e.is_body() || e.is_request() {
                    "request"
                } else {
                    "transport"
                }
                .into(),
            )),
        };
        match &result {
            Ok(()) => metrics::counter!(WEBHOOK_DELIVERED_TOTAL).increment(events.len() as u64),
            Err(e) => {
                metrics::counter!(WEBHOOK_FAILED_ATTEMPTS_TOTAL, "reason" => e.label()).increment(1)
            }
        }
        result
    }
}

/// A parked batch, as stored in the dead-letter list.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Parked {
    /// When it was parked, RFC 3339.
    parked_at: String,
    /// Its events, as they would have been posted.
    events: Vec<serde_json::Value>,
}

/// What one [`Delivery::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Another pod holds the lease.
    NotLeader,
    /// Nothing to deliver.
    Idle,
    /// A batch of this many events was acknowledged.
    Delivered(usize),
    /// The attempt failed; retry after the delay.
    Failed(Duration),
    /// A batch of this many events outlived `WEBHOOK_MAX_AGE` and was parked.
    Parked(usize),
    /// The lease was lost during the attempt; another pod resends the batch.
    LeaseLost,
}

/// The delivery loop of one pod.
pub struct Delivery {
    conn: RedisConn,
    keys: KeySpace,
    client: WebhookClient,
    token: String,
    /// Failed attempts in a row, per ledger bucket's stream: each backs off on its own.
    failures: Vec<u32>,
    /// The ledger bucket whose stream the next step looks at first.
    next_bucket: u16,
}

impl Delivery {
    /// A delivery for the namespace of `keys`; `token` identifies this pod in the lease.
    pub fn new(
        conn: RedisConn,
        keys: &KeySpace,
        client: WebhookClient,
        token: impl Into<String>,
    ) -> Self {
        Self {
            conn,
            keys: keys.clone(),
            client,
            token: token.into(),
            failures: vec![0; usize::from(keys.ledger_buckets())],
            next_bucket: 0,
        }
    }

    fn lease_ms(&self) -> u64 {
        (self.client.config.timeout * 2 + LEASE_MARGIN).as_millis() as u64
    }

    /// Takes or renews the lease, then sends the next batch once: of the first ledger
    /// bucket's stream, from where the last step left off, with events to send. One lease
    /// covers every bucket, so one pod sends at a time, and each login's events (all in its
    /// bucket's stream) stay in order.
    pub async fn step(&mut self) -> Result<Step, EventsError> {
        let mut conn = self.conn.clone();
        let held: i64 = LEASE
            .key(self.keys.events_webhook("lease"))
            .arg(&self.token)
            .arg(self.lease_ms())
            .invoke_async(&mut conn)
            .await?;
        if held != 1 {
            update_oldest_gauge(&self.conn, &self.keys).await;
            return Ok(Step::NotLeader);
        }
        // Where each stream stands, in two round trips: it picks the bucket and sets the gauge.
        let undelivered = first_undelivered(&self.conn, &self.keys).await?;
        set_oldest_gauge(undelivered.iter().filter_map(|(_, first)| *first).min());
        let buckets = self.keys.ledger_buckets();
        let Some(bucket) = (0..buckets)
            .map(|offset| (self.next_bucket + offset) % buckets)
            .find(|b| undelivered[usize::from(*b)].1.is_some())
        else {
            return Ok(Step::Idle);
        };
        self.next_bucket = (bucket + 1) % buckets;
        let cursor = undelivered[usize::from(bucket)].0.clone();
        self.step_bucket(bucket, &cursor).await
    }

    /// Sends the next batch of `bucket`'s stream after `cursor` once (the lease is held).
    async fn step_bucket(&mut self, bucket: u16, cursor: &str) -> Result<Step, EventsError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.events_stream(bucket))
            .arg(after(cursor))
            .arg("+")
            .arg("COUNT")
            .arg(BATCH_MAX)
            .query_async(&mut conn)
            .await?;
        let Some(last_id) = reply.ids.last().map(|e| e.id.clone()) else {
            return Ok(Step::Idle);
        };
        let age = reply
            .ids
            .first()
            .and_then(|e| id_millis(&e.id))
            .map(age_of)
            .unwrap_or_default();
        let batch: Vec<Event> = records(reply).into_iter().map(|r| r.event).collect();
        let parked = if batch.is_empty() {
            // Entries without the event fields: nothing to send, move past them.
            String::new()
        } else {
            match self.client.post(&batch).await {
                Ok(()) => String::new(),
                Err(error) => {
                    let failures = &mut self.failures[usize::from(bucket)];
                    *failures += 1;
                    let failures = *failures;
                    if age < self.client.config.max_age {
                        tracing::warn!(
                            error.message = %error,
                            attempt = failures,
                            events = batch.len(),
                            "webhook delivery failed; retrying"
                        );
                        return Ok(Step::Failed(self.client.config.backoff(failures)));
                    }
                    tracing::error!(
                        error.message = %error,
                        events = batch.len(),
                        "webhook batch older than WEBHOOK_MAX_AGE parked in the dead-letter \
                         list; `producer events redeliver` sends it again"
                    );
                    serde_json::to_string(&Parked {
                        parked_at: Utc::now().to_rfc3339(),
                        events: batch
                            .iter()
                            .filter_map(|e| serde_json::to_value(e).ok())
                            .collect(),
                    })
                    .map_err(|e| EventsError::Invalid(e.to_string()))?
                }
            }
        };
        let moved: i64 = ADVANCE
            .key(self.keys.events_webhook("lease"))
            .key(self.keys.events_webhook_cursor(bucket))
            .key(self.keys.events_webhook("dead"))
            .arg(&self.token)
            .arg(&last_id)
            .arg(&parked)
            .invoke_async(&mut conn)
            .await?;
        if moved != 1 {
            return Ok(Step::LeaseLost);
        }
        self.failures[usize::from(bucket)] = 0;
        if parked.is_empty() {
            Ok(Step::Delivered(batch.len()))
        } else {
            metrics::counter!(WEBHOOK_DEAD_LETTERED_TOTAL).increment(batch.len() as u64);
            Ok(Step::Parked(batch.len()))
        }
    }

    /// Delivers until `shutdown`, then gives the lease up.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let pause = tokio::select! {
                _ = shutdown.cancelled() => break,
                step = self.step() => match step {
                    Ok(Step::Delivered(_)) | Ok(Step::Parked(_)) => Duration::ZERO,
                    Ok(Step::Failed(delay)) => delay,
                    Ok(Step::Idle | Step::NotLeader | Step::LeaseLost) => IDLE_POLL,
                    Err(error) => {
                        tracing::warn!(error.message = %error, "webhook delivery: Redis error; retrying");
                        IDLE_POLL
                    }
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let mut conn = self.conn.clone();
        let _: Result<i64, _> = RELEASE
            .key(self.keys.events_webhook("lease"))
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await;
    }
}

/// The webhook's position in ledger bucket `bucket`'s stream: the id of the last entry
/// delivered or parked (`0-0` before the first).
pub async fn cursor(conn: &RedisConn, keys: &KeySpace, bucket: u16) -> Result<String, EventsError> {
    let mut conn = conn.clone();
    let raw: Option<String> = redis::cmd("GET")
        .arg(keys.events_webhook_cursor(bucket))
        .query_async(&mut conn)
        .await?;
    Ok(raw.unwrap_or_else(|| "0-0".into()))
}

/// Sets [`WEBHOOK_OLDEST_UNDELIVERED_AGE_SECONDS`] from the entries after the cursors.
async fn update_oldest_gauge(conn: &RedisConn, keys: &KeySpace) {
    match first_undelivered(conn, keys).await {
        Ok(undelivered) => {
            set_oldest_gauge(undelivered.iter().filter_map(|(_, first)| *first).min())
        }
        // The gauge waits for the next step; the delivery itself went on.
        Err(error) => tracing::warn!(
            error.message = %error,
            "webhook delivery: cannot read the oldest undelivered event's age"
        ),
    }
}

/// Sets [`WEBHOOK_OLDEST_UNDELIVERED_AGE_SECONDS`] to the age of the event appended at
/// `oldest_ms` (0 when none waits).
fn set_oldest_gauge(oldest_ms: Option<i64>) {
    let age = oldest_ms.map_or(0.0, |ms| age_of(ms).as_secs_f64());
    metrics::gauge!(WEBHOOK_OLDEST_UNDELIVERED_AGE_SECONDS).set(age);
}

/// How long ago `ms` (Unix milliseconds) was.
fn age_of(ms: i64) -> Duration {
    Duration::from_millis((Utc::now().timestamp_millis() - ms).max(0) as u64)
}

/// Each ledger bucket's stream, in bucket order: the webhook's cursor in it (`0-0` before
/// the first delivery) and the time (Unix ms) of the first event after it, if any. Two
/// round trips whatever the bucket count: the cursors (one slot) in one MGET, then one
/// XRANGE per stream in one pipeline.
async fn first_undelivered(
    conn: &RedisConn,
    keys: &KeySpace,
) -> Result<Vec<(String, Option<i64>)>, EventsError> {
    let mut conn = conn.clone();
    let cursor_keys: Vec<String> = keys
        .all_ledger_buckets()
        .map(|b| keys.events_webhook_cursor(b))
        .collect();
    let cursors: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&cursor_keys)
        .query_async(&mut conn)
        .await?;
    let cursors: Vec<String> = cursors
        .into_iter()
        .map(|c| c.unwrap_or_else(|| "0-0".into()))
        .collect();
    let mut pipe = redis::pipe();
    for (bucket, cursor) in keys.all_ledger_buckets().zip(&cursors) {
        pipe.cmd("XRANGE")
            .arg(keys.events_stream(bucket))
            .arg(after(cursor))
            .arg("+")
            .arg("COUNT")
            .arg(1);
    }
    let replies: Vec<redis::streams::StreamRangeReply> = pipe.query_async(&mut conn).await?;
    Ok(cursors
        .into_iter()
        .zip(replies)
        .map(|(cursor, reply)| {
            let first = reply.ids.first().and_then(|e| id_millis(&e.id));
            (cursor, first)
        })
        .collect())
}

/// The age of the oldest event the webhook has not delivered, in any ledger bucket's
/// stream; `None` when there is none.
pub async fn oldest_undelivered_age(
    conn: &RedisConn,
    keys: &KeySpace,
) -> Result<Option<Duration>, EventsError> {
    let undelivered = first_undelivered(conn, keys).await?;
    Ok(undelivered
        .iter()
        .filter_map(|(_, first)| *first)
        .min()
        .map(age_of))
}

/// Batches in the dead-letter list.
pub async fn dead_letters(conn: &RedisConn, keys: &KeySpace) -> Result<u64, EventsError> {
    let mut conn = conn.clone();
    Ok(redis::cmd("LLEN")
        .arg(keys.events_webhook("dead"))
        .query_async(&mut conn)
        .await?)
}

/// What [`redeliver`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedeliverReport {
    /// Parked batches acknowledged with a 2xx and removed from the list.
    pub delivered_batches: usize,
    /// Their events.
    pub delivered_events: usize,
    /// Batches that failed again and stay parked.
    pub failed_batches: usize,
    /// Why the first of them failed.
    pub first_error: Option<String>,
}

/// Removes one parked batch from the dead-letter list.
async fn unpark(conn: &mut RedisConn, key: &str, raw: &str) -> Result<(), EventsError> {
    let _: i64 = redis::cmd("LREM")
        .arg(key)
        .arg(1)
        .arg(raw)
        .query_async(conn)
        .await?;
    Ok(())
}

/// Sends every parked batch again, oldest first, freshly signed; a batch acknowledged with a
/// 2xx leaves the list, one that fails stays. Two runs at once may both send a batch
/// (at-least-once, like every delivery).
pub async fn redeliver(
    conn: &RedisConn,
    keys: &KeySpace,
    client: &WebhookClient,
) -> Result<RedeliverReport, EventsError> {
    let key = keys.events_webhook("dead");
    let mut conn = conn.clone();
    let parked: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    let mut report = RedeliverReport::default();
    for raw in parked {
        let events: Vec<Event> = match serde_json::from_str::<Parked>(&raw) {
            Ok(batch) => batch
                .events
                .into_iter()
                .filter_map(|value| {
                    let fields = value
                        .as_object()?
                        .iter()
                        .map(|(k, v)| {
                            let v = match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            (k.clone(), v)
                        })
                        .collect();
                    Event::from_fields(&fields)
                })
                .collect(),
            Err(_) => {
                tracing::warn!("undecodable dead-letter batch dropped");
                unpark(&mut conn, &key, &raw).await?;
                continue;
            }
        };
        match client.post(&events).await {
            Ok(()) => {
                unpark(&mut conn, &key, &raw).await?;
                report.delivered_batches += 1;
                report.delivered_events += events.len();
            }
            Err(error) => {
                report.failed_batches += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let secret = b"whsec-test";
        let body = br#"{"events":[]}"#;
        let header = sign(secret, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        let tolerance = Duration::from_secs(300);
        assert!(verify(secret, &header, body, 1_700_000_100, tolerance));
        assert!(!verify(b"other", &header, body, 1_700_000_100, tolerance));
        assert!(!verify(
            secret,
            &header,
            br#"{"events":[1]}"#,
            1_700_000_100,
            tolerance
        ));
        assert!(!verify(secret, &header, body, 1_700_001_000, tolerance));
        let forged = header.replace("t=1700000000", "t=1700000100");
        assert!(!verify(secret, &forged, body, 1_700_000_100, tolerance));
        assert!(!verify(secret, "garbage", body, 1_700_000_100, tolerance));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body_in_hex() {
        // RFC 4231-style check against an independent computation of the same definition.
        let header = sign(b"key", 42, b"body");
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"42.body");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=42,v1={want}"));
        assert_eq!(want.len(), 64);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let config = WebhookConfig {
            url: Url::parse("https://example.test/hook").unwrap(),
            secret: SecretString::from("s"),
            max_age: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(8),
        };
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8), (99, 8)] {
            let d = config.backoff(attempt);
            let full = Duration::from_secs(full);
            assert!(d <= full && d >= full / 2, "attempt {attempt}: {d:?}");
        }
    }
}

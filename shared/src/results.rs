//! The results sink: every fetched GetAccountsDetail lands in a capped Redis stream that
//! the customer's services consume with `XREADGROUP`: one stream, or with `LEDGER_BUCKETS`
//! above 1 one per ledger bucket, each login's entries always in its bucket's.
//!
//! The append and the (LoginId, date) ledger entry are one Lua script
//! (`ledger_record.lua`, through [`Ledger::record_with_stream_entry`]), so a redelivered job — after a crash between the fetch and the
//! ack — can never add a second entry: the script sees the ledger says `refreshed` and
//! returns the first entry's id instead.
//!
//! Stream `{namespace:ledger}:results` (the ledger's hash tag, for Redis Cluster; bucket
//! `b` of several: `{namespace:ledger:b}:results`), one entry per refreshed (LoginId,
//! date), fields:
//!
//! | field | value |
//! |---|---|
//! | `login_id` | the LoginId |
//! | `request_id` | the Authorize session the data came from |
//! | `routine_date` | `YYYY-MM-DD` |
//! | `fetched_at` | RFC 3339 UTC |
//! | `last_refresh` | Flinks' `Login.LastRefresh` (naive UTC) or empty |
//! | `stale` | `1` when LastRefresh is older than `STALE_AFTER`, else `0` |
//! | `accounts` | the `Accounts` array of the response, JSON, amounts exact as sent |
//!
//! With a [`ResultsCipher`] (`RESULTS_ENCRYPTION_KEY`, off by default) `accounts` is
//! replaced by `accounts_enc` (base64 of nonce ‖ AES-256-GCM ciphertext), `key_id` and
//! `enc` = `aes-256-gcm-v2`, bound to every other field of the entry (see
//! [`crate::results_crypto`]). [`read`] / [`decode_entry`] give consumers the plain
//! `accounts` back. With keys configured they refuse entries stored in clear (one could
//! be an encrypted entry stripped down to a forged plain one) unless
//! [`ReadPolicy::allow_plaintext`]; an entry that cannot be read is reported by its id and
//! skipped, so one bad entry does not hide the others.
//!
//! The stream is capped at about `RESULTS_STREAM_MAXLEN` entries (`MAXLEN ~`): consume it
//! faster than the cap fills. Nothing here is logged: the payload is account data.

use crate::flinks::format_flinks_timestamp;
use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::domain::{LoginId, RequestId};
use crate::keys::KeySpace;
use crate::ledger::{
    Ledger, LedgerError, LedgerOutcome, RegistryUpdate, StreamEntry, STREAM_ID_PLACEHOLDER,
};
use crate::queue::AckWrite;
use crate::results_crypto::{
    CryptoError, EntryAad, ResultsCipher, Sealed, ENC_AES_256_GCM, ENC_AES_256_GCM_LEGACY,
};

/// Metric: result entries appended to the stream.
pub const RESULTS_STORED_TOTAL: &str = "nightly_refresh_results_stored_total";

/// Why a result could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Redis did not answer; nothing was written, the caller retries.
    #[error("results: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The ledger entry could not be encoded or decoded.
    #[error("results: ledger entry: {0}")]
    Encode(#[from] serde_json::Error),
    /// The atomic ledger + stream write failed; nothing was written, the caller retries.
    #[error("results: {0}")]
    Ledger(#[from] LedgerError),
    /// An entry could not be encrypted or decrypted (wrong or missing key, tampering).
    #[error("results entry {entry_id}: {source}")]
    Crypto {
        /// The stream entry id (`-` when storing).
        entry_id: String,
        /// What failed; names the key id.
        #[source]
        source: CryptoError,
    },
    /// A stream entry lacks a field or holds one that does not parse.
    #[error("results entry {entry_id}: {reason}")]
    Entry {
        /// The stream entry id.
        entry_id: String,
        /// What is wrong.
        reason: String,
    },
}

/// One fetched detail to store.
pub struct ResultEntry<'a> {
    /// The login.
    pub login_id: &'a LoginId,
    /// The session the data came from.
    pub request_id: &'a RequestId,
    /// The routine date.
    pub routine_date: NaiveDate,
    /// When the worker received it.
    pub fetched_at: DateTime<Utc>,
    /// Flinks' LastRefresh.
    pub last_refresh: Option<NaiveDateTime>,
    /// LastRefresh older than `STALE_AFTER`.
    pub stale: bool,
    /// The `Accounts` array of the GetAccountsDetail answer, as Flinks sent it (JSON text).
    pub accounts: &'a serde_json::value::RawValue,
}

impl std::fmt::Debug for ResultEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The accounts are account data: never printed.
        f.debug_struct("ResultEntry")
            .field("login_id", self.login_id)
            .field("request_id", self.request_id)
            .field("routine_date", &self.routine_date)
            .field("stale", &self.stale)
            .finish_non_exhaustive()
    }
}

/// What [`ResultsSink::store`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// False when (LoginId, date) was already refreshed: nothing was appended.
    pub newly_stored: bool,
    /// The ledger entry (the existing one when not newly stored).
    pub outcome: LedgerOutcome,
    /// What became of the login's registry update, for [`crate::outcomes::Outcomes`].
    pub(crate) registry: RegistryUpdate,
}

impl Stored {
    /// What a store did, counted in `RESULTS_STORED_TOTAL` when it stored anew.
    fn counted(newly_stored: bool, outcome: LedgerOutcome, registry: RegistryUpdate) -> Self {
        if newly_stored {
            metrics::counter!(RESULTS_STORED_TOTAL).increment(1);
        }
        Self {
            newly_stored,
            outcome,
            registry,
        }
    }
}

/// Appends results to the stream, atomically with the ledger. Cheap to clone.
#[derive(Clone)]
pub struct ResultsSink {
    keys: KeySpace,
    ledger: Ledger,
    max_len: u64,
    cipher: Option<ResultsCipher>,
}

impl ResultsSink {
    /// The sink of the namespace of `keys`, capped at about `max_len` entries, storing
    /// `accounts` in clear (see [`ResultsSink::with_cipher`]).
    pub fn new(conn: RedisConn, keys: &KeySpace, max_len: u64) -> Self {
        Self {
            ledger: Ledger::new(conn, keys),
            keys: keys.clone(),
            max_len,
            cipher: None,
        }
    }

    /// Encrypts `accounts` of new entries with `cipher` (`None` keeps them in clear), e.g.
    /// `.with_cipher(settings.results_cipher.clone())`.
    pub fn with_cipher(mut self, cipher: impl Into<Option<ResultsCipher>>) -> Self {
        self.cipher = cipher.into();
        self
    }

    /// The streams' keys, one per ledger bucket, for consumers.
    pub fn stream_keys(&self) -> Vec<String> {
        self.keys
            .all_ledger_buckets()
            .map(|b| self.keys.results_stream(b))
            .collect()
    }

    /// Stores one result unless (LoginId, date) is already refreshed.
    pub async fn store(&self, entry: &ResultEntry<'_>) -> Result<Stored, ResultsError> {
        let (outcome, stream_entry) = self.prepare(entry)?;
        let (stored, outcome, registry) = self
            .ledger
            .record_with_stream_entry(entry.routine_date, entry.login_id, &outcome, &stream_entry)
            .await?;
        Ok(Stored::counted(stored, outcome, registry))
    }

    /// [`ResultsSink::store`] as a write of the ack of the job that fetched the result (see
    /// [`AckWrite`]): the result is stored, as `store` would, by the job's ack, in the same
    /// script call, so the stored result and the finished job are one step. `None` on a
    /// Cluster, where the ledger's keys are in other slots than the queue's: call `store`.
    /// `stored` is told, once the ack went through, what `store` would have returned (the
    /// registry update is applied by the same call), or why its answer did not read.
    pub fn ack_write(
        &self,
        entry: &ResultEntry<'_>,
        stored: impl Fn(Result<Stored, ResultsError>) + Send + Sync + 'static,
    ) -> Result<Option<AckWrite>, ResultsError> {
        if !self.ledger.writes_ride_acks() {
            return Ok(None);
        }
        let (outcome, stream_entry) = self.prepare(entry)?;
        let sent = outcome.clone();
        let write = self.ledger.stream_entry_ack_write(
            entry.routine_date,
            entry.login_id,
            &outcome,
            &stream_entry,
            move |answer| {
                stored(
                    answer
                        .map_err(ResultsError::from)
                        .map(|(written, kept, registry)| {
                            // An ack retried after its reply was lost finds the refresh its first
                            // call stored: stored once, by this job.
                            let newly_stored = written || same_refresh(&kept, &sent);
                            Stored::counted(newly_stored, kept, registry)
                        }),
                )
            },
        )?;
        Ok(write)
    }

    /// The ledger outcome and the stream entry that store `entry`.
    fn prepare(
        &self,
        entry: &ResultEntry<'_>,
    ) -> Result<(LedgerOutcome, StreamEntry<'static>), ResultsError> {
        // As sent, every amount's digits too, without the whitespace between tokens.
        let accounts = compact_json(entry.accounts.get()).into_owned();
        let outcome = LedgerOutcome::Refreshed {
            request_id: entry.request_id.clone(),
            last_refresh: entry.last_refresh,
            stale: entry.stale,
            fetched_at: entry.fetched_at,
            results_stream_id: Some(STREAM_ID_PLACEHOLDER.to_string()),
        };
        let date = entry.routine_date.to_string(); // Display is `%Y-%m-%d`
        let last_refresh = entry
            .last_refresh
            .map(format_flinks_timestamp)
            .unwrap_or_default();
        let stale = if entry.stale { "1" } else { "0" };
        let mut fields: Vec<(&str, String)> = vec![
            ("login_id", entry.login_id.as_str().to_string()),
            ("request_id", entry.request_id.as_str().to_string()),
            ("routine_date", date),
            ("fetched_at", entry.fetched_at.to_rfc3339()),
            ("last_refresh", last_refresh),
            ("stale", stale.to_string()),
        ];
        match &self.cipher {
            None => fields.push(("accounts", accounts)),
            Some(cipher) => {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or_default()
                };
                let aad = EntryAad {
                    login_id: field("login_id"),
                    routine_date: field("routine_date"),
                    request_id: field("request_id"),
                    fetched_at: field("fetched_at"),
                    last_refresh: field("last_refresh"),
                    stale: field("stale"),
                };
                let sealed = cipher.seal(accounts.as_bytes(), aad).map_err(|source| {
                    ResultsError::Crypto {
                        entry_id: "-".into(),
                        source,
                    }
                })?;
                fields.push(("accounts_enc", sealed.data));
                fields.push(("key_id", sealed.key_id));
                fields.push(("enc", ENC_AES_256_GCM.to_string()));
            }
        }
        // The login's ledger bucket's stream, which keeps its share of the cap.
        let stream_entry = StreamEntry {
            stream: self
                .keys
                .results_stream(self.keys.ledger_bucket_of(entry.login_id.as_str())),
            max_len: self.max_len.div_ceil(u64::from(self.keys.ledger_buckets())),
            fields,
        };
        Ok((outcome, stream_entry))
    }
}

/// True when `kept` is the refresh `sent` describes (its stream entry's id filled in).
fn same_refresh(kept: &LedgerOutcome, sent: &LedgerOutcome) -> bool {
    match (kept, sent) {
        (
            LedgerOutcome::Refreshed {
                request_id,
                last_refresh,
                stale,
                fetched_at,
                ..
            },
            LedgerOutcome::Refreshed {
                request_id: sent_request,
                last_refresh: sent_last_refresh,
                stale: sent_stale,
                fetched_at: sent_fetched_at,
                ..
            },
        ) => {
            request_id == sent_request
                && last_refresh == sent_last_refresh
                && stale == sent_stale
                && fetched_at == sent_fetched_at
        }
        _ => false,
    }
}

/// One stream entry as a consumer sees it: `accounts` in clear whether or not it was
/// stored encrypted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResultRecord {
    /// The stream entry id.
    pub id: String,
    /// The LoginId.
    pub login_id: String,
    /// The Authorize session the data came from.
    pub request_id: String,
    /// `YYYY-MM-DD`.
    pub routine_date: String,
    /// RFC 3339 UTC.
    pub fetched_at: String,
    /// Flinks' LastRefresh, or empty.
    pub last_refresh: String,
    /// LastRefresh older than `STALE_AFTER`.
    pub stale: bool,
    /// The key id the entry was encrypted with, `None` when stored in clear.
    pub key_id: Option<String>,
    /// The `Accounts` array; amounts exact as sent (arbitrary precision).
    pub accounts: serde_json::Value,
}

/// How [`read`] and [`decode_entry`] treat what they find.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadPolicy<'a> {
    /// Decrypts encrypted entries; `None` makes each of them an error naming its key id.
    pub cipher: Option<&'a ResultsCipher>,
    /// Reads entries stored in clear even though `cipher` is set. Off, they are errors: a
    /// writer with keys never stores in clear, so such an entry was written by a worker
    /// without keys, or forged from an encrypted one by someone who can write to Redis.
    pub allow_plaintext: bool,
    /// Refuses entries stored in clear even without a cipher (`RESULTS_ENCRYPTION_REQUIRED`).
    pub require_encryption: bool,
}

/// An entry that could not be read: its stream id and why (never its account data).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EntryError {
    /// The stream entry id.
    pub id: String,
    /// What is wrong, naming the key id or the field.
    pub error: String,
}

/// One page of the stream as [`read`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPage {
    /// The entries read, oldest first.
    pub records: Vec<ResultRecord>,
    /// The entries skipped, oldest first.
    pub errors: Vec<EntryError>,
    /// The id of the last entry of the page, read or skipped (`None` when empty).
    pub last_id: Option<String>,
    /// How many entries the page covered, read or skipped.
    pub scanned: usize,
    /// The streams may hold entries after `last_id`: read on from `(last_id`.
    pub more: bool,
}

/// Reads up to `count` entries from `from` (an XRANGE start: `-`, an id, or `(id` for
/// after it) under `policy`, oldest first across every ledger bucket's stream. A page never
/// ends between two entries of one id (two buckets' streams can each hold one), so it may
/// hold a few more than `count`, and reading on from `(last_id` misses nothing. Only a
/// Redis failure is an error; an entry that cannot be read (no key, wrong key, tampered,
/// refused plaintext, malformed) lands in [`ReadPage::errors`] and the rest are still read.
pub async fn read(
    conn: &RedisConn,
    keys: &KeySpace,
    from: &str,
    count: usize,
    policy: ReadPolicy<'_>,
) -> Result<ReadPage, ResultsError> {
    let mut entries = Vec::new();
    let mut more = false;
    for bucket in keys.all_ledger_buckets() {
        let page = read_range(conn, &keys.results_stream(bucket), from, count).await?;
        more |= page.len() == count;
        entries.extend(page);
    }
    more |= crate::events::merge_page(&mut entries, count, |e| &e.id);
    Ok(decode_page(entries, more, policy))
}

/// Up to `count` raw entries of stream `key` from `from`.
async fn read_range(
    conn: &RedisConn,
    key: &str,
    from: &str,
    count: usize,
) -> Result<Vec<redis::streams::StreamId>, ResultsError> {
    let mut conn = conn.clone();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg(from)
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(&mut conn)
        .await?;
    Ok(reply.ids)
}

/// Decodes raw entries, oldest first, into a page.
fn decode_page(
    entries: Vec<redis::streams::StreamId>,
    more: bool,
    policy: ReadPolicy<'_>,
) -> ReadPage {
    let mut page = ReadPage {
        records: Vec::new(),
        errors: Vec::new(),
        last_id: entries.last().map(|e| e.id.clone()),
        scanned: entries.len(),
        more,
    };
    for entry in entries {
        let mut fields = std::collections::HashMap::new();
        let mut unreadable = None;
        for (k, v) in &entry.map {
            match redis::from_redis_value_ref::<String>(v) {
                Ok(v) => {
                    fields.insert(k.clone(), v);
                }
                Err(_) => unreadable = Some(k.clone()),
            }
        }
        let decoded = match unreadable {
            Some(name) => Err(ResultsError::Entry {
                entry_id: entry.id.clone(),
                reason: format!("field {name} is not text"),
            }),
            None => decode_entry(&entry.id, &fields, policy),
        };
        match decoded {
            Ok(record) => page.records.push(record),
            Err(e) => page.errors.push(EntryError {
                id: entry.id.clone(),
                error: e.to_string(),
            }),
        }
    }
    page
}

/// The entry of one login's refresh on `date`, found through the ledger (its `Refreshed`
/// outcome names the entry's id), so no scan of the stream is needed. `Ok(None)` when the
/// login was not refreshed that date or its entry was trimmed from the capped stream.
pub async fn read_login(
    conn: &RedisConn,
    keys: &KeySpace,
    login: &crate::domain::LoginId,
    date: chrono::NaiveDate,
    policy: ReadPolicy<'_>,
) -> Result<Option<ReadPage>, ResultsError> {
    let ledger = crate::ledger::Ledger::new(conn.clone(), keys);
    let Some(crate::ledger::LedgerOutcome::Refreshed {
        results_stream_id: Some(id),
        ..
    }) = ledger.get(date, login).await?
    else {
        return Ok(None);
    };
    let stream = keys.results_stream(keys.ledger_bucket_of(login.as_str()));
    let entries = read_range(conn, &stream, &id, 1).await?;
    let page = decode_page(entries, false, policy);
    Ok((page.last_id.as_deref() == Some(id.as_str())).then_some(page))
}

/// The fields an encrypted entry may hold: [`EntryAad`]'s, `key_id`, `enc` and the
/// ciphertext. Any other field would be unauthenticated, so it makes the entry an error.
const ENCRYPTED_FIELDS: &[&str] = &[
    "login_id",
    "routine_date",
    "request_id",
    "fetched_at",
    "last_refresh",
    "stale",
    "key_id",
    "enc",
    "accounts_enc",
];

/// Turns one entry's fields into a [`ResultRecord`] under `policy`, decrypting
/// `accounts_enc`.
pub fn decode_entry(
    id: &str,
    fields: &std::collections::HashMap<String, String>,
    policy: ReadPolicy<'_>,
) -> Result<ResultRecord, ResultsError> {
    let entry_error = |reason: String| ResultsError::Entry {
        entry_id: id.to_string(),
        reason,
    };
    let field = |name: &str| -> Result<String, ResultsError> {
        fields
            .get(name)
            .cloned()
            .ok_or_else(|| entry_error(format!("missing field {name}")))
    };
    let login_id = field("login_id")?;
    let request_id = field("request_id")?;
    let routine_date = field("routine_date")?;
    let (accounts, key_id, fetched_at, last_refresh, stale) = match fields.get("accounts_enc") {
        None => {
            if policy.cipher.is_some() && !policy.allow_plaintext {
                return Err(entry_error(
                    "stored in clear although RESULTS_ENCRYPTION_KEY is set; refused \
                     (a forged entry would look the same); allow it with --allow-plaintext"
                        .into(),
                ));
            }
            if policy.require_encryption && !policy.allow_plaintext {
                return Err(entry_error(
                    "stored in clear although RESULTS_ENCRYPTION_REQUIRED=true; refused; \
                     allow it with --allow-plaintext"
                        .into(),
                ));
            }
            (
                field("accounts")?,
                None,
                fields.get("fetched_at").cloned().unwrap_or_default(),
                fields.get("last_refresh").cloned().unwrap_or_default(),
                fields.get("stale").cloned().unwrap_or_default(),
            )
        }
        Some(data) => {
            let crypto = |source| ResultsError::Crypto {
                entry_id: id.to_string(),
                source,
            };
            let enc = field("enc")?;
            if enc == ENC_AES_256_GCM_LEGACY {
                return Err(crypto(CryptoError::Legacy));
            }
            if enc != ENC_AES_256_GCM {
                return Err(crypto(CryptoError::Malformed(format!(
                    "unknown enc {enc:?}"
                ))));
            }
            let mut extra: Vec<&str> = fields
                .keys()
                .map(String::as_str)
                .filter(|name| !ENCRYPTED_FIELDS.contains(name))
                .collect();
            if !extra.is_empty() {
                extra.sort_unstable();
                return Err(entry_error(format!(
                    "encrypted entry carries unauthenticated field(s) {}; refused",
                    extra.join(", ")
                )));
            }
            let key_id = field("key_id")?;
            let (fetched_at, last_refresh, stale) = (
                field("fetched_at")?,
                field("last_refresh")?,
                field("stale")?,
            );
            let cipher = policy.cipher.ok_or_else(|| {
                entry_error(format!(
                    "encrypted with key id {key_id:?}; set RESULTS_ENCRYPTION_KEY to read it"
                ))
            })?;
            let sealed = Sealed {
                key_id: key_id.clone(),
                data: data.clone(),
            };
            let aad = EntryAad {
                login_id: &login_id,
                routine_date: &routine_date,
                request_id: &request_id,
                fetched_at: &fetched_at,
                last_refresh: &last_refresh,
                stale: &stale,
            };
            let plain = cipher.open(&sealed, aad).map_err(crypto)?;
            let text = String::from_utf8(plain)
                .map_err(|_| entry_error("decrypted accounts are not UTF-8".into()))?;
            (text, Some(key_id), fetched_at, last_refresh, stale)
        }
    };
    let accounts: serde_json::Value = serde_json::from_str(&accounts)
        .map_err(|e| entry_error(format!("accounts is not JSON: {e}")))?;
    Ok(ResultRecord {
        id: id.to_string(),
        login_id,
        request_id,
        routine_date,
        fetched_at,
        last_refresh,
        stale: stale == "1",
        key_id,
        accounts,
    })
}

/// `json` (valid JSON text) without the whitespace between its tokens: what a stored entry
/// holds, whatever layout Flinks sent. Strings, numbers and the order of keys stay as
/// sent. Borrows when there is nothing to take out, as with a compact answer. Works on
/// bytes: no byte of a multi-byte UTF-8 character is ASCII, so none is mistaken for a
/// quote or a space. A string is skipped to its closing quote with `memchr` (account data
/// is mostly strings), so only the bytes between tokens are looked at one by one (every
/// byte one by one is 2.6% of a worker's CPU in the pipeline benchmark's profile).
fn compact_json(json: &str) -> std::borrow::Cow<'_, str> {
    let bytes = json.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    // bytes[..kept] are dealt with: copied to `out` when there is one.
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i + 1),
            b' ' | b'\n' | b'\r' | b'\t' => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(&bytes[kept..i]);
                i += 1;
                kept = i;
            }
            _ => i += 1,
        }
    }
    match out {
        // Only ASCII whitespace was taken out: still UTF-8.
        Some(mut out) => {
            out.extend_from_slice(&bytes[kept..]);
            String::from_utf8(out)
                .expect("whitespace removed from UTF-8")
                .into()
        }
        None => json.into(),
    }
}

/// The index just past the quote that closes the string whose text starts at `from` (the
/// end of `bytes` when it is not closed).
fn string_end(bytes: &[u8], mut from: usize) -> usize {
    while let Some(at) = bytes
        .get(from..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        if bytes[from + at] == b'"' {
            return from + at + 1;
        }
        // A backslash: the byte after it is escaped, whatever it is.
        from += at + 2;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::compact_json;

    #[test]
    fn compact_json_drops_whitespace_between_tokens_only() {
        let sent =
            "[ {\"Title\" : \"Cheque  \\\" \\\\ \\n\",\n\t\"Balance\": 5105.50 ,\"Ids\":[1, 2]} ]";
        let compact = compact_json(sent);
        assert_eq!(
            compact,
            "[{\"Title\":\"Cheque  \\\" \\\\ \\n\",\"Balance\":5105.50,\"Ids\":[1,2]}]"
        );
        let a: serde_json::Value = serde_json::from_str(sent).unwrap();
        let b: serde_json::Value = serde_json::from_str(&compact).unwrap();
        assert_eq!(a, b);
        let spaced_inside = "[{\"Title\":\"Caisse  é \\\"x\\\" \"}]";
        assert!(matches!(
            compact_json(spaced_inside),
            std::borrow::Cow::Borrowed(text) if text == spaced_inside
        ));
        assert_eq!(compact_json(" [ \"é\" ,\t\"€ \" ] "), "[\"é\",\"€ \"]");
        assert!(matches!(
            compact_json("[{\"A\":1}]"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn compact_json_finds_the_end_of_strings_that_end_in_escapes() {
        // A string ending in an escaped backslash, one holding an escaped quote and then a
        // space, and an escape as the very last bytes of a string.
        let sent = "{ \"a\" : \"x\\\\\" , \"b\":\"q\\\" \" ,\"c\" :[ \"\\\\\" ] }";
        assert_eq!(
            compact_json(sent),
            "{\"a\":\"x\\\\\",\"b\":\"q\\\" \",\"c\":[\"\\\\\"]}"
        );
        let a: serde_json::Value = serde_json::from_str(sent).unwrap();
        let b: serde_json::Value = serde_json::from_str(&compact_json(sent)).unwrap();
        assert_eq!(a, b);
        assert_eq!(compact_json(" \"unclosed \\\" x"), "\"unclosed \\\" x");
    }
}

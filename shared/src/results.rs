//! The results sink: every fetched GetAccountsDetail lands in one capped Redis stream that
//! the customer's services consume with `XREADGROUP`.
//!
//! The append and the (LoginId, date) ledger entry are one Lua script
//! (`ledger_record.lua`, through [`Ledger::record_with_stream_entry`]), so a redelivered job — after a crash between the fetch and the
//! ack — can never add a second entry: the script sees the ledger says `refreshed` and
//! returns the first entry's id instead.
//!
//! Stream `{namespace:ledger}:results` (the ledger's hash tag, for Redis Cluster), one entry per refreshed (LoginId, date), fields:
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
//! `enc` = `aes-256-gcm`, bound to the entry's login_id, routine_date and request_id (see
//! [`crate::results_crypto`]). [`read`] / [`decode_entry`] give consumers the plain
//! `accounts` back either way.
//!
//! The stream is capped at about `RESULTS_STREAM_MAXLEN` entries (`MAXLEN ~`): consume it
//! faster than the cap fills. Nothing here is logged: the payload is account data.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use redis::aio::ConnectionManager;

use crate::domain::{LoginId, RequestId};
use crate::keys::KeySpace;
use crate::ledger::{Ledger, LedgerError, LedgerOutcome, StreamEntry, STREAM_ID_PLACEHOLDER};
use crate::results_crypto::{CryptoError, EntryAad, ResultsCipher, Sealed, ENC_AES_256_GCM};

/// Metric: result entries appended to the stream.
pub const RESULTS_STORED_TOTAL: &str = "nightly_refresh_results_stored_total";

/// Why a result could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Redis did not answer; nothing was written, the caller retries.
    #[error("results: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The response body is not JSON with an `Accounts` array (classified earlier, so a bug).
    #[error("results: the GetAccountsDetail body is not usable JSON: {0}")]
    Body(String),
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
    /// The GetAccountsDetail response body, verbatim.
    pub body: &'a str,
}

impl std::fmt::Debug for ResultEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body is account data: never printed, only its size.
        f.debug_struct("ResultEntry")
            .field("login_id", self.login_id)
            .field("request_id", self.request_id)
            .field("routine_date", &self.routine_date)
            .field("stale", &self.stale)
            .field("body_bytes", &self.body.len())
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
    pub fn new(conn: ConnectionManager, keys: &KeySpace, max_len: u64) -> Self {
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

    /// The stream's key, for consumers.
    pub fn stream_key(&self) -> String {
        self.keys.results_stream()
    }

    /// Stores one result unless (LoginId, date) is already refreshed.
    pub async fn store(&self, entry: &ResultEntry<'_>) -> Result<Stored, ResultsError> {
        let accounts = accounts_json(entry.body)?;
        let outcome = LedgerOutcome::Refreshed {
            request_id: entry.request_id.clone(),
            last_refresh: entry.last_refresh,
            stale: entry.stale,
            fetched_at: entry.fetched_at,
            results_stream_id: Some(STREAM_ID_PLACEHOLDER.to_string()),
        };
        let date = entry.routine_date.format("%Y-%m-%d").to_string();
        let last_refresh = entry
            .last_refresh
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
            .unwrap_or_default();
        let stale = if entry.stale { "1" } else { "0" };
        let mut fields: Vec<(&str, String)> = vec![
            ("login_id", entry.login_id.as_str().to_string()),
            ("request_id", entry.request_id.as_str().to_string()),
            ("routine_date", date.clone()),
            ("fetched_at", entry.fetched_at.to_rfc3339()),
            ("last_refresh", last_refresh),
            ("stale", stale.to_string()),
        ];
        match &self.cipher {
            None => fields.push(("accounts", accounts)),
            Some(cipher) => {
                let aad = EntryAad {
                    login_id: entry.login_id.as_str(),
                    routine_date: &date,
                    request_id: entry.request_id.as_str(),
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
        let stream_entry = StreamEntry {
            stream: self.keys.results_stream(),
            max_len: self.max_len,
            fields,
        };
        let (stored, outcome) = self
            .ledger
            .record_with_stream_entry(entry.routine_date, entry.login_id, &outcome, &stream_entry)
            .await?;
        if stored {
            metrics::counter!(RESULTS_STORED_TOTAL).increment(1);
        }
        Ok(Stored {
            newly_stored: stored,
            outcome,
        })
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

/// Reads up to `count` entries from `from` (an XRANGE start: `-`, an id, or `(id` for
/// after it), decrypting encrypted ones with `cipher`. An encrypted entry without a
/// cipher, or with the wrong key, is an error naming the entry and key id.
pub async fn read(
    conn: &ConnectionManager,
    keys: &KeySpace,
    from: &str,
    count: usize,
    cipher: Option<&ResultsCipher>,
) -> Result<Vec<ResultRecord>, ResultsError> {
    let mut conn = conn.clone();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(keys.results_stream())
        .arg(from)
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(&mut conn)
        .await?;
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let fields = entry
                .map
                .iter()
                .filter_map(|(k, v)| {
                    redis::from_redis_value_ref::<String>(v)
                        .ok()
                        .map(|v| (k.clone(), v))
                })
                .collect();
            decode_entry(&entry.id, &fields, cipher)
        })
        .collect()
}

/// Turns one entry's fields into a [`ResultRecord`], decrypting `accounts_enc`.
pub fn decode_entry(
    id: &str,
    fields: &std::collections::HashMap<String, String>,
    cipher: Option<&ResultsCipher>,
) -> Result<ResultRecord, ResultsError> {
    let field = |name: &str| -> Result<String, ResultsError> {
        fields
            .get(name)
            .cloned()
            .ok_or_else(|| ResultsError::Entry {
                entry_id: id.to_string(),
                reason: format!("missing field {name}"),
            })
    };
    let login_id = field("login_id")?;
    let request_id = field("request_id")?;
    let routine_date = field("routine_date")?;
    let (accounts, key_id) = match fields.get("accounts_enc") {
        None => (field("accounts")?, None),
        Some(data) => {
            let crypto = |source| ResultsError::Crypto {
                entry_id: id.to_string(),
                source,
            };
            let key_id = field("key_id")?;
            let enc = field("enc")?;
            if enc != ENC_AES_256_GCM {
                return Err(crypto(CryptoError::Malformed(format!(
                    "unknown enc {enc:?}"
                ))));
            }
            let cipher = cipher.ok_or_else(|| ResultsError::Entry {
                entry_id: id.to_string(),
                reason: format!(
                    "encrypted with key id {key_id:?}; set RESULTS_ENCRYPTION_KEY to read it"
                ),
            })?;
            let sealed = Sealed {
                key_id: key_id.clone(),
                data: data.clone(),
            };
            let aad = EntryAad {
                login_id: &login_id,
                routine_date: &routine_date,
                request_id: &request_id,
            };
            let plain = cipher.open(&sealed, aad).map_err(crypto)?;
            let text = String::from_utf8(plain).map_err(|_| ResultsError::Entry {
                entry_id: id.to_string(),
                reason: "decrypted accounts are not UTF-8".into(),
            })?;
            (text, Some(key_id))
        }
    };
    let accounts: serde_json::Value =
        serde_json::from_str(&accounts).map_err(|e| ResultsError::Entry {
            entry_id: id.to_string(),
            reason: format!("accounts is not JSON: {e}"),
        })?;
    Ok(ResultRecord {
        id: id.to_string(),
        login_id,
        request_id,
        routine_date,
        fetched_at: fields.get("fetched_at").cloned().unwrap_or_default(),
        last_refresh: fields.get("last_refresh").cloned().unwrap_or_default(),
        stale: fields.get("stale").map(String::as_str) == Some("1"),
        key_id,
        accounts,
    })
}

/// The `Accounts` array of a GetAccountsDetail body, re-serialized exactly (serde_json's
/// arbitrary precision keeps every amount as sent).
fn accounts_json(body: &str) -> Result<String, ResultsError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ResultsError::Body(e.to_string()))?;
    let accounts = value
        .get("Accounts")
        .cloned()
        .unwrap_or(serde_json::Value::Array(Vec::new()));
    serde_json::to_string(&accounts).map_err(|e| ResultsError::Body(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_extracted_with_amounts_exact() {
        let body = r#"{"HttpStatusCode":200,"Accounts":[{"Balance":{"Current":5105.50,"Available":0.10}}],"RequestId":"r"}"#;
        let json = accounts_json(body).unwrap();
        assert!(json.contains("5105.50"), "{json}");
        assert!(json.contains("0.10"), "{json}");
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error_not_a_panic() {
        assert!(matches!(
            accounts_json("<html>"),
            Err(ResultsError::Body(_))
        ));
    }
}

//! Encryption at rest of the account data in the results stream, off by default.
//!
//! With `RESULTS_ENCRYPTION_KEY` set, the worker replaces an entry's `accounts` field by
//! `accounts_enc` (base64 of a 12-byte random nonce followed by the AES-256-GCM ciphertext
//! and tag), `key_id` and `enc=aes-256-gcm-v2`. The associated data binds the ciphertext to
//! every other field of its entry ([`EntryAad`]: `login_id`, `routine_date`, `request_id`,
//! `fetched_at`, `last_refresh`, `stale`, `key_id`, `enc`), so an `accounts_enc` copied to
//! another entry, or an entry with any field edited, fails to decrypt instead of lying.
//! Entries of the previous format (`enc=aes-256-gcm`, which bound only the three ids) are
//! refused: their other fields could have been edited undetected.
//!
//! Keys rotate: `RESULTS_ENCRYPTION_KEY` holds one or more comma-separated `id:key` pairs,
//! each key 32 bytes written as base64 (44 chars) or hex (64 chars). The first key
//! encrypts; every listed key decrypts, chosen by the entry's `key_id`. To rotate, put the
//! new key first and keep the old ones listed until their entries have left the stream.
//!
//! This module holds no Redis code and logs nothing; its `Debug` shows key ids only.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// The `enc` field's value for this scheme: AES-256-GCM with the associated data of
/// [`EntryAad`] (every field of the entry).
pub const ENC_AES_256_GCM: &str = "aes-256-gcm-v2";
/// The `enc` value of the previous format, whose associated data bound only `login_id`,
/// `routine_date` and `request_id`; such entries are refused (see [`CryptoError::Legacy`]).
pub const ENC_AES_256_GCM_LEGACY: &str = "aes-256-gcm";
/// Nonce length of AES-GCM, in bytes.
const NONCE_LEN: usize = 12;
/// Domain separation of the associated data (bump on a format change).
const AAD_CONTEXT: &str = "nightly-refresh/results/v2";

/// Why a key list could not be parsed, or an entry could not be decrypted. No variant
/// holds key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key list is malformed (`RESULTS_ENCRYPTION_KEY`); names the position or id.
    #[error("invalid key list: {0}")]
    InvalidKeys(String),
    /// The entry was encrypted with a key id that is not in the list.
    #[error("results entry is encrypted with key id {key_id:?}, which is not among the configured keys ({known}); add it to RESULTS_ENCRYPTION_KEY")]
    UnknownKeyId {
        /// The entry's key id.
        key_id: String,
        /// The configured key ids, comma-separated.
        known: String,
    },
    /// Authentication failed: the key behind `key_id` is not the one that encrypted the
    /// entry, or the entry (ciphertext or any other field) was altered or moved.
    #[error("cannot decrypt results entry with key id {key_id:?}: wrong key for this id, or the entry was tampered with")]
    Decrypt {
        /// The key id that was tried.
        key_id: String,
    },
    /// `accounts_enc` is not base64 of nonce + ciphertext, or `enc` names another scheme.
    #[error("malformed encrypted results entry: {0}")]
    Malformed(String),
    /// The entry was written by the previous format, which left `fetched_at`,
    /// `last_refresh` and `stale` unauthenticated; it is not read rather than trusted.
    #[error("results entry is in the previous format (enc=aes-256-gcm), whose fetched_at, last_refresh and stale are not authenticated; it is not read")]
    Legacy,
}

/// Every field of a stream entry besides the ciphertext: the associated data binds the
/// ciphertext to all of them (and to `key_id` and `enc`), so no field can be edited and no
/// ciphertext moved to another entry without decryption failing. Values are the exact
/// strings stored in the stream.
#[derive(Debug, Clone, Copy)]
pub struct EntryAad<'a> {
    /// The entry's `login_id`.
    pub login_id: &'a str,
    /// The entry's `routine_date` (`YYYY-MM-DD`).
    pub routine_date: &'a str,
    /// The entry's `request_id`.
    pub request_id: &'a str,
    /// The entry's `fetched_at` (RFC 3339).
    pub fetched_at: &'a str,
    /// The entry's `last_refresh` (may be empty).
    pub last_refresh: &'a str,
    /// The entry's `stale` (`0` or `1`).
    pub stale: &'a str,
}

impl EntryAad<'_> {
    /// The context, then each `name`, `value` pair in a fixed order, every part prefixed by
    /// its length as a 4-byte big-endian integer, so no two different entries encode alike.
    fn encode(&self, key_id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut put = |part: &str| {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        };
        put(AAD_CONTEXT);
        for (name, value) in [
            ("login_id", self.login_id),
            ("routine_date", self.routine_date),
            ("request_id", self.request_id),
            ("fetched_at", self.fetched_at),
            ("last_refresh", self.last_refresh),
            ("stale", self.stale),
            ("key_id", key_id),
            ("enc", ENC_AES_256_GCM),
        ] {
            put(name);
            put(value);
        }
        out
    }
}

/// One encrypted `accounts` payload, as stored in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that encrypted it (`key_id` field).
    pub key_id: String,
    /// base64(nonce ‖ ciphertext ‖ tag) (`accounts_enc` field).
    pub data: String,
}

struct NamedKey {
    id: String,
    cipher: Aes256Gcm,
}

/// AES-256-GCM keys by id; the first one encrypts. Cheap to clone.
#[derive(Clone)]
pub struct ResultsCipher {
    keys: Arc<Vec<NamedKey>>,
}

impl fmt::Debug for ResultsCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultsCipher")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl ResultsCipher {
    /// Parses `id:key[,id:key...]`; each key is 32 bytes in base64 or hex. Errors name the
    /// position and id, never the key.
    pub fn parse(list: &str) -> Result<Self, CryptoError> {
        let mut keys: Vec<NamedKey> = Vec::new();
        for (n, item) in list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            let position = n + 1;
            let (id, material) = item.split_once(':').ok_or_else(|| {
                CryptoError::InvalidKeys(format!(
                    "entry {position} is not id:key (e.g. k1:<base64 of 32 bytes>)"
                ))
            })?;
            let id = id.trim();
            // Errors name the entry by position, never by id: with the halves swapped
            // (`key:id`) the "id" is the key itself.
            if decode_key(id).is_some() {
                return Err(CryptoError::InvalidKeys(format!(
                    "entry {position} looks like key:id; write id:key (e.g. k1:<base64 of 32 bytes>)"
                )));
            }
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(CryptoError::InvalidKeys(format!(
                    "entry {position}: key id must be non-empty letters, digits, '-', '_' or '.'"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(CryptoError::InvalidKeys(format!(
                    "entry {position}: its key id is listed twice"
                )));
            }
            let bytes = decode_key(material.trim()).ok_or_else(|| {
                CryptoError::InvalidKeys(format!(
                    "entry {position}: the key must be 32 bytes as base64 (44 chars) or hex (64 chars)"
                ))
            })?;
            keys.push(NamedKey {
                id: id.to_string(),
                cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            });
        }
        if keys.is_empty() {
            return Err(CryptoError::InvalidKeys("no key given".into()));
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// The configured key ids, the encrypting one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The id of the key that encrypts new entries.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Encrypts `plaintext` with the first key, bound to `aad`, under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], aad: EntryAad<'_>) -> Result<Sealed, CryptoError> {
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad.encode(&key.id),
                },
            )
            .map_err(|_| CryptoError::Malformed("encryption failed".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: key.id.clone(),
            data: BASE64.encode(blob),
        })
    }

    /// Decrypts `sealed` with the key of its id, checking it belongs to `aad`.
    pub fn open(&self, sealed: &Sealed, aad: EntryAad<'_>) -> Result<Vec<u8>, CryptoError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKeyId {
                key_id: sealed.key_id.clone(),
                known: self.key_ids().join(","),
            })?;
        let blob = BASE64
            .decode(sealed.data.as_bytes())
            .map_err(|_| CryptoError::Malformed("accounts_enc is not base64".into()))?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed("accounts_enc is too short".into()));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad.encode(&key.id),
                },
            )
            .map_err(|_| CryptoError::Decrypt {
                key_id: sealed.key_id.clone(),
            })
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        BASE64.decode(text.as_bytes()).ok()?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2_HEX: &str = "k2:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    fn aad() -> EntryAad<'static> {
        EntryAad {
            login_id: "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10",
            routine_date: "2026-11-25",
            request_id: "r-1",
            fetched_at: "2026-11-25T15:31:02.123+00:00",
            last_refresh: "2026-11-25T06:00:00",
            stale: "0",
        }
    }

    #[test]
    fn sealed_accounts_open_to_the_same_bytes() {
        let cipher = ResultsCipher::parse(K1).unwrap();
        let sealed = cipher.seal(br#"[{"Balance":5105.50}]"#, aad()).unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.data.contains("5105"));
        let plain = cipher.open(&sealed, aad()).unwrap();
        assert_eq!(plain, br#"[{"Balance":5105.50}]"#);
    }

    #[test]
    fn two_seals_of_the_same_data_differ_by_nonce() {
        let cipher = ResultsCipher::parse(K1).unwrap();
        let a = cipher.seal(b"x", aad()).unwrap();
        let b = cipher.seal(b"x", aad()).unwrap();
        assert_ne!(a.data, b.data);
    }

    #[test]
    fn a_wrong_key_under_the_same_id_fails_naming_the_key_id() {
        let sealed = ResultsCipher::parse(K1)
            .unwrap()
            .seal(b"secret accounts", aad())
            .unwrap();
        let other = ResultsCipher::parse(&K2_HEX.replace("k2:", "k1:")).unwrap();
        let err = other.open(&sealed, aad()).unwrap_err();
        assert!(matches!(err, CryptoError::Decrypt { ref key_id } if key_id == "k1"));
        assert!(err.to_string().contains("\"k1\""), "{err}");
    }

    #[test]
    fn an_unknown_key_id_fails_naming_it_and_the_known_ids() {
        let sealed = ResultsCipher::parse(K1).unwrap().seal(b"x", aad()).unwrap();
        let err = ResultsCipher::parse(K2_HEX)
            .unwrap()
            .open(&sealed, aad())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"k1\"") && msg.contains("k2"), "{msg}");
    }

    #[test]
    fn editing_any_field_of_the_entry_fails_decryption() {
        let cipher = ResultsCipher::parse(K1).unwrap();
        let sealed = cipher.seal(b"x", aad()).unwrap();
        for tampered in [
            EntryAad {
                login_id: "6e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10",
                ..aad()
            },
            EntryAad {
                routine_date: "2026-11-26",
                ..aad()
            },
            EntryAad {
                request_id: "r-2",
                ..aad()
            },
            EntryAad {
                fetched_at: "2026-11-25T15:31:03.123+00:00",
                ..aad()
            },
            EntryAad {
                last_refresh: "",
                ..aad()
            },
            EntryAad {
                stale: "1",
                ..aad()
            },
        ] {
            assert!(
                matches!(
                    cipher.open(&sealed, tampered),
                    Err(CryptoError::Decrypt { .. })
                ),
                "{tampered:?}"
            );
        }
    }

    #[test]
    fn relabeling_the_key_id_fails_even_when_both_keys_are_known() {
        // Same key material under two ids: only the key_id binding tells them apart.
        let k1_again = K1.replace("k1:", "k2:");
        let cipher = ResultsCipher::parse(&format!("{K1},{k1_again}")).unwrap();
        let mut sealed = cipher.seal(b"x", aad()).unwrap();
        sealed.key_id = "k2".into();
        assert!(matches!(
            cipher.open(&sealed, aad()),
            Err(CryptoError::Decrypt { .. })
        ));
    }

    #[test]
    fn fields_shifted_between_positions_encode_differently() {
        let a = EntryAad {
            last_refresh: "1",
            stale: "",
            ..aad()
        };
        let b = EntryAad {
            last_refresh: "",
            stale: "1",
            ..aad()
        };
        assert_ne!(a.encode("k1"), b.encode("k1"));
    }

    #[test]
    fn tampered_ciphertext_fails_and_garbage_is_malformed() {
        let cipher = ResultsCipher::parse(K1).unwrap();
        let mut sealed = cipher.seal(b"some accounts", aad()).unwrap();
        let mut blob = BASE64.decode(&sealed.data).unwrap();
        blob[NONCE_LEN] ^= 1;
        sealed.data = BASE64.encode(blob);
        assert!(matches!(
            cipher.open(&sealed, aad()),
            Err(CryptoError::Decrypt { .. })
        ));
        sealed.data = "%%%".into();
        assert!(matches!(
            cipher.open(&sealed, aad()),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn after_rotation_old_entries_open_with_the_old_key_and_new_ones_use_the_new() {
        let old = ResultsCipher::parse(K1).unwrap();
        let old_entry = old.seal(b"old", aad()).unwrap();
        let rotated = ResultsCipher::parse(&format!("{K2_HEX}, {K1}")).unwrap();
        assert_eq!(rotated.key_ids(), ["k2", "k1"]);
        let new_entry = rotated.seal(b"new", aad()).unwrap();
        assert_eq!(new_entry.key_id, "k2");
        assert_eq!(rotated.open(&old_entry, aad()).unwrap(), b"old");
        assert_eq!(rotated.open(&new_entry, aad()).unwrap(), b"new");
    }

    #[test]
    fn bad_key_lists_are_rejected_without_echoing_key_material() {
        for (list, expect) in [
            ("", "no key"),
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "id:key"),
            ("k1:c2hvcnQ=", "32 bytes"),
            (&format!("{K1},{K1}") as &str, "twice"),
            (" :AAAA", "key id"),
        ] {
            let err = ResultsCipher::parse(list).unwrap_err().to_string();
            assert!(err.contains(expect), "{list:?}: {err}");
            assert!(
                !err.contains("AAECAwQF") && !err.contains("c2hvcnQ"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_key_list_written_key_colon_id_is_rejected_without_echoing_the_key() {
        let hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        // Base64 of 32 bytes with no '+', '/' or '=' besides the padding: a valid-looking id.
        let b64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY";
        for list in [
            format!("{hex}:k1"),
            format!("{b64}=:k1"),
            format!("{K1},{hex}:k2"),
            format!("{hex}:{hex}"),
        ] {
            let err = ResultsCipher::parse(&list).unwrap_err().to_string();
            assert!(err.contains("id:key"), "{list}: {err}");
            assert!(!err.contains(hex) && !err.contains(b64), "{list}: {err}");
        }
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let cipher = ResultsCipher::parse(&format!("{K1},{K2_HEX}")).unwrap();
        let debug = format!("{cipher:?}");
        assert_eq!(debug, r#"ResultsCipher { key_ids: ["k1", "k2"] }"#);
    }
}

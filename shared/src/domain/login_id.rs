//! `LoginId`: Flinks' permanent identifier of a linked bank login.
//!
//! Flinks calls the LoginId a permanent token: whoever holds it can read the account data
//! (with the API keys). So `Debug` prints a short fingerprint instead of the value, and
//! the raw value is only reachable through [`LoginId::as_str`], on purpose. Logs use
//! [`LoginId::fingerprint`]; metric labels never carry it at all.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Why a string is not a LoginId.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginIdError {
    /// The input was empty or only whitespace.
    #[error("LoginId is empty")]
    Empty,
    /// The input is not a UUID (Flinks LoginIds are GUIDs).
    #[error(
        "LoginId {shown:?} ({length} characters) is not a UUID (expected e.g. 5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10)"
    )]
    NotUuid {
        /// The start of the offending input: enough to find it, not enough to use a
        /// near-valid LoginId (a permanent token) that an error or a log would leak.
        shown: String,
        /// Its length in characters.
        length: usize,
    },
}

/// A validated Flinks LoginId, stored in canonical lower-case hyphenated form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LoginId(String);

impl LoginId {
    /// Parses a LoginId: surrounding whitespace is ignored, any UUID spelling is accepted
    /// and normalised to lower-case hyphenated form.
    pub fn parse(input: &str) -> Result<Self, LoginIdError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(LoginIdError::Empty);
        }
        Uuid::parse_str(trimmed)
            .map(|uuid| Self(uuid.hyphenated().to_string()))
            .map_err(|_| LoginIdError::NotUuid {
                shown: shown_part(trimmed),
                length: trimmed.chars().count(),
            })
    }

    /// The raw value, for request bodies and Redis keys. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable, non-reversible fingerprint (`lid:` + 16 hex chars, 64 bits, of
    /// SHA-256) that is safe to log and lets an operator correlate lines for one login and
    /// resolve it from the registry (`producer logins lookup`). 64 bits make a collision
    /// negligible: among 10 million logins the chance that any two share one is about
    /// n²/2⁶⁵ ≈ 2.7 × 10⁻⁶.
    pub fn fingerprint(&self) -> String {
        format!(
            "{FINGERPRINT_PREFIX}{}",
            &self.fingerprint_hex()[..FINGERPRINT_HEX_LEN]
        )
    }

    /// True when `fingerprint` (as [`LoginId::fingerprint`] prints it, or a leading part of
    /// at least [`MIN_FINGERPRINT_HEX_LEN`] hex characters of it) names this login.
    pub fn matches_fingerprint(&self, fingerprint: &Fingerprint) -> bool {
        self.fingerprint_hex().starts_with(fingerprint.0.as_str())
    }

    fn fingerprint_hex(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// What every fingerprint starts with.
const FINGERPRINT_PREFIX: &str = "lid:";
/// Hex characters in a fingerprint.
const FINGERPRINT_HEX_LEN: usize = 16;
/// The shortest leading part of a fingerprint accepted for a lookup (what older versions
/// logged was 10).
pub const MIN_FINGERPRINT_HEX_LEN: usize = 8;

/// A fingerprint to look a login up by: lower-case hex, `lid:` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Parses `lid:0123abcd…` or `0123abcd…`: 8 to 16 hex characters.
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        let hex = trimmed
            .strip_prefix(FINGERPRINT_PREFIX)
            .unwrap_or(trimmed)
            .to_ascii_lowercase();
        let valid = (MIN_FINGERPRINT_HEX_LEN..=FINGERPRINT_HEX_LEN).contains(&hex.len())
            && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            Ok(Self(hex))
        } else {
            Err(format!(
                "{trimmed:?} is not a LoginId fingerprint (expected lid: and {MIN_FINGERPRINT_HEX_LEN} to {FINGERPRINT_HEX_LEN} hex characters, as logs print it)"
            ))
        }
    }
}

/// The first 8 characters of a bad input, with an ellipsis when there is more.
fn shown_part(input: &str) -> String {
    let mut shown: String = input.chars().take(8).collect();
    if input.chars().count() > 8 {
        shown.push('…');
    }
    shown
}

impl fmt::Debug for LoginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoginId({})", self.fingerprint())
    }
}

impl<'de> Deserialize<'de> for LoginId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        LoginId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for LoginId {
    type Err = LoginIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises_case_and_whitespace() {
        let id = LoginId::parse("  5E5B1F56-0B6C-4C53-A3A4-2B2D7A3E9F10 ").unwrap();
        assert_eq!(id.as_str(), "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10");
    }

    #[test]
    fn parse_rejects_empty_and_non_uuid_input_with_the_input_named() {
        assert_eq!(LoginId::parse("  "), Err(LoginIdError::Empty));
        let err = LoginId::parse("not-a-uuid").unwrap_err();
        assert!(
            err.to_string().contains("\"not-a-uu…\" (10 characters)"),
            "{err}"
        );
        // A near-valid LoginId is not echoed whole.
        let near = "0a1b2c3d-4e5f-4a6b-8c7d-9e8f7a6b5c4dx";
        let err = LoginId::parse(near).unwrap_err().to_string();
        assert!(
            !err.contains(near) && !err.contains("9e8f7a6b5c4d"),
            "{err}"
        );
    }

    #[test]
    fn a_fingerprint_or_its_leading_part_finds_its_login_and_garbage_is_refused() {
        let id = LoginId::parse("5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10").unwrap();
        let printed = id.fingerprint();
        assert_eq!(printed.len(), "lid:".len() + 16);
        assert!(id.matches_fingerprint(&Fingerprint::parse(&printed).unwrap()));
        assert!(
            id.matches_fingerprint(&Fingerprint::parse(&printed[4..14].to_uppercase()).unwrap())
        );
        let other = LoginId::parse("5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f11").unwrap();
        assert!(!other.matches_fingerprint(&Fingerprint::parse(&printed).unwrap()));
        for bad in [
            "",
            "lid:",
            "lid:1234567",
            "lid:zzzzzzzzzz",
            "lid:0123456789abcdef0",
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_prints_a_fingerprint_never_the_value() {
        let id = LoginId::parse("5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10").unwrap();
        let debug = format!("{id:?}");
        assert!(!debug.contains("5e5b1f56"), "{debug}");
        assert!(debug.starts_with("LoginId(lid:"), "{debug}");
        assert_eq!(id.fingerprint(), id.clone().fingerprint());
    }

    #[test]
    fn deserialize_validates() {
        let ok: LoginId = serde_json::from_str("\"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10\"").unwrap();
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            "\"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10\""
        );
        assert!(serde_json::from_str::<LoginId>("\"nope\"").is_err());
    }
}

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

    /// A short, stable, non-reversible fingerprint (`lid:` + 10 hex chars of SHA-256) that
    /// is safe to log and lets an operator correlate lines for one login.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        format!("lid:{}", &hex::encode(digest)[..10])
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

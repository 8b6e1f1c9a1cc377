//! `RequestId`: the session id Flinks returns from /Authorize. It is scoped to one
//! Authorize (8 minutes idle, 30 minutes of processing) and must never be reused across
//! runs, so it is a type of its own rather than a bare string.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Flinks RequestId as returned by the API (kept verbatim).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Wraps a RequestId received from Flinks.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for request bodies and URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

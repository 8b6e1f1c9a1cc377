//! `RequestId`: the session id Flinks returns from /Authorize. It is scoped to one
//! Authorize (8 minutes idle, 30 minutes of processing) and must never be reused across
//! runs, so it is a type of its own rather than a bare string.
//!
//! While it lives it is a bearer token for the login's data (GetAccountsDetail takes only
//! it), so `Display` and `Debug`, which logs, spans and errors use, show its first
//! [`SHOWN_CHARS`] characters and `…`; the full value is reached only through
//! [`RequestId::as_str`] (request bodies, URLs) and serde (the job and the ledger).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Characters of a RequestId that `Display` and `Debug` show.
const SHOWN_CHARS: usize = 8;

/// A Flinks RequestId as returned by the API (kept verbatim).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Wraps a RequestId received from Flinks.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for request bodies and URLs. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// The first [`SHOWN_CHARS`] characters, then `…` when there are more: enough to match a
/// log line with Flinks support, not enough to call the API with.
impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN_CHARS) {
            Some((end, _)) => write!(f, "{}…", &self.0[..end]),
            None => f.write_str(&self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "0a1b2c3d-0000-4000-8000-000000000001";

    #[test]
    fn display_and_debug_show_only_the_start() {
        let id = RequestId::new(FULL);
        assert_eq!(id.to_string(), "0a1b2c3d…");
        assert_eq!(format!("{id:?}"), "RequestId(0a1b2c3d…)");
        assert_eq!(id.as_str(), FULL);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{FULL}\""));
        assert_eq!(RequestId::new("short").to_string(), "short");
        assert_eq!(RequestId::new("ééééééééé").to_string(), "éééééééé…");
    }
}

//! Cross-site request forgery: every form that changes something carries the session's
//! random token in a hidden `csrf` field, and a request without the right one is refused
//! with 403 before anything is read or changed. `SameSite=Strict` cookies already keep
//! other sites' requests from carrying the session; the token also covers browsers and
//! proxies that do not honour it.
//!
//! The login form has no session yet: it carries a token that is also set as a short-lived
//! cookie (double submit), so another site cannot log a browser into an account of its
//! choosing.

use std::time::Duration;

/// The pre-login cookie holding the login form's token.
pub const LOGIN_COOKIE: &str = "nr_console_login";

/// How long a login form stays usable.
pub const LOGIN_FORM_TTL: Duration = Duration::from_secs(30 * 60);

/// Compares two tokens in time that does not depend on where they differ.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a mutating request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("403 Forbidden: the form's CSRF token is missing or does not match this session; reload the page and try again")]
pub struct CsrfRejected;

/// Checks the `given` form token against the session's `expected` one.
pub fn check(expected: &str, given: &str) -> Result<(), CsrfRejected> {
    if tokens_match(expected, given) {
        Ok(())
    } else {
        Err(CsrfRejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_non_empty_token_matches() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
        assert!(!tokens_match("", ""));
        assert_eq!(check("abc", ""), Err(CsrfRejected));
    }
}

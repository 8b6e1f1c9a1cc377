//! The console's users: `CONSOLE_USERS_FILE`, one `name:hash` a line, the hash an argon2
//! PHC string as `producer console hash-password` prints it. Blank lines and lines starting
//! with `#` are skipped.
//!
//! The file holds password hashes, so no error ever repeats a hash: a bad line is named by
//! the file and its line number and what is wrong with it. Names are one short word of
//! letters, digits and `. _ - @`, so the audit trail stores them exactly as written.
//! Verifying an unknown name costs as much as a known one (it checks a dummy hash), so the
//! login's timing does not tell which names exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore as _;

/// The longest user name.
pub const MAX_NAME_CHARS: usize = 64;

/// Why the users file or a password was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("CONSOLE_USERS_FILE {path}: cannot read it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `name:argon2 hash`.
    #[error("CONSOLE_USERS_FILE {path} line {line}: {why}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// Its line number, from 1.
        line: usize,
        /// What is wrong (never the hash itself).
        why: String,
    },
    /// The file names no user.
    #[error("CONSOLE_USERS_FILE {0}: no users (one `name:hash` a line; `producer console hash-password` prints a hash)")]
    Empty(PathBuf),
    /// An empty password cannot be hashed.
    #[error("the password is empty")]
    EmptyPassword,
    /// The hasher failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// The console's users and their password hashes. Cheap to clone.
#[derive(Clone)]
pub struct Users {
    by_name: Arc<BTreeMap<String, String>>,
    dummy: Arc<String>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&String> = self.by_name.keys().collect();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

impl Users {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Checks the text of a users file (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, UsersError> {
        let mut by_name = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| UsersError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                why: why.to_string(),
            };
            let Some((name, hash)) = line.split_once(':') else {
                return Err(bad("expected `name:hash` (no ':' found)"));
            };
            let name = name.trim();
            if !valid_name(name) {
                return Err(bad(&format!(
                    "user name {name:?} must be 1 to {MAX_NAME_CHARS} letters, digits or . _ - @"
                )));
            }
            let parsed = PasswordHash::new(hash.trim()).map_err(|_| {
                bad("the hash is not a PHC string (run `producer console hash-password`)")
            })?;
            if parsed.salt.is_none() || parsed.hash.is_none() {
                return Err(bad(
                    "the hash has no salt or no hash part (run `producer console hash-password`)",
                ));
            }
            if !parsed.algorithm.as_str().starts_with("argon2") {
                return Err(bad(
                    "the hash is not an argon2 hash (run `producer console hash-password`)",
                ));
            }
            if by_name
                .insert(name.to_string(), hash.trim().to_string())
                .is_some()
            {
                return Err(bad(&format!("user {name:?} is listed twice")));
            }
        }
        if by_name.is_empty() {
            return Err(UsersError::Empty(path.to_path_buf()));
        }
        Ok(Self {
            by_name: Arc::new(by_name),
            dummy: Arc::new(hash_password("not a password of anyone")?),
        })
    }

    /// The user names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// A short digest of `name`'s line (name and hash), or `None` when `name` is not a
    /// user. A session records it at login; a different one later means the user's password
    /// was changed (or the user removed), and the session no longer counts. 16 hex digits:
    /// enough to notice a change, too short to help anyone guess the hash.
    pub fn line_digest(&self, name: &str) -> Option<String> {
        use sha2::{Digest as _, Sha256};
        let hash = self.by_name.get(name)?;
        let digest = Sha256::digest(format!("{name}:{hash}").as_bytes());
        Some(hex::encode(&digest[..8]))
    }

    /// True when `name` exists and `password` is its password. Slow on purpose (argon2):
    /// call it off the async runtime's threads.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let (hash, known) = match self.by_name.get(name) {
            Some(hash) => (hash.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    }
}

/// The argon2id hash of `password` with a fresh random salt, as a PHC string for the
/// users file.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    if password.is_empty() {
        return Err(UsersError::EmptyPassword);
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// The password read from the first line of `input` (a trailing newline removed).
pub fn password_from_line(input: &str) -> &str {
    input.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_another_does_not() {
        let hash = hash_password("correct horse").unwrap();
        let users = Users::parse(Path::new("users"), &format!("alice:{hash}\n")).unwrap();

        assert!(hash.starts_with("$argon2id$"));
        assert!(users.verify("alice", "correct horse"));
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("bob", "correct horse"));
        assert_eq!(users.names().collect::<Vec<_>>(), ["alice"]);
    }

    #[test]
    fn a_line_digest_changes_with_the_password_and_is_none_for_a_stranger() {
        let text = format!("alice:{}\n", hash_password("pw").unwrap());
        let users = Users::parse(Path::new("users"), &text).unwrap();
        let again = Users::parse(Path::new("users"), &text).unwrap();
        let new_text = format!("alice:{}\n", hash_password("pw").unwrap());
        let changed = Users::parse(Path::new("users"), &new_text).unwrap();

        let digest = users.line_digest("alice").unwrap();
        assert_eq!(digest.len(), 16);
        assert_eq!(again.line_digest("alice"), Some(digest.clone()));
        assert_ne!(changed.line_digest("alice"), Some(digest));
        assert_eq!(users.line_digest("bob"), None);
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_number_without_the_hash() {
        let hash = hash_password("pw").unwrap();
        let cases = [
            (format!("# ops\n\nalice:{hash}\nbob\n"), "line 4", "no ':'"),
            (
                format!("alice:{hash}\nbob:$argon2id$garbage-secret\n"),
                "line 2",
                "no salt",
            ),
            (format!("al ice:{hash}\n"), "line 1", "user name"),
            (format!("alice:{hash}\nalice:{hash}\n"), "line 2", "twice"),
            (
                "carol:$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n".to_string(),
                "line 1",
                "not an argon2",
            ),
        ];
        for (text, line, why) in cases {
            let err = Users::parse(Path::new("/etc/console-users"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("/etc/console-users") && err.contains(line) && err.contains(why),
                "{err}"
            );
            assert!(
                !err.contains("$argon2") && !err.contains("secret") && !err.contains("$pbkdf2"),
                "{err}"
            );
        }
        let empty = Users::parse(Path::new("f"), "# nobody\n").unwrap_err();
        assert!(empty.to_string().contains("no users"), "{empty}");
    }

    #[test]
    fn the_password_is_the_first_line_without_its_newline() {
        assert_eq!(password_from_line("s3cret\n"), "s3cret");
        assert_eq!(password_from_line("s3cret\r\nmore"), "s3cret");
        assert!(hash_password(password_from_line("\n")).is_err());
    }
}

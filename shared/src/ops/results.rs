//! `producer results read`: one page of the results stream under the read policy the
//! settings give, and the `--from` of the next page. Entries are decrypted with any key id
//! RESULTS_ENCRYPTION_KEY lists; with a key set (or encryption required), entries stored in
//! clear are refused unless the operator allows them, since a plain entry is what someone
//! who can write to Redis would forge. An entry that cannot be read is kept in
//! [`Page::errors`] with its stream id, so one bad entry never hides the rest of the page.

use chrono::NaiveDate;
use serde::Serialize;

use super::exit::{partial, PartialFailure};
use super::OpsError;
use crate::config::Settings;
use crate::domain::LoginId;
use crate::keys::KeySpace;
use crate::redis_conn::RedisConn;
use crate::results::{self, EntryError, ReadPolicy, ResultRecord};

/// Which entries to read.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// The first entry id (`-` = the oldest; `(ID` = after ID).
    pub from: String,
    /// At most this many entries.
    pub count: usize,
    /// Instead: the one entry of this login's refresh on this routine date.
    pub login: Option<(LoginId, NaiveDate)>,
    /// Read entries stored in clear even though a key is set.
    pub allow_plaintext: bool,
}

/// One page as `results read` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The entries read, oldest first.
    pub entries: Vec<ResultRecord>,
    /// Entries skipped: their stream id and why.
    pub errors: Vec<EntryError>,
    /// The `--from` value of the next page, `None` when this page was not full.
    pub next: Option<String>,
    /// Entries the page covered, read or skipped.
    #[serde(skip)]
    pub scanned: usize,
}

impl Page {
    /// `Err` when some entries could not be read.
    pub fn partial(&self) -> Result<(), PartialFailure> {
        partial(self.errors.len(), self.scanned)
    }
}

/// Reads the page `request` asks for. A login without a results entry that date is a
/// usage error.
pub async fn read(
    conn: &RedisConn,
    keys: &KeySpace,
    settings: &Settings,
    request: &ReadRequest,
) -> Result<Page, OpsError> {
    let policy = ReadPolicy {
        cipher: settings.results_cipher.as_ref(),
        allow_plaintext: request.allow_plaintext,
        require_encryption: settings.results_encryption_required,
    };
    let page = match &request.login {
        Some((login, date)) => results::read_login(conn, keys, login, *date, policy)
            .await?
            .ok_or_else(|| {
                let why = "has no refresh with a results entry (not refreshed, or trimmed)";
                OpsError::Usage(format!("LoginId {} on {date} {why}", login.as_str()))
            })?,
        None => results::read(conn, keys, &request.from, request.count, policy).await?,
    };
    // The page's last entry, read or skipped, so paging never stops at a bad entry.
    let next = match &page.last_id {
        Some(last) if request.login.is_none() && page.more => Some(format!("({last}")),
        _ => None,
    };
    Ok(Page {
        entries: page.records,
        errors: page.errors,
        next,
        scanned: page.scanned,
    })
}

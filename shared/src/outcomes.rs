//! Recording a login's outcome for a routine date, everywhere it shows: the ledger entry,
//! the results-stream entry of a refresh, the re-auth / failed indexes and the login's
//! registry state and history. Every path that records an outcome (the worker's handlers,
//! the dead-letter reconciler, the producer's ops commands) goes through [`Outcomes`].
//!
//! On one Redis (a single server, or Sentinel's master) the ledger script applies the
//! registry update itself, in the same atomic step: one script call per outcome.
//!
//! On a Cluster, a login's ledger keys share its ledger bucket's hash tag (`{ns:ledger}`
//! with one bucket); its registry keys do not, and Redis Cluster forbids one script over two
//! slots. So recording there is a transactional outbox:
//!
//! 1. `ledger_record.lua` writes the ledger entry, counters, indexes and (for a refresh)
//!    the results-stream entry, and in the same atomic step puts the registry update in the
//!    outbox, a HASH per ledger bucket (`{ns:ledger}:outbox`) of LoginId → `<score>|<outcome
//!    JSON>` (score: the outcome's time in epoch ms). This is the commit point.
//! 2. The caller applies the pending update to the registry ([`Registry::record_outcome`],
//!    which ignores an outcome older than the one it holds and never adds one to the
//!    history twice), then removes the entry if it is still the one applied (a worker
//!    removes them in batches, [`Outcomes::with_batched_clears`]).
//! 3. A crash between 1 and 2 leaves the entry in the outbox; every worker drains it at
//!    startup and every [`DRAIN_INTERVAL`] ([`spawn_drain`]).
//!
//! Applying is idempotent, so the caller and a drain may both apply an entry. The outbox
//! keeps one entry per login (a later outcome replaces an earlier pending one; an earlier
//! one never replaces a later), so it is bounded by the number of logins.

use std::sync::LazyLock;
use std::time::Duration;

use crate::redis_conn::RedisConn;
use chrono::NaiveDate;
use redis::{AsyncCommands, Script};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::LoginId;
use crate::keys::KeySpace;
use crate::ledger::{Ledger, LedgerError, LedgerOutcome, Overwrite, RegistryUpdate, RegistryWrite};
use crate::queue::AckWrite;
use crate::registry::{Registry, RegistryError};
use crate::results::{ResultEntry, ResultsError, ResultsSink, Stored};

/// How often each worker applies outbox entries left by a crash.
pub const DRAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Outbox entries read per `HSCAN` page.
const DRAIN_PAGE: usize = 100;

/// Applied entries cleared per script call at most ([`Outcomes::with_batched_clears`]).
const CLEAR_BATCH: usize = 256;

/// Applied entries waiting for their clear at most; past it an apply clears its own.
const CLEAR_QUEUE: usize = 4 * CLEAR_BATCH;

/// How long the clearing task gathers entries after the first before it sends them: a busy
/// worker's applies then share a script call by the dozen, not two or three, and an
/// applied entry stays in the outbox that much longer, far within a drain's interval.
const CLEAR_LINGER: Duration = Duration::from_millis(25);

static CLEAR: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/outcomes/outbox_clear.lua")));

/// Why recording or applying an outcome failed.
#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    /// Redis did not answer or refused the command; the caller retries later.
    #[error("outcomes: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The ledger write failed; nothing was recorded.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The result and its ledger entry could not be stored; nothing was recorded.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The registry update failed; it stays in the outbox for the next apply.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Records outcomes in the ledger and the registry of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Outcomes {
    conn: RedisConn,
    keys: KeySpace,
    ledger: Ledger,
    registry: Registry,
    /// Where applied entries go to be cleared in batches ([`Outcomes::with_batched_clears`]);
    /// `None` clears each one as it is applied.
    clears: Option<mpsc::Sender<(String, String)>>,
}

impl Outcomes {
    /// The outcomes of the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        Self {
            ledger: Ledger::new(conn.clone(), keys),
            registry: Registry::new(conn.clone(), keys),
            keys: keys.clone(),
            conn,
            clears: None,
        }
    }

    /// The same outcomes, with applied outbox entries cleared by a task of their own, many
    /// per script call, instead of one round trip each: what a worker's handlers use. The
    /// task sends what arrives within 25 ms of the first entry, and no handler waits for
    /// it. An entry whose clear is lost (a crash, a Redis error) is applied again by a
    /// drain, which is harmless. On `shutdown` the task clears what it holds and stops; later
    /// applies clear one by one. Await the handle before exiting.
    pub fn with_batched_clears(
        mut self,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CLEAR_QUEUE);
        self.clears = Some(tx);
        let task = tokio::spawn(clear_batches(
            self.conn.clone(),
            self.keys.clone(),
            rx,
            shutdown,
        ));
        (self, task)
    }

    /// Records `outcome` for (`login`, `date`), overwriting what `overwrite` allows (see
    /// [`Ledger::record`]), and brings the registry up to date. Returns `true` when the
    /// ledger entry was written. Once the ledger write succeeded the call succeeds: a
    /// registry update that fails stays in the outbox for the drain.
    pub async fn record(
        &self,
        date: NaiveDate,
        login: &LoginId,
        outcome: &LedgerOutcome,
        overwrite: Overwrite,
    ) -> Result<bool, OutcomeError> {
        let (written, update) = self
            .ledger
            .record_with_registry(
                date,
                login,
                outcome,
                overwrite,
                RegistryWrite::ApplyWhereOneRedis,
            )
            .await?;
        self.apply_or_leave(login, update).await;
        Ok(written)
    }

    /// Stores a fetched result through `sink` (results stream and `Refreshed` ledger entry
    /// in one atomic step, see [`ResultsSink::store`]) and brings the registry up to date.
    pub async fn store_result(
        &self,
        sink: &ResultsSink,
        entry: &ResultEntry<'_>,
    ) -> Result<Stored, OutcomeError> {
        let mut stored = sink.store(entry).await?;
        let update = std::mem::replace(&mut stored.registry, RegistryUpdate::Applied);
        self.apply_or_leave(entry.login_id, update).await;
        Ok(stored)
    }

    /// [`Outcomes::store_result`] as a write of the ack of the job that fetched the result
    /// ([`ResultsSink::ack_write`]): on one Redis the result, its ledger entry and the
    /// login's registry update are written by the job's ack, in its script call. `None` on
    /// a Cluster: call `store_result`. An update a crash left pending in the outbox for a
    /// login already refreshed is left to the drain ([`spawn_drain`]), which applies it
    /// within [`DRAIN_INTERVAL`].
    pub fn result_ack_write(
        &self,
        sink: &ResultsSink,
        entry: &ResultEntry<'_>,
        stored: impl Fn(Result<Stored, ResultsError>) + Send + Sync + 'static,
    ) -> Result<Option<AckWrite>, OutcomeError> {
        Ok(sink.ack_write(entry, stored)?)
    }

    /// Applies the registry update pending for `login`, if any, and removes it from the
    /// outbox. Returns `true` when there was one.
    pub async fn apply_pending(&self, login: &LoginId) -> Result<bool, OutcomeError> {
        let mut conn = self.conn.clone();
        let pending: Option<String> = conn
            .hget(outbox_of(&self.keys, login.as_str()), login.as_str())
            .await?;
        match pending {
            Some(entry) => self.apply_entry(login.as_str(), &entry).await.map(|_| true),
            None => Ok(false),
        }
    }

    /// Applies every pending registry update (left by a crash between the ledger write and
    /// its apply, or being applied by its caller right now: applying twice is harmless),
    /// ledger bucket by ledger bucket. Returns how many entries were applied. A bucket that
    /// fails (its shard failing over, say) does not hold up the others: its error is
    /// returned once every bucket was tried.
    pub async fn drain_once(&self) -> Result<u64, OutcomeError> {
        let mut applied = 0;
        let mut failed = None;
        for bucket in self.keys.all_ledger_buckets() {
            match self.drain_bucket(&self.keys.ledger_outbox(bucket)).await {
                Ok(n) => applied += n,
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        failed.map_or(Ok(applied), Err)
    }

    async fn drain_bucket(&self, key: &str) -> Result<u64, OutcomeError> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut applied = 0;
        loop {
            let (next, pairs): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(DRAIN_PAGE)
                .query_async(&mut conn)
                .await?;
            for (login, entry) in pairs {
                self.apply_entry(&login, &entry).await?;
                applied += 1;
            }
            if next == 0 {
                return Ok(applied);
            }
            cursor = next;
        }
    }

    /// Registry updates waiting in the outbox.
    pub async fn pending(&self) -> Result<u64, OutcomeError> {
        let mut pipe = redis::pipe();
        for bucket in self.keys.all_ledger_buckets() {
            pipe.hlen(self.keys.ledger_outbox(bucket));
        }
        let mut conn = self.conn.clone();
        let lengths: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(lengths.iter().sum())
    }

    /// Applies the registry update a ledger write queued, or when the write queued none
    /// (nothing written, or a later update was pending), whatever is pending for `login`: a
    /// crash may have left one. Nothing when the write applied it itself. Applying the
    /// write's own entry rather than the outbox's saves reading it back; the clear
    /// compares, so an entry replaced meanwhile stays for its own apply.
    async fn apply_or_leave(&self, login: &LoginId, update: RegistryUpdate) {
        let applied = match update {
            RegistryUpdate::Applied => return,
            RegistryUpdate::Queued(entry) => self.apply_entry(login.as_str(), &entry).await,
            RegistryUpdate::None => self.apply_pending(login).await.map(|_| ()),
        };
        if let Err(error) = applied {
            tracing::warn!(
                login = %login.fingerprint(),
                error.message = %error,
                "registry update left in the outcome outbox; the drain applies it"
            );
        }
    }

    async fn apply_entry(&self, login: &str, entry: &str) -> Result<(), OutcomeError> {
        match decode_entry(login, entry) {
            Some((login_id, outcome)) => {
                self.registry.record_outcome(&login_id, &outcome).await?;
            }
            None => {
                // Unusable forever: retrying it would block nothing but log on every drain.
                let fp = LoginId::parse(login)
                    .map(|l| l.fingerprint().to_string())
                    .unwrap_or_else(|_| "invalid".into());
                tracing::warn!(login = %fp, "undecodable outcome outbox entry dropped");
            }
        }
        let entry = (login.to_string(), entry.to_string());
        let entry = match &self.clears {
            Some(clears) => match clears.try_send(entry) {
                Ok(()) => return Ok(()),
                Err(refused) => refused.into_inner(),
            },
            None => entry,
        };
        clear(&self.conn, &outbox_of(&self.keys, login), &[entry]).await?;
        Ok(())
    }
}

/// The outbox HASH that holds `login`'s pending update: its ledger bucket's.
fn outbox_of(keys: &KeySpace, login: &str) -> String {
    keys.ledger_outbox(keys.ledger_bucket_of(login))
}

/// Removes each applied `(LoginId, entry)` from the outbox `key` if it is still that entry
/// (a later one written meanwhile stays for its own apply). One script call.
async fn clear(
    conn: &RedisConn,
    key: &str,
    applied: &[(String, String)],
) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    let mut invocation = CLEAR.prepare_invoke();
    invocation.key(key);
    for (login, entry) in applied {
        invocation.arg(login).arg(entry);
    }
    let _: i64 = invocation.invoke_async(&mut conn).await?;
    Ok(())
}

/// The task of [`Outcomes::with_batched_clears`].
async fn clear_batches(
    conn: RedisConn,
    keys: KeySpace,
    mut applied: mpsc::Receiver<(String, String)>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(CLEAR_BATCH);
    let mut stopping = false;
    loop {
        let first = tokio::select! {
            biased;
            entry = applied.recv() => entry,
            _ = shutdown.cancelled(), if !stopping => {
                // Refuse new entries (their appliers clear them); what is queued is still
                // received, then `recv` ends the loop.
                applied.close();
                stopping = true;
                continue;
            }
        };
        let Some(first) = first else { break };
        batch.push(first);
        let linger = tokio::time::sleep(CLEAR_LINGER);
        tokio::pin!(linger);
        while batch.len() < CLEAR_BATCH {
            tokio::select! {
                biased;
                entry = applied.recv() => match entry {
                    Some(entry) => batch.push(entry),
                    None => break,
                },
                _ = &mut linger => break,
            }
        }
        // One script call per ledger bucket the batch touches.
        for (bucket, entries) in keys.by_ledger_bucket(batch.drain(..), |(login, _)| login) {
            clear_or_leave(&conn, &keys.ledger_outbox(bucket), &entries).await;
        }
    }
}

async fn clear_or_leave(conn: &RedisConn, key: &str, batch: &[(String, String)]) {
    if let Err(error) = clear(conn, key, batch).await {
        tracing::warn!(
            entries = batch.len(),
            error.message = %error,
            "applied outbox entries not cleared; the drain applies them again"
        );
    }
}

/// Parses an outbox entry, `<score>|<outcome JSON>`, of field `login`.
fn decode_entry(login: &str, entry: &str) -> Option<(LoginId, LedgerOutcome)> {
    let login = LoginId::parse(login).ok()?;
    let (score, json) = entry.split_once('|')?;
    score.parse::<i64>().ok()?;
    Some((login, serde_json::from_str(json).ok()?))
}

/// Runs [`Outcomes::drain_once`] now and then every `interval` until `shutdown`.
pub fn spawn_drain(
    outcomes: Outcomes,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match outcomes.drain_once().await {
                Ok(0) => {}
                Ok(applied) => {
                    tracing::info!(applied, "outcome outbox: registry updates applied")
                }
                Err(error) => {
                    tracing::warn!(error.message = %error, "outcome outbox drain failed; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_entries_decode_and_garbage_does_not() {
        let login = "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10";
        let entry = r#"1735787045000|{"kind":"failed","flinks_code":null,"http_status":null,"message":"x","attempts":1,"at":"2025-01-02T03:04:05Z"}"#;
        let (id, outcome) = decode_entry(login, entry).unwrap();
        assert_eq!(id.as_str(), login);
        assert_eq!(outcome.kind(), "failed");
        assert!(decode_entry(login, "no-separator").is_none());
        assert!(decode_entry(login, "x|{}").is_none());
        assert!(decode_entry("not-a-login", entry).is_none());
    }
}

//! The login registry: which Flinks LoginIds exist, which are active, and the latest known
//! state of each (last outcome, last success, Flinks `LastRefresh`, stale, re-auth code).
//!
//! Layout (see [`KeySpace`]): a HASH per login (`ns:login:{id}`), a capped LIST of the last
//! [`HISTORY_LEN`] outcomes per login (JSON [`LedgerOutcome`], newest first), and the login
//! index ([`crate::login_index`]): every registered login as a field of a small HASH of its
//! key bucket ([`KeySpace::bucket_of`]), flagged active or inactive, so that on a Redis
//! Cluster the index of a million logins spreads over the shards. The routine walks the
//! index's active logins ([`Registry::scan_active`]).
//!
//! Imports are upserts, pipelined in batches of [`BATCH_SIZE`]: a million logins take
//! seconds. CSV parsing and validation live in [`crate::import`], not here.
//!
//! Every write of a login goes through `registry_write.lua`, which sets the active flag and,
//! in the same script, the login's Flinks nightly-refresh state: a login that becomes
//! inactive (or active again) is `pending` from that step on, and its SetScheduledRefresh
//! job is then indexed and enqueued ([`crate::scheduled_refresh`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::LazyLock;

use crate::config::RedisMode;
use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::Stream;
use redis::{AsyncCommands, Script};
use serde::Serialize;

use crate::domain::{Fingerprint, FlinksCode, LoginId};
use crate::flinks::format_flinks_timestamp;
use crate::jobs::ScheduledRefreshJob;
use crate::keys::KeySpace;
use crate::ledger::LedgerOutcome;
use crate::login_index::{self, Which};
use crate::queue::{LeaseRead, LeaseReadValues, PayloadElement, PayloadText};
use crate::scheduled_refresh::{
    new_stamp, ScheduledRefresh, ScheduledRefreshError, ScheduledRefreshState,
};
use crate::write_marks::WriteMark;

static WRITE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/registry/registry_write.lua")));
/// The outcome scripts: each is `registry_apply.lua` (the functions) and its own file.
fn outcome_script(body: &str) -> Script {
    Script::new(&format!(
        "{}\n{body}",
        include_str!("lua/registry/registry_apply.lua")
    ))
}
static OUTCOME: LazyLock<Script> =
    LazyLock::new(|| outcome_script(include_str!("lua/registry/registry_outcome.lua")));
static HISTORY: LazyLock<Script> =
    LazyLock::new(|| outcome_script(include_str!("lua/registry/registry_history.lua")));
static OUTCOME_AND_HISTORY: LazyLock<Script> =
    LazyLock::new(|| outcome_script(include_str!("lua/registry/registry_outcome_history.lua")));

/// A per-bucket key ([`KeySpace::logins_flinks_unconfirmed`], ...).
pub(crate) type BucketKey = fn(&KeySpace, u16) -> String;

/// The login hash's active flag: `1` active, `0` inactive (see `registry_write.lua`).
const ACTIVE_FIELD: &str = "active";

/// True when the active flag reads inactive; a login without one is not registered.
fn inactive_flag(active: Option<&str>) -> bool {
    active == Some("0")
}

/// Logins written per pipeline.
pub const BATCH_SIZE: usize = 1_000;
/// Batches of an import in flight at once: while Redis runs one, the next is built and
/// sent, so Redis does not wait for the importer between batches.
const BATCHES_IN_FLIGHT: usize = 2;
/// Outcomes kept in each login's history.
pub const HISTORY_LEN: usize = 20;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Redis did not answer or refused the command; the caller retries later.
    #[error("registry: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// An outcome could not be encoded (a bug, not a runtime condition).
    #[error("registry: cannot encode outcome: {0}")]
    Encode(#[from] serde_json::Error),
    /// A registry script answered something it never returns (a bug, or another script
    /// loaded under its name).
    #[error("registry: unexpected reply: {0}")]
    UnexpectedReply(String),
    /// The Flinks nightly-refresh change could not be indexed or enqueued; it stays
    /// `pending` in the registry and the sweeper enqueues it.
    #[error("registry: {0}")]
    ScheduledRefresh(#[from] ScheduledRefreshError),
}

/// One login to add or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecordInput {
    /// The login.
    pub login_id: LoginId,
    /// Whether the routine refreshes it.
    pub active: bool,
    /// A free-form label; `None` keeps the current tag.
    pub tag: Option<String>,
    /// Refresh priority, 0 to [`crate::import::MAX_PRIORITY`] (higher first); `None` keeps
    /// the current one (0 for a new login).
    pub priority: Option<u8>,
}

/// What an upsert wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertSummary {
    /// Logins written.
    pub upserted: u64,
    /// Of which active.
    pub active: u64,
    /// Of which inactive.
    pub inactive: u64,
    /// Of which not known before.
    pub new: u64,
    /// Logins whose nightly refresh at Flinks must change (queued SetScheduledRefresh).
    pub flinks_changes: u64,
}

/// Which logins to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginFilter {
    /// Active logins only.
    Active,
    /// Inactive logins only.
    Inactive,
    /// Every login.
    #[default]
    All,
    /// Logins whose nightly-refresh change Flinks has not confirmed (pending or failed).
    FlinksUnconfirmed,
}

/// A login in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginSummary {
    /// The login.
    pub login_id: LoginId,
    /// Whether the routine refreshes it.
    pub active: bool,
    /// Its tag, if any.
    pub tag: Option<String>,
    /// Its refresh priority (0 unless set; higher refreshed first).
    pub priority: u8,
    /// Its nightly-refresh state at Flinks (`None`: unknown, an inactive login registered
    /// before it was kept).
    pub flinks_scheduled_refresh: Option<ScheduledRefreshState>,
}

/// One page of a listing; pass `next_cursor` back to get the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPage {
    /// The logins of this page (possibly fewer than asked, possibly none).
    pub logins: Vec<LoginSummary>,
    /// `None` when the listing is complete.
    pub next_cursor: Option<u64>,
}

/// Everything the registry knows about one login.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginStatus {
    /// The login.
    pub login_id: LoginId,
    /// Whether the routine refreshes it.
    pub active: bool,
    /// Its tag, if any.
    pub tag: Option<String>,
    /// Its refresh priority (0 unless set; higher refreshed first).
    pub priority: u8,
    /// When it was first registered.
    pub added_at: Option<DateTime<Utc>>,
    /// Kind of the last outcome: `refreshed`, `needs_reauth` or `failed`.
    pub last_outcome: Option<String>,
    /// When the last outcome happened.
    pub last_outcome_at: Option<DateTime<Utc>>,
    /// When the login was last refreshed.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Flinks' `LastRefresh` at the last refresh.
    pub last_refresh: Option<NaiveDateTime>,
    /// Whether that `LastRefresh` was stale.
    pub stale: Option<bool>,
    /// FlinksCode of a pending re-authentication (cleared by a refresh).
    pub reauth_code: Option<FlinksCode>,
    /// Flinks' message of a pending re-authentication.
    pub reauth_message: Option<String>,
    /// Message of the last failure (cleared by a refresh).
    pub last_error: Option<String>,
    /// Its nightly-refresh state at Flinks (`None`: unknown, an inactive login registered
    /// before it was kept).
    pub flinks_scheduled_refresh: Option<ScheduledRefreshState>,
    /// Why Flinks refused the last nightly-refresh change, when it is `failed`.
    pub flinks_error: Option<String>,
}

/// What the routine orders a login by: its priority (higher first), then its last refresh
/// (never refreshed first, then the oldest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefreshOrderKey {
    /// The login's priority (0 unless set).
    pub priority: u8,
    /// When it was last refreshed (`None`: never).
    pub last_success_at: Option<DateTime<Utc>>,
}

/// How old the active logins' data is (see [`Registry::data_age`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DataAge {
    /// The oldest last successful refresh among active logins refreshed at least once.
    pub oldest_refresh_at: Option<DateTime<Utc>>,
    /// Active logins never refreshed (not counted in `oldest_refresh_at`).
    pub never_refreshed: u64,
}

/// Pages of the login index a walk ([`Registry::scan_active`]) reads at once on one Redis:
/// enough that Redis always has the next one in hand while the last one is decoded.
pub const WALK_IN_FLIGHT: usize = 4;

/// A page stream of LoginIds.
pub type IdStream<'a> =
    Pin<Box<dyn Stream<Item = Result<Vec<LoginId>, RegistryError>> + Send + 'a>>;

/// The login registry of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    conn: RedisConn,
    keys: KeySpace,
    scheduled: ScheduledRefresh,
}

/// One `SSCAN` (or `ZSCAN`: `command`) page of the SETs kept per key bucket that `sets`
/// names (each a bucket's key), walking the buckets in order and, within a bucket, its SETs
/// in the order given; a `ZSCAN` page is member, score pairs. The cursor spans them all:
/// `inner * n + i`, where `n` is the count of SETs walked (`sets.len()` times the buckets),
/// `i` the one being read (bucket `i / sets.len()`, SET `i % sets.len()`) and `inner`
/// Redis' cursor within it (0 starts at the first). Returns the page's ids and the next
/// cursor, `None` once the last is done (at once when `sets` is empty). A Redis cursor is
/// below its table's size, so the product stays far from `u64::MAX`.
pub(crate) async fn scan_buckets(
    conn: &mut RedisConn,
    keys: &KeySpace,
    command: &str,
    sets: &[BucketKey],
    cursor: u64,
    count: usize,
) -> Result<(Vec<String>, Option<u64>), redis::RedisError> {
    let buckets = u64::from(keys.buckets());
    let n = buckets * sets.len() as u64;
    if n == 0 {
        return Ok((Vec::new(), None));
    }
    let i = cursor % n;
    let per_bucket = sets.len() as u64;
    let set = sets[(i % per_bucket) as usize];
    let (next, ids): (u64, Vec<String>) = redis::cmd(command)
        .arg(set(keys, (i / per_bucket) as u16))
        .arg(cursor / n)
        .arg("COUNT")
        .arg(count.max(1))
        .query_async(conn)
        .await?;
    let next = if next != 0 {
        Some(next * n + i)
    } else {
        (i + 1 < n).then_some(i + 1)
    };
    Ok((ids, next))
}

/// A time as the registry stores it (`added_at`, `last_success_at`): epoch milliseconds,
/// which Redis keeps as an integer in a compact hash (at most 9 bytes, against 24 for the
/// RFC 3339 text that earlier versions wrote). A million logins hold up to two each.
fn stored_millis(at: DateTime<Utc>) -> String {
    at.timestamp_millis().to_string()
}

/// A stored time: epoch milliseconds ([`stored_millis`]), or RFC 3339 as earlier versions
/// wrote it.
fn parse_time(raw: Option<&String>) -> Option<DateTime<Utc>> {
    let raw = raw?;
    match raw.parse::<i64>() {
        Ok(ms) => DateTime::from_timestamp_millis(ms),
        Err(_) => DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// A login's nightly-refresh state at Flinks from its stored `flinks_scheduled_refresh`:
/// an active login stores none while it is `on` (see `registry_write.lua`); an inactive one
/// without it has no known state.
fn flinks_state(stored: Option<&str>, active: bool) -> Option<ScheduledRefreshState> {
    match stored {
        Some(state) => ScheduledRefreshState::parse(state),
        None => active.then_some(ScheduledRefreshState::On),
    }
}

/// What one outcome changes in a login's registry hash: the fields it sets and those it
/// deletes. `registry_apply.lua` applies it, called by [`Registry::record_outcome`] or, on
/// one Redis, inside the ledger write itself (see [`crate::outcomes`]).
pub(crate) struct OutcomeUpdate {
    pub(crate) fields: Vec<(&'static str, String)>,
    pub(crate) clear: Vec<&'static str>,
}

impl OutcomeUpdate {
    pub(crate) fn of(outcome: &LedgerOutcome) -> Self {
        // The outcome's time is its score, `last_outcome_ms` (written by the script): the
        // second copy as text that earlier versions wrote (`last_outcome_at`, 43 bytes of
        // every login) goes with the next outcome, in the HDEL the script runs anyway for
        // most outcomes.
        let mut fields: Vec<(&str, String)> = vec![("last_outcome", outcome.kind().to_string())];
        let mut clear: Vec<&str> = vec!["last_outcome_at"];
        match outcome {
            LedgerOutcome::Refreshed {
                last_refresh,
                stale,
                ..
            } => {
                fields.push(("last_success_at", stored_millis(outcome.at())));
                fields.push(("stale", if *stale { "1" } else { "0" }.to_string()));
                match last_refresh {
                    Some(t) => fields.push(("last_refresh", format_flinks_timestamp(*t))),
                    None => clear.push("last_refresh"),
                }
                clear.extend(["reauth_code", "reauth_message", "last_error"]);
            }
            LedgerOutcome::NeedsReauth {
                flinks_code,
                message,
                ..
            } => {
                fields.push((
                    "reauth_code",
                    flinks_code
                        .as_ref()
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_default(),
                ));
                fields.push(("reauth_message", message.clone().unwrap_or_default()));
            }
            LedgerOutcome::Failed { message, .. } => {
                fields.push(("last_error", message.clone()));
            }
            LedgerOutcome::Superseded { .. } => {}
        }
        Self { fields, clear }
    }

    /// The update as `registry_apply.lua`'s arguments after the pair count: the pairs,
    /// then the fields to delete.
    pub(crate) fn args(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .flat_map(|(field, value)| [*field, value.as_str()])
            .chain(self.clear.iter().copied())
    }

    /// The same arguments pushed onto `invocation`.
    pub(crate) fn push_args(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        for arg in self.args() {
            invocation.arg(arg);
        }
    }

    /// How many arguments [`OutcomeUpdate::args`] has.
    pub(crate) fn arg_count(&self) -> usize {
        2 * self.fields.len() + self.clear.len()
    }
}

impl Registry {
    /// The registry of the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        Self {
            scheduled: ScheduledRefresh::new(conn.clone(), keys),
            conn,
            keys: keys.clone(),
        }
    }

    /// Adds or updates one login.
    pub async fn add(&self, record: &LoginRecordInput) -> Result<UpsertSummary, RegistryError> {
        self.upsert_many(std::slice::from_ref(record)).await
    }

    /// Adds or updates many logins, pipelined in batches of [`BATCH_SIZE`], a few in
    /// flight at once. A login listed twice may be written in either order; the import
    /// passes each once (a login's last row).
    pub async fn upsert_many(
        &self,
        records: &[LoginRecordInput],
    ) -> Result<UpsertSummary, RegistryError> {
        self.upsert_many_with_progress(records, |_| {}).await
    }

    /// [`Registry::upsert_many`], calling `progress(written_so_far)` after each batch.
    pub async fn upsert_many_with_progress(
        &self,
        records: &[LoginRecordInput],
        mut progress: impl FnMut(u64),
    ) -> Result<UpsertSummary, RegistryError> {
        use futures::{StreamExt as _, TryStreamExt as _};
        let mut summary = UpsertSummary::default();
        // Each batch's stamps start past the previous batch's last one: batches in flight
        // at once read the clock within microseconds of each other and would otherwise
        // hand out overlapping stamps. They stay at the clock, not ahead of it.
        let mut next_stamp = 0;
        let mut written = futures::stream::iter(records.chunks(BATCH_SIZE))
            .map(|batch| {
                let stamps = new_stamp(0).max(next_stamp);
                next_stamp = stamps + batch.len() as u64;
                async move {
                    Ok::<_, RegistryError>((batch, self.write_batch_open(batch, stamps).await?))
                }
            })
            .buffered(BATCHES_IN_FLIGHT);
        // Batches' marks are closed together, when every batch is done or the oldest open
        // one is a quarter of the repair's grace old: closing each as it ends would wait
        // behind the next batch's pipeline and hold back the one after it, leaving Redis
        // idle between batches, and a mark left open past the grace sends every worker's
        // repair through the registry. A stop half-way leaves them open, which is what
        // they are for.
        let mut marks = Vec::new();
        let mut oldest_open: Option<std::time::Instant> = None;
        while let Some((batch, (new, jobs, mark))) = written.try_next().await? {
            marks.push(mark);
            let oldest = *oldest_open.get_or_insert_with(std::time::Instant::now);
            if oldest.elapsed() >= crate::scheduled_refresh::REPAIR_GRACE / 4 {
                WriteMark::close_all(&mut self.conn.clone(), &self.keys, &marks).await?;
                marks.clear();
                oldest_open = None;
            }
            summary.upserted += batch.len() as u64;
            summary.active += batch.iter().filter(|r| r.active).count() as u64;
            summary.inactive += batch.iter().filter(|r| !r.active).count() as u64;
            summary.new += new;
            summary.flinks_changes += jobs.len() as u64;
            progress(summary.upserted);
        }
        WriteMark::close_all(&mut self.conn.clone(), &self.keys, &marks).await?;
        Ok(summary)
    }

    /// Step 1 of a write ([`Registry::write_batch_only`]) then step 2: index and enqueue
    /// the Flinks changes. The i-th login's change, if one is due, gets stamp
    /// `stamps + i`. Returns the count of new logins and the jobs queued.
    async fn write_batch(
        &self,
        batch: &[LoginRecordInput],
        stamps: u64,
    ) -> Result<(u64, Vec<ScheduledRefreshJob>), RegistryError> {
        let (new, jobs, mark) = self.write_batch_open(batch, stamps).await?;
        mark.close(&mut self.conn.clone(), &self.keys).await?;
        Ok((new, jobs))
    }

    /// [`Registry::write_batch`] leaving its mark open for the caller to close.
    async fn write_batch_open(
        &self,
        batch: &[LoginRecordInput],
        stamps: u64,
    ) -> Result<(u64, Vec<ScheduledRefreshJob>, WriteMark), RegistryError> {
        let mark = WriteMark::new();
        let (new, jobs) = self.write_stamped(batch, stamps, &mark).await?;
        self.scheduled.publish(&jobs).await?;
        Ok((new, jobs, mark))
    }

    /// Writes one batch of logins with `registry_write.lua` (active flag, tag and Flinks
    /// nightly-refresh state of each login in one atomic step), then files each in the login
    /// index under its flag ([`login_index::file`]). Returns the count of new
    /// logins and the Flinks changes now `pending`, which the caller still has to publish;
    /// if it never does, the sweeper will, once the index repair finds the write's mark
    /// left open ([`crate::write_marks`]).
    pub async fn write_batch_only(
        &self,
        batch: &[LoginRecordInput],
    ) -> Result<(u64, Vec<ScheduledRefreshJob>), RegistryError> {
        self.write_stamped(batch, new_stamp(0), &WriteMark::new())
            .await
    }

    /// [`Registry::write_batch_only`], the i-th login's change stamped `base + i`, the
    /// write marked open by `mark` before its first script runs.
    async fn write_stamped(
        &self,
        batch: &[LoginRecordInput],
        base: u64,
        mark: &WriteMark,
    ) -> Result<(u64, Vec<ScheduledRefreshJob>), RegistryError> {
        let mut conn = self.conn.clone();
        if batch.is_empty() {
            return Ok((0, Vec::new()));
        }
        // The mark goes first. One Redis runs a pipeline's commands in order, so there it
        // leads the pipeline; a Cluster splits a pipeline per node, so there it is stored
        // before the pipeline is sent.
        let mut pipe = redis::pipe();
        match conn.mode() {
            RedisMode::Cluster => {
                let mut first = redis::pipe();
                mark.open(&mut first, &self.keys);
                let () = first.query_async(&mut conn).await?;
            }
            RedisMode::Standalone | RedisMode::Sentinel => mark.open(&mut pipe, &self.keys),
        }
        let hash = WRITE.get_hash();
        let now = stored_millis(Utc::now());
        // Logins' hashes share no hash tag: on a Cluster each is a script call of its own.
        let per_call = match conn.mode() {
            RedisMode::Cluster => 1,
            RedisMode::Standalone | RedisMode::Sentinel => batch.len(),
        };
        for (chunk, records) in batch.chunks(per_call).enumerate() {
            let call = pipe.cmd("EVALSHA").arg(hash).arg(records.len());
            for record in records {
                call.arg(self.keys.login(record.login_id.as_str()));
            }
            call.arg(&now);
            for (i, record) in records.iter().enumerate() {
                call.arg(if record.active { "1" } else { "0" })
                    .arg(if record.tag.is_some() { "1" } else { "0" })
                    .arg(record.tag.as_deref().unwrap_or(""))
                    .arg(base + (chunk * per_call + i) as u64)
                    .arg(record.priority.map_or(String::new(), |p| p.to_string()));
            }
        }
        login_index::file(
            &mut pipe,
            &self.keys,
            batch.iter().map(|r| (r.login_id.as_str(), r.active)),
        );
        // The scripts are called by hash and loaded only when Redis does not know them (a
        // first write, a restart, a failover): loading them before every batch cost two
        // round trips a batch, which kept Redis waiting between the batches of an import.
        // Then the batch is written again, which both scripts allow: a NOSCRIPT call wrote
        // nothing, and a call that ran upserts the same values. Only when Redis knew one
        // script and not the other (another process loading them at that moment) are the
        // logins written by the first try no longer reported new, nor their Flinks
        // changes due; those changes are still `pending`, so once the second try has filed
        // them in the index (a repair's walk reads the index) the write flags itself for
        // the sweeper's index repair, which enqueues them. Until then its own mark stays
        // open. A Redis that does not know the write script now did not run it in the
        // first try either (a NOSCRIPT reply means the connection, and the server's
        // scripts, lasted through the pipeline): nothing was written, and the second try
        // reports every change, so the first import into a new Redis (or after a restart)
        // leaves no flag, whose repair would read every login's hash. A Cluster's nodes
        // answer apart, so there a write that met NOSCRIPT always flags itself.
        let written: Vec<Vec<(u64, u64)>> = match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let may_have_written = match conn.mode() {
                    RedisMode::Cluster => true,
                    RedisMode::Standalone | RedisMode::Sentinel => {
                        let known: Vec<bool> = redis::cmd("SCRIPT")
                            .arg("EXISTS")
                            .arg(hash)
                            .query_async(&mut conn)
                            .await?;
                        known.first().copied().unwrap_or(true)
                    }
                };
                WRITE.prepare_invoke().load_async(&mut conn).await?;
                login_index::load_file_script(&mut conn).await?;
                let written = pipe.query_async(&mut conn).await?;
                if may_have_written {
                    let mut flag = redis::pipe();
                    mark.flag_unpublished(&mut flag, &self.keys);
                    let () = flag.query_async(&mut conn).await?;
                }
                written
            }
            written => written?,
        };
        let written = written.concat();
        if written.len() != batch.len() {
            return Err(RegistryError::UnexpectedReply(format!(
                "registry_write answered for {} of {} logins",
                written.len(),
                batch.len()
            )));
        }
        let mut new = 0;
        let mut jobs = Vec::new();
        for (i, (record, (is_new, due))) in batch.iter().zip(written).enumerate() {
            new += is_new;
            if due == 1 {
                jobs.push(ScheduledRefreshJob {
                    login_id: record.login_id.clone(),
                    activate: record.active,
                    stamp: base + i as u64,
                });
            }
        }
        Ok((new, jobs))
    }

    /// What the routine orders each of `logins` by (priority, last refresh), in order.
    /// One pipelined round trip.
    pub async fn refresh_order_keys(
        &self,
        logins: &[LoginId],
    ) -> Result<Vec<RefreshOrderKey>, RegistryError> {
        if logins.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for login in logins {
            pipe.cmd("HMGET")
                .arg(self.keys.login(login.as_str()))
                .arg("priority")
                .arg("last_success_at");
        }
        let mut conn = self.conn.clone();
        let raw: Vec<(Option<String>, Option<String>)> = pipe.query_async(&mut conn).await?;
        Ok(raw
            .iter()
            .map(|(priority, last)| RefreshOrderKey {
                priority: priority
                    .as_deref()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
                last_success_at: parse_time(last.as_ref()),
            })
            .collect())
    }

    /// Everything known about `login`, or `None` when it is not registered.
    pub async fn get(&self, login: &LoginId) -> Result<Option<LoginStatus>, RegistryError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = conn.hgetall(self.keys.login(login.as_str())).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let text = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
        let active = fields.get("active").is_some_and(|v| v == "1");
        Ok(Some(LoginStatus {
            login_id: login.clone(),
            active,
            tag: text("tag"),
            priority: fields
                .get("priority")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            added_at: parse_time(fields.get("added_at")),
            last_outcome: text("last_outcome"),
            last_outcome_at: parse_time(fields.get("last_outcome_ms"))
                .or_else(|| parse_time(fields.get("last_outcome_at"))),
            last_success_at: parse_time(fields.get("last_success_at")),
            last_refresh: fields
                .get("last_refresh")
                .and_then(|s| s.parse::<NaiveDateTime>().ok()),
            stale: fields.get("stale").map(|v| v == "1"),
            reauth_code: text("reauth_code").map(|c| FlinksCode::parse(&c)),
            reauth_message: text("reauth_message"),
            last_error: text("last_error"),
            flinks_scheduled_refresh: flinks_state(
                fields.get("flinks_scheduled_refresh").map(String::as_str),
                active,
            ),
            flinks_error: text("flinks_error"),
        }))
    }

    /// The last outcomes of `login`, newest first (at most [`HISTORY_LEN`]).
    pub async fn history(&self, login: &LoginId) -> Result<Vec<LedgerOutcome>, RegistryError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn
            .lrange(
                self.keys.login_history(login.as_str()),
                0,
                HISTORY_LEN as isize - 1,
            )
            .await?;
        Ok(raw
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    /// One page of logins matching `filter`, starting at `cursor` (0 for the first page).
    /// `count` is a hint: a page may hold fewer (even none) while `next_cursor` is `Some`,
    /// or more (the index is read a whole shard at a time, see [`login_index::page`]).
    pub async fn list(
        &self,
        filter: LoginFilter,
        cursor: u64,
        count: usize,
    ) -> Result<LoginPage, RegistryError> {
        let mut conn = self.conn.clone();
        let which = match filter {
            LoginFilter::Active => Which::Active,
            LoginFilter::Inactive => Which::Inactive,
            LoginFilter::All => Which::All,
            LoginFilter::FlinksUnconfirmed => {
                let (ids, next) = self.scheduled.list_unconfirmed(cursor, count).await?;
                return self.summaries(ids, filter, next).await;
            }
        };
        let (raw, next) = login_index::page(&mut conn, &self.keys, which, cursor, count).await?;
        let ids: Vec<LoginId> = raw.iter().filter_map(|s| LoginId::parse(s).ok()).collect();
        self.summaries(ids, filter, next).await
    }

    async fn summaries(
        &self,
        ids: Vec<LoginId>,
        filter: LoginFilter,
        next_cursor: Option<u64>,
    ) -> Result<LoginPage, RegistryError> {
        let mut conn = self.conn.clone();
        let mut logins = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HMGET")
                    .arg(self.keys.login(id.as_str()))
                    .arg("active")
                    .arg("tag")
                    .arg("flinks_scheduled_refresh")
                    .arg("priority");
            }
            type Row = (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let rows: Vec<Row> = pipe.query_async(&mut conn).await?;
            for (login_id, (active_flag, tag, state, priority)) in ids.into_iter().zip(rows) {
                let active = active_flag.as_deref() == Some("1");
                let state = flinks_state(state.as_deref(), active);
                let keep = match filter {
                    LoginFilter::Active => active,
                    LoginFilter::Inactive => !active,
                    LoginFilter::All => true,
                    LoginFilter::FlinksUnconfirmed => {
                        active_flag.is_some() && state.is_some_and(|s| s.is_unconfirmed())
                    }
                };
                if keep {
                    logins.push(LoginSummary {
                        login_id,
                        active,
                        tag: tag.filter(|t| !t.is_empty()),
                        priority: priority.and_then(|p| p.parse().ok()).unwrap_or(0),
                        flinks_scheduled_refresh: state,
                    });
                }
            }
        }
        Ok(LoginPage {
            logins,
            next_cursor,
        })
    }

    /// Every registered LoginId whose fingerprint is `fingerprint` (normally one; several
    /// only for a short leading part). Scans the whole registry: an operator's lookup, not
    /// a hot path (about a second per million logins).
    pub async fn find_by_fingerprint(
        &self,
        fingerprint: &Fingerprint,
    ) -> Result<Vec<LoginId>, RegistryError> {
        let mut found = std::collections::BTreeSet::new();
        let mut cursor = 0u64;
        let mut conn = self.conn.clone();
        loop {
            let (raw, next) =
                login_index::page(&mut conn, &self.keys, Which::All, cursor, BATCH_SIZE).await?;
            found.extend(
                raw.iter()
                    .filter_map(|s| LoginId::parse(s).ok())
                    .filter(|id| id.matches_fingerprint(fingerprint)),
            );
            match next {
                Some(next) => cursor = next,
                None => return Ok(found.into_iter().collect()),
            }
        }
    }

    /// The active LoginIds, in pages of about `batch` (for the routine), each once: at least
    /// 32 pages and at most 1,024, so pages are smaller than `batch` under 32 pages' worth
    /// of active logins and larger past about ten million. [`WALK_IN_FLIGHT`] pages are
    /// read at once.
    pub fn scan_active(&self, batch: usize) -> IdStream<'_> {
        use futures::TryStreamExt;
        // A Cluster splits each page over its masters already; several pages of hundreds
        // of slots at once held other commands on the same connection past their timeout.
        let in_flight = match self.conn.mode() {
            RedisMode::Cluster => 1,
            RedisMode::Standalone | RedisMode::Sentinel => WALK_IN_FLIGHT,
        };
        Box::pin(
            login_index::walk(
                self.conn.clone(),
                &self.keys,
                Which::Active,
                batch,
                in_flight,
            )
            .map_ok(|raw| raw.iter().filter_map(|s| LoginId::parse(s).ok()).collect())
            .map_err(RegistryError::from),
        )
    }

    /// How old the active logins' data is: the oldest last refresh among those refreshed,
    /// and how many were never refreshed. Reads every active login (pipelined, a page of
    /// [`BATCH_SIZE`] per round trip: about a second per million logins).
    pub async fn data_age(&self) -> Result<DataAge, RegistryError> {
        use futures::TryStreamExt;
        let mut age = DataAge::default();
        // A walk of the index reads each login once: no set of those seen is kept.
        let mut pages = self.scan_active(BATCH_SIZE);
        while let Some(ids) = pages.try_next().await? {
            for key in self.refresh_order_keys(&ids).await? {
                match key.last_success_at {
                    None => age.never_refreshed += 1,
                    Some(at) => {
                        age.oldest_refresh_at =
                            Some(age.oldest_refresh_at.map_or(at, |oldest| oldest.min(at)))
                    }
                }
            }
        }
        Ok(age)
    }

    /// Number of active logins.
    pub async fn count_active(&self) -> Result<u64, RegistryError> {
        let mut conn = self.conn.clone();
        Ok(login_index::count(&mut conn, &self.keys, true).await?)
    }

    /// Number of inactive logins.
    pub async fn count_inactive(&self) -> Result<u64, RegistryError> {
        let mut conn = self.conn.clone();
        Ok(login_index::count(&mut conn, &self.keys, false).await?)
    }

    /// True when `login` is registered and flagged inactive: its queued jobs must not call
    /// Flinks (deactivated after the routine queued it). A login not registered is not
    /// inactive: a job of one was queued by other means, and runs.
    pub async fn is_inactive(&self, login: &LoginId) -> Result<bool, RegistryError> {
        let mut conn = self.conn.clone();
        let active: Option<String> = conn
            .hget(self.keys.login(login.as_str()), ACTIVE_FIELD)
            .await?;
        Ok(inactive_flag(active.as_deref()))
    }

    /// [`Registry::is_inactive`] of each of `logins`, in their order: one pipeline.
    pub async fn inactive_flags(&self, logins: &[LoginId]) -> Result<Vec<bool>, RegistryError> {
        let mut pipe = redis::pipe();
        for login in logins {
            pipe.hget(self.keys.login(login.as_str()), ACTIVE_FIELD);
        }
        let mut conn = self.conn.clone();
        let flags: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        Ok(flags.iter().map(|f| inactive_flag(f.as_deref())).collect())
    }

    /// [`Registry::is_inactive`]'s read as a [lease read](crate::queue::Queue::with_lease_reads)
    /// of jobs whose payload carries the login as its `login` element; read the answer
    /// with [`Registry::inactive_from`].
    pub fn inactive_read(&self, login: PayloadElement) -> LeaseRead {
        LeaseRead::hget(
            PayloadText::new(self.keys.login(""), login),
            PayloadText::fixed(ACTIVE_FIELD),
        )
    }

    /// What the read of [`Registry::inactive_read`], the `at`-th of a job's lease reads,
    /// answered for `login`; `None` when the reads were built from another login's text
    /// (see [`LeaseReadValues::element`]) or there is no such read: then call
    /// [`Registry::is_inactive`].
    pub fn inactive_from(
        &self,
        login_element: PayloadElement,
        login: &LoginId,
        values: &LeaseReadValues,
        at: usize,
    ) -> Option<bool> {
        if values.element(login_element) != login.as_str() {
            return None;
        }
        values
            .values
            .get(at)
            .map(|active| inactive_flag(active.as_deref()))
    }

    /// Activates or deactivates `login` (its tag kept), queueing the matching
    /// SetScheduledRefresh when Flinks' state must change. Returns `false` (and changes
    /// nothing) when it is not registered.
    pub async fn set_active(&self, login: &LoginId, active: bool) -> Result<bool, RegistryError> {
        let record = LoginRecordInput {
            login_id: login.clone(),
            active,
            tag: None,
            priority: None,
        };
        let mut conn = self.conn.clone();
        if !login_index::contains(&mut conn, &self.keys, login.as_str()).await? {
            return Ok(false);
        }
        self.write_batch(std::slice::from_ref(&record), new_stamp(0))
            .await?;
        Ok(true)
    }

    /// Updates the login's latest state from `outcome` and prepends it to its history,
    /// unless the login holds a later outcome (by [`LedgerOutcome::at`], to the
    /// millisecond). Idempotent: applying the same outcome again changes nothing, so an
    /// outbox entry may be replayed ([`crate::outcomes`]). Returns `false` when the outcome
    /// was older than the one held and so ignored. One script call on one Redis; on a
    /// Cluster two (the hash, then the history, which lives in another slot), and a crash
    /// between them is repaired by applying the outcome again.
    pub async fn record_outcome(
        &self,
        login: &LoginId,
        outcome: &LedgerOutcome,
    ) -> Result<bool, RegistryError> {
        let key = self.keys.login(login.as_str());
        let history = self.keys.login_history(login.as_str());
        let update = OutcomeUpdate::of(outcome);
        let json = serde_json::to_string(outcome)?;
        let mut conn = self.conn.clone();
        let score = outcome.at().timestamp_millis();
        if self.conn.mode() != RedisMode::Cluster {
            let mut apply = OUTCOME_AND_HISTORY.prepare_invoke();
            apply
                .key(&key)
                .key(&history)
                .arg(score)
                .arg(update.fields.len())
                .arg(&json)
                .arg(HISTORY_LEN);
            update.push_args(&mut apply);
            let applied: i64 = apply.invoke_async(&mut conn).await?;
            return Ok(applied == 1);
        }
        let mut apply = OUTCOME.prepare_invoke();
        apply.key(&key).arg(score).arg(update.fields.len());
        update.push_args(&mut apply);
        let applied: i64 = apply.invoke_async(&mut conn).await?;
        if applied == 0 {
            return Ok(false);
        }
        let _: i64 = HISTORY
            .key(&history)
            .arg(json)
            .arg(HISTORY_LEN)
            .invoke_async(&mut conn)
            .await?;
        Ok(true)
    }
}

//! The ledger: one outcome per (LoginId, routine date). It is what makes the routine
//! effectively-once: a worker that is handed a job again checks [`Ledger::is_done`]
//! (refreshed) before calling Flinks, and the report counts every recorded outcome as done.
//!
//! Layout: the keys are cut into `LEDGER_BUCKETS` ledger buckets by LoginId
//! ([`KeySpace::ledger_bucket_of`]), each under its own hash tag (`{ns:ledger}` when there is
//! one, see [`KeySpace::ledger_date`]), so a Redis Cluster spreads them over its shards.
//! Each bucket holds, for its logins:
//! - a HASH per date, LoginId → JSON [`LedgerOutcome`];
//! - a meta HASH per date: `count:<kind>` of every kind but `refreshed`, and `count:stale`
//!   (summed over the buckets by [`Ledger::counts`], which counts as refreshed the date's
//!   entries of no other kind: a refresh, nearly every write, bumps no counter); bucket 0's
//!   also holds the date's `expected`, `started_at`, `retries`;
//! - two cross-date index ZSETs, `reauth` and `failed`, member `date|LoginId`, score = the
//!   outcome's time, so operators can list (merged by time), requeue and purge across dates.
//!
//! Writes go through `ledger_record.lua`: a `Refreshed` entry is final and never
//! overwritten; a `NeedsReauth` or `Failed` entry is replaced by any later outcome (after a
//! requeue), except by [`Ledger::record_if_absent`], which only fills a missing entry (the
//! dead-letter reconciler). An operator requeue of `failed` / `reauth` records clears the
//! entries it claims (`ops/requeue_claim.lua`). Every key expires [`LEDGER_TTL`] after its
//! last write (give or take the hour between two upkeeps of a date, and the minutes a
//! process goes without asking for one), so memory is bounded.
//!
//! The login registry lives in other Redis Cluster slots: a write there queues the
//! registry update in the outcome outbox (same script, same slot), and [`crate::outcomes`]
//! applies it. On one Redis a write through [`crate::outcomes::Outcomes`] applies it in the
//! same script instead. Record outcomes through [`crate::outcomes::Outcomes`]; a bare write
//! here leaves the update to the outbox drain.
//!
//! The same script appends the outcome's event to the events stream ([`crate::events`]) when
//! someone must act on it: the events stream is a transactional outbox for the customer.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::config::RedisMode;
use crate::redis_conn::RedisConn;
use crate::registry::{OutcomeUpdate, HISTORY_LEN};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use crate::domain::{FlinksCode, LoginId, RequestId};
use crate::keys::KeySpace;
use crate::queue::{
    AckWrite, AckWriteScript, LeaseRead, LeaseReadValues, PayloadElement, PayloadText,
};

/// How long ledger keys live after their last write.
pub const LEDGER_TTL: Duration = Duration::from_secs(35 * 24 * 3600);

/// How much sooner than [`LEDGER_TTL`] after its last write a ledger key may expire:
/// `ledger_record.lua` renews expiries once an hour per date (its `UPKEEP_EVERY`), not on
/// every write.
pub const LEDGER_UPKEEP_EVERY: Duration = Duration::from_secs(3600);

/// How long after a write that had `ledger_record.lua` check a date's upkeep the same
/// process asks for no check: a refresh's write is one command shorter, and a key may
/// expire this much sooner again. A date hash emptied and written again meanwhile (an
/// operator's requeue that claimed every entry of a date's bucket) has no expiry until the
/// next write that checks it.
const UPKEEP_RECHECK: Duration = Duration::from_secs(600);

/// True when the ledger of routine `date` may have expired by the end of `today`: the last
/// writes of a date happen on or after its first instant, and its keys live at least
/// [`LEDGER_TTL`] less [`LEDGER_UPKEEP_EVERY`] and the process' recheck interval after
/// them. A requeue of such a date could not tell refreshed logins from the others.
pub fn ledger_expired(date: NaiveDate, today: NaiveDate) -> bool {
    let earliest_expiry =
        date.and_time(chrono::NaiveTime::MIN) + (LEDGER_TTL - LEDGER_UPKEEP_EVERY - UPKEEP_RECHECK);
    let end_of_today = today.and_time(chrono::NaiveTime::MIN) + chrono::Days::new(1);
    end_of_today > earliest_expiry
}

/// Entries per `HSCAN` / index page.
const SCAN_COUNT: usize = 1_000;

/// Logins recorded per script call by [`Ledger::record_many`]: large enough that a million
/// cost a thousand round trips, small enough that one call holds Redis for a few ms.
pub const RECORD_PAGE: usize = 1_000;

/// `ledger_record.lua`, after the registry functions it calls to apply a login's update in
/// the same step on one Redis.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/registry/registry_apply.lua"),
        "\n",
        include_str!("lua/ledger/ledger_record.lua")
    ))
});

/// The same, attached to a job's ack ([`Ledger::stream_entry_ack_write`]).
static ACK_RECORD: LazyLock<AckWriteScript> = LazyLock::new(|| {
    AckWriteScript::new(concat!(
        include_str!("lua/registry/registry_apply.lua"),
        "\n",
        include_str!("lua/ledger/ledger_record.lua")
    ))
});

/// The keys and arguments of one script call, built once: run on their own or attached to
/// a job's ack.
#[derive(Default)]
struct ScriptCall {
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
    /// The date key whose upkeep the call asks the script to check, and when it was built.
    upkeep_check: Option<(String, Instant)>,
}

/// When this process last had `ledger_record.lua` check each date key's upkeep (a write
/// that wrote something checks it): for [`UPKEEP_RECHECK`] after, writes ask for none.
/// Counted from when the checking call was built, before Redis checked, so the key's expiry
/// is at least that late. Shared by a ledger's clones.
#[derive(Debug, Default)]
struct UpkeepChecks(Mutex<HashMap<String, Instant>>);

/// Date keys remembered at most: a process writes a date or two a day.
const UPKEEP_KEYS_KEPT: usize = 256;

impl UpkeepChecks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.lock().expect("upkeep checks lock")
    }

    /// True when `key` was checked less than [`UPKEEP_RECHECK`] before `now`.
    fn recent(&self, key: &str, now: Instant) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < UPKEEP_RECHECK)
    }

    /// Remembers that a call built at `at` had `key` checked.
    fn checked(&self, key: String, at: Instant) {
        let mut checks = self.lock();
        if checks.len() >= UPKEEP_KEYS_KEPT && !checks.contains_key(&key) {
            checks.clear();
        }
        let at = checks.get(&key).map_or(at, |held| (*held).max(at));
        checks.insert(key, at);
    }

    /// After a call answered that it wrote `written` entries: a call that asked for a check
    /// and wrote something had it.
    fn answered(&self, check: Option<(String, Instant)>, written: u64) {
        if let (Some((key, at)), true) = (check, written > 0) {
            self.checked(key, at);
        }
    }
}

impl ScriptCall {
    fn key(&mut self, key: String) -> &mut Self {
        self.keys.push(key);
        self
    }

    fn arg(&mut self, arg: impl redis::ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }
}

/// What a `ledger_record.lua` call of [`Ledger::record_with_stream_entry`] answered
/// (entries written, stored or kept JSON, registry code), as that method returns it.
fn stream_entry_answer(
    (written, json, update): (u64, String, u8),
    outcome: &LedgerOutcome,
) -> Result<(bool, LedgerOutcome, RegistryUpdate), LedgerError> {
    let update = RegistryUpdate::from_script(update, outcome, &json);
    Ok((written == 1, serde_json::from_str(&json)?, update))
}

/// In an outcome written with [`Ledger::record_with_stream_entry`], stands for the id of
/// the stream entry appended with it.
pub const STREAM_ID_PLACEHOLDER: &str = "__RESULTS_STREAM_ID__";

/// A stream entry to append atomically with a ledger write.
#[derive(Clone)]
pub struct StreamEntry<'a> {
    /// The stream's key; it must share the ledger's hash tag (`KeySpace::results_stream`).
    pub stream: String,
    /// Approximate cap of the stream (`MAXLEN ~`).
    pub max_len: u64,
    /// The entry's field/value pairs.
    pub fields: Vec<(&'a str, String)>,
}

impl std::fmt::Debug for StreamEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values may be account data: only the field names are printed.
        let names: Vec<&str> = self.fields.iter().map(|(name, _)| *name).collect();
        f.debug_struct("StreamEntry")
            .field("stream", &self.stream)
            .field("max_len", &self.max_len)
            .field("fields", &names)
            .finish()
    }
}

/// Where a job's payload carries the login and the routine date (`YYYY-MM-DD`) of the
/// authorize check that rides its lease ([`Ledger::authorize_check_reads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLayout {
    /// The element that carries the login.
    pub login: PayloadElement,
    /// The element that carries the routine date.
    pub date: PayloadElement,
}

/// What [`Ledger::authorize_check`] read for one login and date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizeCheck {
    /// Refreshed already: nothing to call.
    pub done: bool,
    /// Listed by GetNightlyRefreshStatus as ineligible for the date: recorded as needs
    /// re-auth, not authorized.
    pub ineligible: bool,
}

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Redis did not answer or refused the command; the caller retries later.
    #[error("ledger: Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// An outcome could not be encoded (a bug, not a runtime condition).
    #[error("ledger: cannot encode outcome: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The outcome of one LoginId on one routine date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerOutcome {
    /// Accounts were fetched. Final: never overwritten.
    Refreshed {
        /// The Authorize session the data came from.
        request_id: RequestId,
        /// Flinks' `LastRefresh` of the login, when sent.
        last_refresh: Option<NaiveDateTime>,
        /// `LastRefresh` is older than `STALE_AFTER`.
        stale: bool,
        /// When the worker received the data.
        fetched_at: DateTime<Utc>,
        /// Id of the entry in the results stream, when written.
        results_stream_id: Option<String>,
    },
    /// The user must reconnect the login (MFA, changed password, disabled login...).
    NeedsReauth {
        /// The FlinksCode that said so.
        flinks_code: Option<FlinksCode>,
        /// Flinks' message.
        message: Option<String>,
        /// The Authorize session, when one was opened.
        request_id: Option<RequestId>,
        /// When it was recorded.
        at: DateTime<Utc>,
        /// The re-auth rests on the routine's rule that a 401 means "reconnect", not on a
        /// FlinksCode known to mean it: the code is new to this version (kept verbatim).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unrecognised_code: bool,
    },
    /// Permanent failure, or retries exhausted.
    Failed {
        /// The last FlinksCode, if any.
        flinks_code: Option<FlinksCode>,
        /// The last HTTP status, if any.
        http_status: Option<u16>,
        /// What went wrong.
        message: String,
        /// Attempts made.
        attempts: u32,
        /// When it was recorded.
        at: DateTime<Utc>,
        /// What ops should do about it, when the failure says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<FailureReason>,
    },
    /// The login's authorize job was still waiting when a later routine date started: that
    /// date's job replaced it (one pending authorize per login). Or the date's deadline
    /// passed before its job could call Flinks (`deadline` set): the next date's routine
    /// covers the login. Or the login was deactivated after the routine queued it
    /// (`deactivated` set): the routine calls Flinks for active logins only. Not final: a
    /// job of this date already in flight then may still record its outcome over it.
    Superseded {
        /// The routine date whose job replaced this one (the next date, for a deadline; the
        /// date itself, for a deactivation).
        by_date: NaiveDate,
        /// When it was recorded.
        at: DateTime<Utc>,
        /// The date's deadline, when it is the deadline that superseded the job.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<DateTime<Utc>>,
        /// The login was inactive in the registry when its job's turn came.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        deactivated: bool,
    },
}

/// Why a login failed, when the failure calls for a particular action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Flinks does not know the LoginId, or rejected a LoginId that never refreshed:
    /// remove or fix this LoginId (reconnecting would not help).
    InvalidLogin,
    /// Flinks answered TOO_MANY_REQUESTS on every try (`MAX_THROTTLE_DEFERS`) that day.
    Throttled,
}

impl FailureReason {
    /// The serde name (`invalid_login`, `throttled`).
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureReason::InvalidLogin => "invalid_login",
            FailureReason::Throttled => "throttled",
        }
    }
}

impl LedgerOutcome {
    /// The serde tag: `refreshed`, `needs_reauth`, `failed` or `superseded` (also a bounded
    /// label).
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerOutcome::Refreshed { .. } => "refreshed",
            LedgerOutcome::NeedsReauth { .. } => "needs_reauth",
            LedgerOutcome::Failed { .. } => "failed",
            LedgerOutcome::Superseded { .. } => "superseded",
        }
    }

    /// When the outcome happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            LedgerOutcome::Refreshed { fetched_at, .. } => *fetched_at,
            LedgerOutcome::NeedsReauth { at, .. }
            | LedgerOutcome::Failed { at, .. }
            | LedgerOutcome::Superseded { at, .. } => *at,
        }
    }

    /// The FlinksCode of a re-auth or failure.
    pub fn flinks_code(&self) -> Option<&FlinksCode> {
        match self {
            LedgerOutcome::Refreshed { .. } | LedgerOutcome::Superseded { .. } => None,
            LedgerOutcome::NeedsReauth { flinks_code, .. }
            | LedgerOutcome::Failed { flinks_code, .. } => flinks_code.as_ref(),
        }
    }

    /// The message of a re-auth or failure.
    pub fn message(&self) -> Option<&str> {
        match self {
            LedgerOutcome::Refreshed { .. } | LedgerOutcome::Superseded { .. } => None,
            LedgerOutcome::NeedsReauth { message, .. } => message.as_deref(),
            LedgerOutcome::Failed { message, .. } => Some(message),
        }
    }

    /// True for a re-auth that rests on an unrecognised FlinksCode (or none).
    pub fn has_unrecognised_code(&self) -> bool {
        matches!(
            self,
            LedgerOutcome::NeedsReauth {
                unrecognised_code: true,
                ..
            }
        )
    }

    /// The reason of a failure, when it has one.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        match self {
            LedgerOutcome::Failed { reason, .. } => *reason,
            _ => None,
        }
    }

    /// True for a refresh whose `LastRefresh` was stale.
    pub fn is_stale(&self) -> bool {
        matches!(self, LedgerOutcome::Refreshed { stale: true, .. })
    }
}

/// Outcome counts of one date, from counters kept by the writes and the date's entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LedgerCounts {
    /// `Refreshed` entries (stale ones included).
    pub refreshed: u64,
    /// `Refreshed` entries with a stale `LastRefresh`.
    pub stale: u64,
    /// `NeedsReauth` entries.
    pub needs_reauth: u64,
    /// `Failed` entries.
    pub failed: u64,
    /// `Superseded` entries: left to a later date's job, so no longer pending here.
    pub superseded: u64,
}

impl LedgerCounts {
    /// Logins with any outcome recorded (superseded ones included: none is pending).
    pub fn done(&self) -> u64 {
        self.refreshed + self.needs_reauth + self.failed + self.superseded
    }
}

/// One of the cross-date indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Logins that need re-authentication.
    Reauth,
    /// Logins that failed.
    Failed,
}

impl IndexKind {
    /// The key suffix and label: `reauth` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IndexKind::Reauth => "reauth",
            IndexKind::Failed => "failed",
        }
    }
}

/// Which indexed entries to list; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct IndexFilter {
    /// Only this routine date.
    pub date: Option<NaiveDate>,
    /// Only this FlinksCode.
    pub code: Option<FlinksCode>,
    /// Only this LoginId.
    pub login: Option<LoginId>,
    /// At most this many entries (newest first).
    pub limit: Option<usize>,
}

/// One entry of a cross-date index, with its ledger outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexEntry {
    /// The routine date.
    pub date: NaiveDate,
    /// The login.
    pub login_id: LoginId,
    /// The ledger outcome of (login, date).
    pub outcome: LedgerOutcome,
}

/// How a record meets an outcome already stored for the same login and date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace anything but a `Refreshed` entry (it is final).
    AllButRefreshed,
    /// Write only when there is no entry: the dead-letter reconciler's rule, as an outcome
    /// a job recorded before it died is the right one.
    Nothing,
}

/// The per-(LoginId, date) ledger of one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    conn: RedisConn,
    keys: KeySpace,
    upkeep: Arc<UpkeepChecks>,
}

fn day(date: NaiveDate) -> String {
    date.to_string() // `NaiveDate`'s Display is `%Y-%m-%d`, without parsing a format string
}

fn index_member(date: NaiveDate, login: &LoginId) -> String {
    format!("{}|{}", day(date), login.as_str())
}

fn parse_index_member(member: &str) -> Option<(NaiveDate, LoginId)> {
    let (date, login) = member.split_once('|')?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some((date, LoginId::parse(login).ok()?))
}

fn decode(login: &str, json: &str) -> Option<LedgerOutcome> {
    match serde_json::from_str(json) {
        Ok(outcome) => Some(outcome),
        Err(error) => {
            let fp = LoginId::parse(login)
                .map(|l| l.fingerprint())
                .unwrap_or_default();
            tracing::warn!(login = %fp, error.message = %error, "ledger: undecodable entry skipped");
            None
        }
    }
}

/// Whether `login`'s stored ledger entry `json` (if any) is final; an undecodable entry is
/// not (it is logged).
fn is_final_entry(login: &LoginId, json: Option<&str>) -> bool {
    is_final(json.and_then(|json| decode(login.as_str(), json)).as_ref())
}

/// True for a final outcome (refreshed): a job handed again must not call Flinks.
fn is_final(outcome: Option<&LedgerOutcome>) -> bool {
    matches!(outcome, Some(LedgerOutcome::Refreshed { .. }))
}

/// What a write of one login did about its registry update (see [`crate::outcomes`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RegistryUpdate {
    /// Applied in the write's own atomic step (one Redis, not a Cluster): nothing to do.
    Applied,
    /// Queued in the outbox as this entry (`<score>|<JSON>`): the caller applies it.
    Queued(String),
    /// Neither: nothing written, a superseded outcome, or a later update of the login
    /// pending in the outbox, which the caller applies.
    None,
}

impl RegistryUpdate {
    /// What `ledger_record.lua` answered (`registry`) for a write of `outcome` that stored
    /// `stored_json`; a queued entry is `<score>|<JSON>`, score the outcome's time in epoch
    /// ms, as the script writes it.
    fn from_script(registry: u8, outcome: &LedgerOutcome, stored_json: &str) -> Self {
        match registry {
            1 => Self::Queued(format!("{}|{stored_json}", outcome.at().timestamp_millis())),
            2 => Self::Applied,
            _ => Self::None,
        }
    }
}

/// Whether a one-login write applies the registry update itself or leaves it to the
/// outbox ([`crate::outcomes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegistryWrite {
    /// Apply it in the same script when the registry keys may be written there (one Redis);
    /// on a Cluster they are in other slots, and the update goes to the outbox.
    ApplyWhereOneRedis,
    /// Always the outbox.
    Outbox,
}

impl Ledger {
    /// The ledger of the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        Self {
            conn,
            keys: keys.clone(),
            upkeep: Arc::default(),
        }
    }

    /// Records `outcome` for (`login`, `date`) in one atomic step, overwriting what
    /// `overwrite` allows. Returns `true` when written, `false` when the stored outcome
    /// stays (a `Refreshed` one is final). A write other than `Superseded` also queues the
    /// login's registry update in the outbox ([`crate::outcomes`]).
    pub async fn record(
        &self,
        date: NaiveDate,
        login: &LoginId,
        outcome: &LedgerOutcome,
        overwrite: Overwrite,
    ) -> Result<bool, LedgerError> {
        Ok(self
            .record_with_registry(date, login, outcome, overwrite, RegistryWrite::Outbox)
            .await?
            .0)
    }

    /// [`Ledger::record`], also saying what became of the login's registry update: applied
    /// in the same step when `registry` allows it, else the outbox entry the write queued,
    /// so the caller applies it without reading it back.
    pub(crate) async fn record_with_registry(
        &self,
        date: NaiveDate,
        login: &LoginId,
        outcome: &LedgerOutcome,
        overwrite: Overwrite,
        registry: RegistryWrite,
    ) -> Result<(bool, RegistryUpdate), LedgerError> {
        let bucket = self.keys.ledger_bucket_of(login.as_str());
        let (written, json, update) = self
            .run_record(self.record_call(
                date,
                bucket,
                std::slice::from_ref(login),
                outcome,
                None,
                overwrite,
                registry,
            )?)
            .await?;
        Ok((
            written == 1,
            RegistryUpdate::from_script(update, outcome, &json),
        ))
    }

    /// Records the same `outcome` for every login of `logins` on `date`, as
    /// [`Ledger::record`] does for one, in one atomic step per [`RECORD_PAGE`] logins: how
    /// `routine run` records the jobs its date superseded, a million of them when the
    /// budget covers a fraction of the logins. Returns how many entries were written.
    pub async fn record_many(
        &self,
        date: NaiveDate,
        logins: &[LoginId],
        outcome: &LedgerOutcome,
        overwrite: Overwrite,
    ) -> Result<u64, LedgerError> {
        let mut written = 0;
        for (bucket, logins) in self
            .keys
            .by_ledger_bucket(logins.iter().cloned(), |l| l.as_str())
        {
            for page in logins.chunks(RECORD_PAGE) {
                let (n, _, _) = self
                    .run_record(self.record_call(
                        date,
                        bucket,
                        page,
                        outcome,
                        None,
                        overwrite,
                        RegistryWrite::Outbox,
                    )?)
                    .await?;
                written += n;
            }
        }
        Ok(written)
    }

    /// Records a `Refreshed` outcome and appends its result entry to a stream in the same
    /// atomic step (see `results`): either both happen or neither, so a redelivered job
    /// never adds a second entry. Returns whether it was written, the outcome as stored
    /// (the existing one when the date was refreshed already), with the entry's id in place
    /// of [`STREAM_ID_PLACEHOLDER`], and what became of the login's registry update:
    /// applied in the same step on one Redis, else queued in the outbox for
    /// [`crate::outcomes`] to apply without reading it back.
    pub(crate) async fn record_with_stream_entry(
        &self,
        date: NaiveDate,
        login: &LoginId,
        outcome: &LedgerOutcome,
        entry: &StreamEntry<'_>,
    ) -> Result<(bool, LedgerOutcome, RegistryUpdate), LedgerError> {
        let answer = self
            .run_record(self.stream_entry_call(date, login, outcome, entry)?)
            .await?;
        stream_entry_answer(answer, outcome)
    }

    /// Runs a `ledger_record.lua` call ([`Ledger::record_call`]). Returns how many entries
    /// were written, the stored (or kept) JSON of the last login, and what the script did
    /// with its registry update (see [`RegistryUpdate::from_script`]).
    async fn run_record(&self, call: ScriptCall) -> Result<(u64, String, u8), LedgerError> {
        let mut invocation = RECORD.prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(arg.as_slice());
        }
        let mut conn = self.conn.clone();
        let (written, json, registry): (u64, String, u8) =
            invocation.invoke_async(&mut conn).await?;
        self.upkeep.answered(call.upkeep_check, written);
        Ok((written, json, registry))
    }

    /// True on one Redis, where a job's ack may carry a ledger write
    /// ([`Ledger::stream_entry_ack_write`]); false on a Cluster, where the ledger's keys
    /// are in other slots than a queue's.
    pub(crate) fn writes_ride_acks(&self) -> bool {
        self.conn.mode() != RedisMode::Cluster
    }

    /// [`Ledger::record_with_stream_entry`] as a write of the ack of the job that fetched
    /// the result (see [`AckWrite`]), so the result, its ledger entry, the login's registry
    /// update and the job's ack are one step and one script call; `None` on a Cluster,
    /// where the ledger and the queue are in other slots (the caller records the result
    /// itself). `answered` is told, once the ack's call succeeded, what
    /// `record_with_stream_entry` would have returned, or why its answer did not read.
    pub(crate) fn stream_entry_ack_write(
        &self,
        date: NaiveDate,
        login: &LoginId,
        outcome: &LedgerOutcome,
        entry: &StreamEntry<'_>,
        answered: impl Fn(Result<(bool, LedgerOutcome, RegistryUpdate), LedgerError>)
            + Send
            + Sync
            + 'static,
    ) -> Result<Option<AckWrite>, LedgerError> {
        if !self.writes_ride_acks() {
            return Ok(None);
        }
        let call = self.stream_entry_call(date, login, outcome, entry)?;
        let outcome = outcome.clone();
        let (upkeep, check) = (Arc::clone(&self.upkeep), call.upkeep_check);
        Ok(Some(AckWrite::new(
            &ACK_RECORD,
            call.keys,
            call.args,
            move |value| {
                let answer: Result<(u64, String, u8), LedgerError> =
                    redis::from_redis_value_ref(value).map_err(|e| LedgerError::Redis(e.into()));
                if let Ok((written, _, _)) = &answer {
                    upkeep.answered(check.clone(), *written);
                }
                answered(answer.and_then(|answer| stream_entry_answer(answer, &outcome)))
            },
        )))
    }

    /// The `ledger_record.lua` call of [`Ledger::record_with_stream_entry`].
    fn stream_entry_call(
        &self,
        date: NaiveDate,
        login: &LoginId,
        outcome: &LedgerOutcome,
        entry: &StreamEntry<'_>,
    ) -> Result<ScriptCall, LedgerError> {
        self.record_call(
            date,
            self.keys.ledger_bucket_of(login.as_str()),
            std::slice::from_ref(login),
            outcome,
            Some(entry),
            Overwrite::AllButRefreshed,
            RegistryWrite::ApplyWhereOneRedis,
        )
    }

    /// The keys and arguments of `ledger_record.lua` for `logins`, all of ledger bucket
    /// `bucket` (one login, when `entry` is given).
    #[allow(clippy::too_many_arguments)]
    fn record_call(
        &self,
        date: NaiveDate,
        bucket: u16,
        logins: &[LoginId],
        outcome: &LedgerOutcome,
        entry: Option<&StreamEntry<'_>>,
        overwrite: Overwrite,
        registry: RegistryWrite,
    ) -> Result<ScriptCall, LedgerError> {
        let d = day(date);
        let json = serde_json::to_string(outcome)?;
        let date_key = self.keys.ledger_date(&d, bucket);
        let built = Instant::now();
        let check = !self.upkeep.recent(&date_key, built);
        // No index floor asks the script for no upkeep check.
        let floor = if check {
            let floor = Utc::now() - chrono::Duration::from_std(LEDGER_TTL).unwrap_or_default();
            floor.timestamp_millis().to_string()
        } else {
            String::new()
        };
        let mut call = ScriptCall {
            upkeep_check: check.then(|| (date_key.clone(), built)),
            ..ScriptCall::default()
        };
        call.key(date_key)
            .key(self.keys.ledger_meta(&d, bucket))
            .key(self.keys.ledger_index(IndexKind::Reauth.as_str(), bucket))
            .key(self.keys.ledger_index(IndexKind::Failed.as_str(), bucket))
            .key(self.keys.ledger_outbox(bucket))
            .key(self.keys.events_stream(bucket))
            .key(self.keys.events_episodes(bucket))
            .arg(json)
            .arg(outcome.kind())
            .arg(if outcome.is_stale() { "1" } else { "0" })
            .arg(outcome.at().timestamp_millis())
            .arg(LEDGER_TTL.as_secs())
            .arg(floor)
            .arg(match overwrite {
                Overwrite::AllButRefreshed => "replace",
                Overwrite::Nothing => "if_absent",
            })
            .arg(&d)
            .arg(
                outcome
                    .at()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
            .arg(logins.len());
        for login in logins {
            call.arg(login.as_str());
        }
        let apply_here = match (registry, logins) {
            (RegistryWrite::ApplyWhereOneRedis, [login])
                if self.conn.mode() != RedisMode::Cluster
                    && !matches!(outcome, LedgerOutcome::Superseded { .. }) =>
            {
                Some(login)
            }
            _ => None,
        };
        match apply_here {
            Some(login) => {
                let update = OutcomeUpdate::of(outcome);
                call.key(self.keys.login(login.as_str()))
                    .key(self.keys.login_history(login.as_str()))
                    .arg(2 + update.arg_count())
                    .arg(HISTORY_LEN)
                    .arg(update.fields.len());
                for arg in update.args() {
                    call.arg(arg);
                }
            }
            None => {
                call.arg(0);
            }
        }
        if let Some(entry) = entry {
            call.key(entry.stream.clone()).arg(entry.max_len);
            for (field, value) in &entry.fields {
                call.arg(*field).arg(value.as_str());
            }
        }
        Ok(call)
    }

    /// The outcome of (`login`, `date`), if any.
    pub async fn get(
        &self,
        date: NaiveDate,
        login: &LoginId,
    ) -> Result<Option<LedgerOutcome>, LedgerError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn
            .hget(self.date_key(date, login), login.as_str())
            .await?;
        Ok(raw.and_then(|json| decode(login.as_str(), &json)))
    }

    /// True when (`login`, `date`) is final, i.e. refreshed: a worker handed the job again
    /// must not call Flinks. A `NeedsReauth` or `Failed` entry is not final, so an
    /// operator's requeue runs again (see [`Ledger::has_outcome`]).
    pub async fn is_done(&self, date: NaiveDate, login: &LoginId) -> Result<bool, LedgerError> {
        Ok(is_final(self.get(date, login).await?.as_ref()))
    }

    /// What an authorize step checks before calling Flinks, read in one round trip: whether
    /// (`login`, `date`) is done ([`Ledger::is_done`]) and whether GetNightlyRefreshStatus
    /// listed it as ineligible ([`Ledger::ineligible_flags`]).
    pub async fn authorize_check(
        &self,
        date: NaiveDate,
        login: &LoginId,
    ) -> Result<AuthorizeCheck, LedgerError> {
        let date_text = day(date);
        let bucket = self.keys.ledger_bucket_of(login.as_str());
        let mut conn = self.conn.clone();
        let (raw, ineligible): (Option<String>, bool) = redis::pipe()
            .hget(self.keys.ledger_date(&date_text, bucket), login.as_str())
            .sismember(
                self.keys.ledger_ineligible(&date_text, bucket),
                login.as_str(),
            )
            .query_async(&mut conn)
            .await?;
        let done = is_final_entry(login, raw.as_deref());
        Ok(AuthorizeCheck { done, ineligible })
    }

    /// [`Ledger::authorize_check`]'s reads as [lease reads](crate::queue::Queue::with_lease_reads)
    /// of jobs whose payloads are laid out as `layout` says, so the check rides the job's
    /// lease; read the answers with [`Ledger::authorize_check_from`]. `None` with more than
    /// one ledger bucket: a login's bucket is not found from its payload inside a script.
    pub fn authorize_check_reads(&self, layout: PayloadLayout) -> Option<Vec<LeaseRead>> {
        if self.keys.ledger_buckets() != 1 {
            return None;
        }
        let key = |prefix: String| PayloadText::new(prefix, layout.date);
        let member = || PayloadText::new("", layout.login);
        Some(vec![
            LeaseRead::hget(key(self.keys.ledger_date("", 0)), member()),
            LeaseRead::sismember(key(self.keys.ledger_ineligible("", 0)), member()),
        ])
    }

    /// The check the reads of [`Ledger::authorize_check_reads`] (for `layout`) answered for
    /// `login` and `date`, or `None` when they are not those answers: other reads, or keys
    /// built from payload text that is not exactly `login` and `date` as the ledger writes
    /// them (a payload written in another form decodes to the same job but names other
    /// keys). Then call [`Ledger::authorize_check`].
    pub fn authorize_check_from(
        &self,
        layout: PayloadLayout,
        login: &LoginId,
        date: NaiveDate,
        values: &LeaseReadValues,
    ) -> Option<AuthorizeCheck> {
        if values.element(layout.login) != login.as_str()
            || values.element(layout.date) != day(date)
        {
            return None;
        }
        // The ledger's reads come first; a caller may add reads of its own after them.
        let [entry, ineligible, ..] = values.values.as_slice() else {
            return None;
        };
        let ineligible = match ineligible.as_deref() {
            Some("1") => true,
            Some("0") => false,
            _ => return None,
        };
        let done = is_final_entry(login, entry.as_deref());
        Some(AuthorizeCheck { done, ineligible })
    }

    /// True when (`login`, `date`) has an outcome of any kind (counted as done by the
    /// report).
    pub async fn has_outcome(&self, date: NaiveDate, login: &LoginId) -> Result<bool, LedgerError> {
        let mut conn = self.conn.clone();
        Ok(conn
            .hexists(self.date_key(date, login), login.as_str())
            .await?)
    }

    /// Outcome counts of `date`: the sum of every ledger bucket's counters. Refreshed
    /// entries have no counter: they are the entries of no other kind (an entry too corrupt
    /// to read counts as refreshed until a write replaces it).
    pub async fn counts(&self, date: NaiveDate) -> Result<LedgerCounts, LedgerError> {
        const FIELDS: [&str; 4] = [
            "count:stale",
            "count:needs_reauth",
            "count:failed",
            "count:superseded",
        ];
        let d = day(date);
        let mut pipe = redis::pipe();
        for bucket in self.keys.all_ledger_buckets() {
            pipe.cmd("HMGET")
                .arg(self.keys.ledger_meta(&d, bucket))
                .arg(&FIELDS)
                .hlen(self.keys.ledger_date(&d, bucket));
        }
        let mut conn = self.conn.clone();
        let answers: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut counts = LedgerCounts::default();
        for pair in answers.chunks(2) {
            let [meta, entries] = pair else {
                break;
            };
            let parse = |e: redis::ParsingError| LedgerError::Redis(e.into());
            let meta: Vec<Option<i64>> = redis::from_redis_value_ref(meta).map_err(parse)?;
            let entries: u64 = redis::from_redis_value_ref(entries).map_err(parse)?;
            let n = |i: usize| meta.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
            let (needs_reauth, failed, superseded) = (n(1), n(2), n(3));
            counts.refreshed += entries.saturating_sub(needs_reauth + failed + superseded);
            counts.stale += n(0);
            counts.needs_reauth += needs_reauth;
            counts.failed += failed;
            counts.superseded += superseded;
        }
        Ok(counts)
    }

    /// Every entry of `date`, bucket by bucket (HSCAN; order unspecified). Undecodable
    /// entries are skipped with a warning.
    pub async fn entries(
        &self,
        date: NaiveDate,
    ) -> Result<Vec<(LoginId, LedgerOutcome)>, LedgerError> {
        let d = day(date);
        let mut conn = self.conn.clone();
        let mut seen: HashMap<String, String> = HashMap::new();
        for bucket in self.keys.all_ledger_buckets() {
            let key = self.keys.ledger_date(&d, bucket);
            let mut cursor: u64 = 0;
            loop {
                let (next, pairs): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                    .arg(&key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut conn)
                    .await?;
                seen.extend(pairs);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let mut out = Vec::with_capacity(seen.len());
        for (login, json) in seen {
            let Ok(id) = LoginId::parse(&login) else {
                continue;
            };
            if let Some(outcome) = decode(&login, &json) {
                out.push((id, outcome));
            }
        }
        Ok(out)
    }

    /// Adds one to the retries spent on `date`; returns the new total.
    pub async fn incr_retries(&self, date: NaiveDate) -> Result<u64, LedgerError> {
        self.incr_field(&self.date_meta(date), "retries").await
    }

    /// Adds one to `field` of the hash `key`, renewing the key's [`LEDGER_TTL`]; returns the
    /// new value.
    async fn incr_field(&self, key: &str, field: &str) -> Result<u64, LedgerError> {
        let mut conn = self.conn.clone();
        let (n, _): (i64, i64) = redis::pipe()
            .hincr(key, field, 1)
            .expire(key, LEDGER_TTL.as_secs() as i64)
            .query_async(&mut conn)
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Counts one TOO_MANY_REQUESTS answer to `login` on `date` and returns how many it
    /// got that day, so a login throttled on every try still ends in an outcome.
    pub async fn count_throttle(
        &self,
        date: NaiveDate,
        login: &LoginId,
    ) -> Result<u64, LedgerError> {
        let key = self
            .keys
            .ledger_throttles(&day(date), self.keys.ledger_bucket_of(login.as_str()));
        self.incr_field(&key, login.as_str()).await
    }

    /// Marks `login` ineligible on `date` (GetNightlyRefreshStatus listed it): the routine
    /// does not authorize it that date, so no permit is spent and no later answer replaces
    /// its re-auth. An operator's requeue or `logins reconnected` lifts the mark.
    pub async fn mark_ineligible(
        &self,
        date: NaiveDate,
        login: &LoginId,
    ) -> Result<(), LedgerError> {
        let key = self.ineligible_key(date, login);
        let mut conn = self.conn.clone();
        let () = redis::pipe()
            .sadd(&key, login.as_str())
            .ignore()
            .expire(&key, LEDGER_TTL.as_secs() as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Lifts [`Ledger::mark_ineligible`]: the login may be authorized on `date` again.
    pub async fn clear_ineligible(
        &self,
        date: NaiveDate,
        login: &LoginId,
    ) -> Result<(), LedgerError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn
            .srem(self.ineligible_key(date, login), login.as_str())
            .await?;
        Ok(())
    }

    /// Which of `logins` are marked ineligible on `date`, as one flag per login in order.
    pub async fn ineligible_flags(
        &self,
        date: NaiveDate,
        logins: &[LoginId],
    ) -> Result<Vec<bool>, LedgerError> {
        if logins.is_empty() {
            return Ok(Vec::new());
        }
        // One SMISMEMBER per ledger bucket the logins fall in, then back in their order.
        let groups = self
            .keys
            .by_ledger_bucket(logins.iter().enumerate(), |(_, l)| l.as_str());
        let d = day(date);
        let mut pipe = redis::pipe();
        for (bucket, members) in &groups {
            pipe.cmd("SMISMEMBER")
                .arg(self.keys.ledger_ineligible(&d, *bucket))
                .arg(members.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>());
        }
        let mut conn = self.conn.clone();
        let answers: Vec<Vec<bool>> = pipe.query_async(&mut conn).await?;
        let mut flags = vec![false; logins.len()];
        for (members, answer) in groups.values().zip(answers) {
            for ((i, _), flag) in members.iter().zip(answer) {
                flags[*i] = flag;
            }
        }
        Ok(flags)
    }

    /// Retries spent on `date`.
    pub async fn retries(&self, date: NaiveDate) -> Result<u64, LedgerError> {
        self.meta_u64(date, "retries").await
    }

    /// Sets how many logins were enqueued for `date` (called by `routine run`), and marks
    /// the date's start now unless it was already started.
    pub async fn set_expected(&self, date: NaiveDate, n: u64) -> Result<(), LedgerError> {
        let key = self.date_meta(date);
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .hset(&key, "expected", n)
            .hset_nx(&key, "started_at", Utc::now().to_rfc3339())
            .expire(&key, LEDGER_TTL.as_secs() as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Logins enqueued for `date` (0 when the routine has not run).
    pub async fn expected(&self, date: NaiveDate) -> Result<u64, LedgerError> {
        self.meta_u64(date, "expected").await
    }

    /// Overwrites the start time of `date` (tests and backfills).
    pub async fn set_started_at(
        &self,
        date: NaiveDate,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let key = self.date_meta(date);
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .hset(&key, "started_at", at.to_rfc3339())
            .expire(&key, LEDGER_TTL.as_secs() as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// When the routine of `date` started, if it did.
    pub async fn started_at(&self, date: NaiveDate) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.hget(self.date_meta(date), "started_at").await?;
        Ok(raw
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Logins that need re-authentication, across dates, newest first.
    pub async fn list_reauth(&self, filter: &IndexFilter) -> Result<Vec<IndexEntry>, LedgerError> {
        self.list_index(IndexKind::Reauth, filter).await
    }

    /// Logins that failed, across dates, newest first.
    pub async fn list_failed(&self, filter: &IndexFilter) -> Result<Vec<IndexEntry>, LedgerError> {
        self.list_index(IndexKind::Failed, filter).await
    }

    /// Removes (`date`, `login`) from an index (after a requeue or a purge); the ledger
    /// entry itself stays. Returns `true` when it was there.
    pub async fn remove_from_index(
        &self,
        kind: IndexKind,
        date: NaiveDate,
        login: &LoginId,
    ) -> Result<bool, LedgerError> {
        let mut conn = self.conn.clone();
        let bucket = self.keys.ledger_bucket_of(login.as_str());
        let removed: i64 = conn
            .zrem(
                self.keys.ledger_index(kind.as_str(), bucket),
                index_member(date, login),
            )
            .await?;
        Ok(removed > 0)
    }

    /// The newest entries of `kind` matching `filter`, across dates and ledger buckets: up
    /// to `limit` from each bucket (its newest first), then merged by time, so the newest
    /// `limit` overall are among them.
    async fn list_index(
        &self,
        kind: IndexKind,
        filter: &IndexFilter,
    ) -> Result<Vec<IndexEntry>, LedgerError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out: Vec<(f64, IndexEntry)> = Vec::new();
        for bucket in self.keys.all_ledger_buckets() {
            if filter
                .login
                .as_ref()
                .is_some_and(|l| self.keys.ledger_bucket_of(l.as_str()) != bucket)
            {
                continue;
            }
            out.extend(self.list_index_bucket(kind, bucket, filter, limit).await?);
        }
        // Newest first; ties keep the order a bucket gave them.
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        out.truncate(limit);
        Ok(out.into_iter().map(|(_, entry)| entry).collect())
    }

    /// Up to `limit` entries of one bucket's `kind` index matching `filter`, newest first,
    /// each with its score.
    async fn list_index_bucket(
        &self,
        kind: IndexKind,
        bucket: u16,
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<(f64, IndexEntry)>, LedgerError> {
        let key = self.keys.ledger_index(kind.as_str(), bucket);
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        let mut start: isize = 0;
        while out.len() < limit {
            let members: Vec<(String, f64)> = conn
                .zrevrange_withscores(&key, start, start + SCAN_COUNT as isize - 1)
                .await?;
            if members.is_empty() {
                break;
            }
            start += members.len() as isize;
            let wanted: Vec<(f64, NaiveDate, LoginId)> = members
                .iter()
                .filter_map(|(m, score)| parse_index_member(m).map(|(d, l)| (*score, d, l)))
                .filter(|(_, d, l)| {
                    filter.date.is_none_or(|want| want == *d)
                        && filter.login.as_ref().is_none_or(|want| want == l)
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for (_, d, l) in &wanted {
                pipe.hget(self.keys.ledger_date(&day(*d), bucket), l.as_str());
            }
            let raws: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            for ((score, date, login_id), raw) in wanted.into_iter().zip(raws) {
                let Some(outcome) = raw.and_then(|json| decode(login_id.as_str(), &json)) else {
                    continue;
                };
                if filter
                    .code
                    .as_ref()
                    .is_some_and(|want| outcome.flinks_code() != Some(want))
                {
                    continue;
                }
                out.push((
                    score,
                    IndexEntry {
                        date,
                        login_id,
                        outcome,
                    },
                ));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The ledger HASH of `date` that holds `login`'s outcome.
    fn date_key(&self, date: NaiveDate, login: &LoginId) -> String {
        self.keys
            .ledger_date(&day(date), self.keys.ledger_bucket_of(login.as_str()))
    }

    /// The ineligible SET of `date` that holds `login`'s mark.
    fn ineligible_key(&self, date: NaiveDate, login: &LoginId) -> String {
        self.keys
            .ledger_ineligible(&day(date), self.keys.ledger_bucket_of(login.as_str()))
    }

    /// The meta HASH of `date` that holds its date-wide fields (`expected`, `started_at`,
    /// `retries`): the first ledger bucket's. The outcome counters are in every bucket's.
    fn date_meta(&self, date: NaiveDate) -> String {
        self.keys.ledger_meta(&day(date), 0)
    }

    async fn meta_u64(&self, date: NaiveDate, field: &str) -> Result<u64, LedgerError> {
        let mut conn = self.conn.clone();
        let raw: Option<i64> = conn.hget(self.date_meta(date), field).await?;
        Ok(raw.unwrap_or(0).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialize_with_a_snake_case_kind_tag() {
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let outcome = LedgerOutcome::NeedsReauth {
            flinks_code: Some(FlinksCode::parse("SESSION_EXPIRED")),
            message: Some("reconnect".into()),
            request_id: None,
            at,
            unrecognised_code: false,
        };
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["kind"], "needs_reauth");
        assert_eq!(json["flinks_code"], "SESSION_EXPIRED");
        let back: LedgerOutcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, outcome);
    }

    #[test]
    fn a_ledger_may_have_expired_once_its_ttl_less_the_upkeep_hour_ends_within_today() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert!(!ledger_expired(today, today));
        assert!(!ledger_expired(today - chrono::Days::new(33), today));
        // Written in its first minutes, a date's keys may be gone an hour before the end
        // of its 35th day: by the end of day 34 after it.
        assert!(ledger_expired(today - chrono::Days::new(34), today));
        assert!(ledger_expired(today - chrono::Days::new(35), today));
        assert!(ledger_expired(today - chrono::Days::new(36), today));
        assert!(!ledger_expired(today + chrono::Days::new(1), today));
    }

    #[test]
    fn the_upkeep_interval_is_the_one_the_record_script_uses() {
        let script = include_str!("lua/ledger/ledger_record.lua");
        let line = format!("local UPKEEP_EVERY = {}\n", LEDGER_UPKEEP_EVERY.as_secs());
        assert!(script.contains(&line), "ledger_record.lua lacks `{line}`");
    }

    #[test]
    fn a_check_is_remembered_for_the_recheck_interval_only_when_something_was_written() {
        let checks = UpkeepChecks::default();
        let at = Instant::now();
        checks.answered(Some(("d".into(), at)), 0);
        assert!(!checks.recent("d", at), "nothing written, nothing checked");
        checks.answered(Some(("d".into(), at)), 1);
        assert!(checks.recent("d", at + UPKEEP_RECHECK - Duration::from_millis(1)));
        assert!(!checks.recent("d", at + UPKEEP_RECHECK));
        assert!(!checks.recent("other", at));
        // An older call's answer arriving late does not move the check back.
        checks.answered(Some(("d".into(), at - UPKEEP_RECHECK)), 1);
        assert!(checks.recent("d", at));
    }

    #[test]
    fn the_remembered_keys_are_bounded() {
        let checks = UpkeepChecks::default();
        let at = Instant::now();
        for n in 0..UPKEEP_KEYS_KEPT + 1 {
            checks.checked(format!("d{n}"), at);
        }
        assert!(checks.lock().len() <= UPKEEP_KEYS_KEPT);
        assert!(checks.recent(&format!("d{UPKEEP_KEYS_KEPT}"), at));
    }

    #[test]
    fn index_members_round_trip_date_and_login() {
        let date = NaiveDate::from_ymd_opt(2025, 3, 4).unwrap();
        let login = LoginId::parse("5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10").unwrap();
        let member = index_member(date, &login);
        assert_eq!(member, "2025-03-04|5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10");
        assert_eq!(parse_index_member(&member), Some((date, login)));
        assert_eq!(parse_index_member("garbage"), None);
    }
}

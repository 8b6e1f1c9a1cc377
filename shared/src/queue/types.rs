//! The queue's vocabulary: ids, enqueue options and results, leased jobs, failures, states.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// A job's id, unique within a queue: 12 random letters and digits (about 71 bits).
///
/// An id is stored three times per waiting job (its hash's key, its ready-list entry, its
/// login's pending entry), so at a million queued jobs every character costs Redis about
/// 3 MB. 71 random bits keep the odds of two ids ever meeting negligible: about 1 in 6
/// billion for a million jobs at once, and as small for a new id meeting one that a
/// million logins' pending entries still name. Ids of earlier versions (16 letters and
/// digits, or 32 hex digits) still work: nothing reads an id's shape. Letters and digits
/// only, so an id never reads as a command-line option or needs escaping in a URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// The length of a generated id.
    pub const LEN: usize = 12;

    /// A fresh random id.
    pub fn generate() -> Self {
        use rand::Rng as _;
        Self(
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(Self::LEN)
                .map(char::from)
                .collect(),
        )
    }

    /// The id as stored in Redis.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one worker process for leases: unique per process (host, pid, random), so
/// recovery never depends on worker names (apalis #504).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkerId(String);

impl WorkerId {
    /// `host-pid-random`, unique per call.
    pub fn generate() -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .unwrap_or_else(|| "host".to_string());
        let rand = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Self(format!("{host}-{}-{rand}", std::process::id()))
    }

    /// The id as stored in Redis.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for WorkerId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fences one delivery of a job: the lease holder stored in Redis is this token, not the
/// worker id, so only the delivery that leased a job can renew, ack, fail or release that
/// lease. A stale delivery of the same job in the same process (its lease expired and the
/// job was fetched again) is refused like any other worker's. One token per fetch call:
/// `<worker id>/<random>`, so the worker stays readable in ops output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryToken(String);

impl DeliveryToken {
    /// A fresh token for one fetch by `worker`: 48 random bits as 12 hex digits, from the
    /// thread's CSPRNG (seeded from the OS), not a system call per token: a worker makes
    /// one for every job it leases.
    pub fn generate(worker: &WorkerId) -> Self {
        use rand::Rng as _;
        let bits = rand::rng().random::<u64>() & 0xffff_ffff_ffff;
        Self(format!("{}/{bits:012x}", worker.as_str()))
    }

    /// The token as stored in Redis.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The worker part of a stored lease holder (a token, or a bare worker id).
    pub fn worker_of(owner: &str) -> &str {
        owner.rsplit_once('/').map_or(owner, |(worker, _)| worker)
    }
}

impl From<String> for DeliveryToken {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for DeliveryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to enqueue one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// At most one job per dedupe key (e.g. `authorize:{LoginId}:{date}:requeue:{claim}`) for `dedupe_ttl`,
    /// checked atomically with the enqueue. The key outlives the job (ack, retries, dead
    /// letter); [`crate::queue::Queue::clear_dedupe`] removes it for a forced re-enqueue.
    pub dedupe_key: Option<String>,
    /// How long the dedupe key lives, when not the queue's `dedupe_ttl`: a key whose job
    /// cannot be produced twice after a known time need not outlive it (every dedupe key
    /// is Redis memory until it expires).
    pub dedupe_ttl: Option<Duration>,
    /// Run no earlier than this far from now (Redis' clock); `None` = ready now.
    pub delay: Option<Duration>,
    /// At most one job per supersede key and rank, and at most one waiting job per key:
    /// this job replaces the key's waiting (ready or delayed, not in-flight) job of a lower
    /// rank, atomically with the enqueue; the same rank again is a duplicate (also after the
    /// job ended: the key's pending entry is its dedupe record), and a lower rank than the
    /// key's latest is superseded on arrival (a duplicate of the later job, reported by
    /// [`crate::queue::Queue::superseded`]).
    pub supersede: Option<Supersede>,
}

/// A supersede key and this job's rank under it (e.g. a login and its routine date).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supersede {
    /// The key (one waiting job per key).
    pub key: String,
    /// A job replaces only a waiting job of a lower rank, and one per rank is queued.
    pub rank: i64,
}

/// A job replaced by a later one of the same supersede key, or not queued because the key
/// already had a later one (see [`Supersede`]); it waits in the queue's outbox until
/// [`crate::queue::Queue::forget_superseded`] removes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Superseded<T> {
    /// The replaced job's id (for a job superseded on arrival, the id it would have had).
    pub id: JobId,
    /// A payload of its supersede key, decoded: for a job superseded on arrival its own; for
    /// a replaced job, that of the job that replaced it (finding the replaced job's own
    /// would cost Redis a read of its hash per job), unless an earlier version wrote the
    /// entry (then `rank` is `None` and the payload is the job's own). A payload that the
    /// key and rank determine (a login and its routine date) is the job's own with `rank`.
    pub job: T,
    /// The job's own rank (`None` for an entry an earlier version wrote).
    pub rank: Option<i64>,
    /// The rank of the job that took over (`None` for an entry an earlier version wrote).
    pub by_rank: Option<i64>,
    /// True when the job was never queued: its key already had a job of a later rank.
    pub on_arrival: bool,
    pub(crate) entry: String,
}

impl EnqueueOptions {
    /// Options with a dedupe key.
    pub fn dedupe(key: impl Into<String>) -> Self {
        Self {
            dedupe_key: Some(key.into()),
            ..Self::default()
        }
    }

    /// The same options, the dedupe key living `ttl` (at least a millisecond) instead of
    /// the queue's `dedupe_ttl`.
    pub fn dedupe_for(mut self, ttl: Duration) -> Self {
        self.dedupe_ttl = Some(ttl.max(Duration::from_millis(1)));
        self
    }

    /// The same options, superseding the waiting job of `key` whose rank is below `rank`
    /// (see [`EnqueueOptions::supersede`]).
    pub fn superseding(mut self, key: impl Into<String>, rank: i64) -> Self {
        self.supersede = Some(Supersede {
            key: key.into(),
            rank,
        });
        self
    }

    /// The same options, delayed by `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The same options, due at `at` (converted to a delay with this host's clock).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.delay = Some(at.duration_since(SystemTime::now()).unwrap_or_default());
        self
    }
}

/// The result of one enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job was stored.
    New(JobId),
    /// The dedupe key was already taken, by the job with this id (or, for a superseding
    /// job, its key already has a job of this or a later rank).
    Duplicate(JobId),
}

impl Enqueued {
    /// True for [`Enqueued::New`].
    pub fn is_new(&self) -> bool {
        matches!(self, Self::New(_))
    }

    /// The new job's id, or the id of the job holding the dedupe key.
    pub fn id(&self) -> &JobId {
        match self {
            Self::New(id) | Self::Duplicate(id) => id,
        }
    }
}

/// A job leased to a worker: run it, then [`ack`](crate::queue::Queue::ack) or
/// [`fail`](crate::queue::Queue::fail) it before its lease expires (heartbeats renew it).
#[derive(Clone, Debug, PartialEq)]
pub struct LeasedJob<T> {
    /// The job's id.
    pub id: JobId,
    /// The decoded payload.
    pub job: T,
    /// Which delivery this is, 1-based (lease expiries count too).
    pub attempt: u32,
    /// No handler ever held this job before: its first delivery, with no attempt given
    /// back since (a release at shutdown, a deferral or a requeue with attempts reset give
    /// one back, so `attempt` alone cannot tell).
    pub first_delivery: bool,
    /// The lease holder: pass it to ack, fail, renew and release.
    pub token: DeliveryToken,
    /// What the queue's [lease reads](LeaseRead) answered for this job, with the payload
    /// strings they were built from; `None` when the queue has none or the payload is not
    /// of their shape.
    pub reads: Option<LeaseReadValues>,
    /// When this process received the lease (and its reads' answers): how old they are.
    pub leased_at: Instant,
}

/// A read made for each job in the script call that leases it, so that what a handler
/// looks up first rides the lease instead of costing a round trip of its own (see
/// [`crate::queue::Queue::with_lease_reads`]). Its key and argument are built from the
/// job's payload when that starts as a compact JSON array of two plain strings (no escapes,
/// no spaces between them), such as `["<LoginId>","2026-11-25"]`; the strings are read as
/// written, so a caller that trusts the answers compares them ([`LeaseReadValues::element`])
/// with what it decoded: a decoder that normalises (case, a date's zero padding) may see
/// another value than the key was built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRead {
    pub(crate) command: LeaseReadCommand,
    pub(crate) key: PayloadText,
    pub(crate) arg: PayloadText,
}

impl LeaseRead {
    /// `HGET key field`: the field's value, or `None`.
    pub fn hget(key: PayloadText, field: PayloadText) -> Self {
        Self {
            command: LeaseReadCommand::HGet,
            key,
            arg: field,
        }
    }

    /// `SISMEMBER key member`: `"1"` or `"0"`.
    pub fn sismember(key: PayloadText, member: PayloadText) -> Self {
        Self {
            command: LeaseReadCommand::SIsMember,
            key,
            arg: member,
        }
    }

    /// `GET key`: the string's value, or `None`.
    pub fn get(key: PayloadText) -> Self {
        Self {
            command: LeaseReadCommand::Get,
            key,
            arg: PayloadText::fixed(""),
        }
    }
}

/// The commands a [`LeaseRead`] may make: reads only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseReadCommand {
    HGet,
    SIsMember,
    Get,
}

impl LeaseReadCommand {
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            Self::HGet => "HGET",
            Self::SIsMember => "SISMEMBER",
            Self::Get => "GET",
        }
    }
}

/// A key or argument of a [`LeaseRead`]: a fixed prefix followed by one of the payload's
/// leading strings, or fixed text alone. Nothing in the prefix is interpreted, so any key
/// name is safe in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadText {
    pub(crate) prefix: String,
    pub(crate) element: Option<PayloadElement>,
}

impl PayloadText {
    /// `prefix` followed by the payload's `element`.
    pub fn new(prefix: impl Into<String>, element: PayloadElement) -> Self {
        Self {
            prefix: prefix.into(),
            element: Some(element),
        }
    }

    /// `text` as it is, the same for every job (a hash field's name, say).
    pub fn fixed(text: impl Into<String>) -> Self {
        Self {
            prefix: text.into(),
            element: None,
        }
    }

    /// The element as a script argument: 1 or 2, 0 for none.
    pub(crate) fn element_arg(&self) -> u8 {
        self.element.map_or(0, PayloadElement::as_arg)
    }
}

/// Which of a payload's leading strings a [`PayloadText`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadElement {
    /// The payload array's first element.
    First,
    /// The payload array's second element.
    Second,
}

impl PayloadElement {
    pub(crate) fn as_arg(self) -> u8 {
        match self {
            Self::First => 1,
            Self::Second => 2,
        }
    }
}

/// What a job's [lease reads](LeaseRead) answered, and the payload's strings their keys and
/// arguments were built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseReadValues {
    /// The payload's first two strings, as written.
    pub elements: [String; 2],
    /// One value per read, in their order.
    pub values: Vec<Option<String>>,
}

impl LeaseReadValues {
    /// The payload string `element`, as the reads took it.
    pub fn element(&self, element: PayloadElement) -> &str {
        match element {
            PayloadElement::First => &self.elements[0],
            PayloadElement::Second => &self.elements[1],
        }
    }
}

/// How a task's job was leased: the backend adds it to every task's data, for handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseFacts {
    /// The job's [first delivery](LeasedJob::first_delivery): a handler may skip a check
    /// only a redelivery needs.
    pub first_delivery: bool,
    /// What the queue's lease reads answered for the job ([`LeasedJob::reads`]).
    pub reads: Option<LeaseReadValues>,
    /// When the lease was received ([`LeasedJob::leased_at`]).
    pub leased_at: Instant,
}

/// A job to queue in another queue of the same Redis when a delivery is acked, in the same
/// script call as the ack (see [`crate::queue::Queue::chained`]): the finished job's
/// follow-up and its ack are one step, and the follow-up costs no call of its own. Give it
/// only to a queue on the same connection as the queue that made it: its keys are written
/// wherever the acking queue's script runs.
#[derive(Clone, Debug)]
pub struct ChainedJob {
    /// The target queue's name (metrics).
    pub(crate) queue: String,
    /// The target queue's ready, delayed and counters keys.
    pub(crate) keys: [String; 3],
    /// The job's id, should it be queued.
    pub(crate) id: JobId,
    pub(crate) payload: String,
    pub(crate) delay_ms: u64,
    pub(crate) dedupe_ttl_ms: u64,
    /// The dedupe label and its key.
    pub(crate) dedupe: Option<(String, String)>,
}

/// A write of another module run in the ack's script call, before the ack (see
/// `ack_fetch.lua`): on one Redis, work a job did and the job's ack become one step, with
/// no call of their own. Made by the module that owns the write, from its
/// [`AckWriteScript`](super::AckWriteScript). Like a [`ChainedJob`], it is written even
/// when the lease was lost after the handler finished (the work was done): the write must
/// be idempotent, since a redelivery (or an ack retried after its reply was lost) may
/// write it again.
#[derive(Clone)]
pub struct AckWrite {
    pub(crate) script: &'static super::AckWriteScript,
    pub(crate) keys: Vec<String>,
    pub(crate) args: Vec<Vec<u8>>,
    /// Told the write's answer once the ack's call succeeded.
    pub(crate) answered: std::sync::Arc<dyn Fn(&redis::Value) + Send + Sync>,
}

impl AckWrite {
    /// The write `script` attaches, with its own `keys` and `args` (as the write's source
    /// reads them, from `KEYS[1]` and `ARGV[1]`); `answered` is told what it returned.
    pub fn new(
        script: &'static super::AckWriteScript,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
        answered: impl Fn(&redis::Value) + Send + Sync + 'static,
    ) -> Self {
        Self {
            script,
            keys,
            args,
            answered: std::sync::Arc::new(answered),
        }
    }
}

impl std::fmt::Debug for AckWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The arguments may be account data and the keys name a login: counts only.
        f.debug_struct("AckWrite")
            .field("script", &self.script)
            .field("keys", &self.keys.len())
            .field("args", &self.args.len())
            .finish()
    }
}

/// What a successful delivery's ack does besides acking: queue a [`ChainedJob`], run an
/// [`AckWrite`], or both.
#[derive(Clone, Debug, Default)]
pub struct AckAttached {
    pub(crate) chained: Option<ChainedJob>,
    pub(crate) write: Option<AckWrite>,
}

impl AckAttached {
    /// The same, queueing `job` too.
    pub fn with_chained(mut self, job: ChainedJob) -> Self {
        self.chained = Some(job);
        self
    }

    /// The same, running `write` too.
    pub fn with_write(mut self, write: AckWrite) -> Self {
        self.write = Some(write);
        self
    }

    /// Nothing attached: a plain ack.
    pub fn is_empty(&self) -> bool {
        self.chained.is_none() && self.write.is_none()
    }
}

/// Where a handler leaves the [`ChainedJob`] and the [`AckWrite`] its successful delivery's
/// ack should carry: the backend adds one to every task's data and reads it when it acks.
/// An attempt that fails carries nothing. Set them as the handler's last step: they are
/// queued and written even when the lease is lost after that (the work was done).
#[derive(Clone, Debug, Default)]
pub struct AckWith(std::sync::Arc<std::sync::Mutex<AckAttached>>);

impl AckWith {
    /// Queue `job` when this delivery is acked (replacing any job set before).
    pub fn chain(&self, job: ChainedJob) {
        self.0.lock().expect("ack attachments lock").chained = Some(job);
    }

    /// Run `write` in this delivery's ack (replacing any write set before).
    pub fn write(&self, write: AckWrite) {
        self.0.lock().expect("ack attachments lock").write = Some(write);
    }

    /// What the ack carries, taken out.
    pub(crate) fn take(&self) -> AckAttached {
        std::mem::take(&mut *self.0.lock().expect("ack attachments lock"))
    }
}

/// Why an attempt failed, and so what happens next: the one failure type from a handler's
/// `Err` to `fail.lua`. Handlers return it (boxed by apalis); the backend downcasts it once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// Try again after `delay` (or the queue's backoff), unless this was the last attempt.
    #[error("{error}")]
    Retry {
        /// What went wrong (kept as the job's last error; never put secrets in it).
        error: String,
        /// Overrides the backoff (e.g. a 202 poll every 10 s, or a `Retry-After`).
        delay: Option<Duration>,
    },
    /// Do not retry: dead-letter the job now.
    #[error("{error}")]
    Permanent {
        /// What went wrong.
        error: String,
    },
    /// Not the job's fault (e.g. the API throttled every caller): run it again after
    /// `delay` without spending an attempt.
    #[error("{error}")]
    Defer {
        /// Why it was deferred (kept as the job's last error).
        error: String,
        /// When to run it again.
        delay: Duration,
    },
}

impl JobFailure {
    /// A retry with the queue's backoff.
    pub fn retry(error: impl std::fmt::Display) -> Self {
        Self::Retry {
            error: error.to_string(),
            delay: None,
        }
    }

    /// A retry after `delay` (e.g. a poll every 10 s, or `Retry-After`).
    pub fn retry_after(error: impl std::fmt::Display, delay: Duration) -> Self {
        Self::Retry {
            error: error.to_string(),
            delay: Some(delay),
        }
    }

    /// A permanent failure.
    pub fn permanent(error: impl std::fmt::Display) -> Self {
        Self::Permanent {
            error: error.to_string(),
        }
    }

    /// The mode name `fail.lua` takes: `retry`, `permanent` or `defer`.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Self::Retry { .. } => "retry",
            Self::Permanent { .. } => "permanent",
            Self::Defer { .. } => "defer",
        }
    }
}

/// What [`fail`](crate::queue::Queue::fail) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled for another attempt.
    Retried,
    /// Moved to the dead letters.
    Dead,
    /// Scheduled again without spending an attempt.
    Deferred,
    /// This worker no longer held the lease (it expired and was reaped): nothing changed.
    LeaseLost,
}

/// The state a job is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting in the ready list.
    Ready,
    /// Waiting for its time (retry backoff, scheduled work).
    Delayed,
    /// Leased to a worker.
    InFlight,
    /// In the dead letters.
    Dead,
}

impl JobState {
    /// A stable lower-case name (`ready`, `delayed`, `in_flight`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Delayed => "delayed",
            Self::InFlight => "in_flight",
            Self::Dead => "dead",
        }
    }

    /// The state named by [`JobState::as_str`], `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Ready, Self::Delayed, Self::InFlight, Self::Dead]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One job as seen by the ops functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInfo {
    /// The job's id.
    pub id: JobId,
    /// Its state.
    pub state: JobState,
    /// The raw JSON payload (may be undecodable for poison jobs).
    pub payload: String,
    /// Deliveries so far.
    pub attempts: u32,
    /// The last error (dead letters: why it died).
    pub last_error: Option<String>,
    /// The dedupe key it was enqueued with.
    pub dedupe_key: Option<String>,
    /// The delivery holding its lease, `<worker id>/<delivery>` (in-flight only).
    pub owner: Option<String>,
    /// When it was enqueued (Redis time, ms since the epoch).
    pub enqueued_at_ms: Option<u64>,
    /// Delayed: when due; in-flight: lease deadline; dead: when it died (ms since the epoch).
    pub at_ms: Option<u64>,
}

/// Filters for [`list`](crate::queue::Queue::list) and filtered requeues; every set field
/// must match. Filtering happens before the limit, so `limit` counts matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// The last error contains this text.
    pub error_contains: Option<String>,
    /// The raw payload contains this text.
    pub payload_contains: Option<String>,
    /// The dedupe key starts with this.
    pub dedupe_prefix: Option<String>,
    /// `at_ms` (due / deadline / died) is before this.
    pub before: Option<SystemTime>,
    /// `at_ms` is at or after this.
    pub after: Option<SystemTime>,
}

impl JobFilter {
    pub(crate) fn matches(&self, job: &JobInfo) -> bool {
        let contains = |hay: Option<&str>, needle: &Option<String>| match needle {
            None => true,
            Some(n) => hay.is_some_and(|h| h.contains(n.as_str())),
        };
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64
        };
        contains(job.last_error.as_deref(), &self.error_contains)
            && contains(Some(&job.payload), &self.payload_contains)
            && match &self.dedupe_prefix {
                None => true,
                Some(p) => job.dedupe_key.as_deref().is_some_and(|k| k.starts_with(p)),
            }
            && self
                .before
                .is_none_or(|b| job.at_ms.is_some_and(|at| at < ms(b)))
            && self
                .after
                .is_none_or(|a| job.at_ms.is_some_and(|at| at >= ms(a)))
    }
}

/// Which dead letters to requeue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadSelector {
    /// These ids (ids not in the dead set are skipped).
    Ids(Vec<JobId>),
    /// Every dead letter matching the filter.
    Filter(JobFilter),
    /// Every dead letter.
    All,
}

/// Counts per state and lifetime counters of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Jobs in the ready list.
    pub ready: u64,
    /// Jobs waiting for their time (of which `delayed_due` are already due).
    pub delayed: u64,
    /// Delayed jobs whose time has come (waiting for promotion).
    pub delayed_due: u64,
    /// Jobs leased to workers.
    pub in_flight: u64,
    /// Dead letters.
    pub dead: u64,
    /// Worker processes seen within three leases.
    pub workers_alive: u64,
    /// Jobs ever enqueued (duplicates excluded).
    pub enqueued_total: u64,
    /// Jobs ever acknowledged.
    pub succeeded_total: u64,
    /// Attempts ever scheduled for retry.
    pub retried_total: u64,
    /// Jobs ever dead-lettered.
    pub dead_total: u64,
    /// Jobs ever rescued from an expired lease.
    pub rescued_total: u64,
    /// Dead letters ever requeued.
    pub requeued_total: u64,
    /// Waiting jobs ever replaced by a later job of their supersede key.
    pub superseded_total: u64,
}

/// Dead letters read after a review cursor ([`crate::queue::Queue::dead_after`]).
#[derive(Debug, Clone, Default)]
pub struct DeadPage {
    /// The letters, oldest first (letters deleted while being read are left out).
    pub letters: Vec<JobInfo>,
    /// The highest score the page covers completely (every letter at or below it and above
    /// the cursor was read); `None` when there was nothing after the cursor.
    pub through: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_job_id_is_short_alphanumeric_and_fresh_each_time() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| JobId::generate().as_str().to_string())
            .collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), JobId::LEN, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
    }

    #[test]
    fn a_delivery_token_names_its_worker_and_is_fresh_each_time() {
        let worker = WorkerId("host-42-abcdef01".to_string());
        let tokens: std::collections::HashSet<String> = (0..10_000)
            .map(|_| DeliveryToken::generate(&worker).as_str().to_string())
            .collect();
        assert_eq!(tokens.len(), 10_000);
        for token in &tokens {
            let (named, random) = token.rsplit_once('/').expect("worker/random");
            assert_eq!(named, worker.as_str(), "{token}");
            assert_eq!(DeliveryToken::worker_of(token), worker.as_str(), "{token}");
            assert_eq!(random.len(), 12, "{token}");
            assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        }
    }
}

//! `producer queues requeue|purge`: move failed / re-auth ledger entries back to the
//! authorize queue, requeue dead letters, and purge old entries.
//!
//! # Requeue of `failed` / `reauth` entries: three crash-safe steps
//!
//! 1. **Claim** (`requeue_claim.lua`, one script per ledger bucket, in its slot): the selected
//!    index members move from the index ZSET to the `requeue pending` ZSET as
//!    `claim|date|LoginId`, only if still in the index, so two operators running at once
//!    never both claim an entry. An entry whose (LoginId, date) is already refreshed is
//!    dropped from the index instead (a refresh is final). A claimed entry's ledger outcome
//!    is cleared in the same step: the login is pending again until the new job records
//!    one, and if that job dies the dead-letter reconciler (which only fills a missing
//!    outcome) records a fresh `failed`.
//! 2. **Enqueue** one fresh [`AuthorizeJob`] (attempts start at zero) per claimed entry,
//!    with the dedupe key `authorize:{login}:{date}:requeue:{claim}`: replaying a claim
//!    (after a crash, or two operators resuming it at once) can never enqueue it twice
//!    while the key lives (the queue's `dedupe_ttl`, 3 days by default).
//! 3. **Release**: the entries leave the pending ZSET.
//!
//! Every requeue first resumes what a crashed run left pending (steps 2 and 3), so a crash
//! between any two steps loses nothing and duplicates nothing. [`CrashPoint`] is the
//! failure-injection hook tests use to prove it. Requeued work is ordinary authorize work:
//! the worker takes a global rate-limit permit before each.
//!
//! Dead letters: an authorize letter goes back to ready with fresh attempts
//! ([`Queue::requeue_dead`], atomic per job), unless the detail job it chained is still
//! alive (that one is running the login; a second chain would fetch twice). A detail letter
//! is replaced by a fresh authorize job for its (LoginId, date) (a new session: the dead
//! one's RequestId and poll deadline are stale), enqueued under a dedupe key named after the
//! letter before the letter is deleted, so a crash or a second operator never enqueues it
//! twice. Letters of logins already refreshed, and of dates whose ledger may have expired
//! ([`crate::ledger::ledger_expired`]), are never requeued. Purges delete index entries (the
//! ledger entries themselves expire with the ledger's TTL) or dead letters older than a
//! duration that the reconciler has already reviewed.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::redis_conn::RedisConn;
use chrono::{NaiveDate, Utc};
use redis::Script;
use serde::Serialize;

use super::OpsError;
use crate::config::Settings;
use crate::domain::{FlinksCode, LoginId};
use crate::jobs::{AuthorizeJob, DetailJob, JobSubject, AUTHORIZE_QUEUE};
use crate::keys::KeySpace;
use crate::ledger::{ledger_expired, IndexEntry, IndexFilter, IndexKind, Ledger};
use crate::queue::{DeadSelector, EnqueueOptions, Enqueued, JobFilter, JobId, Queue};
use crate::registry::Registry;

static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/ops/requeue_claim.lua")));

/// Index members claimed per script call.
const CLAIM_CHUNK: usize = 500;

/// The ZSET of claimed, not yet released requeue entries (`claim|date|LoginId`, score =
/// claim time) of one ledger bucket. It shares the bucket's hash tag so the claim script
/// touches one slot.
pub fn pending_key(keys: &KeySpace, bucket: u16) -> String {
    keys.ledger_index("requeue_pending", bucket)
}

/// What `queues requeue|purge` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Failed records.
    Failed,
    /// Records needing re-authentication.
    Reauth,
    /// Dead letters of the authorize and detail queues.
    Dead,
}

impl Source {
    /// The ledger index of the records; `None` for dead letters.
    pub fn index(self) -> Option<IndexKind> {
        match self {
            Self::Failed => Some(IndexKind::Failed),
            Self::Reauth => Some(IndexKind::Reauth),
            Self::Dead => None,
        }
    }

    /// The name reports and the audit trail give it (`failed`, `needs_reauth`, `dead`).
    pub fn name(self) -> &'static str {
        self.index().map_or("dead", |k| k.as_str())
    }

    /// What its entries are called in an error's context.
    pub fn entries(self) -> String {
        match self.index() {
            None => "dead letters".into(),
            Some(kind) => format!("{} records", kind.as_str()),
        }
    }
}

/// Which entries to act on; every set field narrows the selection.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these LoginIds (empty: any).
    pub logins: Vec<LoginId>,
    /// Only this FlinksCode (index entries: the ledger outcome's code; dead letters: the
    /// last error contains it).
    pub code: Option<FlinksCode>,
    /// Only this routine date.
    pub date: Option<NaiveDate>,
}

impl Selection {
    /// True when nothing narrows the selection (the caller asks for `--all`).
    pub fn is_everything(&self) -> bool {
        self.logins.is_empty() && self.code.is_none() && self.date.is_none()
    }

    /// Checks the selection against the flags given with it: `--all` exactly when nothing
    /// narrows it, `--force` for dead letters only.
    pub fn check(&self, source: Source, all: bool, force: bool) -> Result<(), OpsError> {
        if self.is_everything() != all {
            let why = if all {
                "--all cannot be combined with a filter"
            } else {
                "nothing selected: give --login, --code or --date, or --all to requeue everything"
            };
            return Err(OpsError::Usage(why.into()));
        }
        if force && source != Source::Dead {
            let why = "--force applies to dead letters only (a refreshed login is never requeued)";
            return Err(OpsError::Usage(why.into()));
        }
        Ok(())
    }

    /// The audit trail's summary of a requeue: the source, then each flag as given
    /// (`code` as the operator typed it).
    pub fn summary(&self, source: Source, code: Option<&str>, all: bool, force: bool) -> String {
        let mut parts = vec![source.name().to_string()];
        let logins = self
            .logins
            .iter()
            .map(|l| format!("--login {}", l.as_str()));
        parts.extend(logins);
        parts.extend(code.map(|c| format!("--code {c}")));
        parts.extend(self.date.map(|d| format!("--date {d}")));
        parts.extend(all.then(|| "--all".to_string()));
        parts.extend(force.then(|| "--force".to_string()));
        parts.join(" ")
    }

    fn index_filters(&self) -> Vec<IndexFilter> {
        let base = IndexFilter {
            date: self.date,
            code: self.code.clone(),
            login: None,
            limit: None,
        };
        if self.logins.is_empty() {
            return vec![base];
        }
        self.logins
            .iter()
            .map(|l| IndexFilter {
                login: Some(l.clone()),
                ..base.clone()
            })
            .collect()
    }

    /// One filter per LoginId (a first cut on the payload's text), or one for every dead
    /// letter; the date and the LoginId are checked on the decoded payload after listing
    /// (payloads of different versions spell their fields differently).
    fn dead_filters(&self) -> Vec<JobFilter> {
        let error_contains = self.code.as_ref().map(|c| c.as_str().to_string());
        if self.logins.is_empty() {
            return vec![JobFilter {
                error_contains,
                ..JobFilter::default()
            }];
        }
        self.logins
            .iter()
            .map(|l| JobFilter {
                error_contains: error_contains.clone(),
                payload_contains: Some(l.as_str().to_string()),
                ..JobFilter::default()
            })
            .collect()
    }
}

/// Where a test stops a requeue, as if the process died there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrashPoint {
    /// Run to the end.
    #[default]
    Never,
    /// After step 1 (claimed, nothing enqueued).
    AfterClaim,
    /// After step 2 (enqueued, still pending).
    AfterEnqueue,
}

/// How to requeue.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequeueOptions {
    /// Only report what would move; change nothing (pending claims are not resumed).
    pub dry_run: bool,
    /// Dead letters only: also requeue letters whose payload does not decode (poison),
    /// e.g. once an upgrade taught the workers to read them. A refreshed (LoginId, date)
    /// is never requeued: its refresh is final.
    pub force: bool,
    /// Failure injection for tests.
    pub crash: CrashPoint,
}

/// One (LoginId, date) moved to the authorize queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// The login.
    pub login_id: LoginId,
    /// The routine date.
    pub date: NaiveDate,
    /// The new job's id (or, when `new` is false, the id of the job already holding the
    /// claim's dedupe key).
    pub job_id: String,
    /// False when a previous run (or another operator) had already enqueued this claim.
    pub new: bool,
}

/// A (LoginId, date) left where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The login.
    pub login_id: LoginId,
    /// The routine date.
    pub date: NaiveDate,
    /// Why: `already_refreshed`, or `inactive` (the routine is for active logins: its job
    /// would call nothing).
    pub reason: &'static str,
}

/// What a requeue of index entries did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequeueReport {
    /// `failed` or `reauth`.
    pub source: &'static str,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Claims of a crashed earlier run, finished now.
    pub resumed: Vec<Moved>,
    /// Entries moved by this run (dry run: that would move).
    pub moved: Vec<Moved>,
    /// Entries not requeued because their date is already refreshed.
    pub skipped: Vec<Skipped>,
}

/// A dead letter requeued (or, with `dry_run`, that would be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadMoved {
    /// `authorize` or `detail`.
    pub queue: String,
    /// The job id.
    pub job_id: String,
    /// The job's LoginId, when its payload decodes.
    pub login_id: Option<String>,
    /// The job's routine date, when its payload decodes.
    pub date: Option<NaiveDate>,
    /// Why it died.
    pub last_error: Option<String>,
    /// Why it was left dead (skipped letters only): `already_refreshed`, `inactive`,
    /// `detail_in_progress`, `ledger_expired` or `poison`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// What a requeue of dead letters did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadRequeueReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Dead letters moved back to ready (dry run: that would move).
    pub moved: Vec<DeadMoved>,
    /// Dead letters left dead, each with its reason.
    pub skipped: Vec<DeadMoved>,
}

/// What a purge removed (or, with `dry_run`, would remove), per source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// (`failed` | `reauth` | queue name, entries).
    pub removed: Vec<(String, u64)>,
}

impl PurgeReport {
    /// Entries removed (or that would be), every kind together.
    pub fn total(&self) -> u64 {
        self.removed.iter().map(|(_, n)| n).sum()
    }
}

/// What a requeue of one [`Source`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RequeueRun {
    /// Failed or re-auth records.
    Index(RequeueReport),
    /// Dead letters.
    Dead(DeadRequeueReport),
}

impl RequeueRun {
    /// The logins of `asked` that no entry of this run names (moved, resumed or skipped):
    /// the source held nothing for them, which a requeue by `--login` must say rather than
    /// print zero moved and nothing else.
    pub fn unmatched<'a>(&self, asked: &'a [LoginId]) -> Vec<&'a LoginId> {
        let named: std::collections::HashSet<&str> = match self {
            RequeueRun::Index(report) => report
                .resumed
                .iter()
                .chain(&report.moved)
                .map(|m| m.login_id.as_str())
                .chain(report.skipped.iter().map(|s| s.login_id.as_str()))
                .collect(),
            RequeueRun::Dead(report) => report
                .moved
                .iter()
                .chain(&report.skipped)
                .filter_map(|d| d.login_id.as_deref())
                .collect(),
        };
        asked
            .iter()
            .filter(|login| !named.contains(login.as_str()))
            .collect()
    }
}

/// The requeue and purge operations of one namespace.
#[derive(Clone)]
pub struct Requeuer {
    conn: RedisConn,
    keys: KeySpace,
    ledger: Ledger,
    registry: Registry,
    authorize: Queue<AuthorizeJob>,
    detail: Queue<()>,
}

fn requeue_dedupe_key(claim: &str, date: NaiveDate, login: &LoginId) -> String {
    format!("authorize:{}:{}:requeue:{}", login.as_str(), date, claim)
}

fn parse_pending(member: &str) -> Option<(String, NaiveDate, LoginId)> {
    let mut parts = member.splitn(3, '|');
    let claim = parts.next()?.to_string();
    let date = NaiveDate::parse_from_str(parts.next()?, "%Y-%m-%d").ok()?;
    let login = LoginId::parse(parts.next()?).ok()?;
    Some((claim, date, login))
}

impl Requeuer {
    /// The operations of the namespace of `keys`, with the queues configured from
    /// `settings` (as the worker configures them).
    pub fn new(conn: RedisConn, keys: &KeySpace, settings: &Settings) -> Self {
        let stores = crate::stores::Stores::open(conn.clone(), keys, settings);
        Self {
            ledger: stores.ledger,
            registry: stores.registry,
            authorize: stores.authorize,
            detail: stores.detail.retyped(),
            keys: keys.clone(),
            conn,
        }
    }

    /// The index entries `selection` matches, newest first.
    pub async fn select(
        &self,
        kind: IndexKind,
        selection: &Selection,
    ) -> Result<Vec<IndexEntry>, OpsError> {
        let mut out: Vec<IndexEntry> = Vec::new();
        for filter in selection.index_filters() {
            let found = match kind {
                IndexKind::Reauth => self.ledger.list_reauth(&filter).await?,
                IndexKind::Failed => self.ledger.list_failed(&filter).await?,
            };
            for entry in found {
                if !out
                    .iter()
                    .any(|e| e.date == entry.date && e.login_id == entry.login_id)
                {
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }

    /// Requeues the entries of `source` that `selection` matches.
    pub async fn requeue(
        &self,
        source: Source,
        selection: &Selection,
        options: RequeueOptions,
    ) -> Result<RequeueRun, OpsError> {
        Ok(match source.index() {
            None => RequeueRun::Dead(self.requeue_dead(selection, options).await?),
            Some(kind) => RequeueRun::Index(self.requeue_index(kind, selection, options).await?),
        })
    }

    /// Removes (or with `dry_run` counts) the entries of `source` older than `older_than`.
    pub async fn purge(
        &self,
        source: Source,
        older_than: Duration,
        dry_run: bool,
    ) -> Result<PurgeReport, OpsError> {
        let removed = match source.index() {
            None => self.purge_dead(older_than, dry_run).await?,
            Some(kind) => {
                let n = self.purge_index(kind, older_than, dry_run).await?;
                vec![(kind.as_str().to_string(), n)]
            }
        };
        Ok(PurgeReport { dry_run, removed })
    }

    /// Requeues the `kind` index entries `selection` matches (see the module doc for the
    /// three steps). Resumes a crashed run's pending claims first, unless `dry_run`.
    pub async fn requeue_index(
        &self,
        kind: IndexKind,
        selection: &Selection,
        options: RequeueOptions,
    ) -> Result<RequeueReport, OpsError> {
        let mut report = RequeueReport {
            source: kind.as_str(),
            dry_run: options.dry_run,
            resumed: Vec::new(),
            moved: Vec::new(),
            skipped: Vec::new(),
        };
        let mut entries = Vec::new();
        for chunk in self.select(kind, selection).await?.chunks(CLAIM_CHUNK) {
            let logins: Vec<LoginId> = chunk.iter().map(|e| e.login_id.clone()).collect();
            let inactive = self.registry.inactive_flags(&logins).await?;
            for (entry, inactive) in chunk.iter().zip(inactive) {
                if inactive {
                    report.skipped.push(Skipped {
                        login_id: entry.login_id.clone(),
                        date: entry.date,
                        reason: "inactive",
                    });
                } else {
                    entries.push(entry.clone());
                }
            }
        }
        if options.dry_run {
            for entry in entries {
                if self.ledger.is_done(entry.date, &entry.login_id).await? {
                    report.skipped.push(Skipped {
                        login_id: entry.login_id,
                        date: entry.date,
                        reason: "already_refreshed",
                    });
                } else {
                    report.moved.push(Moved {
                        login_id: entry.login_id,
                        date: entry.date,
                        job_id: String::new(),
                        new: true,
                    });
                }
            }
            return Ok(report);
        }
        report.resumed = self.resume_pending().await?;
        let claim = uuid::Uuid::new_v4().simple().to_string();
        let mut claimed = Vec::new();
        for chunk in entries.chunks(CLAIM_CHUNK) {
            let (won, refreshed) = self.claim(kind, &claim, chunk).await?;
            claimed.extend(won);
            report
                .skipped
                .extend(refreshed.into_iter().map(|(date, login_id)| Skipped {
                    login_id,
                    date,
                    reason: "already_refreshed",
                }));
        }
        if options.crash == CrashPoint::AfterClaim {
            return Err(OpsError::InjectedCrash("claim"));
        }
        let pending: Vec<(String, NaiveDate, LoginId)> = claimed
            .into_iter()
            .map(|(date, login)| (claim.clone(), date, login))
            .collect();
        report.moved = self.finish(&pending, options.crash).await?;
        Ok(report)
    }

    /// Finishes (steps 2 and 3) every claim left pending by a run that died; returns what
    /// it moved. Safe to run from several processes at once.
    pub async fn resume_pending(&self) -> Result<Vec<Moved>, OpsError> {
        let mut conn = self.conn.clone();
        let mut pending = Vec::new();
        for bucket in self.keys.all_ledger_buckets() {
            let key = pending_key(&self.keys, bucket);
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            let mut garbage = Vec::new();
            for member in members {
                match parse_pending(&member) {
                    Some(p) => pending.push(p),
                    None => garbage.push(member),
                }
            }
            if !garbage.is_empty() {
                let _: i64 = redis::cmd("ZREM")
                    .arg(&key)
                    .arg(&garbage)
                    .query_async(&mut conn)
                    .await?;
            }
        }
        self.finish(&pending, CrashPoint::Never).await
    }

    /// Claims pending a crashed run left behind.
    pub async fn pending_count(&self) -> Result<u64, OpsError> {
        let mut pipe = redis::pipe();
        for bucket in self.keys.all_ledger_buckets() {
            pipe.zcard(pending_key(&self.keys, bucket));
        }
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(counts.iter().sum())
    }

    /// Step 1 for `entries`: one claim script call per ledger bucket they fall in.
    async fn claim(
        &self,
        kind: IndexKind,
        claim: &str,
        entries: &[IndexEntry],
    ) -> Result<(Vec<(NaiveDate, LoginId)>, Vec<(NaiveDate, LoginId)>), OpsError> {
        let (mut claimed, mut refreshed) = (Vec::new(), Vec::new());
        for (bucket, entries) in self.keys.by_ledger_bucket(entries, |e| e.login_id.as_str()) {
            let (won, done) = self.claim_bucket(kind, claim, bucket, &entries).await?;
            claimed.extend(won);
            refreshed.extend(done);
        }
        Ok((claimed, refreshed))
    }

    async fn claim_bucket(
        &self,
        kind: IndexKind,
        claim: &str,
        bucket: u16,
        entries: &[&IndexEntry],
    ) -> Result<(Vec<(NaiveDate, LoginId)>, Vec<(NaiveDate, LoginId)>), OpsError> {
        let mut inv = CLAIM.prepare_invoke();
        inv.key(self.keys.ledger_index(kind.as_str(), bucket))
            .key(pending_key(&self.keys, bucket))
            .arg(Utc::now().timestamp_millis())
            .arg(claim);
        for entry in entries {
            let day = entry.date.to_string();
            inv.key(self.keys.ledger_date(&day, bucket))
                .key(self.keys.ledger_meta(&day, bucket))
                .arg(format!("{}|{}", entry.date, entry.login_id.as_str()));
        }
        let mut conn = self.conn.clone();
        let (claimed, refreshed): (Vec<String>, Vec<String>) = inv.invoke_async(&mut conn).await?;
        let parse = |members: Vec<String>| -> Vec<(NaiveDate, LoginId)> {
            members
                .iter()
                .filter_map(|m| {
                    let (d, l) = m.split_once('|')?;
                    Some((
                        NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?,
                        LoginId::parse(l).ok()?,
                    ))
                })
                .collect()
        };
        Ok((parse(claimed), parse(refreshed)))
    }

    /// Steps 2 and 3 for `pending` claims.
    async fn finish(
        &self,
        pending: &[(String, NaiveDate, LoginId)],
        crash: CrashPoint,
    ) -> Result<Vec<Moved>, OpsError> {
        let mut moved = Vec::with_capacity(pending.len());
        for chunk in pending.chunks(CLAIM_CHUNK) {
            // An operator's requeue overrides GetNightlyRefreshStatus' "ineligible" mark.
            for (_, date, login) in chunk {
                self.ledger.clear_ineligible(*date, login).await?;
            }
            let jobs: Vec<(AuthorizeJob, EnqueueOptions)> = chunk
                .iter()
                .map(|(claim, date, login)| {
                    (
                        AuthorizeJob::new(login.clone(), *date),
                        EnqueueOptions::dedupe(requeue_dedupe_key(claim, *date, login)),
                    )
                })
                .collect();
            let enqueued = self.authorize.enqueue_many(jobs).await?;
            if crash == CrashPoint::AfterEnqueue {
                return Err(OpsError::InjectedCrash("enqueue"));
            }
            let mut pipe = redis::pipe();
            for (bucket, released) in self.keys.by_ledger_bucket(chunk, |(_, _, l)| l.as_str()) {
                let members: Vec<String> = released
                    .iter()
                    .map(|(claim, date, login)| format!("{claim}|{date}|{}", login.as_str()))
                    .collect();
                pipe.zrem(pending_key(&self.keys, bucket), members).ignore();
            }
            let mut conn = self.conn.clone();
            let () = pipe.query_async(&mut conn).await?;
            for ((_, date, login), result) in chunk.iter().zip(enqueued) {
                moved.push(Moved {
                    login_id: login.clone(),
                    date: *date,
                    job_id: result.id().as_str().to_string(),
                    new: matches!(result, Enqueued::New(_)),
                });
            }
        }
        Ok(moved)
    }

    /// Requeues the dead letters of both queues that `selection` matches (see the module
    /// doc). Refuses a `selection.date` whose ledger may have expired.
    pub async fn requeue_dead(
        &self,
        selection: &Selection,
        options: RequeueOptions,
    ) -> Result<DeadRequeueReport, OpsError> {
        if let Some(date) = selection.date {
            if ledger_expired(date, Utc::now().date_naive()) {
                return Err(OpsError::LedgerExpired(date));
            }
        }
        let mut report = DeadRequeueReport {
            dry_run: options.dry_run,
            moved: Vec::new(),
            skipped: Vec::new(),
        };
        for queue in [self.authorize.retyped::<()>(), self.detail.retyped::<()>()] {
            let (take, skip) = self.select_dead(&queue, selection, options.force).await?;
            report.skipped.extend(skip);
            if options.dry_run || take.is_empty() {
                report.moved.extend(take);
                continue;
            }
            let done = if queue.name() == AUTHORIZE_QUEUE {
                self.requeue_authorize_letters(&take).await?
            } else {
                self.restart_detail_letters(&take).await?
            };
            // A letter another operator requeued meanwhile is not reported twice.
            report
                .moved
                .extend(take.into_iter().filter(|d| done.contains(&d.job_id)));
        }
        Ok(report)
    }

    /// Authorize letters go back to ready with fresh attempts. Their detail chains are
    /// gone (checked by `select_dead`), so the chain key is cleared: the requeued job keeps
    /// its id and must be able to chain its detail fetch again.
    async fn requeue_authorize_letters(&self, take: &[DeadMoved]) -> Result<Vec<String>, OpsError> {
        for dead in take {
            self.detail
                .clear_dedupe(&DetailJob::chained_dedupe_key(&dead.job_id))
                .await?;
        }
        let ids: Vec<JobId> = take.iter().map(|d| JobId::from(d.job_id.clone())).collect();
        let done = self
            .authorize
            .retyped::<()>()
            .requeue_dead(DeadSelector::Ids(ids), true)
            .await?;
        Ok(done.into_iter().map(|id| id.as_str().to_string()).collect())
    }

    /// Detail letters restart from a fresh authorize (a new RequestId): one per letter,
    /// under a dedupe key named after it, then the letter is deleted.
    async fn restart_detail_letters(&self, take: &[DeadMoved]) -> Result<Vec<String>, OpsError> {
        let mut jobs = Vec::new();
        let mut ids = Vec::new();
        let mut poison = Vec::new();
        for dead in take {
            let login = dead
                .login_id
                .as_deref()
                .and_then(|l| LoginId::parse(l).ok());
            let (Some(login), Some(date)) = (login, dead.date) else {
                // Forced poison: nothing to restart from; it goes back as it is.
                poison.push(JobId::from(dead.job_id.clone()));
                continue;
            };
            let dedupe = format!(
                "authorize:{}:{}:requeue-dead:{}",
                login.as_str(),
                date,
                dead.job_id
            );
            jobs.push((
                AuthorizeJob::new(login, date),
                EnqueueOptions::dedupe(dedupe),
            ));
            ids.push(JobId::from(dead.job_id.clone()));
        }
        self.authorize.enqueue_many(jobs).await?;
        let detail = self.detail.retyped::<()>();
        let mut done = detail.drop_dead(&ids).await?;
        if !poison.is_empty() {
            done.extend(detail.requeue_dead(DeadSelector::Ids(poison), true).await?);
        }
        Ok(done.into_iter().map(|id| id.as_str().to_string()).collect())
    }

    /// Dead letters of `queue` matching `selection`: (to requeue, to skip with a reason).
    pub async fn select_dead(
        &self,
        queue: &Queue<()>,
        selection: &Selection,
        force: bool,
    ) -> Result<(Vec<DeadMoved>, Vec<DeadMoved>), OpsError> {
        let today = Utc::now().date_naive();
        let mut take: Vec<DeadMoved> = Vec::new();
        let mut skip: Vec<DeadMoved> = Vec::new();
        for filter in selection.dead_filters() {
            for job in queue.list_dead(&filter, usize::MAX).await? {
                if take
                    .iter()
                    .chain(&skip)
                    .any(|d| d.job_id == job.id.as_str())
                {
                    continue;
                }
                let identity = JobSubject::from_payload(&job.payload);
                if let Some(want) = selection.date {
                    if identity.as_ref().map(|id| id.routine_date) != Some(want) {
                        continue;
                    }
                }
                if let Some(id) = &identity {
                    if !selection.logins.is_empty() && !selection.logins.contains(&id.login_id) {
                        continue;
                    }
                }
                let reason = match &identity {
                    None if force => None,
                    None => Some("poison"),
                    Some(id) if ledger_expired(id.routine_date, today) => Some("ledger_expired"),
                    Some(id) if self.ledger.is_done(id.routine_date, &id.login_id).await? => {
                        Some("already_refreshed")
                    }
                    Some(id) if self.registry.is_inactive(&id.login_id).await? => Some("inactive"),
                    Some(_)
                        if queue.name() == AUTHORIZE_QUEUE && self.chain_alive(&job.id).await? =>
                    {
                        Some("detail_in_progress")
                    }
                    Some(_) => None,
                };
                let entry = DeadMoved {
                    queue: queue.name().to_string(),
                    job_id: job.id.as_str().to_string(),
                    login_id: identity.as_ref().map(|i| i.login_id.as_str().to_string()),
                    date: identity.as_ref().map(|i| i.routine_date),
                    last_error: job.last_error,
                    reason,
                };
                if reason.is_some() {
                    skip.push(entry);
                } else {
                    take.push(entry);
                }
            }
        }
        Ok((take, skip))
    }

    /// True while the detail job that authorize job `id` chained is still to run.
    async fn chain_alive(&self, id: &JobId) -> Result<bool, OpsError> {
        let key = DetailJob::chained_dedupe_key(id.as_str());
        Ok(match self.detail.dedupe_holder(&key).await? {
            Some(holder) => self.detail.is_alive(&holder).await?,
            None => false,
        })
    }

    /// Removes `kind` index entries recorded more than `older_than` ago (the ledger
    /// entries stay until the ledger's TTL). Returns how many.
    pub async fn purge_index(
        &self,
        kind: IndexKind,
        older_than: Duration,
        dry_run: bool,
    ) -> Result<u64, OpsError> {
        let age_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let cutoff = Utc::now().timestamp_millis().saturating_sub(age_ms);
        let cmd = if dry_run {
            "ZCOUNT"
        } else {
            "ZREMRANGEBYSCORE"
        };
        let mut pipe = redis::pipe();
        for bucket in self.keys.all_ledger_buckets() {
            pipe.cmd(cmd)
                .arg(self.keys.ledger_index(kind.as_str(), bucket))
                .arg("-inf")
                .arg(format!("({cutoff}"));
        }
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(counts.iter().sum())
    }

    /// Deletes dead letters of both queues that died more than `older_than` ago and that
    /// the dead-letter reconciler has reviewed (a letter not reviewed yet may still owe
    /// its login an outcome, so it is never deleted).
    pub async fn purge_dead(
        &self,
        older_than: Duration,
        dry_run: bool,
    ) -> Result<Vec<(String, u64)>, OpsError> {
        let mut out = Vec::new();
        for queue in [self.authorize.retyped::<()>(), self.detail.retyped::<()>()] {
            let n = if dry_run {
                // The purge deletes letters at or below both the age cutoff and the cursor.
                let reviewed = UNIX_EPOCH
                    + Duration::from_millis(queue.dead_review_cursor().await?)
                    + Duration::from_millis(1);
                let cutoff = SystemTime::now()
                    .checked_sub(older_than)
                    .map_or(UNIX_EPOCH, |c| c.min(reviewed));
                let filter = JobFilter {
                    before: Some(cutoff),
                    ..JobFilter::default()
                };
                queue.list_dead(&filter, usize::MAX).await?.len() as u64
            } else {
                queue.purge_reviewed_dead(older_than).await? as u64
            };
            out.push((queue.name().to_string(), n));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_needs_all_exactly_when_nothing_narrows_it_and_force_only_for_dead() {
        let everything = Selection::default();
        let one_date = Selection {
            date: NaiveDate::from_ymd_opt(2026, 1, 2),
            ..Selection::default()
        };
        let why = |r: Result<(), OpsError>| r.map_err(|e| e.to_string()).err();
        assert!(why(everything.check(Source::Failed, false, false))
            .is_some_and(|e| e.starts_with("nothing selected")));
        assert!(why(one_date.check(Source::Failed, true, false))
            .is_some_and(|e| e.contains("--all cannot be combined")));
        assert!(why(everything.check(Source::Reauth, true, true))
            .is_some_and(|e| e.contains("--force applies to dead letters only")));
        assert!(everything.check(Source::Dead, true, true).is_ok());
        assert!(one_date.check(Source::Failed, false, false).is_ok());
    }

    #[test]
    fn a_requeue_summary_names_the_source_and_every_flag_as_given() {
        let selection = Selection {
            logins: vec![LoginId::parse("11111111-1111-4111-8111-111111111111").unwrap()],
            code: None,
            date: NaiveDate::from_ymd_opt(2026, 1, 2),
        };
        assert_eq!(
            selection.summary(Source::Reauth, Some("invalid_login"), false, false),
            "reauth --login 11111111-1111-4111-8111-111111111111 --code invalid_login --date 2026-01-02"
        );
        assert_eq!(
            Selection::default().summary(Source::Dead, None, true, true),
            "dead --all --force"
        );
        assert_eq!(Source::Failed.entries(), "failed records");
        assert_eq!(Source::Dead.entries(), "dead letters");
    }

    #[test]
    fn a_pending_member_round_trips_claim_date_and_login() {
        let login = LoginId::parse("5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10").unwrap();
        let date = NaiveDate::from_ymd_opt(2025, 3, 4).unwrap();
        let member = format!("abc|{date}|{}", login.as_str());
        assert_eq!(parse_pending(&member), Some(("abc".into(), date, login)));
        assert_eq!(parse_pending("garbage"), None);
    }

    #[test]
    fn the_requeue_dedupe_key_is_unique_per_claim() {
        let login = LoginId::parse("5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10").unwrap();
        let date = NaiveDate::from_ymd_opt(2025, 3, 4).unwrap();
        assert_eq!(
            requeue_dedupe_key("c1", date, &login),
            "authorize:5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10:2025-03-04:requeue:c1"
        );
    }
}

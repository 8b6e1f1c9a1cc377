//! Listing for `producer queues list`: a queue's jobs (one page at a time, with a cursor)
//! or the ledger's failed / re-auth records, filtered by typed values. A job's login and
//! date are read from its payload as a [`JobSubject`], never by searching the payload's
//! text, so a LoginId that happens to appear in another field never matches. Reads only.

use std::fmt;

use crate::redis_conn::RedisConn;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::OpsError;
use crate::config::Settings;
use crate::domain::{FlinksCode, LoginId};
use crate::jobs::{JobSubject, AUTHORIZE_QUEUE, DETAIL_QUEUE};
use crate::keys::KeySpace;
use crate::ledger::{IndexEntry, IndexFilter, IndexKind, Ledger, LedgerOutcome};
use crate::queue::{JobInfo, JobState};
use crate::stores::Stores;

/// Every job state, in listing order.
pub const ALL_STATES: [JobState; 4] = [
    JobState::Ready,
    JobState::Delayed,
    JobState::InFlight,
    JobState::Dead,
];

/// Which jobs to list: every set filter must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobQuery {
    /// The queues, in listing order.
    pub queues: Vec<&'static str>,
    /// The states, in listing order.
    pub states: Vec<JobState>,
    /// Only jobs of this login.
    pub login: Option<LoginId>,
    /// Only jobs of this routine date.
    pub date: Option<NaiveDate>,
    /// Only jobs whose last error names this FlinksCode.
    pub code: Option<FlinksCode>,
}

impl JobQuery {
    /// One queue's jobs in `state` (every state when `None`).
    pub fn queue(name: &'static str, state: Option<JobState>) -> Self {
        Self {
            queues: vec![name],
            states: state.map_or_else(|| ALL_STATES.to_vec(), |s| vec![s]),
            login: None,
            date: None,
            code: None,
        }
    }

    /// The dead letters of the authorize and detail queues.
    pub fn dead() -> Self {
        Self {
            queues: vec![AUTHORIZE_QUEUE, DETAIL_QUEUE],
            ..Self::queue(AUTHORIZE_QUEUE, Some(JobState::Dead))
        }
    }

    fn matches(&self, job: &JobInfo) -> bool {
        let subject = JobSubject::from_payload(&job.payload);
        let code = self.code.as_ref().map(FlinksCode::as_str);
        self.login
            .as_ref()
            .is_none_or(|l| subject.as_ref().is_some_and(|s| &s.login_id == l))
            && self
                .date
                .is_none_or(|d| subject.as_ref().is_some_and(|s| s.routine_date == d))
            && code.is_none_or(|c| job.last_error.as_deref().is_some_and(|e| e.contains(c)))
    }
}

/// Where the next page of a job listing starts: `<queue>:<state>:<position>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    queue: &'static str,
    state: JobState,
    position: usize,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.queue,
            self.state.as_str(),
            self.position
        )
    }
}

impl Cursor {
    /// Parses a cursor printed by an earlier page of the same listing.
    pub fn parse(raw: &str, query: &JobQuery) -> Result<Self, OpsError> {
        let invalid = |why: &str| OpsError::InvalidCursor(raw.to_string(), why.to_string());
        let mut parts = raw.trim().splitn(3, ':');
        let (Some(queue), Some(state), Some(position)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(
                "expected QUEUE:STATE:POSITION as printed by the last page",
            ));
        };
        let queue = *query
            .queues
            .iter()
            .find(|q| **q == queue)
            .ok_or_else(|| invalid("its queue is not one this listing reads"))?;
        let state = JobState::parse(state)
            .filter(|s| query.states.contains(s))
            .ok_or_else(|| invalid("its state is not one this listing reads"))?;
        let position = position
            .parse()
            .map_err(|_| invalid("its position is not a number"))?;
        Ok(Self {
            queue,
            state,
            position,
        })
    }
}

/// One job as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobRow {
    /// Its queue.
    pub queue: String,
    /// Its id.
    pub id: String,
    /// `ready`, `delayed`, `in_flight` or `dead`.
    pub state: &'static str,
    /// The login its payload names.
    pub login_id: Option<String>,
    /// The routine date its payload names.
    pub date: Option<NaiveDate>,
    /// Deliveries so far.
    pub attempts: u32,
    /// The last error (dead letters: why it died).
    pub last_error: Option<String>,
    /// The delivery holding its lease (in flight only).
    pub owner: Option<String>,
    /// When it was enqueued (ms since the epoch).
    pub enqueued_at_ms: Option<u64>,
    /// Seconds since it was enqueued.
    pub age_seconds: Option<u64>,
    /// Delayed: due; in flight: lease deadline; dead: died (ms since the epoch).
    pub at_ms: Option<u64>,
    /// The raw payload when it names no login and date (poison jobs, other kinds).
    pub poison_payload: Option<String>,
}

impl JobRow {
    /// The row of `job` of `queue`, its age counted up to `now`.
    pub fn new(queue: &str, job: JobInfo, now: DateTime<Utc>) -> Self {
        let subject = JobSubject::from_payload(&job.payload);
        let now_ms = now.timestamp_millis().max(0) as u64;
        Self {
            queue: queue.to_string(),
            id: job.id.as_str().to_string(),
            state: job.state.as_str(),
            login_id: subject.as_ref().map(|s| s.login_id.as_str().to_string()),
            date: subject.as_ref().map(|s| s.routine_date),
            attempts: job.attempts,
            last_error: job.last_error,
            owner: job.owner,
            enqueued_at_ms: job.enqueued_at_ms,
            age_seconds: job
                .enqueued_at_ms
                .map(|at| now_ms.saturating_sub(at) / 1_000),
            at_ms: job.at_ms,
            poison_payload: subject.is_none().then_some(job.payload),
        }
    }
}

/// One page of a job listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobRow>,
    /// The `--cursor` of the next page; `None` when this page reached the end.
    pub next_cursor: Option<String>,
}

/// Up to `limit` jobs matching `query`, from `cursor` (the start when `None`).
pub async fn jobs(
    conn: &RedisConn,
    keys: &KeySpace,
    settings: &Settings,
    query: &JobQuery,
    cursor: Option<&str>,
    limit: usize,
) -> Result<JobPage, OpsError> {
    let mut from = cursor.map(|c| Cursor::parse(c, query)).transpose()?;
    let matches = |job: &JobInfo| query.matches(job);
    let now = Utc::now();
    let mut rows = Vec::new();
    let stores = Stores::open(conn.clone(), keys, settings);
    for &queue_name in &query.queues {
        let Some(queue) = stores.queue::<()>(queue_name) else {
            continue;
        };
        for &state in &query.states {
            let start = match &from {
                Some(c) if (c.queue, c.state) == (queue_name, state) => c.position,
                Some(_) => continue,
                None => 0,
            };
            from = None;
            let here = |position| Cursor {
                queue: queue_name,
                state,
                position,
            };
            if rows.len() == limit {
                return Ok(page(rows, Some(here(start))));
            }
            let (jobs, next) = queue
                .list_from(state, &matches, start, limit - rows.len())
                .await?;
            rows.extend(jobs.into_iter().map(|j| JobRow::new(queue_name, j, now)));
            if let Some(next) = next {
                return Ok(page(rows, Some(here(next))));
            }
        }
    }
    Ok(page(rows, None))
}

fn page(jobs: Vec<JobRow>, next: Option<Cursor>) -> JobPage {
    JobPage {
        jobs,
        next_cursor: next.map(|c| c.to_string()),
    }
}

/// One failed or re-auth record as listed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordRow {
    /// The login.
    pub login_id: String,
    /// The routine date.
    pub date: NaiveDate,
    /// `failed` or `needs_reauth`.
    pub kind: &'static str,
    /// Attempts spent (failed only).
    pub attempts: Option<u32>,
    /// The FlinksCode, when Flinks gave one.
    pub flinks_code: Option<String>,
    /// The HTTP status (failed only).
    pub http_status: Option<u16>,
    /// Flinks' message or the error.
    pub message: Option<String>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

impl From<IndexEntry> for RecordRow {
    fn from(e: IndexEntry) -> Self {
        let (attempts, http_status) = match &e.outcome {
            LedgerOutcome::Failed {
                attempts,
                http_status,
                ..
            } => (Some(*attempts), *http_status),
            _ => (None, None),
        };
        Self {
            login_id: e.login_id.as_str().to_string(),
            date: e.date,
            kind: e.outcome.kind(),
            attempts,
            flinks_code: e.outcome.flinks_code().map(|c| c.as_str().to_string()),
            http_status,
            message: e.outcome.message().map(str::to_string),
            at: e.outcome.at(),
        }
    }
}

/// The records of the `kind` index matching `filter`, newest first.
pub async fn records(
    conn: &RedisConn,
    keys: &KeySpace,
    kind: IndexKind,
    filter: &IndexFilter,
) -> Result<Vec<RecordRow>, OpsError> {
    let ledger = Ledger::new(conn.clone(), keys);
    let entries = match kind {
        IndexKind::Failed => ledger.list_failed(filter).await?,
        IndexKind::Reauth => ledger.list_reauth(filter).await?,
    };
    Ok(entries.into_iter().map(RecordRow::from).collect())
}

/// What `queues list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListTarget {
    /// The authorize queue's jobs.
    Authorize,
    /// The detail queue's jobs.
    Detail,
    /// Failed records (all dates).
    Failed,
    /// Records needing re-authentication (all dates).
    Reauth,
    /// Dead letters of both queues, with their last error.
    Dead,
}

/// A job state an operator names (`queues list --state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListState {
    /// Ready to run.
    Ready,
    /// Waiting for a retry or a poll.
    Delayed,
    /// Leased to a worker.
    InFlight,
    /// Dead letters.
    Dead,
}

impl From<ListState> for JobState {
    fn from(state: ListState) -> Self {
        match state {
            ListState::Ready => JobState::Ready,
            ListState::Delayed => JobState::Delayed,
            ListState::InFlight => JobState::InFlight,
            ListState::Dead => JobState::Dead,
        }
    }
}

/// One `queues list` request: what, which filters, how many, from where.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// What to list.
    pub target: ListTarget,
    /// Only jobs in this state (jobs only; every state when `None`).
    pub state: Option<ListState>,
    /// Only this login.
    pub login: Option<LoginId>,
    /// Only this FlinksCode (jobs: the last error names it).
    pub code: Option<FlinksCode>,
    /// Only this routine date.
    pub date: Option<NaiveDate>,
    /// At most this many entries.
    pub limit: usize,
    /// Where a job listing's last page ended.
    pub cursor: Option<String>,
}

/// A page of records or of jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Listing {
    /// Failed or re-auth records, newest first.
    Records(Vec<RecordRow>),
    /// A page of jobs.
    Jobs(JobPage),
}

/// The page `request` asks for; a state or cursor given for records, or a state other
/// than dead for the dead letters, is a usage error.
pub async fn list(
    conn: &RedisConn,
    keys: &KeySpace,
    settings: &Settings,
    request: &ListRequest,
) -> Result<Listing, OpsError> {
    let state = request.state.map(JobState::from);
    let usage = |why: &str| Err(OpsError::Usage(why.into()));
    let mut query = match request.target {
        ListTarget::Failed | ListTarget::Reauth => {
            if request.state.is_some() || request.cursor.is_some() {
                return usage("--state and --cursor apply to jobs, not records");
            }
            let kind = if request.target == ListTarget::Failed {
                IndexKind::Failed
            } else {
                IndexKind::Reauth
            };
            let filter = IndexFilter {
                date: request.date,
                code: request.code.clone(),
                login: request.login.clone(),
                limit: Some(request.limit),
            };
            return Ok(Listing::Records(records(conn, keys, kind, &filter).await?));
        }
        ListTarget::Dead if state.is_some_and(|s| s != JobState::Dead) => {
            return usage("`queues list dead` lists dead letters only");
        }
        ListTarget::Dead => JobQuery::dead(),
        ListTarget::Authorize => JobQuery::queue(AUTHORIZE_QUEUE, state),
        ListTarget::Detail => JobQuery::queue(DETAIL_QUEUE, state),
    };
    query.login.clone_from(&request.login);
    (query.date, query.code) = (request.date, request.code.clone());
    let cursor = request.cursor.as_deref();
    let page = jobs(conn, keys, settings, &query, cursor, request.limit).await?;
    Ok(Listing::Jobs(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_names_what_is_wrong_with_a_bad_one() {
        let query = JobQuery::dead();
        let cursor = Cursor::parse("detail:dead:500", &query).unwrap();
        assert_eq!(cursor.to_string(), "detail:dead:500");
        for (raw, why) in [
            ("detail", "expected QUEUE:STATE:POSITION"),
            ("results:dead:1", "queue"),
            ("detail:ready:1", "state"),
            ("detail:dead:x", "position"),
        ] {
            let err = Cursor::parse(raw, &query).unwrap_err().to_string();
            assert!(err.contains(raw) && err.contains(why), "{raw}: {err}");
        }
    }
}

//! The job payloads and queue names of the routine, shared by the producer (which enqueues
//! authorize jobs) and the worker (which runs both kinds and chains one into the other).
//!
//! Queue names and dedupe keys are explicit constants, never Rust type paths, so a rename
//! in the code can never orphan queued jobs. Payloads carry a version-tolerant shape
//! (`#[serde(default)]` on later fields) so a rolling upgrade can read older jobs.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::domain::{LoginId, RequestId};
use crate::ledger::PayloadLayout;
use crate::queue::{Backoff, PayloadElement, QueueConfig, Supersede};

/// Queue of cached-Authorize jobs, one per (LoginId, routine date).
pub const AUTHORIZE_QUEUE: &str = "authorize";
/// Queue of GetAccountsDetail jobs (first call and async polls).
pub const DETAIL_QUEUE: &str = "detail";

/// Queue of SetScheduledRefresh jobs: a login's nightly refresh switched on or off at
/// Flinks after the registry changed (see [`crate::scheduled_refresh`]).
pub const DEACTIVATION_QUEUE: &str = "deactivation";

/// The configuration of one of the routine's queues, from settings: the producer (which
/// enqueues) and the worker (which consumes) must agree on it.
pub fn queue_config(settings: &Settings, name: &str) -> QueueConfig {
    let mut config = QueueConfig::new(name).with_lease(settings.worker_lease);
    config.max_attempts = settings.max_attempts;
    config.backoff = Backoff {
        base: settings.retry_base_delay,
        max: settings.retry_max_delay,
        jitter: 0.2,
    };
    config
}

/// The login and routine date a job payload names: the identity every job kind of the
/// routine carries, read without decoding (or depending on) the rest of the payload, so ops
/// listings and the dead-letter review accept payloads of any kind and version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSubject {
    /// The login (`l` in an authorize payload).
    #[serde(alias = "l")]
    pub login_id: LoginId,
    /// The routine date (`d` in an authorize payload).
    #[serde(alias = "d")]
    pub routine_date: NaiveDate,
}

impl JobSubject {
    /// The subject of a raw payload, `None` when it names no valid login and date (a
    /// poison payload, or a job kind without a date such as SetScheduledRefresh).
    pub fn from_payload(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok().or_else(|| {
            // An authorize array with a third element (its restart count): a struct reads
            // from an array only of exactly its own length.
            let (login_id, routine_date, _): (LoginId, NaiveDate, serde::de::IgnoredAny) =
                serde_json::from_str(payload).ok()?;
            Some(Self {
                login_id,
                routine_date,
            })
        })
    }
}

/// Authorize `login_id` for `routine_date`.
///
/// The payload is a JSON array, `["<LoginId>","YYYY-MM-DD"]` (53 bytes for a Flinks LoginId),
/// with the restart count third once it is not 0: a million waiting jobs are a million
/// such hashes, and their size decides their cost. A hash stays in Redis' compact listpack
/// encoding only while every value is at most `hash-max-listpack-value` bytes (64 by
/// default; above it a job's hash costs about 368 bytes instead of 200), and within it
/// Redis rounds a hash up to its allocator's size classes: the 8 bytes the array saves
/// against the object with one-letter names (`{"l":...,"d":...}`, 61 bytes) move a job's
/// hash one class down, 16 bytes less per job. The date stays text, so a payload still
/// reads as what it is. Payloads of earlier versions (objects, names one letter or spelled
/// out) still read, and an earlier version reads the array: serde reads a struct from a
/// sequence of its fields in order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AuthorizeJob {
    /// The login to refresh.
    #[serde(rename = "l", alias = "login_id")]
    pub login_id: LoginId,
    /// The routine date this job belongs to (the ledger's key).
    #[serde(rename = "d", alias = "routine_date")]
    pub routine_date: NaiveDate,
    /// How many times a lapsed RequestId (SESSION_NONEXISTENT / SESSION_EXPIRED) already
    /// restarted this login's authorize for this date; capped at
    /// [`MAX_SESSION_RESTARTS`]. Left out of the payload while 0, as nearly every job has it.
    #[serde(rename = "r", alias = "session_restarts", default)]
    pub session_restarts: u32,
}

impl Serialize for AuthorizeJob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple as _;
        let restarted = self.session_restarts != 0;
        let mut fields = serializer.serialize_tuple(if restarted { 3 } else { 2 })?;
        fields.serialize_element(&self.login_id)?;
        fields.serialize_element(&self.routine_date)?;
        if restarted {
            fields.serialize_element(&self.session_restarts)?;
        }
        fields.end()
    }
}

/// A lapsed RequestId restarts the authorize at most this many times per login and date.
pub const MAX_SESSION_RESTARTS: u32 = 2;

impl AuthorizeJob {
    /// Where the payload carries the login and the routine date, for the ledger check that
    /// rides the job's lease ([`crate::ledger::Ledger::authorize_check_reads`]).
    pub const LAYOUT: PayloadLayout = PayloadLayout {
        login: PayloadElement::First,
        date: PayloadElement::Second,
    };

    /// A first authorize for the date.
    pub fn new(login_id: LoginId, routine_date: NaiveDate) -> Self {
        Self {
            login_id,
            routine_date,
            session_restarts: 0,
        }
    }

    /// The per-job dedupe key earlier versions gave the routine's authorize; the routine
    /// passes it only while such keys may still be alive (see
    /// [`crate::queue::Queue::legacy_dedupe_open`]): its dedupe record is now the
    /// supersede entry ([`AuthorizeJob::supersede`]).
    pub fn legacy_dedupe_key(&self) -> String {
        format!("authorize:{}:{}", self.login_id.as_str(), self.routine_date)
    }

    /// One routine authorize per login and date, and one waiting per login: the routine's
    /// job of a later date replaces this login's job of an earlier date while that one
    /// still waits (not once in flight), and a date earlier than the login's latest is not
    /// queued at all. Ops requeues and session restarts carry no supersede key but dedupe
    /// keys of their own ([`AuthorizeJob::restart_dedupe_key`]): they belong to their own
    /// date's run and never collide with an earlier generation of the same login and date.
    pub fn supersede(&self) -> Supersede {
        Supersede {
            key: format!("authorize:{}", self.login_id.as_str()),
            rank: i64::from(self.routine_date.num_days_from_ce()),
        }
    }

    /// The routine date whose supersede rank is `rank` (the inverse of
    /// [`AuthorizeJob::supersede`]'s), or `None` when no date has it.
    pub fn date_of_rank(rank: i64) -> Option<NaiveDate> {
        i32::try_from(rank)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
    }

    /// The dedupe key of the fresh authorize that the job `failing_job_id` (an authorize or
    /// detail job whose session lapsed) starts: one restart per failing job however often
    /// that job is redelivered, and never a collision with an earlier run of the same login
    /// and date (a requeue, a reconnect).
    pub fn restart_dedupe_key(&self, failing_job_id: &str) -> String {
        format!(
            "authorize:{}:{}:restart-from:{failing_job_id}",
            self.login_id.as_str(),
            self.routine_date
        )
    }
}

/// Tell Flinks to switch `login_id`'s nightly refresh to `activate`, for the registry
/// change `stamp`. A job whose stamp is no longer the login's latest is superseded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRefreshJob {
    /// The login.
    pub login_id: LoginId,
    /// The `IsActivated` value to send.
    pub activate: bool,
    /// The registry change this job carries out (`flinks_stamp` of the login's hash).
    pub stamp: u64,
}

impl ScheduledRefreshJob {
    /// One job per registry change, however often the change is re-enqueued.
    pub fn dedupe_key(&self) -> String {
        format!(
            "scheduled-refresh:{}:{}",
            self.login_id.as_str(),
            self.stamp
        )
    }
}

/// Fetch the accounts detail of an authorized session (or poll it, after a 202).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailJob {
    /// The login being refreshed.
    pub login_id: LoginId,
    /// The routine date.
    pub routine_date: NaiveDate,
    /// The session from Authorize.
    pub request_id: RequestId,
    /// `Login.LastRefresh` from the Authorize answer (decides "stale").
    #[serde(default)]
    pub last_refresh: Option<NaiveDateTime>,
    /// Restart generation inherited from the authorize job.
    #[serde(default)]
    pub session_restarts: u32,
    /// Set once Flinks answered 202: poll the async endpoint instead, since this time.
    #[serde(default)]
    pub polling_since: Option<DateTime<Utc>>,
    /// Polls done so far.
    #[serde(default)]
    pub polls: u32,
}

impl DetailJob {
    /// The dedupe key of the first fetch, chained by the authorize job `authorize_job_id`:
    /// a redelivered authorize job (same id) can never chain a second one, while a requeue
    /// or a session restart (a new job) always can.
    pub fn chained_dedupe_key(authorize_job_id: &str) -> String {
        format!("detail:chained:{authorize_job_id}")
    }

    /// The dedupe key of poll number `polls` of this session.
    pub fn poll_dedupe_key(&self) -> String {
        format!("detail:poll:{}:{}", self.request_id.as_str(), self.polls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> LoginId {
        LoginId::parse("5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10").unwrap()
    }

    #[test]
    fn a_supersede_rank_reads_back_as_its_date_and_no_other_rank_does() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let rank = AuthorizeJob::new(login(), date).supersede().rank;

        assert_eq!(AuthorizeJob::date_of_rank(rank), Some(date));
        assert_eq!(AuthorizeJob::date_of_rank(i64::MAX), None);
        assert_eq!(AuthorizeJob::date_of_rank(i64::from(i32::MAX)), None);
    }

    #[test]
    fn a_first_authorize_payload_is_a_short_array_and_reads_back() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let job = AuthorizeJob::new(login(), date);
        let payload = serde_json::to_string(&job).unwrap();
        assert_eq!(
            payload,
            r#"["5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","2026-11-25"]"#
        );
        assert_eq!(serde_json::from_str::<AuthorizeJob>(&payload).unwrap(), job);
        let restarted = AuthorizeJob {
            session_restarts: 1,
            ..job.clone()
        };
        let payload = serde_json::to_string(&restarted).unwrap();
        assert_eq!(
            payload,
            r#"["5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","2026-11-25",1]"#
        );
        assert_eq!(
            serde_json::from_str::<AuthorizeJob>(&payload).unwrap(),
            restarted
        );
    }

    #[test]
    fn the_payload_starts_with_the_login_and_date_where_its_layout_says() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let (login_text, date_text) = (login().as_str().to_owned(), "2026-11-25".to_owned());
        let mut leading = [String::new(), String::new()];
        leading[usize::from(AuthorizeJob::LAYOUT.login.as_arg()) - 1] = login_text;
        leading[usize::from(AuthorizeJob::LAYOUT.date.as_arg()) - 1] = date_text;
        // The exact text lease reads take their strings from (see `LeaseRead`).
        let start = format!(r#"["{}","{}""#, leading[0], leading[1]);
        for restarts in [0, 2] {
            let job = AuthorizeJob {
                session_restarts: restarts,
                ..AuthorizeJob::new(login(), date)
            };
            let payload = serde_json::to_string(&job).unwrap();
            assert!(payload.starts_with(&start), "{payload}");
        }
    }

    #[test]
    fn authorize_payloads_of_earlier_versions_still_read() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let job = AuthorizeJob::new(login(), date);
        let one_letter = r#"{"l":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","d":"2026-11-25"}"#;
        assert_eq!(
            serde_json::from_str::<AuthorizeJob>(one_letter).unwrap(),
            job
        );
        let one_letter = r#"{"l":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","d":"2026-11-25","r":2}"#;
        assert_eq!(
            serde_json::from_str::<AuthorizeJob>(one_letter)
                .unwrap()
                .session_restarts,
            2
        );
        let spelled = r#"{"login_id":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","routine_date":"2026-11-25","session_restarts":0}"#;
        assert_eq!(serde_json::from_str::<AuthorizeJob>(spelled).unwrap(), job);
        let spelled = r#"{"login_id":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","routine_date":"2026-11-25","session_restarts":2}"#;
        assert_eq!(
            serde_json::from_str::<AuthorizeJob>(spelled)
                .unwrap()
                .session_restarts,
            2
        );
    }

    #[test]
    fn a_payload_array_names_its_subject_and_a_short_or_bad_one_is_refused() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let payload = serde_json::to_string(&AuthorizeJob::new(login(), date)).unwrap();
        assert_eq!(
            JobSubject::from_payload(&payload),
            Some(JobSubject {
                login_id: login(),
                routine_date: date
            })
        );
        let restarted = AuthorizeJob {
            session_restarts: 2,
            ..AuthorizeJob::new(login(), date)
        };
        let payload = serde_json::to_string(&restarted).unwrap();
        assert_eq!(
            JobSubject::from_payload(&payload).map(|s| s.routine_date),
            Some(date)
        );
        for bad in [
            r#"["5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10"]"#,
            r#"["5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","2026-13-45"]"#,
            r#"["5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","2026-11-25","two"]"#,
            r#"[]"#,
        ] {
            assert!(serde_json::from_str::<AuthorizeJob>(bad).is_err(), "{bad}");
            let names_a_subject = bad.contains("two");
            assert_eq!(
                JobSubject::from_payload(bad).is_some(),
                names_a_subject,
                "{bad}"
            );
        }
    }

    #[test]
    fn authorize_dedupe_keys_are_one_per_login_and_date_and_one_per_failing_job() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let job = AuthorizeJob::new(login(), date);
        assert_eq!(
            job.legacy_dedupe_key(),
            "authorize:5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10:2026-11-25"
        );
        let restart = job.restart_dedupe_key("job-1");
        assert!(restart.ends_with(":restart-from:job-1"), "{restart}");
        assert_ne!(restart, job.restart_dedupe_key("job-2"));
    }

    #[test]
    fn a_later_date_ranks_higher_under_the_same_login_key() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let today = AuthorizeJob::new(login(), date).supersede();
        let tomorrow = AuthorizeJob::new(login(), date.succ_opt().unwrap()).supersede();
        assert_eq!(today.key, tomorrow.key);
        assert_eq!(tomorrow.rank, today.rank + 1);
    }

    #[test]
    fn detail_dedupe_keys_follow_the_authorize_job_and_the_session() {
        assert_eq!(
            DetailJob::chained_dedupe_key("job-1"),
            "detail:chained:job-1"
        );
        let detail = DetailJob {
            login_id: login(),
            routine_date: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            request_id: RequestId::new("r-1"),
            last_refresh: None,
            session_restarts: 0,
            polling_since: None,
            polls: 3,
        };
        assert_eq!(detail.poll_dedupe_key(), "detail:poll:r-1:3");
    }

    #[test]
    fn a_subject_is_read_from_either_job_kind_and_none_from_poison() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let authorize = serde_json::to_string(&AuthorizeJob::new(login(), date)).unwrap();
        let subject = JobSubject::from_payload(&authorize).unwrap();
        assert_eq!(
            (subject.login_id.clone(), subject.routine_date),
            (login(), date)
        );
        let detail = r#"{"login_id":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","routine_date":"2026-11-25","request_id":"r"}"#;
        assert!(JobSubject::from_payload(detail).is_some());
        let earlier_authorize =
            r#"{"login_id":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","routine_date":"2026-11-25"}"#;
        assert_eq!(JobSubject::from_payload(earlier_authorize), Some(subject));
        assert_eq!(JobSubject::from_payload("{not json"), None);
        assert_eq!(
            JobSubject::from_payload(r#"{"login_id":"x","routine_date":"2026-11-25"}"#),
            None
        );
    }

    #[test]
    fn an_older_payload_without_new_fields_still_decodes() {
        let job: AuthorizeJob = serde_json::from_str(
            r#"{"login_id":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10","routine_date":"2026-11-25"}"#,
        )
        .unwrap();
        assert_eq!(job.session_restarts, 0);
    }
}

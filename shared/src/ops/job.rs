//! One job by its id, for `producer queues show|delete|promote`: find it in whichever of
//! the routine's queues holds it, then read, delete or run it now through the queue's
//! single-job operations (one Lua step each). Job ids are unique UUIDs, so at most one
//! queue holds a given id.

use crate::redis_conn::RedisConn;
use chrono::Utc;

use super::list::JobRow;
use super::OpsError;
use crate::config::Settings;
use crate::jobs::{AUTHORIZE_QUEUE, DEACTIVATION_QUEUE, DETAIL_QUEUE};
use crate::keys::KeySpace;
use crate::queue::{JobChange, JobId, Queue};
use crate::stores::Stores;

/// The longest job id accepted (the queue makes 12 letters and digits; earlier versions
/// made 16, or 32 hex digits).
const MAX_ID_CHARS: usize = 64;

/// What `queues show|delete|promote` does to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// Read it.
    Show,
    /// Delete it.
    Delete,
    /// Run it now.
    Promote,
}

impl JobAction {
    /// The audited command; `None` for a read.
    pub fn command(self) -> Option<&'static str> {
        match self {
            Self::Show => None,
            Self::Delete => Some("queues delete"),
            Self::Promote => Some("queues promote"),
        }
    }

    /// What the text output says was done.
    pub fn done(self) -> &'static str {
        match self {
            Self::Show => "",
            Self::Delete => "deleted",
            Self::Promote => "promoted (runs next)",
        }
    }

    /// The audit summary of `job` after the action.
    pub fn summary(self, job: &JobRow) -> String {
        match self {
            Self::Delete => format!("{} {} (was {})", job.queue, job.id, job.state),
            _ => format!("{} {}", job.queue, job.id),
        }
    }
}

/// The single-job operations over the routine's queues.
pub struct JobOps {
    queues: Vec<Queue<()>>,
}

impl JobOps {
    /// The operations over the authorize, detail and deactivation queues.
    pub fn new(conn: &RedisConn, keys: &KeySpace, settings: &Settings) -> Self {
        let stores = Stores::open(conn.clone(), keys, settings);
        let queues = [AUTHORIZE_QUEUE, DETAIL_QUEUE, DEACTIVATION_QUEUE];
        let queues = queues
            .iter()
            .filter_map(|name| stores.queue(name))
            .collect();
        Self { queues }
    }

    /// Does `action` to the job `id` and returns it as it was.
    pub async fn apply(&self, action: JobAction, id: &str) -> Result<JobRow, OpsError> {
        match action {
            JobAction::Show => self.show(id).await,
            JobAction::Delete => self.delete(id).await,
            JobAction::Promote => self.promote(id).await,
        }
    }

    /// The job `id`, with its queue and state.
    pub async fn show(&self, id: &str) -> Result<JobRow, OpsError> {
        Ok(self.find(id).await?.1)
    }

    /// Deletes the job `id` (ready, delayed or dead; never one a worker holds) and returns
    /// it as it was.
    pub async fn delete(&self, id: &str) -> Result<JobRow, OpsError> {
        self.change(id, false).await
    }

    /// Runs the delayed job `id` next (front of its ready list) and returns it as it was.
    pub async fn promote(&self, id: &str) -> Result<JobRow, OpsError> {
        self.change(id, true).await
    }

    async fn change(&self, id: &str, promote: bool) -> Result<JobRow, OpsError> {
        let (queue, row) = self.find(id).await?;
        let job_id = JobId::from(id);
        let change = if promote {
            queue.promote_job(&job_id).await?
        } else {
            queue.delete_job(&job_id).await?
        };
        match change {
            JobChange::Done(_) => Ok(row),
            JobChange::Unknown => Err(OpsError::JobNotFound(id.to_string())),
            JobChange::Refused(state) if promote => Err(OpsError::JobNotDelayed {
                id: row.id,
                state: state.as_str(),
            }),
            JobChange::Refused(_) => Err(OpsError::JobInFlight {
                id: row.id,
                worker: row.owner.unwrap_or_default(),
            }),
        }
    }

    async fn find(&self, id: &str) -> Result<(&Queue<()>, JobRow), OpsError> {
        let valid = !id.is_empty()
            && id.chars().count() <= MAX_ID_CHARS
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(OpsError::InvalidJobId(id.escape_debug().to_string()));
        }
        let job_id = JobId::from(id);
        for queue in &self.queues {
            if let Some(job) = queue.job(&job_id).await? {
                return Ok((queue, JobRow::new(queue.name(), job, Utc::now())));
            }
        }
        Err(OpsError::JobNotFound(id.to_string()))
    }
}

//! One job by its id, for `producer queues show|delete|promote`: find it in whichever of
//! the routine's queues holds it, then read, delete or run it now through the queue's
//! single-job operations (one Lua step each). Job ids are unique UUIDs, so at most one
//! queue holds a given id.

use chrono::Utc;
use redis::aio::ConnectionManager;

use super::list::JobRow;
use super::OpsError;
use crate::config::Settings;
use crate::jobs::{queue_config, AUTHORIZE_QUEUE, DEACTIVATION_QUEUE, DETAIL_QUEUE};
use crate::keys::KeySpace;
use crate::queue::{JobChange, JobId, Queue};

/// The longest job id accepted (ids the queue makes are 32 hex characters).
const MAX_ID_CHARS: usize = 64;

/// The single-job operations over the routine's queues.
pub struct JobOps {
    queues: Vec<Queue<()>>,
}

impl JobOps {
    /// The operations over the authorize, detail and deactivation queues.
    pub fn new(conn: &ConnectionManager, keys: &KeySpace, settings: &Settings) -> Self {
        let queues = [AUTHORIZE_QUEUE, DETAIL_QUEUE, DEACTIVATION_QUEUE]
            .into_iter()
            .map(|name| Queue::new(conn.clone(), keys, queue_config(settings, name)))
            .collect();
        Self { queues }
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

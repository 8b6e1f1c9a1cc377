//! Operations on one job by its id, for an operator: read it, delete it, or run a delayed
//! job now. Deleting and promoting are one Lua step each (`lua/delete_job.lua`,
//! `lua/promote_job.lua`), so a job a worker fetches meanwhile is either still whole or
//! already gone, never half-deleted; a job in flight is never touched, since its worker
//! would settle a job that no longer exists.

use super::core::Queue;
use super::error::QueueError;
use super::keys::{field, DEAD, DELAYED};
use super::ops::Listed;
use super::scripts;
use super::types::{JobId, JobInfo, JobState};

/// What a single-job operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobChange {
    /// Done; the job was in this state.
    Done(JobState),
    /// Refused, nothing changed: the job is in this state.
    Refused(JobState),
    /// No job with this id in this queue.
    Unknown,
}

impl<T> Queue<T> {
    /// The job `id` with its state, `None` when this queue has no such job.
    pub async fn job(&self, id: &JobId) -> Result<Option<JobInfo>, QueueError> {
        let mut conn = self.conn.clone();
        let (delayed, dead, exists): (Option<f64>, Option<f64>, bool) = redis::pipe()
            .zscore(self.keys.get(DELAYED), id.as_str())
            .zscore(self.keys.get(DEAD), id.as_str())
            .hexists(self.keys.job(id.as_str()), field::PAYLOAD)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        let scored = |at: f64| Listed::scored(id.as_str().to_string(), at as u64);
        let (state, listed) = match (delayed, dead) {
            (Some(at), _) => (JobState::Delayed, scored(at)),
            (_, Some(at)) => (JobState::Dead, scored(at)),
            // A job neither delayed nor dead is in flight or ready; its in-flight entry,
            // named by its id and the delivery holding it, is found among the leases.
            _ if exists => match self
                .leases()
                .await?
                .into_iter()
                .find(|l| l.id == id.as_str())
            {
                Some(lease) => (JobState::InFlight, lease),
                None => (JobState::Ready, Listed::unscored(id.as_str().to_string())),
            },
            _ => return Ok(None),
        };
        let mut found = self.describe(state, vec![listed]).await?;
        Ok(found.pop())
    }

    /// Deletes the job `id`, payload and all, unless a worker holds it (refused as
    /// [`JobState::InFlight`]). A deleted routine job records no outcome: its login stays
    /// pending for that date until the routine or a requeue enqueues it again.
    pub async fn delete_job(&self, id: &JobId) -> Result<JobChange, QueueError> {
        let reply = self.single(&scripts::DELETE_JOB, id).await?;
        Ok(match reply {
            None => JobChange::Unknown,
            Some(JobState::InFlight) => JobChange::Refused(JobState::InFlight),
            Some(state) => JobChange::Done(state),
        })
    }

    /// Moves the delayed job `id` to the front of the ready list, so the next fetch runs
    /// it; a job in any other state is refused.
    pub async fn promote_job(&self, id: &JobId) -> Result<JobChange, QueueError> {
        let reply = self.single(&scripts::PROMOTE_JOB, id).await?;
        Ok(match reply {
            None => JobChange::Unknown,
            Some(JobState::Delayed) => JobChange::Done(JobState::Delayed),
            Some(state) => JobChange::Refused(state),
        })
    }

    async fn single(
        &self,
        script: &redis::Script,
        id: &JobId,
    ) -> Result<Option<JobState>, QueueError> {
        let mut inv = self.invocation(script);
        inv.arg(id.as_str());
        let state: String = self.run(&inv).await?;
        Ok(JobState::parse(&state))
    }
}

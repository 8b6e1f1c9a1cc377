//! Every routine job the queue buries must still end in an outcome for its (LoginId,
//! date). The handlers record one before they give up, but two paths bury a job without
//! running it to the end: the reaper, when a lease expires on the last allowed attempt
//! (its worker died mid-job, e.g. killed during a crash loop), and the backend, when a
//! handler's Redis writes kept failing. Without this task such a login would stay
//! "pending" in the report forever.
//!
//! Every worker runs [`spawn`]: every `interval` it reads the dead letters of the
//! `authorize` and `detail` queues buried after the queue's review cursor
//! ([`Queue::dead_review_cursor`]) and records a `failed` ledger outcome ("dead-lettered:
//! <last error>") for each whose (LoginId, date) has **no outcome at all**, in one atomic
//! step ([`Ledger::record_if_absent`]). The rule never compares clocks: an outcome a job
//! recorded before it died (a re-auth, a failure with its FlinksCode) is the right one and
//! is kept. A requeue clears the outcome it re-runs (see `shared::ops::requeue`), so a
//! requeued job that dies is recorded afresh.
//!
//! An authorize letter whose chained detail job is still alive is left for a later pass:
//! that detail job will record the outcome. The cursor only moves past letters that are
//! settled, so such a letter is read again until it is. Letters are always buried above
//! the cursor with unique scores, so neither a burst of burials in one millisecond nor a
//! Redis clock that went backwards after a failover can hide one from the reconciler.
//!
//! Recording is idempotent, so workers racing on the same letter are harmless. Payloads
//! that do not decode (poison) name no login; they stay in the dead letters for
//! `producer queues list dead`.

use std::time::Duration;

use chrono::Utc;
use shared::jobs::{DetailJob, JobSubject, AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::keys::KeySpace;
use shared::ledger::{Ledger, LedgerOutcome, Overwrite};
use shared::outcomes::Outcomes;
use shared::queue::{JobId, JobInfo, Queue, QueueConfig};
use shared::redis_conn::RedisConn;
use tokio_util::sync::CancellationToken;

/// Dead letters read per range read.
const PAGE: usize = 1_000;

/// Range reads per queue and pass, so one pass over a huge backlog stays bounded.
const MAX_PAGES_PER_PASS: usize = 100;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one letter came to.
enum Review {
    /// A `failed` outcome was recorded for it.
    Recorded,
    /// Nothing to do: an outcome exists, or the payload names no login.
    Settled,
    /// Not yet: its chained detail job is still alive.
    Deferred,
}

/// Turns buried routine jobs into `failed` outcomes.
#[derive(Clone)]
pub struct DeadLetterReconciler {
    conn: RedisConn,
    keys: KeySpace,
    ledger: Ledger,
    outcomes: Outcomes,
    page: usize,
}

impl DeadLetterReconciler {
    /// A reconciler for the namespace of `keys`.
    pub fn new(conn: RedisConn, keys: &KeySpace) -> Self {
        Self {
            ledger: Ledger::new(conn.clone(), keys),
            outcomes: Outcomes::new(conn.clone(), keys),
            conn,
            keys: keys.clone(),
            page: PAGE,
        }
    }

    /// Reads `page` letters per range read instead of the default (tests).
    pub fn with_page(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    /// One pass over both queues; returns how many outcomes it recorded.
    pub async fn reconcile_once(&self) -> Result<usize, BoxError> {
        let mut recorded = 0;
        // Detail first: a chain's later step knows best why it failed.
        for name in [DETAIL_QUEUE, AUTHORIZE_QUEUE] {
            recorded += self.reconcile_queue(name).await?;
        }
        Ok(recorded)
    }

    fn queue(&self, name: &str) -> Queue<()> {
        Queue::new(self.conn.clone(), &self.keys, QueueConfig::new(name))
    }

    async fn reconcile_queue(&self, name: &str) -> Result<usize, BoxError> {
        let queue = self.queue(name);
        let start = queue.dead_review_cursor().await?;
        let mut read_to = start;
        // Where the cursor may move: the last score before the first deferred letter.
        let mut settled_to = start;
        let mut deferred = false;
        let mut recorded = 0;
        for _ in 0..MAX_PAGES_PER_PASS {
            let page = queue.dead_after(read_to, self.page).await?;
            let Some(through) = page.through else {
                break;
            };
            for letter in &page.letters {
                let score = letter.at_ms.unwrap_or(through);
                match self.review(name, letter).await? {
                    Review::Recorded => recorded += 1,
                    Review::Settled => {}
                    Review::Deferred => {
                        if !deferred {
                            deferred = true;
                            settled_to = settled_to.min(score.saturating_sub(1));
                        }
                        continue;
                    }
                }
                if !deferred {
                    settled_to = settled_to.max(score);
                }
            }
            if !deferred {
                // Letters deleted while the page was read are settled too.
                settled_to = settled_to.max(through);
            }
            read_to = through;
        }
        if settled_to > start {
            queue.advance_dead_review_cursor(settled_to).await?;
        }
        Ok(recorded)
    }

    async fn review(&self, name: &str, letter: &JobInfo) -> Result<Review, BoxError> {
        let Some(subject) = JobSubject::from_payload(&letter.payload) else {
            return Ok(Review::Settled);
        };
        if self
            .ledger
            .has_outcome(subject.routine_date, &subject.login_id)
            .await?
        {
            return Ok(Review::Settled);
        }
        if name == AUTHORIZE_QUEUE && self.detail_chain_alive(&letter.id).await? {
            return Ok(Review::Deferred);
        }
        let outcome = LedgerOutcome::Failed {
            flinks_code: None,
            http_status: None,
            message: format!(
                "dead-lettered in the {name} queue: {}",
                letter.last_error.as_deref().unwrap_or("no error recorded")
            ),
            attempts: letter.attempts,
            at: Utc::now(),
            reason: None,
        };
        if !self
            .outcomes
            .record(
                subject.routine_date,
                &subject.login_id,
                &outcome,
                Overwrite::Nothing,
            )
            .await?
        {
            return Ok(Review::Settled);
        }
        tracing::warn!(
            login = %subject.login_id.fingerprint(),
            date = %subject.routine_date,
            queue = name,
            "a dead-lettered job was recorded as failed"
        );
        Ok(Review::Recorded)
    }

    /// True while the detail job that authorize job `id` chained is still to run: it will
    /// record the outcome (or be buried and reconciled itself).
    async fn detail_chain_alive(&self, id: &JobId) -> Result<bool, BoxError> {
        let detail = self.queue(DETAIL_QUEUE);
        let key = DetailJob::chained_dedupe_key(id.as_str());
        Ok(match detail.dedupe_holder(&key).await? {
            Some(holder) => detail.is_alive(&holder).await?,
            None => false,
        })
    }
}

/// Runs [`DeadLetterReconciler::reconcile_once`] every `interval` until `shutdown`.
pub fn spawn(
    reconciler: DeadLetterReconciler,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = reconciler.reconcile_once().await {
                tracing::warn!(error.message = %error, "dead-letter reconciliation failed; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

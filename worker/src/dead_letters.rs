//! Every routine job the queue buries must still end in an outcome for its (LoginId,
//! date). The handlers record one before they give up, but two paths bury a job without
//! running it to the end: the reaper, when a lease expires on the last allowed attempt
//! (its worker died mid-job, e.g. killed during a crash loop), and the backend, when a
//! handler's Redis writes kept failing. Without this task such a login would stay
//! "pending" in the report forever.
//!
//! Every worker runs [`spawn`]: every `interval` it reads the dead letters of the
//! `authorize` and `detail` queues buried since a watermark kept in Redis, and records a
//! `failed` ledger outcome ("dead-lettered: <last error>") for each whose (LoginId, date)
//! has none yet. Recording is idempotent, so workers racing on the same letter are
//! harmless. Payloads that do not decode (poison) name no login; they stay in the dead
//! letters for `producer queues list dead`.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use redis::aio::ConnectionManager;
use serde::Deserialize;
use shared::jobs::{AUTHORIZE_QUEUE, DETAIL_QUEUE};
use shared::keys::KeySpace;
use shared::ledger::{Ledger, LedgerOutcome};
use shared::queue::{Queue, QueueConfig};
use shared::registry::Registry;
use shared::LoginId;
use tokio_util::sync::CancellationToken;

/// Dead letters read per queue and pass.
const PAGE: usize = 1_000;

/// The part of either job payload that names the login and date.
#[derive(Deserialize)]
struct Subject {
    login_id: LoginId,
    routine_date: NaiveDate,
}

/// Turns buried routine jobs into `failed` outcomes.
#[derive(Clone)]
pub struct DeadLetterReconciler {
    conn: ConnectionManager,
    keys: KeySpace,
    ledger: Ledger,
    registry: Registry,
}

impl DeadLetterReconciler {
    /// A reconciler for the namespace of `keys`.
    pub fn new(conn: ConnectionManager, keys: &KeySpace) -> Self {
        Self {
            ledger: Ledger::new(conn.clone(), keys),
            registry: Registry::new(conn.clone(), keys),
            conn,
            keys: keys.clone(),
        }
    }

    /// One pass over both queues; returns how many outcomes it recorded.
    pub async fn reconcile_once(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let mut recorded = 0;
        for name in [AUTHORIZE_QUEUE, DETAIL_QUEUE] {
            recorded += self.reconcile_queue(name).await?;
        }
        Ok(recorded)
    }

    async fn reconcile_queue(
        &self,
        name: &str,
    ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let queue: Queue<serde_json::Value> =
            Queue::new(self.conn.clone(), &self.keys, QueueConfig::new(name));
        let watermark_key = self.keys.global(&format!("deadletters:reconciled:{name}"));
        let mut conn = self.conn.clone();
        let since: Option<u64> = redis::cmd("GET")
            .arg(&watermark_key)
            .query_async(&mut conn)
            .await?;
        let letters = queue.dead_since(since.unwrap_or(0), PAGE).await?;
        let mut recorded = 0;
        let mut newest = since.unwrap_or(0);
        for letter in letters {
            newest = newest.max(letter.at_ms.unwrap_or(0));
            let Ok(subject) = serde_json::from_str::<Subject>(&letter.payload) else {
                continue;
            };
            // Skip a login whose outcome is newer than the burial (it was settled after
            // all); an older one (a requeued login whose new job died) is replaced.
            let buried_at = letter.at_ms.unwrap_or(u64::MAX);
            if let Some(existing) = self
                .ledger
                .get(subject.routine_date, &subject.login_id)
                .await?
            {
                if existing.at().timestamp_millis() >= buried_at as i64 {
                    continue;
                }
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
            if self
                .ledger
                .record(subject.routine_date, &subject.login_id, &outcome)
                .await?
            {
                self.registry
                    .record_outcome(&subject.login_id, &outcome)
                    .await?;
                recorded += 1;
                tracing::warn!(
                    login = %subject.login_id.fingerprint(),
                    date = %subject.routine_date,
                    queue = name,
                    "a dead-lettered job was recorded as failed"
                );
            }
        }
        if since != Some(newest) && newest > 0 {
            let _: () = redis::cmd("SET")
                .arg(&watermark_key)
                .arg(newest)
                .query_async(&mut conn)
                .await?;
        }
        Ok(recorded)
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

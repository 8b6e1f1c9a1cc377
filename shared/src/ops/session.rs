//! One operator command's handle on a deployment: its settings, its namespace, who runs
//! it, and one Redis connection opened on first use and shared by every store. A command
//! line holds one [`Session`] per command and reaches Redis only through it, so no binary
//! opens a connection or builds a store itself, and every command opens the stores the
//! way the worker does ([`Stores::open`]).
//!
//! It does not print and does not decide exit codes (see [`super::exit`]).

use chrono::{NaiveDate, Utc};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::job::JobOps;
use super::list::{ListRequest, Listing};
use super::logins::LoginOps;
use super::requeue::Requeuer;
use super::stats::{QueueStats, Snapshot};
use super::OpsError;
use crate::config::Settings;
use crate::control::ControlView;
use crate::domain::RoutineDay;
use crate::events::webhook::{self, RedeliverReport, WebhookClient};
use crate::events::EventsError;
use crate::jobs::AUTHORIZE_QUEUE;
use crate::keys::KeySpace;
use crate::redis_conn::RedisConn;
use crate::report::Reading;
use crate::stores::Stores;

/// An operator command's settings, namespace, actor and lazily opened connection.
pub struct Session {
    settings: Settings,
    keys: KeySpace,
    actor: String,
    conn: OnceCell<RedisConn>,
}

impl Session {
    /// A session of the namespace `settings` name, run by `actor` (sanitized, as the
    /// audit trail stores it).
    pub fn new(settings: Settings, actor: &str) -> Self {
        Self {
            keys: settings.key_space(),
            settings,
            actor: super::audit::sanitize_actor(actor),
            conn: OnceCell::new(),
        }
    }

    /// The same deployment run by another `actor`, on this session's connection (once it
    /// is open): a long-running server (the console) acts for each of its users in turn
    /// without opening a connection per request.
    pub fn for_actor(&self, actor: &str) -> Self {
        Self {
            settings: self.settings.clone(),
            keys: self.keys.clone(),
            actor: super::audit::sanitize_actor(actor),
            conn: self.conn.clone(),
        }
    }

    /// The session's connection, opened (and the layout checked) on first use.
    pub async fn connection(&self) -> Result<RedisConn, OpsError> {
        self.conn().await
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Who runs the command, as the audit trail stores it.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The namespace's keys.
    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// The connection, opened on first use (fails fast, naming the redacted URL), after
    /// checking the namespace's key layout and moving what an older version stored (the
    /// registry's sets, queued jobs) to the current one, as the worker does at start, so
    /// every command sees it.
    async fn conn(&self) -> Result<RedisConn, OpsError> {
        // Boxed: this future would otherwise nest inside every command's, past the
        // compiler's type depth limit.
        let connect = || -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> {
            Box::pin(async {
                let conn = crate::redis_conn::connect(&self.settings.redis).await?;
                crate::layout::prepare(&conn, &self.keys).await?;
                Stores::open(conn.clone(), &self.keys, &self.settings)
                    .migrate_queues()
                    .await?;
                Ok::<_, OpsError>(conn)
            })
        };
        Ok(self.conn.get_or_try_init(connect).await?.clone())
    }

    /// The stores of the namespace, on the session's connection.
    pub async fn stores(&self) -> Result<Stores, OpsError> {
        Ok(Stores::open(self.conn().await?, &self.keys, &self.settings))
    }

    /// The routine date `day` names (today in ROUTINE_TZ when absent).
    pub fn date(&self, day: Option<RoutineDay>) -> NaiveDate {
        day.unwrap_or(RoutineDay::Today)
            .resolve(Utc::now(), self.settings.routine_tz)
    }

    /// Appends one entry to the audit trail: `command` with its argument summary `args`
    /// (never secrets), `count` items affected and `failed` items that failed.
    pub async fn audit(
        &self,
        command: &str,
        args: impl Into<String>,
        count: usize,
        failed: usize,
    ) -> Result<(), OpsError> {
        let audit = self.stores().await?.audit;
        audit
            .record(&self.actor, command, args, count as u64, failed as u64)
            .await
            .map_err(OpsError::Audit)?;
        Ok(())
    }

    /// The control state: the rate limit in force (this process' RATE_LIMIT_PER_MINUTE
    /// when none is stored) and the paused queues.
    pub async fn control_view(&self) -> Result<ControlView, OpsError> {
        let control = self.stores().await?.control;
        Ok(control.view(self.settings.rate_limit_per_minute).await?)
    }

    /// One snapshot of the queues, the ledger indexes and the workers.
    pub async fn snapshot(&self) -> Result<Snapshot, OpsError> {
        let lease = self.settings.worker_lease;
        super::stats::snapshot(&self.conn().await?, &self.keys, lease).await
    }

    /// What `queues stats` shows: the snapshot, the control state and the deadline of the
    /// routine date due now.
    pub async fn queue_stats(&self) -> Result<QueueStats, OpsError> {
        let (at, tz) = (self.settings.routine_at, self.settings.routine_tz);
        let date = crate::routine::due_date(Utc::now(), at, tz);
        let deadline = self.stores().await?.control.routine_deadline(date).await?;
        Ok(QueueStats {
            snapshot: self.snapshot().await?,
            control: self.control_view().await?,
            routine: super::stats::RoutineDeadline { date, deadline },
        })
    }

    /// One reading of `date`'s report with the control state and the snapshot it shows.
    pub async fn reading(&self, date: NaiveDate) -> Result<Reading, OpsError> {
        let now = Utc::now();
        let control = self.control_view().await?;
        let snapshot = self.snapshot().await?;
        let backlog = snapshot
            .queue(AUTHORIZE_QUEUE)
            .map_or(0, |q| q.ready + q.delayed + q.in_flight);
        let stores = self.stores().await?;
        let rate = control.rate_limit.per_minute;
        let (ledger, registry) = (&stores.ledger, &stores.registry);
        let mut report = crate::report::build(ledger, registry, date, rate, backlog, now).await?;
        report.deadline = stores.control.routine_deadline(date).await?;
        Ok(Reading {
            report,
            control,
            snapshot,
        })
    }

    /// The requeue and purge operations.
    pub async fn requeuer(&self) -> Result<Requeuer, OpsError> {
        Ok(Requeuer::new(
            self.conn().await?,
            &self.keys,
            &self.settings,
        ))
    }

    /// The login lifecycle operations.
    pub async fn login_ops(&self) -> Result<LoginOps, OpsError> {
        Ok(LoginOps::new(
            self.conn().await?,
            &self.keys,
            &self.settings,
        ))
    }

    /// The single-job operations.
    pub async fn job_ops(&self) -> Result<JobOps, OpsError> {
        Ok(JobOps::new(&self.conn().await?, &self.keys, &self.settings))
    }

    /// A page of jobs or records, as `request` asks.
    pub async fn list(&self, request: &ListRequest) -> Result<Listing, OpsError> {
        let conn = self.conn().await?;
        super::list::list(&conn, &self.keys, &self.settings, request).await
    }

    /// A page of the results stream, as `request` asks.
    pub async fn read_results(
        &self,
        request: &super::results::ReadRequest,
    ) -> Result<super::results::Page, OpsError> {
        let conn = self.conn().await?;
        super::results::read(&conn, &self.keys, &self.settings, request).await
    }

    /// Sends the webhook's parked batches again through `client`.
    pub async fn redeliver(&self, client: &WebhookClient) -> Result<RedeliverReport, OpsError> {
        let conn = self.conn().await?;
        let report: Result<_, EventsError> = webhook::redeliver(&conn, &self.keys, client).await;
        Ok(report?)
    }

    /// Runs the daily scheduler until `shutdown` (see [`crate::schedule_daemon`]).
    pub async fn run_scheduler(&self, shutdown: CancellationToken) -> Result<(), OpsError> {
        let conn = self.conn().await?;
        crate::schedule_daemon::run(conn, &self.keys, &self.settings, shutdown).await?;
        Ok(())
    }
}

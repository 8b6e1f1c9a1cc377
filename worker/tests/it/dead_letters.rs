//! Buried jobs still end in an outcome: a job whose worker died on its last allowed
//! attempt is buried by the reaper, and the reconciler records it as failed.

use std::time::Duration;

use chrono::NaiveDate;
use shared::jobs::{AuthorizeJob, AUTHORIZE_QUEUE};
use shared::ledger::Ledger;
use shared::queue::{EnqueueOptions, Queue, QueueConfig, WorkerId};
use shared::LoginId;
use worker::dead_letters::DeadLetterReconciler;

use crate::helpers::Stack;

#[tokio::test]
async fn a_job_buried_when_its_last_lease_expired_is_recorded_as_failed_for_its_login() {
    let stack = Stack::new("dead-letters", "http://127.0.0.1:9/unused").await;
    let config = QueueConfig {
        max_attempts: 1,
        ..QueueConfig::new(AUTHORIZE_QUEUE).with_lease(Duration::from_millis(100))
    };
    let queue: Queue<AuthorizeJob> = Queue::new(stack.conn.clone(), &stack.keys, config);
    let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let login = LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    queue
        .enqueue(
            &AuthorizeJob::new(login.clone(), date),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    // A poison letter names no login and must be skipped, not fail the pass.
    let raw: Queue<serde_json::Value> = queue.retyped();
    raw.enqueue(
        &serde_json::json!({"not": "a job"}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    // A worker takes both on their only attempt and dies: the leases expire, the reaper
    // buries them.
    let dead_worker = WorkerId::generate();
    assert_eq!(raw.fetch(&dead_worker, 2).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    queue.reap_expired().await.unwrap();
    assert_eq!(queue.stats().await.unwrap().dead, 2);

    let reconciler = DeadLetterReconciler::new(stack.conn.clone(), &stack.keys);
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 1);
    // A second pass (or another worker's) records nothing more.
    assert_eq!(reconciler.reconcile_once().await.unwrap(), 0);

    let ledger = Ledger::new(stack.conn.clone(), &stack.keys);
    let outcome = ledger.get(date, &login).await.unwrap().expect("an outcome");
    assert_eq!(outcome.kind(), "failed");
    assert!(
        outcome
            .message()
            .unwrap()
            .contains("lease expired during the last allowed attempt"),
        "{outcome:?}"
    );
    assert_eq!(ledger.counts(date).await.unwrap().failed, 1);
    stack.cleanup().await;
}

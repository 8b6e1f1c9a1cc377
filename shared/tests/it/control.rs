//! Operator control against a real Redis: pause flags with their reason, and the
//! `PauseGate` that holds a backend's fetches while its queue is paused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use shared::control::{Control, PauseGate, PAUSABLE_QUEUES, PAUSE_POLL};
use shared::queue::FetchGate;
use tokio_util::sync::CancellationToken;

use crate::support::TestRedis;

#[tokio::test]
async fn pause_keeps_the_first_reason_and_resume_clears_it() {
    let redis = TestRedis::new("ctl-pause").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);

    assert!(control
        .pause("authorize", Some("Flinks incident"), "alice", Utc::now())
        .await
        .unwrap());
    assert!(!control
        .pause("authorize", Some("again"), "bob", Utc::now())
        .await
        .unwrap());
    let pauses = control.pauses().await.unwrap();

    assert_eq!(
        pauses.iter().map(|p| p.queue.as_str()).collect::<Vec<_>>(),
        PAUSABLE_QUEUES.to_vec()
    );
    assert!(pauses[0].paused);
    assert_eq!(pauses[0].reason.as_deref(), Some("Flinks incident"));
    assert_eq!(pauses[0].actor.as_deref(), Some("alice"));
    assert!(pauses[0].since.is_some());
    assert!(!pauses[1].paused && !pauses[2].paused);
    assert!(control.is_paused("authorize").await.unwrap());

    assert!(control.resume("authorize").await.unwrap());
    assert!(!control.resume("authorize").await.unwrap());
    assert!(!control.is_paused("authorize").await.unwrap());
    redis.cleanup().await;
}

#[tokio::test]
async fn a_rate_outside_the_range_is_refused_and_nothing_is_stored() {
    let redis = TestRedis::new("ctl-rate").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);

    for bad in [-1.0, f64::NAN, f64::INFINITY, 60_001.0] {
        assert!(control.set_rate_limit(bad).await.is_err(), "{bad}");
    }
    assert_eq!(control.stored_rate_limit().await.unwrap(), None);
    assert_eq!(control.set_rate_limit(120.0).await.unwrap(), None);
    assert_eq!(control.set_rate_limit(0.0).await.unwrap(), Some(120.0));
    let state = control.rate_limit(600.0).await.unwrap();
    assert_eq!((state.per_minute, state.stored), (0.0, true));
    redis.cleanup().await;
}

/// An inner gate that counts how often it was awaited.
struct Counting(Arc<AtomicUsize>);

impl FetchGate for Counting {
    fn ready(&self) -> BoxFuture<'static, ()> {
        let n = self.0.clone();
        Box::pin(async move {
            n.fetch_add(1, Ordering::SeqCst);
        })
    }
}

#[tokio::test]
async fn the_pause_gate_holds_fetches_until_resume_without_touching_the_inner_gate() {
    let redis = TestRedis::new("ctl-gate").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let inner = Arc::new(AtomicUsize::new(0));
    let gate = PauseGate::new(control.clone(), "detail", CancellationToken::new())
        .then(Arc::new(Counting(inner.clone())));

    // Not paused: passes through the inner gate at once.
    tokio::time::timeout(Duration::from_secs(2), gate.ready())
        .await
        .expect("an unpaused queue is fetched");
    assert_eq!(inner.load(Ordering::SeqCst), 1);

    // Paused: held from one poll on, and the inner gate (the rate limiter) is not even
    // asked.
    control
        .pause("detail", None, "t", Utc::now())
        .await
        .unwrap();
    tokio::time::sleep(PAUSE_POLL).await;
    let held = tokio::spawn(gate.ready());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!held.is_finished(), "a paused queue must not be fetched");
    assert_eq!(inner.load(Ordering::SeqCst), 1);

    // Resumed: released within one poll.
    control.resume("detail").await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), held)
        .await
        .expect("resume releases the fetch")
        .unwrap();
    assert_eq!(inner.load(Ordering::SeqCst), 2);
    redis.cleanup().await;
}

/// A busy queue must not pay a read of its flag per fetch: an unpaused read is trusted for
/// one `PAUSE_POLL`, and a pause applies once it runs out.
#[tokio::test]
async fn the_pause_gate_trusts_an_unpaused_read_for_one_poll() {
    let redis = TestRedis::new("ctl-gate-poll").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let gate = PauseGate::new(control.clone(), "detail", CancellationToken::new());
    tokio::time::timeout(Duration::from_secs(2), gate.ready())
        .await
        .expect("an unpaused queue is fetched");
    let read_at = std::time::Instant::now();

    control
        .pause("detail", None, "t", Utc::now())
        .await
        .unwrap();
    // Paused now, but the unpaused read is recent: the gate opens without asking Redis.
    tokio::time::timeout(Duration::from_millis(200), gate.ready())
        .await
        .expect("within one poll of an unpaused read the flag is not read again");
    assert!(
        read_at.elapsed() < PAUSE_POLL,
        "the test stalled past one poll"
    );

    tokio::time::sleep(PAUSE_POLL).await;
    assert!(!gate.open_now(), "the read ran out: an ack must not fetch");
    let held = tokio::spawn(gate.ready());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !held.is_finished(),
        "once the read ran out the pause applies"
    );
    held.abort();
    redis.cleanup().await;
}

/// An inner gate that opens after its wait, like a rate limiter's permit wait.
struct Slow(Duration);

impl FetchGate for Slow {
    fn ready(&self) -> BoxFuture<'static, ()> {
        let wait = self.0;
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A pause set while the gate waits for a permit longer than one poll stops that fetch:
/// the read before the wait is too old to trust after it.
#[tokio::test]
async fn a_pause_during_a_long_permit_wait_holds_the_fetch() {
    let redis = TestRedis::new("ctl-gate-wait").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let gate = PauseGate::new(control.clone(), "authorize", CancellationToken::new())
        .then(Arc::new(Slow(PAUSE_POLL + Duration::from_millis(300))));

    let held = tokio::spawn(gate.ready());
    tokio::time::sleep(Duration::from_millis(200)).await;
    control
        .pause("authorize", None, "t", Utc::now())
        .await
        .unwrap();
    tokio::time::sleep(PAUSE_POLL * 3).await;
    assert!(!held.is_finished(), "paused during the permit wait");

    control.resume("authorize").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("resume releases the fetch")
        .unwrap();
    redis.cleanup().await;
}

/// An ack may claim the next job only while the gate is open now; once a graceful stop
/// begins it must not, or jobs sit claimed in a draining worker, unseen by the others.
#[tokio::test]
async fn an_open_gate_stops_being_open_now_when_shutdown_fires() {
    let redis = TestRedis::new("ctl-open-now").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let shutdown = CancellationToken::new();
    let gate = PauseGate::new(control.clone(), "detail", shutdown.clone());

    tokio::time::timeout(Duration::from_secs(2), gate.ready())
        .await
        .expect("an unpaused queue is fetched");
    assert!(gate.open_now(), "just read unpaused: an ack may fetch");
    shutdown.cancel();
    assert!(!gate.open_now(), "draining: no ack claims another job");
    redis.cleanup().await;
}

/// An inner gate that says for itself whether it is open now, like the rate limiter's
/// while the limit is off.
struct Switch(std::sync::atomic::AtomicBool);

impl FetchGate for Switch {
    fn ready(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn open_now(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// With an inner gate, an ack may claim only while both gates are open now.
#[tokio::test]
async fn a_gate_with_an_inner_gate_is_open_now_only_while_both_are() {
    let redis = TestRedis::new("ctl-open-inner").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let inner = Arc::new(Switch(false.into()));
    let gate =
        PauseGate::new(control.clone(), "authorize", CancellationToken::new()).then(inner.clone());

    assert!(!gate.open_now(), "the flag was never read");
    tokio::time::timeout(Duration::from_secs(2), gate.ready())
        .await
        .expect("an unpaused queue is fetched");
    assert!(!gate.open_now(), "the inner gate is not open now");
    inner.0.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(gate.open_now(), "both open now");
    tokio::time::sleep(PAUSE_POLL).await;
    assert!(!gate.open_now(), "the flag's read ran out");
    redis.cleanup().await;
}

#[tokio::test]
async fn a_paused_gate_never_opens_once_shutdown_fires() {
    let redis = TestRedis::new("ctl-shutdown").await;
    let control = Control::new(redis.conn.clone(), &redis.keys);
    let shutdown = CancellationToken::new();
    let gate = PauseGate::new(control.clone(), "authorize", shutdown.clone());
    control
        .pause("authorize", None, "t", Utc::now())
        .await
        .unwrap();

    let held = tokio::spawn(gate.ready());
    shutdown.cancel();
    control.resume("authorize").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    assert!(!held.is_finished(), "nothing is claimed while draining");
    held.abort();
    redis.cleanup().await;
}

//! Word, inside one process, that a queue has jobs ready: a backend of this process whose
//! last fetch found the queue empty fetches again at once, instead of after its
//! `poll_interval`. Whatever in this process queues a job ready now (an enqueue, or an ack
//! that chains a job into another queue, as an authorize job's ack queues its detail job)
//! announces it for that queue. Workers in other processes keep polling: Redis has no such
//! word short of a blocking connection per queue and worker.
//!
//! Keyed by the queue's ready key, which holds its namespace, so every handle of one queue
//! in this process shares one notifier and two namespaces never hear each other.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::Notify;

static ARRIVALS: LazyLock<Mutex<HashMap<String, Weak<Notify>>>> = LazyLock::new(Mutex::default);

fn arrivals() -> std::sync::MutexGuard<'static, HashMap<String, Weak<Notify>>> {
    // The map holds no invariant a panic could break half-way.
    ARRIVALS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The notifier of the queue whose ready list is `ready_key`, shared by every handle of that
/// queue in this process; the map forgets it once no handle holds it.
pub(crate) fn notifier(ready_key: &str) -> Arc<Notify> {
    let mut map = arrivals();
    if let Some(notify) = map.get(ready_key).and_then(Weak::upgrade) {
        return notify;
    }
    map.retain(|_, notify| notify.strong_count() > 0);
    let notify = Arc::new(Notify::new());
    map.insert(ready_key.to_owned(), Arc::downgrade(&notify));
    notify
}

/// Wakes this process's backends waiting on the queue whose ready list is `ready_key`
/// (none, when this process has no handle of it).
pub(crate) fn announce(ready_key: &str) {
    let notify = arrivals().get(ready_key).and_then(Weak::upgrade);
    if let Some(notify) = notify {
        notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_announcement_wakes_a_waiter_of_the_same_queue_only() {
        let a = notifier("{ns:a}:ready");
        let again = notifier("{ns:a}:ready");
        let b = notifier("{ns:b}:ready");
        assert!(Arc::ptr_eq(&a, &again), "one notifier per queue");
        let mut of_a = std::pin::pin!(a.clone().notified_owned());
        let mut of_b = std::pin::pin!(b.clone().notified_owned());
        // Registered before the announcement, as a backend registers before it fetches.
        of_a.as_mut().enable();
        of_b.as_mut().enable();

        announce("{ns:a}:ready");
        announce("{ns:unknown}:ready");

        assert!(futures::poll!(of_a.as_mut()).is_ready());
        assert!(futures::poll!(of_b.as_mut()).is_pending());
    }

    #[test]
    fn a_queue_no_handle_holds_is_forgotten() {
        drop(notifier("{ns:gone}:ready"));
        let _other = notifier("{ns:other}:ready");
        assert!(!arrivals().contains_key("{ns:gone}:ready"));
    }
}

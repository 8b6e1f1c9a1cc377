//! The Redis keys of one queue, all built by [`KeySpace::queue`] so they share the hash tag
//! `{namespace:queue}` (one Cluster slot per queue).

use crate::keys::KeySpace;

/// Suffixes of the keys every script receives, in the order `lua/queue/common.lua` reads them
/// (its `N_KEYS` must equal the length).
pub(crate) const SCRIPT_KEY_SUFFIXES: [&str; 15] = [
    "ready",
    "delayed",
    "inflight",
    "dead",
    "payload",
    "attempts",
    "owner",
    "enqueued",
    "dedupe_of",
    "error",
    "counters",
    "workers",
    "pending",
    "supersede_of",
    "superseded",
];

pub(crate) const READY: usize = 0;
pub(crate) const DELAYED: usize = 1;
pub(crate) const INFLIGHT: usize = 2;
pub(crate) const DEAD: usize = 3;
pub(crate) const PAYLOAD: usize = 4;
pub(crate) const ATTEMPTS: usize = 5;
pub(crate) const OWNER: usize = 6;
pub(crate) const ENQUEUED: usize = 7;
pub(crate) const DEDUPE_OF: usize = 8;
pub(crate) const ERROR: usize = 9;
pub(crate) const COUNTERS: usize = 10;
pub(crate) const WORKERS: usize = 11;
pub(crate) const SUPERSEDED: usize = 14;

/// The keys of one queue.
#[derive(Clone, Debug)]
pub(crate) struct QueueKeys {
    pub(crate) script_keys: Vec<String>,
    keyspace: KeySpace,
    name: String,
}

impl QueueKeys {
    pub(crate) fn new(keyspace: &KeySpace, name: &str) -> Self {
        Self {
            script_keys: SCRIPT_KEY_SUFFIXES
                .iter()
                .map(|s| keyspace.queue(name, s))
                .collect(),
            keyspace: keyspace.clone(),
            name: name.to_string(),
        }
    }

    pub(crate) fn get(&self, index: usize) -> &str {
        &self.script_keys[index]
    }

    /// The string holding the id of the job that owns a dedupe key.
    pub(crate) fn dedupe(&self, label: &str) -> String {
        self.keyspace.queue(&self.name, &format!("dedupe:{label}"))
    }

    /// The short-lived record of a finished job.
    pub(crate) fn done(&self, id: &str) -> String {
        self.keyspace.queue(&self.name, &format!("done:{id}"))
    }
}

//! The Redis keys of one queue, all built by [`KeySpace::queue`] so they share the hash tag
//! `{namespace:queue}` (one Cluster slot per queue).

use crate::keys::KeySpace;

/// Suffixes of the keys every script receives, in the order `lua/queue/common.lua` reads them
/// (its `N_KEYS` must equal the length). `ready` comes first: the scripts derive each job's
/// key (`job:<id>`) from it.
pub(crate) const SCRIPT_KEY_SUFFIXES: [&str; 8] = [
    "ready",
    "delayed",
    "inflight",
    "dead",
    "counters",
    "workers",
    "pending",
    "superseded",
];

pub(crate) const READY: usize = 0;
pub(crate) const DELAYED: usize = 1;
pub(crate) const INFLIGHT: usize = 2;
pub(crate) const DEAD: usize = 3;
pub(crate) const COUNTERS: usize = 4;
pub(crate) const WORKERS: usize = 5;
pub(crate) const PENDING: usize = 6;
pub(crate) const SUPERSEDED: usize = 7;

/// An in-flight entry split into its job id and the delivery token that holds the lease, as
/// `lua/queue/common.lua` splits it: `<id>|<token>`, or the bare id (no token) for an entry
/// an earlier version wrote, whose holder is the job hash's `o`.
pub(crate) fn lease_of(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once('|') {
        Some((id, token)) => (id, Some(token)),
        None => (entry, None),
    }
}

/// The fields of a job's hash (`job:<id>`), as `lua/queue/common.lua` names them: one letter
/// each, since there is one hash per queued job.
pub(crate) mod field {
    pub(crate) const PAYLOAD: &str = "p";
    pub(crate) const ATTEMPTS: &str = "a";
    /// The lease holder of a job an earlier version leased (this version names it in the in-flight entry).
    pub(crate) const OWNER: &str = "o";
    pub(crate) const ENQUEUED: &str = "t";
    pub(crate) const DEDUPE: &str = "d";
    pub(crate) const ERROR: &str = "e";
}

/// How many small hashes (`pending:<shard>`) a queue's pending entries, one per supersede
/// key ever queued, are spread over. A Redis hash keeps its compact listpack encoding only
/// up to `hash-max-listpack-entries` fields (512 by default); one hash of a million entries
/// is a hash table of about 136 bytes an entry, against about 85 in shards of a few dozen.
/// 16,384 shards hold about 61 entries each at a million logins, so they stay listpacks up
/// to about 7 million supersede keys (under a limit lowered to 128, about 1.5 million), and
/// beyond that cost what the one hash did.
pub(crate) const PENDING_SHARDS: u64 = 16_384;

/// The shard of `supersede_key`'s pending entry: FNV-1a of the key, modulo
/// [`PENDING_SHARDS`]. Stable: changing it would lose every dedupe record.
pub(crate) fn pending_shard(supersede_key: &str) -> u64 {
    crate::keys::fnv1a(supersede_key) % PENDING_SHARDS
}

/// The per-field hashes of the layout before one hash per job, oldest first in the order
/// `lua/queue/migrate.lua` reads them.
pub(crate) const LEGACY_SUFFIXES: [&str; 7] = [
    "payload",
    "attempts",
    "owner",
    "enqueued",
    "dedupe_of",
    "error",
    "supersede_of",
];

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

    /// The hash holding one job's payload and metadata.
    pub(crate) fn job(&self, id: &str) -> String {
        self.keyspace.queue(&self.name, &format!("job:{id}"))
    }

    /// The per-field hashes of the previous layout (see [`LEGACY_SUFFIXES`]).
    pub(crate) fn legacy(&self) -> Vec<String> {
        LEGACY_SUFFIXES
            .iter()
            .map(|s| self.keyspace.queue(&self.name, s))
            .collect()
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

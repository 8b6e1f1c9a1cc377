//! `KeySpace`: the only place Redis keys are built.
//!
//! Every key starts with the deployment's namespace (`REFRESH_NAMESPACE`), so two
//! deployments — or two tests running in parallel — share one Redis without touching
//! each other's keys and without `FLUSHALL`. Keys that belong to one queue carry a hash
//! tag `{namespace:queue}` so that all of a queue's keys (and so every Lua script over
//! them) land in one Redis Cluster slot.

/// Builds Redis keys for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    namespace: String,
}

impl KeySpace {
    /// A key space for `namespace` (e.g. `nightly-refresh`, or a unique name per test).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A key of one queue, hash-tagged by queue: `{ns:queue}:suffix`.
    pub fn queue(&self, queue: &str, suffix: &str) -> String {
        format!("{{{}:{}}}:{}", self.namespace, queue, suffix)
    }

    /// A key outside any queue: `ns:suffix`.
    pub fn global(&self, suffix: &str) -> String {
        format!("{}:{}", self.namespace, suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_share_a_hash_tag_per_queue() {
        let keys = KeySpace::new("t1");
        assert_eq!(keys.queue("authorize", "ready"), "{t1:authorize}:ready");
        assert_eq!(keys.queue("authorize", "job:abc"), "{t1:authorize}:job:abc");
        assert_eq!(keys.global("ratelimit"), "t1:ratelimit");
    }
}

//! `QueueError`: what went wrong talking to the queue, by what the caller does next.

/// Errors of the queue module.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis could not be reached at startup. The URL has its password removed.
    #[error("Redis unreachable at {url}")]
    Unreachable {
        /// The Redis URL, password redacted.
        url: String,
        /// The connection error.
        #[source]
        source: redis::RedisError,
    },
    /// A Redis command or script failed (timeout, connection drop, ...): retry later.
    #[error("Redis error on queue {queue}")]
    Redis {
        /// The queue's name.
        queue: String,
        /// The Redis error.
        #[source]
        source: redis::RedisError,
    },
    /// A job could not be encoded as JSON (a bug in the job type).
    #[error("cannot encode a job for queue {queue}")]
    Encode {
        /// The queue's name.
        queue: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Jobs in the previous storage layout kept appearing while they were moved to the
    /// current one: a worker or producer of the previous version still runs against this
    /// Redis. Stop it, then start again.
    #[error(
        "queue {queue}: jobs in the previous storage layout keep appearing while they are \
         migrated; stop every worker and producer of the previous version, then start again"
    )]
    LegacyWriters {
        /// The queue's name.
        queue: String,
    },
}

impl QueueError {
    /// True when Redis answered a script with an error reply of its own (a write attached
    /// to an ack refusing its input, say) rather than failing to answer: the same call
    /// would be refused again, so it is not retried as Redis trouble is.
    pub fn is_refused(&self) -> bool {
        let Self::Redis { source, .. } = self else {
            return false;
        };
        matches!(
            source.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                | redis::ErrorKind::Extension
        )
    }

    /// True when retrying later may succeed (Redis trouble), false for bugs.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Redis { .. } | Self::Unreachable { .. })
    }
}

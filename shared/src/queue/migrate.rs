//! Upgrade of jobs stored by the previous version, which kept each job field in its own
//! queue-wide hash (`payload`, `attempts`, `owner`, ...), to one hash per job
//! (`job:<id>`). Workers and producers run it at start, before touching the queue; it is
//! idempotent (a second run finds nothing to move) and resumable (each job moves whole in
//! one script call, so a crash half-way loses nothing). A job leased by an old worker keeps
//! its lease record; that worker's ack no longer finds it and the reaper runs the job again,
//! as after any lost lease.
//!
//! It does not make old and new versions run side by side: an old process keeps writing the
//! old layout, which new workers never read. [`Queue::migrate_layout`] detects that (old jobs
//! reappearing after several passes) and refuses with [`QueueError::LegacyWriters`].

use super::core::Queue;
use super::error::QueueError;
use super::scripts;

/// Jobs scanned per script call.
const CHUNK: usize = 500;
/// Whole passes over the old payload hash before concluding that an old process still
/// writes it.
const MAX_PASSES: usize = 3;

impl<T> Queue<T> {
    /// Moves every job stored in the previous layout into its own hash and deletes the old
    /// hashes. Returns how many jobs moved (0 when there was nothing to do).
    pub async fn migrate_layout(&self) -> Result<u64, QueueError> {
        let mut moved = 0u64;
        for _ in 0..MAX_PASSES {
            let mut cursor = "0".to_string();
            loop {
                let mut inv = self.invocation(&scripts::MIGRATE);
                for key in self.keys.legacy() {
                    inv.key(key);
                }
                inv.arg(&cursor).arg(CHUNK);
                let (next, n, done): (String, u64, i64) = self.run(&inv).await?;
                moved += n;
                if done == 1 {
                    if moved > 0 {
                        tracing::info!(queue = %self.name(), jobs = moved,
                            "moved jobs of the previous storage layout to one hash per job");
                    }
                    return Ok(moved);
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Err(QueueError::LegacyWriters {
            queue: self.name().to_string(),
        })
    }
}

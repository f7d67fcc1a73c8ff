//! The periodic work every shard does on its own partitions and groups:
//! background fdatasync with recovery-point checkpoints, retention, and
//! expiring group members whose session ended.

use std::rc::Rc;
use std::time::Duration;

use super::shard::{Flush, ShardContext};
use super::shutdown::Shutdown;

/// How often each shard fdatasyncs its partitions in the background. Acked
/// data is already in the page cache, so a killed process loses nothing;
/// this bounds what a power loss could take.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often each partition's recovery point is written, bounding what a
/// restart after a crash must re-check (Kafka: 60 s).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
pub async fn flush_periodically(ctx: Rc<ShardContext>, shutdown: Shutdown) {
    let mut last_checkpoint = tokio::time::Instant::now();
    while shutdown.tick(FLUSH_INTERVAL).await {
        let checkpoint = last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        if checkpoint {
            last_checkpoint = tokio::time::Instant::now();
        }
        ctx.flush(if checkpoint { Flush::Checkpoint } else { Flush::Only }).await;
    }
}

/// Deletes what each partition's retention settings no longer keep.
pub async fn enforce_retention_periodically(ctx: Rc<ShardContext>, every: Duration, shutdown: Shutdown) {
    while shutdown.tick(every).await {
        let now = crate::now_ms();
        for (_, partition) in ctx.all() {
            partition.log.enforce_retention(now);
        }
    }
}

/// How often each shard looks for group members whose session expired.
const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(250);

pub async fn expire_sessions_periodically(ctx: Rc<ShardContext>, shutdown: Shutdown) {
    while shutdown.tick(SESSION_CHECK_INTERVAL).await {
        ctx.coordinator.expire_sessions();
    }
}

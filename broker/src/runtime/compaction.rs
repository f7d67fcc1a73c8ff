//! The broker's side of log compaction: records read for the storage
//! cleaner through the protocol crate, and each shard's cleaner, which
//! visits its compacted partitions one at a time every
//! `log.cleaner.backoff.ms` (Kafka runs one cleaner thread by default).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::compact::BatchRecords;
use sluice_storage::{CompactableBatch, RecordCodec};

use crate::runtime::shard::ShardContext;
use crate::runtime::shutdown::Shutdown;

/// Reads Kafka records for the cleaner.
pub struct KafkaRecords;

/// A batch whose records take more than this decompressed is left as it is
/// (kept whole, its keys not mapped): the cleaner's memory stays bounded
/// whatever a producer compressed.
const MAX_DECOMPRESSED_BATCH: usize = 32 << 20;

struct Batch(BatchRecords);

impl RecordCodec for KafkaRecords {
    fn decode(&self, batch: &[u8]) -> Result<Box<dyn CompactableBatch>, String> {
        BatchRecords::decode(batch, MAX_DECOMPRESSED_BATCH)
            .map(|b| Box::new(Batch(b)) as Box<dyn CompactableBatch>)
            .map_err(|e| e.to_string())
    }
}

impl CompactableBatch for Batch {
    fn record_count(&self) -> usize {
        self.0.len()
    }
    fn offset(&self, i: usize) -> i64 {
        self.0.offset(i)
    }
    fn key(&self, i: usize) -> Option<&[u8]> {
        self.0.key(i)
    }
    fn is_tombstone(&self, i: usize) -> bool {
        self.0.is_tombstone(i)
    }
    fn delete_horizon(&self) -> Option<i64> {
        self.0.delete_horizon()
    }
    fn rebuild(&self, keep: &dyn Fn(usize) -> bool, delete_horizon: Option<i64>) -> Result<Vec<u8>, String> {
        self.0.rebuild(keep, delete_horizon).map_err(|e| e.to_string())
    }
}

pub async fn clean_periodically(ctx: Rc<ShardContext>, every: Duration, shutdown: Shutdown) {
    let codec: Arc<dyn RecordCodec> = Arc::new(KafkaRecords);
    let cancel = Arc::new(AtomicBool::new(false));
    while shutdown.tick(every).await {
        for (_, replica) in ctx.all() {
            let pass = replica.log.clean(codec.clone(), crate::now_ms(), cancel.clone());
            // A pass cut short by shutdown leaves only `.cleaned` files,
            // removed when the partition next opens; its thread stops at
            // the next batch.
            let outcome = tokio::select! {
                outcome = pass => outcome,
                _ = shutdown.wait() => {
                    cancel.store(true, Ordering::Relaxed);
                    return;
                }
            };
            match outcome {
                Ok(Some(stats)) if stats.segments_rewritten > 0 => tracing::info!(
                    topic = %replica.topic,
                    partition = replica.index,
                    segments = stats.segments_rewritten,
                    bytes_before = stats.bytes_before,
                    bytes_after = stats.bytes_after,
                    "compacted"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "compaction failed")
                }
            }
        }
    }
}

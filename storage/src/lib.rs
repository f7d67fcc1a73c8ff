//! The partition log engine. A partition is a directory of segments, each a
//! `<baseOffset:020>.log` of RecordBatch v2 bytes stored exactly as produced
//! plus sparse `.index` and `.timeindex` files. This crate knows bytes and
//! offsets, not Kafka requests: callers hand it validated batches (and, for
//! compaction, a [`RecordCodec`] that reads records).

mod batch;
mod cleaner;
mod config;
mod epochs;
mod error;
mod files;
mod index;
mod log;
mod partition;
mod producers;
mod segment;
mod txnindex;
mod uring;

pub use batch::{end_of_batches, set_leader_epoch, StoredBatch, TxnMarker, BATCH_HEADER_LEN};
pub use cleaner::{CleanStats, CompactableBatch, Compaction, RecordCodec};
pub use config::{FsyncPolicy, LogConfig};
pub use error::{SequenceError, StorageError};
pub use log::{AppendInfo, PartitionLog, ReadResult};
pub use partition::{LogOffsets, Partition};
pub use producers::{AbortedTxn, ProducerBatch, ProducerSummary};
pub use uring::Ring;

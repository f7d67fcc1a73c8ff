//! Storage errors: every I/O failure names the file and the operation.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("batch rejected: {0}")]
    InvalidBatch(&'static str),
    #[error("partition unavailable: {0}")]
    Unavailable(&'static str),
    /// A stored batch the cleaner cannot decode or rewrite.
    #[error("cannot compact: {0}")]
    Compaction(String),
    /// An idempotent producer's batch out of sequence or from an old epoch.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

/// Why an idempotent or transactional producer's batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got} (epoch {epoch})")]
    OutOfOrder { producer_id: i64, epoch: i16, expected: i32, got: i32 },
    #[error("producer {producer_id} has a transaction open here: expected a transactional batch")]
    NotTransactional { producer_id: i64 },
    #[error("marker for producer {producer_id} from coordinator epoch {got}, older than {current}")]
    CoordinatorFenced { producer_id: i64, got: i32, current: i32 },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}

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
    Sequence(#[from] crate::producers::SequenceError),
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}

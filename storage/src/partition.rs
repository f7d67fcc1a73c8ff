//! `Partition`: the shard-local, async face of one partition's log. It is
//! owned by exactly one shard thread (`!Send`), so no lock guards it; the
//! broker reaches a partition only through its owner shard.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::log::{AppendInfo, LogConfig, PartitionLog, ReadResult};

pub struct Partition {
    dir: PathBuf,
    log: RefCell<PartitionLog>,
}

/// Offsets a reader sees alongside the bytes it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

impl Partition {
    /// Opens (and recovers) the log in `dir`.
    pub async fn open(dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        let log = PartitionLog::open(dir, config)?;
        Ok(Self { dir: dir.to_owned(), log: RefCell::new(log) })
    }

    pub fn offsets(&self) -> LogOffsets {
        let log = self.log.borrow();
        LogOffsets { log_start_offset: log.log_start_offset(), high_watermark: log.next_offset() }
    }

    /// Appends one validated batch; resolves once it is stored.
    pub async fn append(&self, mut batch: Vec<u8>) -> Result<(AppendInfo, LogOffsets), StorageError> {
        let info = self.log.borrow_mut().append(&mut batch)?;
        Ok((info, self.offsets()))
    }

    /// Reads committed data from `offset` (see [`PartitionLog::read`]).
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(ReadResult, LogOffsets), StorageError> {
        let log = self.log.borrow();
        let result = log.read(offset, max_bytes, log.next_offset(), min_one)?;
        drop(log);
        Ok((result, self.offsets()))
    }

    pub async fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<Vec<u8>>, StorageError> {
        self.log.borrow().find_by_timestamp(timestamp)
    }

    pub async fn find_max_timestamp(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.log.borrow().find_max_timestamp()
    }

    /// Makes everything appended so far durable.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.log.borrow().flush()
    }

    /// Removes the partition's files; in-flight operations finish on the open files.
    pub async fn delete(&self) -> Result<(), StorageError> {
        std::fs::remove_dir_all(&self.dir).map_err(StorageError::io("delete partition dir", &self.dir))
    }
}

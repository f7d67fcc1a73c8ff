//! `Partition`: the shard-local, async face of one partition's log. It is
//! owned by exactly one shard thread (`!Send`), so no lock guards it; the
//! broker reaches a partition only through its owner shard. Data writes,
//! fetch reads and fsyncs go through the shard's io_uring ring.
//!
//! Durability (`FsyncPolicy::Batch`, the default) is group commit: an
//! append waits until its bytes are visible, then either joins the fsync
//! already in flight or, if none is, issues one covering every append
//! visible so far. Because visibility is in offset order and each fsync
//! covers a prefix, a later append is never durable before an earlier one.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tokio::sync::Notify;

use crate::batch::{StoredBatch, BATCH_HEADER_LEN};
use crate::error::StorageError;
use crate::log::{
    write_recovery_point, AppendInfo, FsyncPolicy, LogConfig, PartitionLog, ReadPlan, ReadResult, RecoveryPoint,
};
use crate::uring::Ring;

/// Extra bytes read past the index floor so one read usually finds the
/// target batch and its data together.
const SCAN_SLACK: usize = 16 * 1024;

pub struct Partition {
    dir: PathBuf,
    ring: Rc<Ring>,
    log: RefCell<PartitionLog>,
    /// Offsets below this are durable (fdatasync done).
    durable: Cell<i64>,
    syncing: Cell<bool>,
    /// An fdatasync failed: Linux reports a writeback error once and then
    /// forgets it, so nothing written since can be trusted to be durable.
    /// The partition refuses appends until the broker restarts (as Kafka
    /// takes a log directory offline).
    sync_failed: Cell<bool>,
    sync_rounds: Cell<u64>,
    /// The recovery point last written to disk.
    checkpointed: Cell<RecoveryPoint>,
    /// Fired when the visible offset moves or a sync round ends.
    progress: Notify,
}

/// Offsets a reader sees alongside the bytes it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

impl Partition {
    /// Opens (and recovers) the log in `dir`.
    pub async fn open(dir: &Path, config: LogConfig, ring: Rc<Ring>) -> Result<Self, StorageError> {
        let log = PartitionLog::open(dir, config)?;
        let durable = log.durable_at_open();
        Ok(Self {
            dir: dir.to_owned(),
            ring,
            log: RefCell::new(log),
            durable: Cell::new(durable),
            syncing: Cell::new(false),
            sync_failed: Cell::new(false),
            sync_rounds: Cell::new(0),
            checkpointed: Cell::new(RecoveryPoint::default()),
            progress: Notify::new(),
        })
    }

    pub fn offsets(&self) -> LogOffsets {
        let log = self.log.borrow();
        LogOffsets { log_start_offset: log.log_start_offset(), high_watermark: log.visible_offset() }
    }

    /// Offsets below this are durable (fdatasync done).
    pub fn durable_offset(&self) -> i64 {
        self.durable.get()
    }

    /// fsync rounds issued so far: with group commit, far fewer than appends.
    pub fn sync_rounds(&self) -> u64 {
        self.sync_rounds.get()
    }

    /// Appends one validated batch; resolves once it is written and, per
    /// the fsync policy, durable. No partial batch ever becomes visible: a
    /// failed write rolls the log back to its last complete batch.
    pub async fn append(&self, mut batch: Vec<u8>) -> Result<(AppendInfo, LogOffsets), StorageError> {
        if self.sync_failed.get() {
            return Err(StorageError::Unavailable("an fsync failed; restart to recover"));
        }
        let reservation = self.log.borrow_mut().reserve(&mut batch)?;
        let data = self.ring.write_all_at(&reservation.file, batch, reservation.position);
        let indexes: Vec<_> = reservation
            .index_writes
            .into_iter()
            .map(|w| async move { self.ring.write_all_at(&w.file, w.bytes, w.position).await })
            .collect();
        let mut outcome = data.await;
        for index in indexes {
            let written = index.await;
            if outcome.is_ok() {
                outcome = written;
            }
        }
        let completed = self.log.borrow_mut().complete(reservation.ticket, outcome.is_ok());
        self.progress.notify_waiters();
        completed?;
        outcome.map_err(|e| StorageError::Io { op: "append", path: self.dir.clone(), source: e })?;
        let end = reservation.info.last_offset + 1;
        // Acknowledge only once every earlier append is written too: an
        // earlier failed write rolls this one back as well.
        self.wait_visible(end, reservation.epoch).await?;
        let policy = self.log.borrow().config().fsync;
        match policy {
            FsyncPolicy::Never => {}
            FsyncPolicy::Batch => self.wait_durable(end, true).await?,
            FsyncPolicy::Always => self.wait_durable(end, false).await?,
        }
        Ok((reservation.info, self.offsets()))
    }

    /// Waits until offsets below `end` are visible, failing if a rollback
    /// (after an earlier write failed) discarded them first.
    async fn wait_visible(&self, end: i64, epoch: u64) -> Result<(), StorageError> {
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let log = self.log.borrow();
                if log.epoch() != epoch {
                    return Err(StorageError::Unavailable("discarded: an earlier write to this partition failed"));
                }
                if log.visible_offset() >= end {
                    return Ok(());
                }
            }
            progressed.await;
        }
    }

    /// Waits until everything below `end` is durable. With `share`, an fsync
    /// already in flight or one started by another append may cover it.
    async fn wait_durable(&self, end: i64, share: bool) -> Result<(), StorageError> {
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if self.sync_failed.get() {
                return Err(StorageError::Unavailable("an fsync failed; restart to recover"));
            }
            if self.durable.get() >= end {
                return Ok(());
            }
            let visible = self.log.borrow().visible_offset();
            if visible < end || (share && self.syncing.get()) {
                // An earlier append is still being written, or a sync round
                // is running; either way, check again when it moves.
                progressed.await;
                continue;
            }
            if !share {
                return self.sync_round().await;
            }
            self.sync_round().await?;
        }
    }

    /// One fsync round covering everything visible when it starts.
    async fn sync_round(&self) -> Result<(), StorageError> {
        self.syncing.set(true);
        self.sync_rounds.set(self.sync_rounds.get() + 1);
        let (files, target) = self.log.borrow().sync_plan();
        let syncs: Vec<_> = files.iter().map(|f| self.ring.fdatasync(f)).collect();
        let mut outcome = Ok(());
        for sync in syncs {
            if let Err(e) = sync.await {
                outcome = Err(StorageError::Io { op: "fdatasync", path: self.dir.clone(), source: e });
            }
        }
        if outcome.is_ok() {
            self.log.borrow_mut().mark_synced(target);
            self.durable.set(self.durable.get().max(target));
        } else {
            self.sync_failed.set(true);
            tracing::error!(dir = %self.dir.display(), "fdatasync failed: the partition refuses writes until restart");
        }
        self.syncing.set(false);
        self.progress.notify_waiters();
        outcome
    }

    /// Reads visible data from `offset` through the ring, returning at most
    /// `max_bytes` — unless `min_one` and the first batch alone is larger,
    /// then all of it, as Kafka does (KIP-74) so a consumer always makes
    /// progress. Like Kafka, the tail may be a partial batch.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(ReadResult, LogOffsets), StorageError> {
        let plan = self.log.borrow().plan_read(offset)?;
        let bytes = match plan {
            Some(plan) => self.read_planned(plan, max_bytes, min_one).await?,
            None => Vec::new(),
        };
        Ok((ReadResult { bytes }, self.offsets()))
    }

    async fn read_planned(&self, plan: ReadPlan, max_bytes: usize, min_one: bool) -> Result<Vec<u8>, StorageError> {
        let io = |e| StorageError::Io { op: "read", path: self.dir.clone(), source: e };
        let mut position = plan.start;
        loop {
            let window =
                (plan.limit.saturating_sub(position) as usize).min(max_bytes.max(BATCH_HEADER_LEN) + SCAN_SLACK);
            if window < BATCH_HEADER_LEN {
                return Ok(Vec::new());
            }
            let buf = self.ring.read_at(&plan.file, window, position).await.map_err(io)?;
            match locate(&buf, plan.offset) {
                Located::Found { at, batch } => {
                    let want = if min_one { max_bytes.max(batch.size as usize) } else { max_bytes };
                    let start = position + at as u64;
                    let len = (want as u64).min(plan.limit - start) as usize;
                    if at + len <= buf.len() {
                        return Ok(buf[at..at + len].to_vec());
                    }
                    return self.ring.read_at(&plan.file, len, start).await.map_err(io);
                }
                Located::Skip(n) if n > 0 => position += n as u64,
                Located::Skip(_) | Located::Corrupt => {
                    return Err(StorageError::InvalidBatch("unreadable batch header inside a recovered segment"))
                }
            }
        }
    }

    pub async fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<Vec<u8>>, StorageError> {
        self.log.borrow().find_by_timestamp(timestamp)
    }

    pub async fn find_max_timestamp(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.log.borrow().find_max_timestamp()
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the
    /// high watermark) and returns the new low watermark.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, StorageError> {
        let mut log = self.log.borrow_mut();
        let offset = if offset == -1 { log.visible_offset() } else { offset };
        log.delete_records_before(offset)
    }

    /// Applies `retention.ms` / `retention.bytes`; returns segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> usize {
        self.log.borrow_mut().enforce_retention(now_ms)
    }

    /// Makes everything visible so far durable, whatever the policy.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let end = self.log.borrow().visible_offset();
        self.wait_durable(end, true).await
    }

    /// Records how far the log is durable, so recovery after a crash scans
    /// only what came later; `clean` (at shutdown, after [`Partition::flush`])
    /// lets the next start trust the last segment too. Skips the write when
    /// nothing changed.
    pub fn checkpoint(&self, clean: bool) -> Result<(), StorageError> {
        let point = RecoveryPoint { offset: self.durable.get(), clean };
        if point == self.checkpointed.get() {
            return Ok(());
        }
        write_recovery_point(&self.dir, point)?;
        self.checkpointed.set(point);
        Ok(())
    }

    /// Removes the partition's files; in-flight operations finish on the open files.
    pub async fn delete(&self) -> Result<(), StorageError> {
        std::fs::remove_dir_all(&self.dir).map_err(StorageError::io("delete partition dir", &self.dir))
    }
}

enum Located {
    /// The batch holding the offset starts `at` bytes into the buffer.
    Found {
        at: usize,
        batch: StoredBatch,
    },
    /// Not in this buffer: continue this many bytes further on.
    Skip(usize),
    Corrupt,
}

/// Walks batch headers in `buf` for the batch that holds `offset`.
fn locate(buf: &[u8], offset: i64) -> Located {
    let mut at = 0usize;
    while at + BATCH_HEADER_LEN <= buf.len() {
        let Some(batch) = StoredBatch::parse(&buf[at..]) else { return Located::Corrupt };
        if batch.last_offset() >= offset {
            return Located::Found { at, batch };
        }
        at += batch.size as usize;
    }
    Located::Skip(at)
}

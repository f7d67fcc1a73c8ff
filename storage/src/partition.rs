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
use crate::cleaner::{self, CleanStats, RecordCodec};
use crate::config::{FsyncPolicy, LogConfig};
use crate::epochs::EpochCache;
use crate::error::StorageError;
use crate::files::{read_high_watermark, write_high_watermark, write_recovery_point, RecoveryPoint};
use crate::log::CleanableSegment;
use crate::log::{AppendInfo, PartitionLog, ReadPlan, ReadResult};
use crate::producers::{self, AbortedTxn, ProducerBatch, ProducerStates, ProducerSummary, Verdict};
use crate::txnindex;
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
    /// Offsets below this are committed (replicated to the ISR) and may be
    /// read by consumers; the replication layer moves it.
    high_watermark: Cell<i64>,
    /// The high watermark last written to disk.
    checkpointed_hw: Cell<i64>,
    epochs: RefCell<EpochCache>,
    /// Idempotent producers' last batches, for duplicate and sequence checks.
    producers: RefCell<ProducerStates>,
    /// The log end when producer state was last snapshotted.
    producers_snapshotted: Cell<i64>,
    /// Segments whose `.txnindex` has entries not yet fsynced.
    txnindex_dirty: RefCell<std::collections::BTreeSet<i64>>,
    /// An abort could not be indexed: no more snapshots until restart.
    txnindex_failed: Cell<bool>,
    /// The directory was removed: a compaction pass finishing late must
    /// not install its copies there.
    deleted: Cell<bool>,
}

/// Kafka's `producer.id.expiration.ms` default: a producer silent this
/// long is forgotten.
const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// Offsets a reader sees alongside the bytes it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// One past the last written batch (LEO).
    pub log_end_offset: i64,
    /// Below every transaction not yet decided and replicated: where
    /// read_committed consumers stop.
    pub last_stable_offset: i64,
}

impl Partition {
    /// Takes up changed topic configs (segment size and age, retention).
    pub fn set_config(&self, config: LogConfig) {
        self.log.borrow_mut().set_config(config);
    }

    /// Opens (and recovers) the log in `dir`.
    pub async fn open(dir: &Path, config: LogConfig, ring: Rc<Ring>) -> Result<Self, StorageError> {
        let log = PartitionLog::open(dir, config)?;
        let durable = log.durable_at_open();
        let end = log.visible_offset();
        let epochs = EpochCache::open(dir, end)?;
        let high_watermark = read_high_watermark(dir)?.unwrap_or(0).clamp(log.log_start_offset(), end);
        let (producers, snapshotted) = rebuild_producers(dir, &log)?;
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
            high_watermark: Cell::new(high_watermark),
            checkpointed_hw: Cell::new(high_watermark),
            epochs: RefCell::new(epochs),
            producers: RefCell::new(producers),
            producers_snapshotted: Cell::new(snapshotted),
            txnindex_dirty: RefCell::default(),
            txnindex_failed: Cell::new(false),
            deleted: Cell::new(false),
        })
    }

    pub fn offsets(&self) -> LogOffsets {
        let log = self.log.borrow();
        let high_watermark = self.high_watermark.get().clamp(log.log_start_offset(), log.visible_offset());
        LogOffsets {
            log_start_offset: log.log_start_offset(),
            high_watermark,
            log_end_offset: log.visible_offset(),
            last_stable_offset: self.producers.borrow().last_stable_offset(high_watermark).max(log.log_start_offset()),
        }
    }

    /// Moves the high watermark (clamped to the written log); returns
    /// whether it changed. Starts where the last checkpoint left it.
    pub fn set_high_watermark(&self, offset: i64) -> bool {
        let offset = offset.min(self.log.borrow().visible_offset());
        self.producers.borrow_mut().stabilised_below(offset);
        self.high_watermark.replace(offset) != offset
    }

    /// The producers this log remembers, by id.
    pub fn active_producers(&self) -> Vec<ProducerSummary> {
        self.producers.borrow().active()
    }

    /// Whether `producer_id` has a transaction open in this partition (so
    /// its transactional batches need no check with the coordinator).
    pub fn in_transaction(&self, producer_id: i64) -> bool {
        self.producers.borrow().in_transaction(producer_id)
    }

    /// Bytes of the partition's segments on disk.
    pub fn size_bytes(&self) -> u64 {
        self.log.borrow().size_bytes()
    }

    /// KIP-890: see [`ProducerStates::begin_verification`].
    pub fn begin_txn_verification(&self, producer_id: i64, now_ms: i64) -> Option<u64> {
        self.producers.borrow_mut().begin_verification(producer_id, now_ms)
    }

    /// KIP-890: see [`ProducerStates::admit_transactional`]. Call right
    /// before [`Partition::append`], with no await between.
    pub fn admit_transactional(&self, producer_id: i64, guard: Option<u64>) -> bool {
        self.producers.borrow_mut().admit_transactional(producer_id, guard)
    }

    /// Aborted transactions overlapping `from..upto` (read_committed fetch).
    pub fn aborted_between(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.producers.borrow().aborted_between(from, upto)
    }

    /// Records that leader epoch `epoch` starts at the current log end.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        let start = self.log.borrow().next_offset();
        self.epochs.borrow_mut().assign(epoch, start)
    }

    /// The latest leader epoch this log holds data or leadership for.
    pub fn latest_leader_epoch(&self) -> Option<i32> {
        self.epochs.borrow().latest().map(|(e, _)| e)
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `epoch` this log
    /// knows and the offset where its data ends; (-1, -1) if none.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.borrow().end_offset_for(epoch, self.log.borrow().visible_offset())
    }

    /// Cuts the log back to end at the batch holding `offset` (or restarts
    /// it empty at `offset` with `reset`), for a follower matching its
    /// leader's log. Returns the new log end.
    pub fn truncate_to(&self, offset: i64, reset: bool) -> Result<i64, StorageError> {
        let before = self.log.borrow().next_offset();
        let end = {
            let mut log = self.log.borrow_mut();
            if reset {
                log.reset_to(offset)?
            } else {
                log.truncate_to(offset)?
            }
        };
        if reset {
            self.epochs.borrow_mut().clear()?;
            // Nothing of the old log remains: neither may its producer state.
            producers::remove_snapshots_after(&self.dir, -1)?;
        } else {
            self.epochs.borrow_mut().truncate_from_end(end)?;
        }
        self.high_watermark.set(self.high_watermark.get().min(end));
        self.durable.set(self.durable.get().min(end));
        if reset || end != before {
            self.reset_producers();
        }
        let point = self.checkpointed.get();
        if point.offset > end || point.clean {
            let point = RecoveryPoint { offset: point.offset.min(end), clean: false };
            write_recovery_point(&self.dir, point)?;
            self.checkpointed.set(point);
        }
        // What is written past `end` from now on has not been cleaned.
        let cleaned = cleaner::read_checkpoint(&self.dir);
        if cleaned.cleaned_upto > end {
            cleaner::write_checkpoint(&self.dir, cleaner::CleanerCheckpoint { cleaned_upto: end, ..cleaned })?;
        }
        self.progress.notify_waiters();
        Ok(end)
    }

    /// Readies the log for fetched batches whose first spans
    /// `base..=last`: one starting below the log end is refused, except
    /// by an empty log whose start falls inside it. That is a follower
    /// restarted at its leader's log start after DeleteRecords or
    /// retention cut the leader's log inside a batch; it is sent the whole
    /// batch and, as in Kafka, restarts its log at the batch's base so the
    /// batch is kept whole (refusing it would leave a hole once the
    /// following batches are appended).
    pub fn align_replicated(&self, base: i64, last: i64) -> Result<(), StorageError> {
        let (start, end) = {
            let log = self.log.borrow();
            (log.log_start_offset(), log.next_offset())
        };
        if base >= end {
            Ok(())
        } else if start == end && last >= end {
            self.truncate_to(base, true).map(|_| ())
        } else {
            Err(StorageError::OffsetOutOfRange { offset: base, start: end, end })
        }
    }

    /// Appends a batch fetched from the leader, keeping its offsets: it
    /// must start at or (past records compacted away) after this log's end
    /// (see [`Partition::align_replicated`]).
    pub async fn append_replicated(&self, batch: Vec<u8>) -> Result<(AppendInfo, LogOffsets), StorageError> {
        let Some(header) = StoredBatch::parse(&batch) else {
            return Err(StorageError::InvalidBatch("not a RecordBatch v2"));
        };
        let end = self.log.borrow().next_offset();
        if header.base_offset < end {
            return Err(StorageError::OffsetOutOfRange { offset: header.base_offset, start: end, end });
        }
        self.epochs.borrow_mut().assign(header.leader_epoch, header.base_offset)?;
        self.write(batch, header, Some(header.base_offset)).await
    }

    /// Offsets below this are durable (fdatasync done).
    pub fn durable_offset(&self) -> i64 {
        self.durable.get()
    }

    /// fsync rounds issued so far: with group commit, far fewer than appends.
    pub fn sync_rounds(&self) -> u64 {
        self.sync_rounds.get()
    }

    /// Appends one validated batch from a client; resolves once it is
    /// written and, per the fsync policy, durable. An idempotent producer's
    /// batch is checked against its sequence first: a retry of a batch
    /// already in the log is not written again but answered with where the
    /// original went, once that is as durable as a new append would be.
    pub async fn append(&self, batch: Vec<u8>) -> Result<(AppendInfo, LogOffsets), StorageError> {
        let header = StoredBatch::parse(&batch).ok_or(StorageError::InvalidBatch("not a RecordBatch v2"))?;
        let verdict = self.producers.borrow().check(&header)?;
        if let Verdict::Duplicate(original) = verdict {
            return self.settle_duplicate(original).await;
        }
        self.write(batch, header, None).await
    }

    /// Writes a batch (`header` parsed from it) at the log end. No partial
    /// batch ever becomes visible: a failed write rolls the log back to its
    /// last complete batch.
    async fn write(
        &self,
        mut batch: Vec<u8>,
        header: StoredBatch,
        at: Option<i64>,
    ) -> Result<(AppendInfo, LogOffsets), StorageError> {
        if self.sync_failed.get() {
            return Err(StorageError::Unavailable("an fsync failed; restart to recover"));
        }
        let (reservation, rolled) = {
            let mut log = self.log.borrow_mut();
            let segments = log.segment_count();
            let reservation = log.reserve(&mut batch, at)?;
            let rolled = log.segment_count() != segments;
            (reservation, rolled)
        };
        if rolled {
            // The new segment starts at this batch: snapshot producer state
            // as of its base, before this batch is recorded. Best effort:
            // without it a rebuild only reads further back.
            if let Err(e) = self.snapshot_producers(reservation.info.base_offset) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot snapshot producer state");
            }
        }
        // Recorded at once, so a retry arriving while this write is in
        // flight is already recognised as a duplicate.
        let aborted =
            self.producers.borrow_mut().record(&StoredBatch { base_offset: reservation.info.base_offset, ..header });
        if let Some(aborted) = aborted {
            self.index_abort(aborted);
        }
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
        let (completed, rolled_back) = {
            let mut log = self.log.borrow_mut();
            let before = log.epoch();
            (log.complete(reservation.ticket, outcome.is_ok()), log.epoch() != before)
        };
        self.progress.notify_waiters();
        if rolled_back {
            // Nothing is in flight at a rollback (and nothing new was
            // reserved since the failure): the log as it stands is the
            // whole truth for producer state too.
            self.reset_producers();
        }
        completed?;
        outcome.map_err(|e| StorageError::Io { op: "append", path: self.dir.clone(), source: e })?;
        self.settle(reservation.info.last_offset + 1, reservation.epoch).await?;
        Ok((reservation.info, self.offsets()))
    }

    /// Adds an aborted transaction to its segment's `.txnindex`. Should the
    /// write fail, the next snapshot is skipped, so the abort is re-derived
    /// from the log at the next open.
    fn index_abort(&self, aborted: AbortedTxn) {
        let segment = txnindex::segment_of(&self.log.borrow().segment_bases(), aborted.last_offset);
        match txnindex::append(&self.dir, segment, &aborted) {
            Ok(()) => drop(self.txnindex_dirty.borrow_mut().insert(segment)),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot index an aborted transaction");
                self.txnindex_failed.set(true);
            }
        }
    }

    /// Snapshots producer state as of `offset` (every batch below it recorded).
    /// The aborts indexed so far are made durable first: a snapshot stands
    /// for everything below it.
    fn snapshot_producers(&self, offset: i64) -> Result<(), StorageError> {
        if self.txnindex_failed.get() {
            return Err(StorageError::Unavailable("an aborted transaction could not be indexed"));
        }
        let dirty = std::mem::take(&mut *self.txnindex_dirty.borrow_mut());
        txnindex::sync(&self.dir, dirty)?;
        let bases = self.log.borrow().segment_bases();
        producers::write_snapshot(&self.dir, offset, &self.producers.borrow(), &bases)?;
        self.producers_snapshotted.set(offset);
        Ok(())
    }

    /// Answers a retried batch once its original is visible and durable.
    async fn settle_duplicate(&self, original: ProducerBatch) -> Result<(AppendInfo, LogOffsets), StorageError> {
        let epoch = self.log.borrow().epoch();
        self.settle(original.last_offset + 1, epoch).await?;
        let info = AppendInfo {
            base_offset: original.base_offset,
            last_offset: original.last_offset,
            duplicate_of: Some(original.max_timestamp),
        };
        Ok((info, self.offsets()))
    }

    /// Waits until offsets below `end` are visible and, per the fsync
    /// policy, durable. Acknowledges only once every earlier append is
    /// written too: an earlier failed write rolls this one back as well.
    async fn settle(&self, end: i64, epoch: u64) -> Result<(), StorageError> {
        self.wait_visible(end, epoch).await?;
        let policy = self.log.borrow().config().fsync;
        match policy {
            FsyncPolicy::Never => Ok(()),
            FsyncPolicy::Batch => self.wait_durable(end, true).await,
            FsyncPolicy::Always => self.wait_durable(end, false).await,
        }
    }

    /// Rebuilds producer state for the log as it now stands (after a
    /// truncation or rollback). Should that fail, the state starts empty:
    /// every producer is then unknown and may continue at any sequence,
    /// rather than be matched against batches that are gone.
    fn reset_producers(&self) {
        let (states, snapshotted) = rebuild_producers(&self.dir, &self.log.borrow()).unwrap_or_else(|e| {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot rebuild producer state; starting empty");
            (ProducerStates::default(), -1)
        });
        *self.producers.borrow_mut() = states;
        self.producers_snapshotted.set(snapshotted);
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
        let epoch = self.log.borrow().epoch();
        let syncs: Vec<_> = files.iter().map(|f| self.ring.fdatasync(f)).collect();
        let mut outcome = Ok(());
        for sync in syncs {
            if let Err(e) = sync.await {
                outcome = Err(StorageError::Io { op: "fdatasync", path: self.dir.clone(), source: e });
            }
        }
        if outcome.is_ok() {
            // A truncation meanwhile moved the log: what was planned no
            // longer describes it, so nothing is marked durable this round.
            if self.log.borrow().epoch() == epoch {
                self.log.borrow_mut().mark_synced(target);
                self.durable.set(self.durable.get().max(target));
            }
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
        upto: i64,
    ) -> Result<(ReadResult, LogOffsets), StorageError> {
        let plan = self.log.borrow().plan_read(offset)?;
        let mut bytes = match plan {
            Some(plan) if offset < upto => self.read_planned(plan, max_bytes, min_one).await?,
            _ => Vec::new(),
        };
        bytes.truncate(batches_below(&bytes, upto));
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
        let LogOffsets { log_start_offset, high_watermark, .. } = self.offsets();
        let offset = if offset == -1 { high_watermark } else { offset };
        if offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange { offset, start: log_start_offset, end: high_watermark });
        }
        let start = self.log.borrow_mut().delete_records_before(offset)?;
        self.forget_below(start)?;
        producers::remove_snapshots_before(&self.dir, start)?;
        Ok(start)
    }

    /// The log now starts at `start`: leader epochs and producers whose
    /// data is gone are forgotten.
    fn forget_below(&self, start: i64) -> Result<(), StorageError> {
        self.producers.borrow_mut().retain_from(start);
        self.epochs.borrow_mut().truncate_from_start(start)
    }

    /// One compaction pass when the log is due one (see [`crate::cleaner`]):
    /// the dirty share of its cleanable segments reached
    /// `min.cleanable.dirty.ratio`, uncleaned records passed
    /// `max.compaction.lag.ms`, or a kept tombstone's delete horizon passed.
    /// The records are read and rewritten on a blocking thread; produce and
    /// fetch go on meanwhile. `None` when no pass was due.
    pub async fn clean(
        &self,
        codec: std::sync::Arc<dyn RecordCodec>,
        now_ms: i64,
        cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Option<CleanStats>, StorageError> {
        let (job, handles, epoch) = {
            let log = self.log.borrow();
            let Some(c) = log.config().compaction else { return Ok(None) };
            let checkpoint = cleaner::read_checkpoint(&self.dir);
            let first_dirty = checkpoint.cleaned_upto;
            let newest_allowed = (c.min_lag_ms > 0).then(|| now_ms.saturating_sub(c.min_lag_ms));
            let bound = self.offsets().last_stable_offset;
            let segments = log.cleanable_segments(bound, first_dirty, newest_allowed);
            let total: u64 = segments.iter().map(|s| s.size).sum();
            let dirty: Vec<&CleanableSegment> = segments.iter().filter(|s| s.end > first_dirty).collect();
            let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
            let overdue = dirty
                .first()
                .is_some_and(|s| s.max_timestamp.unwrap_or(i64::MAX) < now_ms.saturating_sub(c.max_lag_ms));
            let horizon_passed = checkpoint.next_horizon.is_some_and(|h| now_ms >= h);
            let ratio_reached = dirty_bytes > 0 && dirty_bytes as f64 >= c.min_cleanable_dirty_ratio * total as f64;
            if total == 0 || !(ratio_reached || overdue || horizon_passed) {
                return Ok(None);
            }
            let upto = segments.last().map_or(0, |s| s.end);
            let aborted = cleaner::AbortedIndex::new(self.aborted_between(log.log_start_offset(), upto));
            let producer_last_batches =
                self.producers.borrow().active().iter().map(|p| (p.producer_id, p.last.base_offset)).collect();
            let mut sources = Vec::with_capacity(segments.len());
            let mut handles = Vec::with_capacity(segments.len());
            for s in &segments {
                let (source, handle) = log.clean_source(s)?;
                sources.push(source);
                handles.push(handle);
            }
            let job = cleaner::CleanJob {
                dir: self.dir.clone(),
                sources,
                first_dirty,
                aborted,
                producer_last_batches,
                now_ms,
                delete_retention_ms: c.delete_retention_ms,
                index_interval: log.config().index_interval_bytes,
                cancel,
            };
            (job, handles, log.epoch())
        };
        let bases: Vec<i64> = job.sources.iter().map(|s| s.base).collect();
        let output = tokio::task::spawn_blocking(move || cleaner::run(job, codec.as_ref()))
            .await
            .map_err(|e| StorageError::Compaction(format!("cleaner thread failed: {e}")))??;
        let mut stats = CleanStats::default();
        if self.deleted.get() {
            // The directory may hold another log by now: leave it alone.
            return Ok(None);
        }
        let mut all_installed = true;
        for r in &output.rewritten {
            let Some(i) = bases.iter().position(|&b| b == r.base) else { continue };
            if self.log.borrow_mut().install_cleaned(r.base, &handles[i], epoch)? {
                stats.segments_rewritten += 1;
                stats.bytes_before += r.bytes_before;
                stats.bytes_after += r.bytes_after;
            } else {
                all_installed = false;
            }
        }
        if stats.segments_rewritten > 0 {
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(StorageError::io("fsync partition dir", &self.dir))?;
        }
        if all_installed {
            let checkpoint =
                cleaner::CleanerCheckpoint { cleaned_upto: output.cleaned_upto, next_horizon: output.next_horizon };
            cleaner::write_checkpoint(&self.dir, checkpoint)?;
        }
        Ok(Some(stats))
    }

    /// Applies `retention.ms` / `retention.bytes`; returns segments deleted.
    /// Also forgets producers silent for `producer.id.expiration.ms`.
    pub fn enforce_retention(&self, now_ms: i64) -> usize {
        let committed = self.offsets().high_watermark;
        let deleted = self.log.borrow_mut().enforce_retention(now_ms, committed);
        if deleted > 0 {
            let start = self.log.borrow().log_start_offset();
            if let Err(e) = self.forget_below(start) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot trim the leader epoch cache");
            }
            if let Err(e) = producers::remove_snapshots_before(&self.dir, start) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove old producer snapshots");
            }
        }
        self.producers.borrow_mut().expire(now_ms, PRODUCER_ID_EXPIRATION_MS);
        deleted
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
        let hw = self.offsets().high_watermark;
        if hw != self.checkpointed_hw.get() {
            write_high_watermark(&self.dir, hw)?;
            self.checkpointed_hw.set(hw);
        }
        // Producer state as of the log end (every reserved batch recorded):
        // should those batches be lost, the snapshot lies past the
        // recovered end and is dropped at open.
        let end = self.log.borrow().next_offset();
        if end != self.producers_snapshotted.get() {
            self.snapshot_producers(end)?;
        }
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
        self.deleted.set(true);
        std::fs::remove_dir_all(&self.dir).map_err(StorageError::io("delete partition dir", &self.dir))
    }
}

/// Producer state for `log`: the newest snapshot at or below its end, then
/// every batch after it. Snapshots past the end (batches lost in a crash,
/// cut by a truncation or a rollback) are removed first. Returns the state
/// and the snapshot's offset.
fn rebuild_producers(dir: &Path, log: &PartitionLog) -> Result<(ProducerStates, i64), StorageError> {
    let end = log.next_offset();
    producers::remove_snapshots_after(dir, end)?;
    let start = log.log_start_offset();
    // A snapshot below the log start describes data that is gone (a
    // transaction it holds open may have ended in the deleted part).
    let (at, mut states) = match producers::load_snapshot(dir, end)? {
        (at, _) if at < start => (start, ProducerStates::default()),
        loaded => loaded,
    };
    // Aborts before the snapshot come from the segments' `.txnindex`
    // files; those after it are re-derived from the log (and re-indexed).
    let bases = log.segment_bases();
    states.set_aborted(txnindex::load(dir, &bases, start, at)?);
    let mut derived = Vec::new();
    log.for_each_batch_from(at.max(start), |b| derived.extend(states.record(b)))?;
    let mut touched = std::collections::BTreeSet::new();
    for aborted in derived {
        let segment = txnindex::segment_of(&bases, aborted.last_offset);
        txnindex::append(dir, segment, &aborted)?;
        touched.insert(segment);
    }
    txnindex::sync(dir, touched)?;
    states.retain_from(start);
    Ok((states, at))
}

/// How many leading bytes of `buf` hold batches starting below `upto`
/// (a partial last batch counts, as a read may end mid-batch).
fn batches_below(buf: &[u8], upto: i64) -> usize {
    let mut at = 0usize;
    while at + 8 <= buf.len() {
        let base = i64::from_be_bytes(buf[at..at + 8].try_into().unwrap_or_default());
        if base >= upto {
            return at;
        }
        match StoredBatch::parse(&buf[at..]) {
            Some(batch) => at += batch.size as usize,
            None => return buf.len(),
        }
    }
    buf.len()
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

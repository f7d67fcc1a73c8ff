//! `PartitionLog`: the ordered segments of one partition and the state of
//! its writes — offsets reserved, writes in flight, the visible prefix that
//! readers may see — plus crash recovery on open. It performs no data I/O
//! on the append and fetch paths itself: it plans writes and reads that
//! [`crate::Partition`] carries out through the shard's io_uring ring.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::batch::{set_base_offset, StoredBatch};
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::files::{read_log_start, read_recovery_point, write_log_start, write_recovery_point, RecoveryPoint};
use crate::index::PendingWrite;
use crate::segment::Segment;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// For a producer's retry answered from the log: the original batch's
    /// max timestamp (its log append time on LogAppendTime topics).
    pub duplicate_of: Option<i64>,
}

/// Bytes read from one segment, starting at a batch boundary. Like Kafka,
/// the tail may be a partial batch when `max_bytes` cuts it; clients drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub bytes: Vec<u8>,
}

/// An append whose offsets and file space are reserved: the caller writes
/// `bytes`-to-be at `position` of `file`, performs `index_writes`, then
/// reports the outcome with [`PartitionLog::complete`].
pub struct Reservation {
    pub ticket: u64,
    /// The log's rollback epoch when reserved: if a failed write rolls the
    /// log back before this append became visible, the append is discarded.
    pub epoch: u64,
    pub info: AppendInfo,
    pub file: Rc<File>,
    pub position: u64,
    pub index_writes: Vec<PendingWrite>,
}

/// A closed segment compaction may clean.
pub(crate) struct CleanableSegment {
    pub base: i64,
    /// The next segment's base.
    pub end: i64,
    pub size: u64,
    pub max_timestamp: Option<i64>,
}

/// A fetch read to perform: scan batch headers in `file` from `start` for
/// the batch holding `offset`, never past `limit`.
pub struct ReadPlan {
    pub file: Rc<File>,
    pub start: u64,
    pub limit: u64,
    pub offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    InFlight,
    Done,
    Failed,
}

struct Inflight {
    ticket: u64,
    segment: i64,
    end_position: u64,
    end_offset: i64,
    state: WriteState,
}

pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    inflight: VecDeque<Inflight>,
    next_ticket: u64,
    /// Offsets below this are written and may be read (the high watermark
    /// on a one-node broker).
    visible_offset: i64,
    /// Set when a write failed: appends are refused until the writes in
    /// flight drain and the log is cut back to its visible prefix.
    failed: bool,
    /// Files of rolled segments, and the directory, awaiting an fsync,
    /// each with the offset below which it holds all its data.
    unsynced: Vec<(Rc<File>, i64)>,
    /// Lowest readable offset as moved by DeleteRecords (at least the
    /// first segment's base).
    log_start: i64,
    /// Bumped by every rollback after a failed write.
    epoch: u64,
    /// Offsets below this were durable when the log was opened.
    durable_at_open: i64,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering the active segment.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(StorageError::io("create partition dir", dir))?;
        let names: Vec<String> = std::fs::read_dir(dir)
            .map_err(StorageError::io("list partition dir", dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        // A compaction pass cut short: its copies were never swapped in.
        for name in names.iter().filter(|n| n.ends_with(".cleaned")) {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(StorageError::io("remove unfinished cleaned file", &path))?;
        }
        let mut bases: Vec<i64> =
            names.iter().filter_map(|name| name.strip_suffix(".log")?.parse::<i64>().ok()).collect();
        bases.sort_unstable();
        let recovery = read_recovery_point(dir)?;
        let mut segments = BTreeMap::new();
        // Segments recovered by scanning may hold data that only reached the
        // page cache before a crash: they are fsynced in the first round.
        let mut unsynced = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            // Trusted: wholly below the recovery point, or the last segment
            // after a clean shutdown. Anything else is scanned with CRCs.
            let trusted = next_base.map_or(recovery.clean, |next| next <= recovery.offset);
            let seg = Segment::open(dir, base, config.index_interval_bytes, trusted)?;
            if !trusted {
                unsynced.push((seg.log_file().clone(), seg.next_offset()));
            }
            let whole = next_base.is_none_or(|next| seg.next_offset() == next);
            segments.insert(base, seg);
            if !whole {
                // A torn write inside this segment: the segments after it
                // follow a hole and can never be read in order. Drop them.
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), base_offset = later, "removing segment after a torn write");
                    Segment::remove_files_of(dir, later);
                }
                break;
            }
        }
        if recovery.clean {
            // From here on an unplanned stop must not be taken for a clean one.
            write_recovery_point(dir, RecoveryPoint { clean: false, ..recovery })?;
        }
        if !unsynced.is_empty() {
            unsynced.push((open_dir(dir)?, 0));
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, config.index_interval_bytes)?);
            unsynced.push((open_dir(dir)?, 0));
        }
        let visible_offset = segments.values().next_back().map_or(0, Segment::next_offset);
        let log_start = read_log_start(dir)?.unwrap_or(0).min(visible_offset);
        let durable_at_open = if recovery.clean { visible_offset } else { recovery.offset.min(visible_offset) };
        Ok(Self {
            dir: dir.to_owned(),
            config,
            segments,
            inflight: VecDeque::new(),
            next_ticket: 0,
            visible_offset,
            failed: false,
            unsynced,
            log_start,
            epoch: 0,
            durable_at_open,
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Offsets below this were durable when the log was opened: all of it
    /// after a clean stop, else up to the last recovery checkpoint. Data
    /// recovered beyond it is fsynced with the next sync round.
    pub fn durable_at_open(&self) -> i64 {
        self.durable_at_open
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// A topic config change: rolling and retention follow it from now on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("a log always has an active segment")
    }

    /// The offset the next appended record gets (log end offset, counting
    /// appends still being written).
    pub fn next_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Everything below this offset is written and readable.
    pub fn visible_offset(&self) -> i64 {
        self.visible_offset
    }

    /// The base offset of every segment, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.segments.values().next().map_or(0, |s| s.base_offset).max(self.log_start)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Reserves offsets and file space for one validated batch, assigning
    /// its offsets by rewriting `baseOffset` in place; every other byte is
    /// stored as given.
    /// A replicated batch keeps its own offsets (`at`): compaction on the
    /// leader leaves gaps, so it may start past this log's end.
    pub fn reserve(&mut self, batch: &mut [u8], at: Option<i64>) -> Result<Reservation, StorageError> {
        if self.failed {
            return Err(StorageError::Unavailable("an earlier write failed; waiting for writes in flight"));
        }
        let end = self.next_offset();
        let base_offset = match at {
            None => end,
            Some(at) if at >= end => at,
            Some(at) => return Err(StorageError::OffsetOutOfRange { offset: at, start: end, end }),
        };
        let Some(mut info) = StoredBatch::parse(batch) else {
            return Err(StorageError::InvalidBatch("not a RecordBatch v2"));
        };
        if info.size as usize != batch.len() {
            return Err(StorageError::InvalidBatch("batch length field disagrees with its size"));
        }
        let active = self.active();
        // The client's own baseOffset is meaningless (and may be extreme).
        let relative_last = i64::from(info.last_offset_delta) + base_offset - active.base_offset;
        let full = active.size() > 0 && active.size() + batch.len() as u64 > self.config.segment_bytes;
        let old = active.size() > 0 && active.age_ms() >= self.config.segment_ms.max(0) as u128;
        let mut index_writes = Vec::new();
        if full || old || relative_last > i64::from(i32::MAX) {
            // A replicated batch may start past a gap compaction left; the
            // new segment still starts where the last one ended, so segments
            // stay contiguous (recovery takes a segment that ends short of
            // the next for a torn write). Only a gap too wide for relative
            // offsets starts it at the batch.
            let fits = i64::from(info.last_offset_delta) + base_offset - end <= i64::from(i32::MAX);
            index_writes.extend(self.roll(if fits { end } else { base_offset })?);
        }
        set_base_offset(batch, base_offset);
        info.base_offset = base_offset;
        let active = self.active_mut();
        let (position, writes) = active.reserve(batch.len() as u64, &info);
        index_writes.extend(writes);
        let (segment, file) = (active.base_offset, active.log_file().clone());
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.inflight.push_back(Inflight {
            ticket,
            segment,
            end_position: position + batch.len() as u64,
            end_offset: info.next_offset(),
            state: WriteState::InFlight,
        });
        Ok(Reservation {
            ticket,
            epoch: self.epoch,
            info: AppendInfo { base_offset, last_offset: info.last_offset(), duplicate_of: None },
            file,
            position,
            index_writes,
        })
    }

    fn roll(&mut self, base_offset: i64) -> Result<Vec<PendingWrite>, StorageError> {
        let old = self.active_mut();
        let seal = old.seal();
        let files = old.files();
        // The seal's index write completes with the first append of the new
        // segment, so these files are whole only past that append.
        self.unsynced.extend(files.into_iter().map(|f| (f, base_offset + 1)));
        let seg = Segment::create(&self.dir, base_offset, self.config.index_interval_bytes)?;
        self.segments.insert(base_offset, seg);
        self.unsynced.push((open_dir(&self.dir)?, base_offset));
        Ok(seal.into_iter().collect())
    }

    /// Records how a reserved append's writes went. Completed writes become
    /// visible in offset order: a write that finished early waits for those
    /// before it. Returns whether the visible offset moved.
    pub fn complete(&mut self, ticket: u64, ok: bool) -> Result<bool, StorageError> {
        if let Some(w) = self.inflight.iter_mut().find(|w| w.ticket == ticket) {
            w.state = if ok { WriteState::Done } else { WriteState::Failed };
        }
        if !ok {
            self.failed = true;
        }
        let mut advanced = false;
        while let Some(front) = self.inflight.front() {
            match front.state {
                WriteState::Done => {
                    let w = self.inflight.pop_front().expect("front exists");
                    if let Some(seg) = self.segments.get_mut(&w.segment) {
                        seg.set_visible(w.end_position);
                    }
                    self.visible_offset = w.end_offset;
                    advanced = true;
                }
                WriteState::Failed if self.inflight.iter().all(|w| w.state != WriteState::InFlight) => {
                    self.inflight.clear();
                    self.roll_back_to_visible()?;
                    break;
                }
                _ => break,
            }
        }
        Ok(advanced)
    }

    /// After a failed write: forget every reserved-but-unwritten append so
    /// no partial batch can ever be read, and accept appends again.
    fn roll_back_to_visible(&mut self) -> Result<(), StorageError> {
        let visible = self.visible_offset;
        let doomed: Vec<i64> = self.segments.range(visible + 1..).map(|(b, _)| *b).collect();
        for base in doomed {
            if self.segments.len() > 1 {
                if let Some(seg) = self.segments.remove(&base) {
                    seg.remove_files(&self.dir);
                }
            }
        }
        let active = self.active_mut();
        let size = active.visible_size();
        active.truncate_to(size, visible.max(active.base_offset))?;
        self.epoch += 1;
        self.failed = false;
        tracing::warn!(dir = %self.dir.display(), next_offset = visible, "rolled the log back to its last complete write");
        Ok(())
    }

    /// Cuts the log back to end at the batch holding `offset` (a follower
    /// dropping what its new leader does not have); returns the new end.
    /// Refused while appends are in flight.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, StorageError> {
        if !self.inflight.is_empty() {
            return Err(StorageError::Unavailable("cannot truncate while appends are in flight"));
        }
        if offset >= self.visible_offset {
            return Ok(self.visible_offset);
        }
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        if offset <= first_base {
            return self.reset_to(offset.max(self.log_start_offset()));
        }
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                seg.remove_files(&self.dir);
            }
        }
        let active = self.active_mut();
        // The log ends after the last batch below `offset`: exactly
        // `offset` unless compaction left a gap before it.
        let (position, end) = active.cut_point(offset)?;
        let end = if position < active.size() {
            active.truncate_to(position, end)?;
            end
        } else {
            active.next_offset()
        };
        self.visible_offset = end;
        self.epoch += 1;
        tracing::info!(dir = %self.dir.display(), end, "truncated the log");
        Ok(end)
    }

    /// Empties the log and starts it again at `offset` (a follower whose
    /// log lies wholly outside its leader's).
    pub fn reset_to(&mut self, offset: i64) -> Result<i64, StorageError> {
        if !self.inflight.is_empty() {
            return Err(StorageError::Unavailable("cannot truncate while appends are in flight"));
        }
        let seg = Segment::create(&self.dir, offset, self.config.index_interval_bytes)?;
        for (base, old) in std::mem::take(&mut self.segments) {
            if base != offset {
                old.remove_files(&self.dir);
            }
        }
        self.segments.insert(offset, seg);
        self.unsynced.push((open_dir(&self.dir)?, offset));
        write_log_start(&self.dir, offset)?;
        self.log_start = offset;
        self.visible_offset = offset;
        self.epoch += 1;
        tracing::info!(dir = %self.dir.display(), offset, "restarted the log");
        Ok(offset)
    }

    /// DeleteRecords: makes `offset` (at most the high watermark) the new log
    /// start offset, durably, and deletes the segments wholly below it.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        let (start, end) = (self.log_start_offset(), self.visible_offset);
        if offset > end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        if offset > start {
            write_log_start(&self.dir, offset)?;
            self.log_start = offset;
            self.delete_segments_while(|seg, next_base| next_base <= offset && seg.size() > 0);
        }
        Ok(self.log_start_offset())
    }

    /// Deletes closed segments past `retention.ms` or beyond
    /// `retention.bytes`, oldest first, moving the log start offset with
    /// them. The active segment is never deleted, nor one holding records
    /// at or above `committed` (the high watermark: as Kafka, only data the
    /// ISR has may expire). Returns how many went.
    pub fn enforce_retention(&mut self, now_ms: i64, committed: i64) -> usize {
        let (retention_ms, retention_bytes) = (self.config.retention_ms, self.config.retention_bytes);
        let mut excess = if retention_bytes >= 0 { self.size_bytes() as i64 - retention_bytes } else { 0 };
        self.delete_segments_while(|seg, next_base| {
            if next_base > committed {
                return false;
            }
            let expired = retention_ms >= 0 && seg.max_timestamp().is_some_and(|(ts, _)| now_ms - ts > retention_ms);
            let oversize = excess > 0 && seg.size() as i64 <= excess;
            if oversize || expired {
                excess -= seg.size() as i64;
            }
            oversize || expired
        })
    }

    /// Deletes segments from the oldest while `doomed(segment, next
    /// segment's base)` holds, never the active one.
    fn delete_segments_while(&mut self, mut doomed: impl FnMut(&Segment, i64) -> bool) -> usize {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let mut iter = self.segments.iter();
            let (Some((&base, seg)), Some((&next_base, _))) = (iter.next(), iter.next()) else { break };
            if next_base > self.visible_offset || !doomed(seg, next_base) {
                break;
            }
            if let Some(seg) = self.segments.remove(&base) {
                tracing::info!(dir = %self.dir.display(), base_offset = base, "deleting segment");
                seg.remove_files(&self.dir);
                deleted += 1;
            }
        }
        deleted
    }

    /// The closed segments a compaction pass may clean, oldest first: those
    /// wholly below `bound` (the last stable offset) and, past `first_dirty`,
    /// whose records are no newer than `newest_allowed` (`min.compaction.lag.ms`).
    pub(crate) fn cleanable_segments(
        &self,
        bound: i64,
        first_dirty: i64,
        newest_allowed: Option<i64>,
    ) -> Vec<CleanableSegment> {
        let mut out = Vec::new();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            let (base, end) = (pair[0], pair[1]);
            let seg = &self.segments[&base];
            let max_timestamp = seg.max_timestamp().map(|(ts, _)| ts);
            let too_new = end > first_dirty && newest_allowed.is_some_and(|n| max_timestamp.is_some_and(|ts| ts > n));
            if end > bound || end > self.visible_offset || too_new {
                break;
            }
            if seg.size() > 0 {
                out.push(CleanableSegment { base, end, size: seg.visible_size(), max_timestamp });
            }
        }
        out
    }

    /// A cleanable segment's own file handle (for the cleaner's thread) and
    /// the handle it is known by here.
    pub(crate) fn clean_source(
        &self,
        s: &CleanableSegment,
    ) -> Result<(crate::cleaner::Source, Rc<File>), StorageError> {
        let path = self.dir.join(crate::segment::file_name(s.base, "log"));
        let seg = self.segments.get(&s.base).ok_or(StorageError::Unavailable("segment gone before cleaning"))?;
        let file = seg.log_file().try_clone().map_err(StorageError::io("reopen segment to clean", &path))?;
        let source = crate::cleaner::Source { base: s.base, path, end: s.end, file, size: s.size };
        Ok((source, seg.log_file().clone()))
    }

    /// Swaps in a segment rewritten by compaction, if the segment is still
    /// the one that was read (`read_from`); otherwise drops the copy.
    pub(crate) fn install_cleaned(
        &mut self,
        base: i64,
        read_from: &Rc<File>,
        epoch: u64,
    ) -> Result<bool, StorageError> {
        let unchanged =
            self.epoch == epoch && self.segments.get(&base).is_some_and(|s| Rc::ptr_eq(s.log_file(), read_from));
        if !unchanged {
            crate::segment::remove_cleaned(&self.dir, base);
            return Ok(false);
        }
        crate::segment::install_cleaned(&self.dir, base)?;
        let seg = Segment::open(&self.dir, base, self.config.index_interval_bytes, true)?;
        self.segments.insert(base, seg);
        Ok(true)
    }

    /// Plans a fetch read from `offset` (see [`crate::Partition::read`]):
    /// `None` when there is nothing to read yet.
    pub fn plan_read(&self, offset: i64) -> Result<Option<ReadPlan>, StorageError> {
        let (start, end) = (self.log_start_offset(), self.visible_offset);
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        if offset == end {
            return Ok(None);
        }
        // The segment holding `offset`: the last one whose base is <= offset,
        // or the next non-empty one if that one ends before it.
        let candidates = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .into_iter()
            .chain(self.segments.range(offset + 1..).map(|(_, s)| s));
        for seg in candidates {
            if seg.visible_size() > 0 && seg.next_offset() > offset {
                return Ok(Some(ReadPlan {
                    file: seg.log_file().clone(),
                    start: seg.floor_position(offset),
                    limit: seg.visible_size(),
                    offset,
                }));
            }
        }
        Ok(None)
    }

    /// Reads the header of every visible batch holding offsets at or after
    /// `offset`, in order (synchronous: for rebuilding state at open and
    /// after a truncation, not for serving reads).
    pub fn for_each_batch_from(&self, offset: i64, mut f: impl FnMut(&StoredBatch)) -> Result<(), StorageError> {
        let first = self.segments.range(..=offset).next_back().map_or(i64::MIN, |(&base, _)| base);
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            seg.for_each_batch_from(offset, &mut f)?;
        }
        Ok(())
    }

    /// The first batch with a record timestamp at or after `timestamp`,
    /// as its bytes. `None` if every record is older.
    pub fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<Vec<u8>>, StorageError> {
        for seg in self.segments.values() {
            if seg.max_timestamp().is_some_and(|(ts, _)| ts >= timestamp) {
                if let Some((pos, batch)) = seg.find_timestamp(timestamp)? {
                    return Ok(Some(seg.read(pos, u64::from(batch.size))?));
                }
            }
        }
        Ok(None)
    }

    /// The batch holding the largest timestamp in the log (earliest such
    /// batch on ties), as its bytes.
    pub fn find_max_timestamp(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let best = self.segments.values().filter_map(|s| s.max_timestamp().map(|(ts, _)| (ts, s))).fold(
            None::<(i64, &Segment)>,
            |acc, (ts, s)| match acc {
                Some((best, _)) if best >= ts => acc,
                _ => Some((ts, s)),
            },
        );
        match best {
            Some((_, seg)) => match seg.find_max_timestamp()? {
                Some((pos, batch)) => Ok(Some(seg.read(pos, u64::from(batch.size))?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// What one fsync round must cover to make everything visible now
    /// durable: the active segment's log plus rolled segments' files and
    /// the directory. Returns the files and the offset they make durable.
    pub fn sync_plan(&self) -> (Vec<Rc<File>>, i64) {
        let mut files: Vec<_> = self.unsynced.iter().map(|(f, _)| f.clone()).collect();
        files.push(self.active().log_file().clone());
        (files, self.visible_offset)
    }

    /// After a sync round for `target` succeeded: files whose data all lies
    /// below it need no further fsync.
    pub fn mark_synced(&mut self, target: i64) {
        self.unsynced.retain(|(_, end)| *end > target);
    }
}

fn open_dir(dir: &Path) -> Result<Rc<File>, StorageError> {
    File::open(dir).map(Rc::new).map_err(StorageError::io("open partition dir", dir))
}

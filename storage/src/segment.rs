//! One segment: a `.log` file of whole batches starting at `base_offset`,
//! with its sparse offset and time indexes.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::batch::{StoredBatch, BATCH_HEADER_LEN};
use crate::error::StorageError;
use crate::index::{Index, OffsetEntry, PendingWrite, TimeEntry};

/// Largest control batch read whole while scanning headers (a marker is ~80 bytes).
const MAX_CONTROL_BATCH: usize = 4096;

pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Decides which batches get index entries: the first of a segment, then
/// one every `interval` bytes, as Kafka's `index.interval.bytes` does.
#[derive(Debug, Clone, Copy)]
struct Indexer {
    base_offset: i64,
    interval: usize,
    bytes_since_entry: usize,
    /// Largest batch max-timestamp so far, and that batch's last offset.
    max_timestamp: Option<(i64, i64)>,
    last_time_entry: Option<i64>,
    has_entries: bool,
}

impl Indexer {
    fn new(base_offset: i64, interval: usize) -> Self {
        Self {
            base_offset,
            interval,
            bytes_since_entry: 0,
            max_timestamp: None,
            last_time_entry: None,
            has_entries: false,
        }
    }

    fn observe(&mut self, position: u64, batch: &StoredBatch) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        if self.max_timestamp.is_none_or(|(ts, _)| batch.max_timestamp > ts) {
            self.max_timestamp = Some((batch.max_timestamp, batch.last_offset()));
        }
        self.bytes_since_entry += batch.size as usize;
        if self.has_entries && self.bytes_since_entry < self.interval {
            return (None, None);
        }
        self.has_entries = true;
        self.bytes_since_entry = 0;
        let relative_offset = (batch.last_offset() - self.base_offset) as u32;
        let offset_entry = OffsetEntry { relative_offset, position: position as u32 };
        let time_entry = match self.max_timestamp {
            Some((timestamp, offset)) if self.last_time_entry.is_none_or(|t| timestamp > t) => {
                self.last_time_entry = Some(timestamp);
                Some(TimeEntry { timestamp, relative_offset: (offset - self.base_offset) as u32 })
            }
            _ => None,
        };
        (Some(offset_entry), time_entry)
    }
}

pub struct Segment {
    pub base_offset: i64,
    path: PathBuf,
    log: Rc<File>,
    /// Bytes reserved by appends, written or still in flight.
    size: u64,
    /// Bytes readers may see: every write below this has completed.
    visible_size: u64,
    /// One past the last offset reserved here (`base_offset` when empty).
    next_offset: i64,
    offsets: Index<OffsetEntry>,
    times: Index<TimeEntry>,
    indexer: Indexer,
    opened: std::time::Instant,
}

/// Result of scanning a log file from the start.
struct Scan {
    valid_end: u64,
    next_offset: i64,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    indexer: Indexer,
}

impl Segment {
    pub fn create(dir: &Path, base_offset: i64, index_interval: usize) -> Result<Self, StorageError> {
        let path = dir.join(file_name(base_offset, "log"));
        let log = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(StorageError::io("create segment", &path))?;
        let offsets = Index::create(&dir.join(file_name(base_offset, "index")), Vec::new())?;
        let times = Index::create(&dir.join(file_name(base_offset, "timeindex")), Vec::new())?;
        Ok(Self {
            base_offset,
            path,
            log: Rc::new(log),
            size: 0,
            visible_size: 0,
            next_offset: base_offset,
            offsets,
            times,
            indexer: Indexer::new(base_offset, index_interval),
            opened: std::time::Instant::now(),
        })
    }

    /// Opens an existing segment. A `trusted` segment — all of it was
    /// durable at the last recovery checkpoint — keeps its indexes and only
    /// has its last indexed batches read to find its end. Any other segment
    /// may hold a torn or corrupt write (or a hole, since writes complete
    /// out of order), so it is scanned in full with CRC checks, cut at the
    /// first bad batch, and its indexes are rebuilt to match.
    pub fn open(dir: &Path, base_offset: i64, index_interval: usize, trusted: bool) -> Result<Self, StorageError> {
        let path = dir.join(file_name(base_offset, "log"));
        let log =
            OpenOptions::new().read(true).write(true).open(&path).map_err(StorageError::io("open segment", &path))?;
        let file_len = log.metadata().map_err(StorageError::io("stat segment", &path))?.len();
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_path = dir.join(file_name(base_offset, "timeindex"));
        let log = Rc::new(log);

        if trusted {
            if let (Some(offsets), Some(times)) = (Index::load(&index_path)?, Index::load(&time_path)?) {
                let last_time =
                    times.last().map(|t: &TimeEntry| (t.timestamp, base_offset + i64::from(t.relative_offset)));
                let indexer = Indexer {
                    max_timestamp: last_time,
                    last_time_entry: last_time.map(|(ts, _)| ts),
                    has_entries: !offsets.entries().is_empty(),
                    ..Indexer::new(base_offset, index_interval)
                };
                let mut seg = Self {
                    base_offset,
                    path: path.clone(),
                    log: log.clone(),
                    size: file_len,
                    visible_size: file_len,
                    next_offset: base_offset,
                    offsets,
                    times,
                    indexer,
                    opened: std::time::Instant::now(),
                };
                if let Some((end, next_offset)) = seg.end_from_index()? {
                    if end == file_len {
                        seg.next_offset = next_offset;
                        return Ok(seg);
                    }
                }
                // The indexes do not describe this file: rebuild them below.
            }
        }

        let scan = scan_log(&log, &path, base_offset, file_len, index_interval)?;
        if scan.valid_end < file_len {
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = scan.valid_end,
                dropped_bytes = file_len - scan.valid_end,
                "truncating torn or corrupt tail of segment"
            );
            log.set_len(scan.valid_end).map_err(StorageError::io("truncate segment", &path))?;
            log.sync_all().map_err(StorageError::io("fsync segment", &path))?;
        }
        Ok(Self {
            base_offset,
            path,
            log,
            size: scan.valid_end,
            visible_size: scan.valid_end,
            next_offset: scan.next_offset,
            offsets: Index::create(&index_path, scan.offsets)?,
            times: Index::create(&time_path, scan.times)?,
            indexer: scan.indexer,
            opened: std::time::Instant::now(),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Wall-clock age in ms, from creation (or from this process opening
    /// it). `segment.ms` counts from here rather than from record
    /// timestamps, so replaying old data does not roll on every append.
    pub fn age_ms(&self) -> u128 {
        self.opened.elapsed().as_millis()
    }

    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.indexer.max_timestamp
    }

    /// Reserves room for one batch (its base offset already set) and
    /// records it in the in-memory indexes. Returns where to write it and
    /// the index-file writes that go with it; the caller performs them.
    pub fn reserve(&mut self, len: u64, batch: &StoredBatch) -> (u64, Vec<PendingWrite>) {
        let position = self.size;
        self.size += len;
        self.next_offset = batch.next_offset();
        let (offset_entry, time_entry) = self.indexer.observe(position, batch);
        let mut writes = Vec::new();
        writes.extend(offset_entry.map(|e| self.offsets.push(e)));
        writes.extend(time_entry.map(|e| self.times.push(e)));
        (position, writes)
    }

    pub fn set_visible(&mut self, size: u64) {
        self.visible_size = size;
    }

    pub fn visible_size(&self) -> u64 {
        self.visible_size
    }

    pub fn log_file(&self) -> &Rc<File> {
        &self.log
    }

    /// The position of the last indexed batch that ends before `offset`:
    /// where a scan for `offset` starts.
    pub fn floor_position(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        self.offsets.floor(|e| i64::from(e.relative_offset) < rel).map_or(0, |e| u64::from(e.position))
    }

    /// Cuts the segment back to its first `size` bytes, ending at
    /// `next_offset`: undoes reserved appends whose writes failed.
    pub fn truncate_to(&mut self, size: u64, next_offset: i64) -> Result<(), StorageError> {
        self.log.set_len(size).map_err(StorageError::io("truncate segment", &self.path))?;
        self.offsets.truncate_where(|e| u64::from(e.position) < size)?;
        let last = next_offset - 1 - self.base_offset;
        self.times.truncate_where(|e| i64::from(e.relative_offset) <= last)?;
        self.size = size;
        self.visible_size = size;
        self.next_offset = next_offset;
        self.indexer.has_entries = !self.offsets.entries().is_empty();
        self.indexer.bytes_since_entry = 0;
        // Forget timestamps of the batches cut away (the time index keeps
        // the newest that survived).
        let last_time = self.times.last().map(|t| (t.timestamp, self.base_offset + i64::from(t.relative_offset)));
        self.indexer.max_timestamp = last_time;
        self.indexer.last_time_entry = last_time.map(|(ts, _)| ts);
        Ok(())
    }

    /// Reads up to `len` bytes at `position`, clipped to the visible end.
    /// Synchronous: used only by timestamp lookups, not by Fetch.
    pub fn read(&self, position: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        let len = len.min(self.visible_size.saturating_sub(position)) as usize;
        let mut buf = vec![0u8; len];
        self.log.read_exact_at(&mut buf, position).map_err(StorageError::io("read segment", &self.path))?;
        Ok(buf)
    }

    /// The first batch whose last offset is at least `offset`, with its position.
    pub fn find_offset(&self, offset: i64) -> Result<Option<(u64, StoredBatch)>, StorageError> {
        let rel = offset - self.base_offset;
        let start = self.offsets.floor(|e| i64::from(e.relative_offset) < rel).map_or(0, |e| u64::from(e.position));
        self.scan_from(start, |b| b.last_offset() >= offset)
    }

    /// Where to cut the segment so it keeps exactly the batches wholly below
    /// `offset`: the position of the first batch reaching `offset`, and the
    /// offset after the last batch kept (below `offset` when compaction left
    /// a gap before it).
    pub fn cut_point(&self, offset: i64) -> Result<(u64, i64), StorageError> {
        let mut position = self.floor_position(offset);
        let mut end = self.base_offset;
        let mut header = [0u8; BATCH_HEADER_LEN];
        while position + BATCH_HEADER_LEN as u64 <= self.visible_size {
            self.log.read_exact_at(&mut header, position).map_err(StorageError::io("read segment", &self.path))?;
            let Some(batch) = StoredBatch::parse(&header) else {
                return Err(StorageError::InvalidBatch("unreadable batch header inside a recovered segment"));
            };
            if batch.last_offset() >= offset {
                break;
            }
            end = batch.next_offset();
            position += u64::from(batch.size);
        }
        Ok((position, end))
    }

    /// The first batch holding a timestamp at or after `timestamp`.
    pub fn find_timestamp(&self, timestamp: i64) -> Result<Option<(u64, StoredBatch)>, StorageError> {
        let start = match self.times.floor(|e| e.timestamp < timestamp) {
            Some(t) => {
                let rel = i64::from(t.relative_offset);
                self.offsets.floor(|e| i64::from(e.relative_offset) < rel).map_or(0, |e| u64::from(e.position))
            }
            None => 0,
        };
        self.scan_from(start, |b| b.max_timestamp >= timestamp)
    }

    /// The batch holding the segment's largest timestamp.
    pub fn find_max_timestamp(&self) -> Result<Option<(u64, StoredBatch)>, StorageError> {
        match self.indexer.max_timestamp {
            Some((_, offset)) => self.find_offset(offset),
            None => Ok(None),
        }
    }

    /// Every visible batch's header holding offsets at or after `offset`.
    pub fn for_each_batch_from(&self, offset: i64, mut f: impl FnMut(&StoredBatch)) -> Result<(), StorageError> {
        self.scan_from(self.floor_position(offset), |b| {
            if b.last_offset() >= offset {
                f(b);
            }
            false
        })
        .map(|_| ())
    }

    fn scan_from(
        &self,
        mut position: u64,
        mut found: impl FnMut(&StoredBatch) -> bool,
    ) -> Result<Option<(u64, StoredBatch)>, StorageError> {
        let mut header = [0u8; BATCH_HEADER_LEN];
        // Only completed writes: reserved bytes may still be in flight.
        while position + BATCH_HEADER_LEN as u64 <= self.visible_size {
            self.log.read_exact_at(&mut header, position).map_err(StorageError::io("read segment", &self.path))?;
            let Some(mut batch) = StoredBatch::parse(&header) else {
                return Err(StorageError::InvalidBatch("unreadable batch header inside a recovered segment"));
            };
            if batch.is_control() && batch.marker.is_none() {
                // A marker's record lies past the header: read the whole
                // (small) batch to learn whether it commits or aborts.
                let mut whole = vec![0u8; (batch.size as usize).min(MAX_CONTROL_BATCH)];
                self.log.read_exact_at(&mut whole, position).map_err(StorageError::io("read segment", &self.path))?;
                batch.marker = StoredBatch::parse(&whole).and_then(|b| b.marker);
            }
            if found(&batch) {
                return Ok(Some((position, batch)));
            }
            position += u64::from(batch.size);
        }
        Ok(None)
    }

    /// Walks batch headers from the last index entry: (end position, next
    /// offset) of the last readable batch, or `None` if the index points at
    /// something that is not a batch.
    fn end_from_index(&self) -> Result<Option<(u64, i64)>, StorageError> {
        let mut position = self.offsets.last().map_or(0, |e| u64::from(e.position));
        let mut next_offset = self.base_offset;
        let mut header = [0u8; BATCH_HEADER_LEN];
        // Only completed writes: reserved bytes may still be in flight.
        while position + BATCH_HEADER_LEN as u64 <= self.visible_size {
            self.log.read_exact_at(&mut header, position).map_err(StorageError::io("read segment", &self.path))?;
            let Some(batch) = StoredBatch::parse(&header) else { return Ok(None) };
            position += u64::from(batch.size);
            next_offset = batch.next_offset();
        }
        Ok(Some((position, next_offset)))
    }

    /// Called when the segment stops being active: records its final max
    /// timestamp in the time index (as Kafka does on roll) so a later open
    /// can trust the indexes without scanning. Returns that write; the
    /// segment's files then need one fsync (see [`Segment::files`]).
    pub fn seal(&mut self) -> Option<PendingWrite> {
        let (timestamp, offset) = self.indexer.max_timestamp?;
        if self.indexer.last_time_entry.is_some_and(|t| timestamp <= t) {
            return None;
        }
        self.indexer.last_time_entry = Some(timestamp);
        let relative_offset = (offset - self.base_offset) as u32;
        Some(self.times.push(TimeEntry { timestamp, relative_offset }))
    }

    /// Deletes the segment's files (retention, or rolling back a failed append).
    pub fn remove_files(self, dir: &Path) {
        Self::remove_files_of(dir, self.base_offset);
    }

    pub fn remove_files_of(dir: &Path, base_offset: i64) {
        for ext in ["log", "index", "timeindex", "txnindex"] {
            let path = dir.join(file_name(base_offset, ext));
            if let Err(e) = std::fs::remove_file(&path) {
                if ext == "txnindex" && e.kind() == std::io::ErrorKind::NotFound {
                    continue; // only segments with aborted transactions have one
                }
                tracing::warn!(file = %path.display(), error = %e, "could not remove segment file");
            }
        }
    }

    /// The log and both index files.
    pub fn files(&self) -> [Rc<File>; 3] {
        [self.log.clone(), self.offsets.file().clone(), self.times.file().clone()]
    }
}

/// Where compaction writes a segment's rewritten `ext` file before it
/// replaces the original.
pub fn cleaned_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{}.cleaned", file_name(base_offset, ext)))
}

const SEGMENT_FILES: [&str; 3] = ["log", "index", "timeindex"];

pub fn remove_cleaned(dir: &Path, base_offset: i64) {
    for ext in SEGMENT_FILES {
        let _ = std::fs::remove_file(cleaned_path(dir, base_offset, ext));
    }
}

/// Builds the indexes of a rewritten `.log.cleaned` file beside it, fsynced.
pub fn write_cleaned_indexes(dir: &Path, base_offset: i64, index_interval: usize) -> Result<(), StorageError> {
    let path = cleaned_path(dir, base_offset, "log");
    let log = File::open(&path).map_err(StorageError::io("open cleaned segment", &path))?;
    let len = log.metadata().map_err(StorageError::io("stat cleaned segment", &path))?.len();
    let scan = scan_log(&log, &path, base_offset, len, index_interval)?;
    if scan.valid_end != len {
        return Err(StorageError::InvalidBatch("a rewritten segment does not read back whole"));
    }
    let mut times = scan.times;
    // The segment is closed: its largest timestamp goes last in the time
    // index, as a roll seals it, since a trusted open reads it from there.
    if let Some((timestamp, offset)) = scan.indexer.max_timestamp {
        if times.last().is_none_or(|t| timestamp > t.timestamp) {
            times.push(TimeEntry { timestamp, relative_offset: (offset - base_offset) as u32 });
        }
    }
    let offsets = Index::create(&cleaned_path(dir, base_offset, "index"), scan.offsets)?;
    let times = Index::create(&cleaned_path(dir, base_offset, "timeindex"), times)?;
    for (file, ext) in [(offsets.file(), "index"), (times.file(), "timeindex")] {
        file.sync_all().map_err(StorageError::io("fsync cleaned index", cleaned_path(dir, base_offset, ext)))?;
    }
    Ok(())
}

/// Puts a segment's `.cleaned` files in place of its own: the old indexes
/// go first, so a crash in between leaves a log without indexes (rebuilt
/// at open), never a log with another log's indexes. The caller fsyncs the
/// directory once for all the segments it installs.
pub fn install_cleaned(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for ext in ["index", "timeindex"] {
        let path = dir.join(file_name(base_offset, ext));
        std::fs::remove_file(&path).map_err(StorageError::io("remove index", &path))?;
    }
    for ext in SEGMENT_FILES {
        let (from, to) = (cleaned_path(dir, base_offset, ext), dir.join(file_name(base_offset, ext)));
        std::fs::rename(&from, &to).map_err(StorageError::io("install cleaned segment", &to))?;
    }
    Ok(())
}

/// Walks the log from the start, stopping at the first batch that is cut
/// short, malformed, out of offset order or corrupt (CRC-32C).
fn scan_log(
    log: &File,
    path: &Path,
    base_offset: i64,
    file_len: u64,
    index_interval: usize,
) -> Result<Scan, StorageError> {
    let mut reader = BufReader::with_capacity(1 << 20, log);
    reader.seek(SeekFrom::Start(0)).map_err(StorageError::io("seek segment", path))?;
    let mut scan = Scan {
        valid_end: 0,
        next_offset: base_offset,
        offsets: Vec::new(),
        times: Vec::new(),
        indexer: Indexer::new(base_offset, index_interval),
    };
    let mut buf = Vec::new();
    loop {
        let position = scan.valid_end;
        if position + BATCH_HEADER_LEN as u64 > file_len {
            break;
        }
        buf.resize(BATCH_HEADER_LEN, 0);
        reader.read_exact(&mut buf).map_err(StorageError::io("read segment", path))?;
        let Some(batch) = StoredBatch::parse(&buf) else { break };
        if batch.base_offset < scan.next_offset || position + u64::from(batch.size) > file_len {
            break;
        }
        buf.resize(batch.size as usize, 0);
        reader.read_exact(&mut buf[BATCH_HEADER_LEN..]).map_err(StorageError::io("read segment", path))?;
        if !StoredBatch::crc_ok(&buf) {
            break;
        }
        let (offset_entry, time_entry) = scan.indexer.observe(position, &batch);
        scan.offsets.extend(offset_entry);
        scan.times.extend(time_entry);
        scan.valid_end = position + u64::from(batch.size);
        scan.next_offset = batch.next_offset();
    }
    Ok(scan)
}

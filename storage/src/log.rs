//! `PartitionLog`: the ordered segments of one partition, offset assignment,
//! reads by offset and by timestamp, and crash recovery on open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::batch::{set_base_offset, StoredBatch};
use crate::error::StorageError;
use crate::segment::Segment;

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment once the active one would exceed this.
    pub segment_bytes: u64,
    /// Bytes of log between sparse index entries.
    pub index_interval_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { segment_bytes: 1 << 30, index_interval_bytes: 4096 }
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// Bytes read from one segment, starting at a batch boundary. Like Kafka,
/// the tail may be a partial batch when `max_bytes` cuts it; clients drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub bytes: Vec<u8>,
}

pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering the active segment.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(StorageError::io("create partition dir", dir))?;
        let mut bases: Vec<i64> = std::fs::read_dir(dir)
            .map_err(StorageError::io("list partition dir", dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse::<i64>().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        for (i, &base) in bases.iter().enumerate() {
            let active = i + 1 == bases.len();
            segments.insert(base, Segment::open(dir, base, config.index_interval_bytes, active)?);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, config.index_interval_bytes)?);
        }
        Ok(Self { dir: dir.to_owned(), config, segments })
    }

    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("a log always has an active segment")
    }

    /// The offset the next appended record gets (log end offset).
    pub fn next_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.segments.values().next().map_or(0, |s| s.base_offset)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Appends one validated batch, assigning its offsets by rewriting
    /// `baseOffset` in place; every other byte is stored as given.
    pub fn append(&mut self, batch: &mut [u8]) -> Result<AppendInfo, StorageError> {
        let base_offset = self.next_offset();
        let Some(mut info) = StoredBatch::parse(batch) else {
            return Err(StorageError::InvalidBatch("not a RecordBatch v2"));
        };
        if info.size as usize != batch.len() {
            return Err(StorageError::InvalidBatch("batch length field disagrees with its size"));
        }
        let active = self.active();
        let relative_last = info.last_offset() - info.base_offset + base_offset - active.base_offset;
        let full = active.size() > 0 && active.size() + batch.len() as u64 > self.config.segment_bytes;
        if full || relative_last > i64::from(i32::MAX) {
            self.roll(base_offset)?;
        }
        set_base_offset(batch, base_offset);
        info.base_offset = base_offset;
        let active = self.segments.values_mut().next_back().expect("a log always has an active segment");
        active.append(batch, &info)?;
        Ok(AppendInfo { base_offset, last_offset: info.last_offset() })
    }

    fn roll(&mut self, base_offset: i64) -> Result<(), StorageError> {
        if let Some(old) = self.segments.values_mut().next_back() {
            old.seal()?;
        }
        let seg = Segment::create(&self.dir, base_offset, self.config.index_interval_bytes)?;
        self.segments.insert(base_offset, seg);
        Ok(())
    }

    /// Reads from the batch containing `offset`, returning at most
    /// `max_bytes` — unless `min_one` and the first batch alone is larger,
    /// then all of it, as Kafka does (KIP-74) so a consumer always makes
    /// progress. Never returns data at or beyond `upper_bound` (the high
    /// watermark for consumers).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        min_one: bool,
    ) -> Result<ReadResult, StorageError> {
        let end = self.next_offset();
        if offset < self.log_start_offset() || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start: self.log_start_offset(), end });
        }
        let upper_bound = upper_bound.min(end);
        if offset >= upper_bound {
            return Ok(ReadResult { bytes: Vec::new() });
        }
        // The segment holding `offset`: the last one whose base is <= offset,
        // skipping forward past any segment that ends before it.
        let mut candidates = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .into_iter()
            .chain(self.segments.range(offset + 1..).map(|(_, s)| s));
        let (seg, position, first) = loop {
            let Some(seg) = candidates.next() else { return Ok(ReadResult { bytes: Vec::new() }) };
            if let Some((position, batch)) = seg.find_offset(offset)? {
                break (seg, position, batch);
            }
        };
        // Batches are appended whole, so the bound always falls on a batch start.
        let limit = seg.find_offset(upper_bound)?.map_or(seg.size(), |(pos, _)| pos);
        let want = if min_one { (max_bytes as u64).max(u64::from(first.size)) } else { max_bytes as u64 };
        let len = want.min(limit.saturating_sub(position));
        Ok(ReadResult { bytes: seg.read(position, len)? })
    }

    /// The first batch with a record timestamp at or after `timestamp`,
    /// as (bytes of that batch). `None` if every record is older.
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

    /// Makes everything appended so far durable (fdatasync).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.active().sync()
    }
}

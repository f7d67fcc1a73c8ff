//! Log compaction (`cleanup.policy=compact`): keeps the latest record per
//! key in closed segments below the last stable offset, as Kafka's cleaner
//! does. One pass maps key → latest offset from the first uncleaned offset
//! on, then rewrites the segments up to where the map ends, keeping a
//! record unless its key has a later one (tombstones until their delete
//! horizon, KIP-534), dropping the data of aborted transactions, and
//! dropping transaction markers once no data of their transaction is left
//! and their own horizon passed. Offsets never change: batches keep their
//! first and last offsets, and each segment keeps its last batch (empty if
//! need be) so segments still end where the next begins.
//!
//! The reading and writing happen off the shard thread ([`run`]); only the
//! final renames and the reopening of rewritten segments happen on it, and
//! a segment that changed meanwhile (deleted, truncated) is left alone.
//! A rewritten segment replaces the old one by renaming `.cleaned` files
//! over it, its old indexes removed first, so a crash at any point leaves
//! either segment whole (indexes are rebuilt when missing).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::batch::{StoredBatch, BATCH_HEADER_LEN};
use crate::error::StorageError;
use crate::producers::AbortedTxn;
use crate::segment;

/// The topic configs compaction follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    /// `min.cleanable.dirty.ratio`: share of uncleaned bytes that starts a pass.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: segments with newer records are not cleaned yet.
    pub min_lag_ms: i64,
    /// `max.compaction.lag.ms`: uncleaned records this old force a pass.
    pub max_lag_ms: i64,
    /// `delete.retention.ms`: how long a cleaned tombstone is still served.
    pub delete_retention_ms: i64,
}

/// Record-level access the cleaner needs; records are the protocol's
/// business, so the broker supplies it.
pub trait RecordCodec: Send + Sync {
    fn decode(&self, batch: &[u8]) -> Result<Box<dyn CompactableBatch>, String>;
}

/// One data batch's records.
pub trait CompactableBatch {
    fn record_count(&self) -> usize;
    fn offset(&self, i: usize) -> i64;
    fn key(&self, i: usize) -> Option<&[u8]>;
    fn is_tombstone(&self, i: usize) -> bool;
    /// The delete horizon already recorded in the batch (KIP-534).
    fn delete_horizon(&self) -> Option<i64>;
    /// The batch keeping only the records `keep` selects, same offsets,
    /// with `delete_horizon` recorded when given.
    fn rebuild(&self, keep: &dyn Fn(usize) -> bool, delete_horizon: Option<i64>) -> Result<Vec<u8>, String>;
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_rewritten: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Keys mapped in one pass at most: the pass then cleans up to where the
/// map ends, and the next pass goes on from there (Kafka's dedupe buffer).
const MAX_KEYS: usize = 2_000_000;

/// A closed segment to clean, read through its own file handle.
pub(crate) struct Source {
    pub base: i64,
    pub path: PathBuf,
    /// The next segment's base: where this one's offsets end.
    pub end: i64,
    pub file: File,
    pub size: u64,
}

pub(crate) struct CleanJob {
    pub dir: PathBuf,
    pub sources: Vec<Source>,
    /// Offsets below this were cleaned by an earlier pass.
    pub first_dirty: i64,
    pub aborted: AbortedIndex,
    /// Each live producer's last data batch (its base offset): kept even
    /// when emptied, so its sequence and epoch survive (as in Kafka).
    pub producer_last_batches: HashMap<i64, i64>,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub index_interval: usize,
    /// Set at shutdown: the pass stops at the next batch.
    pub cancel: Arc<AtomicBool>,
}

/// Aborted transactions by producer, each producer's sorted by offset.
#[derive(Default)]
pub(crate) struct AbortedIndex(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedIndex {
    pub fn new(aborted: Vec<AbortedTxn>) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for a in aborted {
            by_producer.entry(a.producer_id).or_default().push((a.first_offset, a.last_offset));
        }
        by_producer.values_mut().for_each(|v| v.sort_unstable());
        Self(by_producer)
    }

    /// Whether a transactional batch belongs to an aborted transaction.
    fn contains(&self, b: &StoredBatch) -> bool {
        let Some(ranges) = self.0.get(&b.producer_id).filter(|_| b.is_transactional()) else { return false };
        let i = ranges.partition_point(|&(first, _)| first <= b.base_offset);
        i > 0 && ranges[i - 1].1 >= b.base_offset
    }
}

/// A segment rewritten into `.cleaned` files, ready to swap in.
pub(crate) struct Rewritten {
    pub base: i64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

pub(crate) struct CleanOutput {
    pub rewritten: Vec<Rewritten>,
    /// Offsets below this are clean now (where the key map ended).
    pub cleaned_upto: i64,
    /// The earliest delete horizon of a tombstone kept: a pass is due then.
    pub next_horizon: Option<i64>,
}

/// Where the last pass left off, kept in `cleaner-checkpoint` beside the
/// segments: the end of the cleaned range and the next tombstone horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    pub cleaned_upto: i64,
    pub next_horizon: Option<i64>,
}

const CHECKPOINT_FILE: &str = "cleaner-checkpoint";

pub(crate) fn read_checkpoint(dir: &Path) -> CleanerCheckpoint {
    let text = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).unwrap_or_default();
    let mut words = text.split_whitespace().map(|w| w.parse::<i64>().ok());
    let cleaned_upto = words.next().flatten().unwrap_or(0);
    let next_horizon = words.next().flatten().filter(|&h| h >= 0);
    CleanerCheckpoint { cleaned_upto, next_horizon }
}

pub(crate) fn write_checkpoint(dir: &Path, c: CleanerCheckpoint) -> Result<(), StorageError> {
    let text = format!("{} {}", c.cleaned_upto, c.next_horizon.unwrap_or(-1));
    crate::files::write_atomically(dir, CHECKPOINT_FILE, text)
}

/// A 128-bit digest of a key: two independently keyed SipHashes, so two
/// keys colliding is negligible (Kafka's map keeps a 16-byte MD5).
struct KeyDigest(RandomState, RandomState);

impl KeyDigest {
    fn of(&self, key: &[u8]) -> u128 {
        (u128::from(self.0.hash_one(key)) << 64) | u128::from(self.1.hash_one(key))
    }
}

/// Reads a file by position (pread), leaving the descriptor's shared
/// cursor alone.
struct Positional<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for Positional<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (buf.len() as u64).min(self.end.saturating_sub(self.at)) as usize;
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Calls `f` with every whole batch of a segment, in order, until it
/// returns `false` or the pass is cancelled.
fn for_each_batch(
    src: &Source,
    cancel: &AtomicBool,
    mut f: impl FnMut(&[u8], &StoredBatch) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    let path = &src.path;
    let mut reader = BufReader::with_capacity(1 << 20, Positional { file: &src.file, at: 0, end: src.size });
    let mut buf = vec![0u8; BATCH_HEADER_LEN];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(StorageError::Unavailable("compaction cancelled by shutdown"));
        }
        buf.resize(BATCH_HEADER_LEN, 0);
        match reader.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(StorageError::io("read segment to clean", path)(e)),
        }
        let header = StoredBatch::parse(&buf).ok_or(StorageError::InvalidBatch("unreadable batch while cleaning"))?;
        buf.resize(header.size as usize, 0);
        reader.read_exact(&mut buf[BATCH_HEADER_LEN..]).map_err(StorageError::io("read segment to clean", path))?;
        let whole = StoredBatch::parse(&buf).unwrap_or(header);
        if !f(&buf, &whole)? {
            return Ok(());
        }
    }
}

/// The records of a data batch, or `None` for one the codec cannot read
/// (too large once decompressed, or malformed): such a batch is kept as it
/// is and its keys are not mapped, so nothing is lost because of it.
fn records(codec: &dyn RecordCodec, bytes: &[u8], b: &StoredBatch) -> Option<Box<dyn CompactableBatch>> {
    match codec.decode(bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(base_offset = b.base_offset, error = %e, "leaving a batch uncompacted");
            None
        }
    }
}

/// One cleaning pass over `job.sources`: maps the latest offset of every
/// key from the first dirty offset on (until [`MAX_KEYS`]), then writes
/// each segment up to the map's end that changes as `.cleaned` files
/// (fsynced). A record stays unless the map holds its key at a later
/// offset. Runs off the shard thread.
pub(crate) fn run(job: CleanJob, codec: &dyn RecordCodec) -> Result<CleanOutput, StorageError> {
    let digest = KeyDigest(RandomState::new(), RandomState::new());
    let mut latest: HashMap<u128, i64> = HashMap::new();
    let mut map_end = job.first_dirty;
    for src in job.sources.iter().filter(|s| s.end > job.first_dirty) {
        let mut full = false;
        for_each_batch(src, &job.cancel, |bytes, b| {
            if b.next_offset() <= job.first_dirty {
                return Ok(true);
            }
            if latest.len() >= MAX_KEYS {
                full = true;
                return Ok(false);
            }
            if !b.is_control() && !job.aborted.contains(b) {
                if let Some(records) = records(codec, bytes, b) {
                    for i in 0..records.record_count() {
                        if let Some(key) = records.key(i) {
                            latest.insert(digest.of(key), records.offset(i));
                        }
                    }
                }
            }
            map_end = b.next_offset();
            Ok(true)
        })?;
        if full {
            break;
        }
    }
    // With nothing new to map (a pass due to a tombstone horizon), every
    // segment is rewritten; otherwise those holding offsets below the map's end.
    let upto = if map_end > job.first_dirty { map_end } else { job.sources.last().map_or(0, |s| s.end) };
    let is_latest = |key: &[u8], offset: i64| latest.get(&digest.of(key)).is_none_or(|&m| offset >= m);
    let mut output = CleanOutput { rewritten: Vec::new(), cleaned_upto: map_end, next_horizon: None };
    let mut txns = Transactions::default();
    for src in job.sources.iter().filter(|s| s.base < upto) {
        let path = segment::cleaned_path(&job.dir, src.base, "log");
        let mut pass = Pass { is_latest: &is_latest, txns: &mut txns, next_horizon: &mut output.next_horizon };
        let written = rewrite(&job, src, &path, codec, &mut pass).and_then(|w| {
            if w.is_some() {
                segment::write_cleaned_indexes(&job.dir, src.base, job.index_interval)?;
            }
            Ok(w)
        });
        match written {
            Ok(Some(bytes_after)) => {
                output.rewritten.push(Rewritten { base: src.base, bytes_before: src.size, bytes_after });
            }
            Ok(None) => segment::remove_cleaned(&job.dir, src.base),
            Err(e) => {
                for r in output.rewritten.iter().map(|r| r.base).chain([src.base]) {
                    segment::remove_cleaned(&job.dir, r);
                }
                return Err(e);
            }
        }
    }
    Ok(output)
}

/// Writes the cleaned copy of one segment to `path`; `None` if nothing in
/// it would change (no copy is kept then).
/// Which producers' transactions still have data in the log, as the
/// rewrite walks it in offset order: a marker whose transaction has none
/// left can go once its own delete horizon passes (as in Kafka).
#[derive(Default)]
struct Transactions {
    committed_data: HashSet<i64>,
    aborted_data: HashSet<i64>,
}

/// What a rewrite carries from segment to segment.
struct Pass<'a> {
    is_latest: &'a dyn Fn(&[u8], i64) -> bool,
    txns: &'a mut Transactions,
    next_horizon: &'a mut Option<i64>,
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn rewrite(
    job: &CleanJob,
    src: &Source,
    path: &Path,
    codec: &dyn RecordCodec,
    pass: &mut Pass<'_>,
) -> Result<Option<u64>, StorageError> {
    let io = |op: &'static str| StorageError::io(op, path);
    let file = File::create(path).map_err(io("create cleaned segment"))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut written = 0u64;
    let mut changed = false;
    for_each_batch(src, &job.cancel, |bytes, b| {
        // The segment's last batch keeps its place (segments end where the
        // next begins), and so does each live producer's last batch (its
        // sequence and epoch must survive, as in Kafka).
        let keep_empty =
            b.next_offset() == src.end || job.producer_last_batches.get(&b.producer_id) == Some(&b.base_offset);
        let aborted = job.aborted.contains(b);
        if b.is_transactional() && !b.is_control() {
            let seen = if aborted { &mut pass.txns.aborted_data } else { &mut pass.txns.committed_data };
            seen.insert(b.producer_id);
        }
        let marker_removable = b.next_offset() != src.end
            && b.marker.is_some_and(|m| {
                let seen = if m.commit { &mut pass.txns.committed_data } else { &mut pass.txns.aborted_data };
                !seen.remove(&b.producer_id)
            });
        let decoded = if b.is_control() && !marker_removable { None } else { records(codec, bytes, b) };
        let new_bytes: Option<Vec<u8>> = match decoded {
            // Markers still needed, and batches the codec cannot read, stay as they are.
            None => None,
            Some(marker) if b.is_control() => match marker.delete_horizon() {
                Some(h) if job.now_ms >= h => {
                    changed = true;
                    return Ok(true);
                }
                Some(h) => {
                    *pass.next_horizon = earliest(*pass.next_horizon, Some(h));
                    None
                }
                None => {
                    let h = job.now_ms.saturating_add(job.delete_retention_ms);
                    *pass.next_horizon = earliest(*pass.next_horizon, Some(h));
                    changed = true;
                    Some(marker.rebuild(&|_| true, Some(h)).map_err(StorageError::Compaction)?)
                }
            },
            Some(records) if aborted => {
                changed = true;
                if !keep_empty {
                    return Ok(true);
                }
                Some(records.rebuild(&|_| false, None).map_err(StorageError::Compaction)?)
            }
            Some(records) => {
                let horizon_passed = records.delete_horizon().is_some_and(|h| job.now_ms >= h);
                let kept: Vec<bool> = (0..records.record_count())
                    .map(|i| {
                        records.key(i).is_some_and(|k| (pass.is_latest)(k, records.offset(i)))
                            && !(records.is_tombstone(i) && horizon_passed)
                    })
                    .collect();
                let tombstones = (0..records.record_count()).any(|i| kept[i] && records.is_tombstone(i));
                let new_horizon = (tombstones && records.delete_horizon().is_none())
                    .then(|| job.now_ms.saturating_add(job.delete_retention_ms));
                if tombstones {
                    *pass.next_horizon = earliest(*pass.next_horizon, new_horizon.or(records.delete_horizon()));
                }
                if kept.iter().all(|&k| k) && new_horizon.is_none() {
                    None
                } else if !kept.iter().any(|&k| k) && !keep_empty {
                    changed = true;
                    return Ok(true);
                } else {
                    changed = true;
                    Some(records.rebuild(&|i| kept[i], new_horizon).map_err(StorageError::Compaction)?)
                }
            }
        };
        let bytes = new_bytes.as_deref().unwrap_or(bytes);
        out.write_all(bytes).map_err(io("write cleaned segment"))?;
        written += bytes.len() as u64;
        Ok(true)
    })?;
    if !changed {
        return Ok(None);
    }
    let file = out.into_inner().map_err(|e| io("write cleaned segment")(e.into_error()))?;
    file.sync_all().map_err(io("fsync cleaned segment"))?;
    Ok(Some(written))
}

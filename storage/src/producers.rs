//! Idempotent producers' state in one partition, as Kafka's
//! ProducerStateManager keeps it: per producer id, its epoch and the
//! sequence ranges and offsets of its last five batches. A retried batch is
//! recognised and answered with its original offsets; a sequence gap or a
//! stale epoch is refused. The state is rebuilt from the log at open,
//! starting from the newest snapshot at or below the log end, so recovery
//! reads only the log's tail. Snapshots are written at each segment roll
//! (kept while the segment exists, as Kafka does: a truncation then never
//! rescans more than a segment) and at each checkpoint (the newest two kept).
//!
//! Transactions too: each producer's open transaction (from its first
//! transactional batch here to its marker), which bounds the last stable
//! offset, and the aborted transactions still in the log, which
//! read_committed fetches return so consumers drop those records (kept on
//! disk per segment by `txnindex`, not in the snapshots).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::batch::{StoredBatch, TxnMarker};
use crate::error::{SequenceError, StorageError};

/// Batches remembered per producer: clients keep at most five in flight.
const TRACKED_BATCHES: usize = 5;
/// Checkpoint snapshots kept: the newest may lie past the log end after a crash.
const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_SUFFIX: &str = ".producers";
/// Verification guards older than this are dropped (see `guards`).
const GUARD_TTL_MS: i64 = 60_000;
const SNAPSHOT_MAGIC: &[u8; 4] = b"SPS3";

/// Where one producer's batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    /// Oldest first, at most [`TRACKED_BATCHES`].
    batches: VecDeque<ProducerBatch>,
    /// First offset of its transaction open in this partition.
    txn_first_offset: Option<i64>,
    /// Epoch of the coordinator that wrote its last marker (-1: none).
    coordinator_epoch: i32,
}

impl Producer {
    fn new(epoch: i16) -> Self {
        Self { epoch, batches: VecDeque::new(), txn_first_offset: None, coordinator_epoch: -1 }
    }
}

/// A transaction whose ABORT marker is in the log: offsets `first..=last`
/// (the marker) written by `producer_id` are not to be read as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    pub last: ProducerBatch,
    pub coordinator_epoch: i32,
    pub txn_first_offset: Option<i64>,
}

/// What to do with a client's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Already in the log: answer with where it went.
    Duplicate(ProducerBatch),
}

/// Every producer's state in one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    /// Open transactions as (first offset, producer id): the lowest bounds
    /// the last stable offset, found without walking every producer.
    open: BTreeSet<(i64, i64)>,
    /// In marker order, so by `last_offset`.
    aborted: Vec<AbortedTxn>,
    /// The longest aborted transaction (last - first offset): a fetch's
    /// search for overlapping aborts stops this far past its range.
    max_aborted_span: i64,
    /// KIP-890 verification guards, by producer id: (guard, created at ms).
    /// A transactional batch that would open a transaction here is admitted
    /// only with the guard taken before the coordinator was asked, and a
    /// marker voids it, so a batch delayed past its transaction's end
    /// cannot open a transaction no coordinator knows of.
    guards: HashMap<i64, (u64, i64)>,
    next_guard: u64,
    /// Transactions whose marker may not be replicated yet: (first offset,
    /// marker offset). They stay unstable until the high watermark passes
    /// the marker. Not snapshotted: after a restart the checkpointed high
    /// watermark is where reads resume anyway.
    completed: Vec<(i64, i64)>,
}

/// The last sequence of a batch, wrapping past `i32::MAX` as Kafka's do.
fn last_sequence(batch: &StoredBatch) -> i32 {
    batch.base_sequence.wrapping_add(batch.last_offset_delta) & i32::MAX
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Kafka's checks for a client's batch, in its order: a duplicate of a
    /// remembered batch first, then the epoch, then the sequence. A batch
    /// without a producer id, or from a producer this partition does not
    /// know (new, or whose state was removed with old data), is appended.
    pub fn check(&self, batch: &StoredBatch) -> Result<Verdict, SequenceError> {
        if batch.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        let Some(producer) = self.producers.get(&batch.producer_id) else {
            return Ok(Verdict::Append);
        };
        if batch.is_control() {
            return Self::check_marker(producer, batch).map(|()| Verdict::Append);
        }
        let (producer_id, epoch, first) = (batch.producer_id, batch.producer_epoch, batch.base_sequence);
        if first < 0 {
            // No sequence: written by a coordinator (transactional offset
            // commits), which Kafka does not sequence-check either.
            return match epoch < producer.epoch {
                true => Err(SequenceError::StaleEpoch { producer_id, epoch, current: producer.epoch }),
                false => Ok(Verdict::Append),
            };
        }
        if epoch == producer.epoch {
            let last = last_sequence(batch);
            if let Some(b) = producer.batches.iter().find(|b| b.first_seq == first && b.last_seq == last) {
                return Ok(Verdict::Duplicate(*b));
            }
        }
        if epoch < producer.epoch {
            return Err(SequenceError::StaleEpoch { producer_id, epoch, current: producer.epoch });
        }
        if epoch == producer.epoch && producer.txn_first_offset.is_some() && !batch.is_transactional() {
            return Err(SequenceError::NotTransactional { producer_id });
        }
        let expected = match producer.batches.back() {
            // A new epoch starts its sequences again.
            _ if epoch != producer.epoch => 0,
            Some(b) => next_sequence(b.last_seq),
            None => return Ok(Verdict::Append),
        };
        if first != expected {
            return Err(SequenceError::OutOfOrder { producer_id, epoch, expected, got: first });
        }
        Ok(Verdict::Append)
    }

    /// A marker may come from a newer epoch (a coordinator fencing the
    /// producer) but not an older one, nor from an older coordinator.
    fn check_marker(producer: &Producer, batch: &StoredBatch) -> Result<(), SequenceError> {
        let producer_id = batch.producer_id;
        if batch.producer_epoch < producer.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id,
                epoch: batch.producer_epoch,
                current: producer.epoch,
            });
        }
        match batch.marker {
            Some(m) if m.coordinator_epoch < producer.coordinator_epoch => Err(SequenceError::CoordinatorFenced {
                producer_id,
                got: m.coordinator_epoch,
                current: producer.coordinator_epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records a batch now in the log (its offsets assigned); returns the
    /// transaction it aborted, if it is an ABORT marker ending one.
    pub fn record(&mut self, batch: &StoredBatch) -> Option<AbortedTxn> {
        if batch.producer_id < 0 {
            return None;
        }
        let producer = self.producers.entry(batch.producer_id).or_insert_with(|| Producer::new(batch.producer_epoch));
        if batch.is_control() {
            return batch.marker.and_then(|marker| self.record_marker(batch, marker));
        }
        if batch.is_transactional() && producer.txn_first_offset.is_none() {
            producer.txn_first_offset = Some(batch.base_offset);
            self.open.insert((batch.base_offset, batch.producer_id));
        }
        if batch.producer_epoch != producer.epoch {
            producer.epoch = batch.producer_epoch;
            producer.batches.clear();
        }
        if batch.base_sequence < 0 {
            return None; // nothing to match retries against
        }
        if producer.batches.len() == TRACKED_BATCHES {
            producer.batches.pop_front();
        }
        producer.batches.push_back(ProducerBatch {
            first_seq: batch.base_sequence,
            last_seq: last_sequence(batch),
            base_offset: batch.base_offset,
            last_offset: batch.last_offset(),
            max_timestamp: batch.max_timestamp,
        });
        None
    }

    /// A marker ends the producer's open transaction here (an ABORT adds it
    /// to the aborted list) and moves the producer to the marker's epoch.
    fn record_marker(&mut self, batch: &StoredBatch, marker: TxnMarker) -> Option<AbortedTxn> {
        self.guards.remove(&batch.producer_id);
        let producer = self.producers.get_mut(&batch.producer_id)?;
        if batch.producer_epoch > producer.epoch {
            producer.epoch = batch.producer_epoch;
            producer.batches.clear();
        }
        producer.coordinator_epoch = marker.coordinator_epoch;
        let first_offset = producer.txn_first_offset.take()?;
        self.open.remove(&(first_offset, batch.producer_id));
        let last_offset = batch.base_offset;
        self.completed.push((first_offset, last_offset));
        if marker.commit {
            return None;
        }
        let aborted = AbortedTxn { producer_id: batch.producer_id, first_offset, last_offset };
        self.push_aborted(aborted);
        Some(aborted)
    }

    /// Takes the aborted transactions of the log before the snapshot this
    /// state was loaded from (kept on disk per segment, in marker order).
    pub fn set_aborted(&mut self, aborted: Vec<AbortedTxn>) {
        self.aborted.clear();
        self.max_aborted_span = 0;
        aborted.into_iter().for_each(|a| self.push_aborted(a));
    }

    /// Starts verifying `producer_id`'s transactional write with its
    /// coordinator: `None` if it has a transaction open here already (no
    /// verification needed), else the guard its append must present.
    pub fn begin_verification(&mut self, producer_id: i64, now_ms: i64) -> Option<u64> {
        if self.in_transaction(producer_id) {
            return None;
        }
        self.next_guard += 1;
        self.guards.insert(producer_id, (self.next_guard, now_ms));
        Some(self.next_guard)
    }

    /// Whether a transactional batch of `producer_id` may be appended now:
    /// it continues an open transaction, or carries a still valid guard
    /// (which it uses up).
    pub fn admit_transactional(&mut self, producer_id: i64, guard: Option<u64>) -> bool {
        if self.in_transaction(producer_id) {
            return true;
        }
        match (guard, self.guards.get(&producer_id)) {
            (Some(g), Some(&(valid, _))) if g == valid => {
                self.guards.remove(&producer_id);
                true
            }
            _ => false,
        }
    }

    fn push_aborted(&mut self, aborted: AbortedTxn) {
        self.max_aborted_span = self.max_aborted_span.max(aborted.last_offset - aborted.first_offset);
        self.aborted.push(aborted);
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn in_transaction(&self, producer_id: i64) -> bool {
        self.producers.get(&producer_id).is_some_and(|p| p.txn_first_offset.is_some())
    }

    /// The last stable offset given the high watermark: below every open
    /// transaction's first offset and every completed one whose marker the
    /// high watermark has not passed yet (Kafka's first unstable offset).
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let open = self.open.first().map(|&(first, _)| first);
        let unreplicated = self.completed.iter().filter(|&&(_, marker)| marker >= high_watermark).map(|&(f, _)| f);
        open.into_iter().chain(unreplicated).fold(high_watermark, i64::min)
    }

    /// Forgets completed transactions whose marker the high watermark passed.
    pub fn stabilised_below(&mut self, high_watermark: i64) {
        self.completed.retain(|&(_, marker)| marker >= high_watermark);
    }

    /// Aborted transactions overlapping offsets `from..upto`, for a
    /// read_committed fetch of that range.
    pub fn aborted_between(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        // Past this, every abort starts at or after `upto`.
        let end = self.aborted.partition_point(|a| a.last_offset < upto.saturating_add(self.max_aborted_span));
        self.aborted[start..end.max(start)].iter().filter(|a| a.first_offset < upto).copied().collect()
    }

    /// Forgets producers whose last batch lies below the log start (its
    /// data was deleted), as Kafka does when the log start moves, and
    /// aborted transactions wholly below it.
    pub fn retain_from(&mut self, log_start: i64) {
        self.producers.retain(|_, p| {
            p.txn_first_offset.is_some() || p.batches.back().is_some_and(|b| b.last_offset >= log_start)
        });
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    /// Forgets producers silent (by their batches' timestamps) for longer
    /// than `max_idle_ms` (Kafka's `producer.id.expiration.ms`), except
    /// those with a transaction open.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) {
        // A verification takes a round trip to the coordinator, not minutes.
        self.guards.retain(|_, &mut (_, created)| now_ms - created < GUARD_TTL_MS);
        self.producers.retain(|_, p| {
            p.txn_first_offset.is_some() || p.batches.back().is_some_and(|b| now_ms - b.max_timestamp <= max_idle_ms)
        });
    }

    /// Every producer with a batch in the log, by id.
    pub fn active(&self) -> Vec<ProducerSummary> {
        let mut all: Vec<_> = self
            .producers
            .iter()
            .filter_map(|(&producer_id, p)| {
                Some(ProducerSummary {
                    producer_id,
                    epoch: p.epoch,
                    last: *p.batches.back()?,
                    coordinator_epoch: p.coordinator_epoch,
                    txn_first_offset: p.txn_first_offset,
                })
            })
            .collect();
        all.sort_unstable_by_key(|p| p.producer_id);
        all
    }

    fn encode(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.producers.len() * 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (id, p) in &self.producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.extend_from_slice(&p.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.extend_from_slice(&p.coordinator_epoch.to_be_bytes());
            out.push(p.batches.len() as u8);
            for b in &p.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot; `None` if it is torn or not one of ours.
    fn decode(bytes: &[u8]) -> Option<(i64, Self)> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_be_bytes() != crc || body.get(..4)? != SNAPSHOT_MAGIC {
            return None;
        }
        let mut r = Reader(&body[4..]);
        let offset = r.i64()?;
        let count = r.u32()?;
        let mut states = Self::default();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let txn_first_offset = Some(r.i64()?).filter(|&o| o >= 0);
            let coordinator_epoch = r.i32()?;
            let n = r.u8()?;
            let mut batches = VecDeque::with_capacity(TRACKED_BATCHES);
            for _ in 0..n {
                batches.push_back(ProducerBatch {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                    max_timestamp: r.i64()?,
                });
            }
            if let Some(first) = txn_first_offset {
                states.open.insert((first, id));
            }
            states.producers.insert(id, Producer { epoch, batches, txn_first_offset, coordinator_epoch });
        }
        Some((offset, states))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .map_err(StorageError::io("list partition dir", dir))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(SNAPSHOT_SUFFIX)?.parse().ok())
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// Writes the state as of `offset` (every batch below it recorded), then
/// removes older snapshots except the newest few and those at `segment_bases`.
pub fn write_snapshot(
    dir: &Path,
    offset: i64,
    states: &ProducerStates,
    segment_bases: &[i64],
) -> Result<(), StorageError> {
    let name = format!("{offset:020}{SNAPSHOT_SUFFIX}");
    crate::files::write_atomically(dir, &name, states.encode(offset))?;
    let offsets = snapshot_offsets(dir)?;
    for old in offsets.iter().rev().skip(SNAPSHOTS_KEPT).filter(|o| segment_bases.binary_search(o).is_err()) {
        let _ = std::fs::remove_file(snapshot_path(dir, *old));
    }
    Ok(())
}

/// Removes snapshots below the log start (their segments are gone).
pub fn remove_snapshots_before(dir: &Path, start: i64) -> Result<(), StorageError> {
    for offset in snapshot_offsets(dir)?.into_iter().filter(|&o| o < start) {
        let _ = std::fs::remove_file(snapshot_path(dir, offset));
    }
    Ok(())
}

/// Removes snapshots taken past `end` (the log was cut back below them).
/// The removal is made durable: a snapshot that came back after a power
/// loss would describe a log tail that no longer exists.
pub fn remove_snapshots_after(dir: &Path, end: i64) -> Result<(), StorageError> {
    let doomed: Vec<i64> = snapshot_offsets(dir)?.into_iter().filter(|&o| o > end).collect();
    for &offset in &doomed {
        let path = snapshot_path(dir, offset);
        std::fs::remove_file(&path).map_err(StorageError::io("remove producer snapshot", &path))?;
    }
    if !doomed.is_empty() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io("fsync", dir))?;
    }
    Ok(())
}

/// The newest readable snapshot at or below `end`: its offset and state
/// (offset 0 and an empty state if there is none).
pub fn load_snapshot(dir: &Path, end: i64) -> Result<(i64, ProducerStates), StorageError> {
    for offset in snapshot_offsets(dir)?.into_iter().rev().filter(|&o| o <= end) {
        let path = snapshot_path(dir, offset);
        let bytes = std::fs::read(&path).map_err(StorageError::io("read producer snapshot", &path))?;
        match ProducerStates::decode(&bytes) {
            Some((at, states)) if at == offset => return Ok((offset, states)),
            _ => tracing::warn!(path = %path.display(), "ignoring an unreadable producer snapshot"),
        }
    }
    Ok((0, ProducerStates::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer_id: i64, epoch: i16, first_seq: i32, count: i32, base_offset: i64) -> StoredBatch {
        StoredBatch {
            base_offset,
            size: 100,
            last_offset_delta: count - 1,
            max_timestamp: 1_000,
            leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence: first_seq,
            attributes: 0,
            marker: None,
        }
    }

    #[test]
    fn duplicates_gaps_and_stale_epochs_as_kafka_decides_them() {
        let mut s = ProducerStates::default();
        let first = batch(7, 0, 0, 10, 100);
        assert_eq!(s.check(&first), Ok(Verdict::Append));
        let _ = s.record(&first);
        let dup = s.check(&batch(7, 0, 0, 10, -1)).unwrap();
        assert!(matches!(dup, Verdict::Duplicate(b) if b.base_offset == 100 && b.last_offset == 109));
        assert_eq!(s.check(&batch(7, 0, 10, 5, -1)), Ok(Verdict::Append));
        assert!(matches!(s.check(&batch(7, 0, 11, 5, -1)), Err(SequenceError::OutOfOrder { expected: 10, .. })));
        // A new epoch restarts at sequence 0; an old one is fenced.
        assert!(matches!(s.check(&batch(7, 1, 10, 5, -1)), Err(SequenceError::OutOfOrder { expected: 0, .. })));
        let _ = s.record(&batch(7, 1, 0, 1, 110));
        assert!(matches!(s.check(&batch(7, 0, 10, 5, -1)), Err(SequenceError::StaleEpoch { current: 1, .. })));
        // Unknown producers and non-idempotent batches are appended as they come.
        assert_eq!(s.check(&batch(8, 0, 42, 1, -1)), Ok(Verdict::Append));
        assert_eq!(s.check(&batch(-1, -1, -1, 1, -1)), Ok(Verdict::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            let _ = s.record(&batch(1, 0, i, 1, i64::from(i)));
        }
        assert!(matches!(s.check(&batch(1, 0, 1, 1, -1)), Ok(Verdict::Duplicate(_))));
        assert!(matches!(s.check(&batch(1, 0, 0, 1, -1)), Err(SequenceError::OutOfOrder { .. })));
        let _ = s.record(&batch(2, 0, i32::MAX - 1, 2, 10));
        assert_eq!(s.check(&batch(2, 0, 0, 1, -1)), Ok(Verdict::Append));
    }

    #[test]
    fn snapshots_round_trip_and_the_newest_below_the_end_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStates::default();
        write_snapshot(dir.path(), 0, &s, &[0]).unwrap(); // at a segment roll
        let _ = s.record(&batch(1, 3, 0, 4, 0));
        write_snapshot(dir.path(), 4, &s, &[0]).unwrap();
        let _ = s.record(&batch(2, 0, 0, 1, 4));
        write_snapshot(dir.path(), 5, &s, &[0]).unwrap();
        let at_five = s.clone();
        let _ = s.record(&batch(2, 0, 1, 1, 5));
        write_snapshot(dir.path(), 6, &s, &[0]).unwrap();
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![0, 5, 6], "segment bases and the newest two are kept");
        remove_snapshots_before(dir.path(), 1).unwrap();
        assert_eq!(load_snapshot(dir.path(), 5).unwrap(), (5, at_five));
        assert_eq!(load_snapshot(dir.path(), 6).unwrap(), (6, s));
        remove_snapshots_after(dir.path(), 5).unwrap();
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![5]);
        assert_eq!(load_snapshot(dir.path(), 4).unwrap(), (0, ProducerStates::default()));
    }
}

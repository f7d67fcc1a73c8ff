//! Aborted transactions per segment, as Kafka's `.txnindex`: one 34-byte
//! entry (version, producer id, first offset, last offset, last stable
//! offset) per ABORT marker, in the file of the segment holding the
//! marker, so the list is deleted with its segment and never has to be
//! rebuilt from the whole log. Entries are appended without fsync; every
//! file with new entries is fsynced before a producer snapshot is written,
//! so entries for markers below a snapshot are durable and those above it
//! are re-derived from the log when it is recovered.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::producers::AbortedTxn;
use crate::segment::file_name;

const ENTRY_LEN: usize = 34;
const VERSION: i16 = 0;

fn path(dir: &Path, segment_base: i64) -> PathBuf {
    dir.join(file_name(segment_base, "txnindex"))
}

/// The segment (by base offset) holding `offset`.
pub fn segment_of(segment_bases: &[i64], offset: i64) -> i64 {
    let i = segment_bases.partition_point(|&b| b <= offset);
    segment_bases.get(i.wrapping_sub(1)).copied().unwrap_or(0)
}

/// Appends an entry to the segment's file.
pub fn append(dir: &Path, segment_base: i64, aborted: &AbortedTxn) -> Result<(), StorageError> {
    let mut entry = Vec::with_capacity(ENTRY_LEN);
    entry.extend_from_slice(&VERSION.to_be_bytes());
    entry.extend_from_slice(&aborted.producer_id.to_be_bytes());
    entry.extend_from_slice(&aborted.first_offset.to_be_bytes());
    entry.extend_from_slice(&aborted.last_offset.to_be_bytes());
    // Kafka records the LSO at the marker to stop searches early; the
    // search here is bounded otherwise, so it is not tracked.
    entry.extend_from_slice(&(-1i64).to_be_bytes());
    let path = path(dir, segment_base);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&entry))
        .map_err(StorageError::io("append to txnindex", &path))
}

/// Makes the segments' files durable.
pub fn sync(dir: &Path, segment_bases: impl IntoIterator<Item = i64>) -> Result<(), StorageError> {
    for base in segment_bases {
        let path = path(dir, base);
        match std::fs::File::open(&path) {
            Ok(f) => f.sync_data().map_err(StorageError::io("fsync txnindex", &path))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("open txnindex", &path)(e)),
        }
    }
    Ok(())
}

/// Every aborted transaction whose marker lies in `from..below`, in marker
/// order. Entries at or past `below` (to be re-derived from the log) and a
/// torn last entry are cut from the files.
pub fn load(dir: &Path, segment_bases: &[i64], from: i64, below: i64) -> Result<Vec<AbortedTxn>, StorageError> {
    let mut all = Vec::new();
    for &base in segment_bases {
        let path = path(dir, base);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io("read txnindex", &path)(e)),
        };
        let mut kept = 0;
        for entry in bytes.chunks_exact(ENTRY_LEN) {
            let field = |at: usize| i64::from_be_bytes(entry[at..at + 8].try_into().unwrap_or_default());
            let aborted = AbortedTxn { producer_id: field(2), first_offset: field(10), last_offset: field(18) };
            if aborted.last_offset >= below {
                break;
            }
            kept += ENTRY_LEN;
            if aborted.last_offset >= from {
                all.push(aborted);
            }
        }
        if kept < bytes.len() {
            let f = std::fs::OpenOptions::new().write(true).open(&path);
            f.and_then(|f| f.set_len(kept as u64)).map_err(StorageError::io("truncate txnindex", &path))?;
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_the_tail_past_a_point_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let a = |pid, first, last| AbortedTxn { producer_id: pid, first_offset: first, last_offset: last };
        append(dir.path(), 0, &a(1, 0, 5)).unwrap();
        append(dir.path(), 0, &a(2, 3, 9)).unwrap();
        append(dir.path(), 10, &a(3, 8, 12)).unwrap();
        assert_eq!(segment_of(&[0, 10], 9), 0);
        assert_eq!(segment_of(&[0, 10], 12), 10);
        assert_eq!(load(dir.path(), &[0, 10], 0, 100).unwrap(), vec![a(1, 0, 5), a(2, 3, 9), a(3, 8, 12)]);
        assert_eq!(load(dir.path(), &[0, 10], 6, 100).unwrap(), vec![a(2, 3, 9), a(3, 8, 12)]);
        // Cut at 9: the entry for the marker at 9 and everything after go.
        assert_eq!(load(dir.path(), &[0, 10], 0, 9).unwrap(), vec![a(1, 0, 5)]);
        assert_eq!(load(dir.path(), &[0, 10], 0, 100).unwrap(), vec![a(1, 0, 5)]);
    }
}

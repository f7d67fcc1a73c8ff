//! Partition log behaviour through the public API: offsets, reads, rolls,
//! timestamp lookups and recovery from torn or corrupt tails.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use sluice_storage::{LogConfig, PartitionLog, StorageError, BATCH_HEADER_LEN};

/// A v2 batch of `count` records whose timestamps end at `max_ts`, with a
/// valid CRC. The record bodies are opaque filler: storage never reads them.
fn batch(count: i32, max_ts: i64, filler: usize) -> Vec<u8> {
    let mut b = vec![0u8; BATCH_HEADER_LEN + filler];
    let len = b.len() as i32 - 12;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_ts.to_be_bytes());
    b[35..43].copy_from_slice(&max_ts.to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    for (i, x) in b[BATCH_HEADER_LEN..].iter_mut().enumerate() {
        *x = i as u8;
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn base_offset(bytes: &[u8]) -> i64 {
    i64::from_be_bytes(bytes[0..8].try_into().unwrap())
}

fn small_segments() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 256 }
}

fn fill(dir: &Path, batches: i32) -> Vec<(i64, Vec<u8>)> {
    let mut log = PartitionLog::open(dir, small_segments()).unwrap();
    let mut written = Vec::new();
    for i in 0..batches {
        let mut b = batch(3, 1000 + i64::from(i) * 10, 100);
        let info = log.append(&mut b).unwrap();
        assert_eq!(info.base_offset, i64::from(i) * 3);
        assert_eq!(info.last_offset, i64::from(i) * 3 + 2);
        written.push((info.base_offset, b));
    }
    written
}

#[test]
fn assigns_offsets_and_reads_back_every_batch_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let written = fill(dir.path(), 40);
    let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.next_offset(), 120);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"));
    assert!(segments.count() > 3, "small segment.bytes must roll");
    for (base, bytes) in &written {
        for offset in *base..*base + 3 {
            let read = log.read(offset, 1, i64::MAX, true).unwrap();
            assert_eq!(&read.bytes, bytes, "offset {offset}: the whole containing batch, as stored");
        }
    }
    // A large max_bytes stops at the end of the segment and never beyond the bound.
    let read = log.read(0, 1 << 20, 6, true).unwrap();
    assert_eq!(read.bytes.len(), written[0].1.len() + written[1].1.len());
    assert!(log.read(120, 100, i64::MAX, true).unwrap().bytes.is_empty());
    assert_eq!(log.read(0, 10, i64::MAX, false).unwrap().bytes.len(), 10, "without min_one the limit is hard");
    assert!(matches!(log.read(121, 100, i64::MAX, true), Err(StorageError::OffsetOutOfRange { .. })));
}

#[test]
fn finds_offsets_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40);
    let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
    let first = log.find_by_timestamp(0).unwrap().unwrap();
    assert_eq!(base_offset(&first), 0);
    let mid = log.find_by_timestamp(1095).unwrap().unwrap();
    assert_eq!(base_offset(&mid), 30, "batch 10 is the first with max timestamp >= 1095");
    assert!(log.find_by_timestamp(5000).unwrap().is_none());
    let max = log.find_max_timestamp().unwrap().unwrap();
    assert_eq!(base_offset(&max), 117);
}

#[test]
fn torn_tail_is_truncated_and_appends_continue_at_the_same_offset() {
    let dir = tempfile::tempdir().unwrap();
    let written = fill(dir.path(), 5);
    let active = last_log_file(dir.path());
    // A crash mid-write leaves half a batch behind.
    let half = &batch(3, 9999, 100)[..70];
    OpenOptions::new().append(true).open(&active).unwrap().write_all(half).unwrap();

    let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.next_offset(), 15);
    let mut next = batch(1, 2000, 10);
    assert_eq!(log.append(&mut next).unwrap().base_offset, 15);
    for (base, bytes) in &written {
        assert_eq!(&log.read(*base, 1, i64::MAX, true).unwrap().bytes, bytes);
    }
}

#[test]
fn corrupt_tail_batch_is_dropped_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 5);
    let active = last_log_file(dir.path());
    let mut bytes = std::fs::read(&active).unwrap();
    let len = bytes.len();
    bytes[len - 1] ^= 0xff; // flip a bit inside the last batch
    std::fs::write(&active, &bytes).unwrap();

    let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.next_offset(), 12, "the corrupt last batch (offsets 12..14) is gone");
}

#[test]
fn lost_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let written = fill(dir.path(), 40);
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "index" || x == "timeindex") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.next_offset(), 120);
    let (base, bytes) = &written[25];
    assert_eq!(&log.read(*base + 1, 1, i64::MAX, true).unwrap().bytes, bytes);
    assert_eq!(base_offset(&log.find_by_timestamp(1250).unwrap().unwrap()), 75);
}

fn last_log_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

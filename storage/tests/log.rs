//! Partition log behaviour through the public API, on a shard-like
//! current-thread runtime with an io_uring ring: offsets, reads, rolls,
//! timestamp lookups, group commit, and recovery from torn or corrupt tails.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;

use sluice_storage::{LogConfig, Partition, Ring, SequenceError, StorageError, BATCH_HEADER_LEN};

/// Runs `f` the way a shard does: current-thread runtime, LocalSet, a ring.
fn shard<F: Future<Output = ()>>(f: impl FnOnce(Rc<Ring>) -> F) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let ring = Ring::new().unwrap();
        f(ring).await
    });
}

async fn open(dir: &Path, ring: &Rc<Ring>) -> Partition {
    Partition::open(dir, small_segments(), ring.clone()).await.unwrap()
}

async fn read(p: &Partition, offset: i64, max_bytes: usize, min_one: bool) -> Result<Vec<u8>, StorageError> {
    p.read(offset, max_bytes, min_one, i64::MAX).await.map(|(r, _)| r.bytes)
}

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
    // No producer id, epoch or sequence (-1), as non-idempotent clients send.
    b[43..57].fill(0xff);
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
    LogConfig { segment_bytes: 1024, index_interval_bytes: 256, retention_ms: -1, ..LogConfig::default() }
}

/// Appends `batches` batches of 3 records; returns (base offset, stored bytes).
async fn fill(p: &Partition, batches: i32) -> Vec<(i64, Vec<u8>)> {
    let mut written = Vec::new();
    for i in 0..batches {
        let mut b = batch(3, 1000 + i64::from(i) * 10, 100);
        let (info, offsets) = p.append(b.clone()).await.unwrap();
        assert_eq!(info.base_offset, i64::from(i) * 3);
        assert_eq!(info.last_offset, i64::from(i) * 3 + 2);
        assert_eq!(offsets.log_end_offset, info.last_offset + 1);
        b[0..8].copy_from_slice(&info.base_offset.to_be_bytes());
        written.push((info.base_offset, b));
    }
    written
}

#[test]
fn assigns_offsets_and_reads_back_every_batch_across_segments() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let written = fill(&open(dir.path(), &ring).await, 40).await;
        let p = open(dir.path(), &ring).await;
        assert_eq!(p.offsets().log_end_offset, 120);
        assert!(log_files(dir.path()).len() > 3, "small segment.bytes must roll");
        for (base, bytes) in &written {
            for offset in *base..*base + 3 {
                assert_eq!(&read(&p, offset, 1, true).await.unwrap(), bytes, "offset {offset}: the containing batch");
            }
        }
        // A large max_bytes stops at the end of the segment.
        let first_segment = read(&p, 0, 1 << 20, true).await.unwrap();
        assert_eq!(first_segment.len() % written[0].1.len(), 0);
        assert!(first_segment.len() <= 1024);
        assert!(read(&p, 120, 100, true).await.unwrap().is_empty());
        assert_eq!(read(&p, 0, 10, false).await.unwrap().len(), 10, "without min_one the limit is hard");
        assert!(matches!(read(&p, 121, 100, true).await, Err(StorageError::OffsetOutOfRange { .. })));
    });
}

#[test]
fn finds_offsets_by_timestamp() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &ring).await;
        fill(&p, 40).await;
        let first = p.find_by_timestamp(0).await.unwrap().unwrap();
        assert_eq!(base_offset(&first), 0);
        let mid = p.find_by_timestamp(1095).await.unwrap().unwrap();
        assert_eq!(base_offset(&mid), 30, "batch 10 is the first with max timestamp >= 1095");
        assert!(p.find_by_timestamp(5000).await.unwrap().is_none());
        assert_eq!(base_offset(&p.find_max_timestamp().await.unwrap().unwrap()), 117);
    });
}

#[test]
fn concurrent_appends_are_acknowledged_in_offset_order_under_group_commit() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let p = Rc::new(open(dir.path(), &ring).await);
        let acked = Rc::new(std::cell::RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (p, acked) = (p.clone(), acked.clone());
                tokio::task::spawn_local(async move {
                    let (info, _) = p.append(batch(1, i, 50)).await.unwrap();
                    // When any append is acknowledged, it and everything before it is durable.
                    assert!(p.durable_offset() > info.last_offset);
                    acked.borrow_mut().push(info.base_offset);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let mut acked = acked.borrow().clone();
        acked.sort();
        assert_eq!(acked, (0..200).collect::<Vec<i64>>());
        assert_eq!(p.offsets().log_end_offset, 200);
        assert!(p.sync_rounds() < 200 / 2, "appends share fsyncs: {} rounds for 200 appends", p.sync_rounds());
    });
}

#[test]
fn torn_tail_is_truncated_and_appends_continue_at_the_same_offset() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let written = fill(&open(dir.path(), &ring).await, 5).await;
        let active = last_log_file(dir.path());
        // A crash mid-write leaves half a batch behind.
        let half = &batch(3, 9999, 100)[..70];
        OpenOptions::new().append(true).open(&active).unwrap().write_all(half).unwrap();

        let p = open(dir.path(), &ring).await;
        assert_eq!(p.offsets().log_end_offset, 15);
        assert_eq!(p.append(batch(1, 2000, 10)).await.unwrap().0.base_offset, 15);
        for (base, bytes) in &written {
            assert_eq!(&read(&p, *base, 1, true).await.unwrap(), bytes);
        }
    });
}

#[test]
fn corrupt_tail_batch_is_dropped_on_recovery() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        fill(&open(dir.path(), &ring).await, 5).await;
        let active = last_log_file(dir.path());
        let mut bytes = std::fs::read(&active).unwrap();
        let len = bytes.len();
        bytes[len - 1] ^= 0xff; // flip a bit inside the last batch
        std::fs::write(&active, &bytes).unwrap();
        let p = open(dir.path(), &ring).await;
        assert_eq!(p.offsets().log_end_offset, 12, "the corrupt last batch (offsets 12..14) is gone");
    });
}

#[test]
fn lost_indexes_are_rebuilt() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let written = fill(&open(dir.path(), &ring).await, 40).await;
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "index" || x == "timeindex") {
                std::fs::remove_file(p).unwrap();
            }
        }
        let p = open(dir.path(), &ring).await;
        assert_eq!(p.offsets().log_end_offset, 120);
        let (base, bytes) = &written[25];
        assert_eq!(&read(&p, *base + 1, 1, true).await.unwrap(), bytes);
        assert_eq!(base_offset(&p.find_by_timestamp(1250).await.unwrap().unwrap()), 75);
    });
}

fn last_log_file(dir: &Path) -> std::path::PathBuf {
    log_files(dir).pop().unwrap()
}

#[test]
fn retention_deletes_whole_old_segments_and_moves_the_log_start() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_segments();
        config.retention_ms = 10_000;
        let p = Partition::open(dir.path(), config.clone(), ring.clone()).await.unwrap();
        fill(&p, 40).await; // timestamps 1000..1390, several segments
        p.set_high_watermark(i64::MAX); // all committed: retention may reach the active segment
                                        // Nothing is old enough yet (now = 1200 + 10s keeps batches >= 1200... only the oldest go).
        assert_eq!(p.enforce_retention(1000 + 10_000), 0);
        let deleted = p.enforce_retention(1150 + 10_000);
        assert!(deleted >= 1, "segments whose newest record is past retention.ms go");
        let start = p.offsets().log_start_offset;
        assert!(start > 0 && start % 3 == 0, "log start moves to a segment base: {start}");
        assert!(matches!(read(&p, 0, 100, true).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert_eq!(base_offset(&read(&p, start, 1, true).await.unwrap()), start);
        // Far in the future everything but the active segment goes.
        p.enforce_retention(i64::MAX / 2);
        assert_eq!(log_files(dir.path()).len(), 1, "the active segment stays");
        assert_eq!(p.offsets().log_end_offset, 120);

        // retention.bytes keeps the newest segments within the limit.
        let dir = tempfile::tempdir().unwrap();
        config.retention_ms = -1;
        config.retention_bytes = 2048;
        let p = Partition::open(dir.path(), config, ring.clone()).await.unwrap();
        fill(&p, 40).await;
        p.set_high_watermark(i64::MAX);
        p.enforce_retention(0);
        let total: u64 = log_files(dir.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        assert!(total <= 2048 + 1024, "within retention.bytes plus the active segment: {total}");
    });
}

/// Kafka never deletes a segment whose records reach above the high
/// watermark: followers may still need them, and an acks=all producer
/// waiting on them would otherwise see the log start (and so the HW) jump.
#[test]
fn retention_never_deletes_above_the_high_watermark() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_segments();
        config.retention_ms = 10;
        let p = Partition::open(dir.path(), config, ring.clone()).await.unwrap();
        fill(&p, 40).await; // offsets 0..120 over several segments
        assert!(log_files(dir.path()).len() > 3);
        assert_eq!(p.enforce_retention(i64::MAX / 2), 0, "nothing is committed yet");
        assert_eq!(p.offsets().log_start_offset, 0);
        assert_eq!(p.offsets().high_watermark, 0);

        p.set_high_watermark(30);
        assert!(p.enforce_retention(i64::MAX / 2) > 0);
        let offsets = p.offsets();
        assert!(offsets.log_start_offset > 0 && offsets.log_start_offset <= 30, "{offsets:?}");
        assert_eq!(offsets.high_watermark, 30, "the high watermark did not move with the log start");
        assert_eq!(base_offset(&read(&p, offsets.log_start_offset, 1, true).await.unwrap()), offsets.log_start_offset);
    });
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &ring).await;
        fill(&p, 40).await;
        // The replication layer moves the high watermark; nothing is committed yet.
        assert!(matches!(p.delete_records(50).await, Err(StorageError::OffsetOutOfRange { .. })));
        p.set_high_watermark(i64::MAX);
        assert_eq!(p.delete_records(50).await.unwrap(), 50);
        assert_eq!(p.offsets().log_start_offset, 50);
        assert!(matches!(read(&p, 49, 100, true).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert!(matches!(p.delete_records(500).await, Err(StorageError::OffsetOutOfRange { .. })));
        // A batch straddling the new start is still returned whole from 50.
        assert_eq!(base_offset(&read(&p, 50, 1, true).await.unwrap()), 48);
        drop(p);
        let p = open(dir.path(), &ring).await;
        assert_eq!(p.offsets().log_start_offset, 50, "survives restart");
        p.set_high_watermark(i64::MAX);
        assert_eq!(p.delete_records(-1).await.unwrap(), 120, "-1 means the high watermark");
    });
}

#[test]
fn segment_ms_rolls_by_age() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 1 << 20, segment_ms: 0, ..small_segments() };
        let p = Partition::open(dir.path(), config, ring.clone()).await.unwrap();
        fill(&p, 3).await;
        assert_eq!(log_files(dir.path()).len(), 3, "every non-empty segment is already old enough to roll");
    });
}

fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

#[test]
fn after_a_crash_segments_past_the_recovery_point_are_checked_and_a_hole_ends_the_log() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &ring).await;
        fill(&p, 10).await;
        p.flush().await.unwrap();
        p.checkpoint(false).unwrap(); // recovery point: offset 30
        drop(p);
        // Keep appending (new segments), then "crash" with a bad batch in a
        // segment that is not the last one.
        let p = open(dir.path(), &ring).await;
        for i in 10..40 {
            p.append(batch(3, 1000 + i * 10, 100)).await.unwrap();
        }
        drop(p);
        let logs = log_files(dir.path());
        let victim = logs[logs.len() - 3].clone();
        let victim_base: i64 = victim.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        assert!(victim_base >= 30, "the damaged segment lies past the recovery point");
        let mut bytes = std::fs::read(&victim).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&victim, &bytes).unwrap();

        let p = open(dir.path(), &ring).await;
        let end = p.offsets().log_end_offset;
        assert!(end < 120 && end > victim_base, "the log ends before the damaged batch: {end}");
        assert_eq!(log_files(dir.path()).last().unwrap(), &victim, "segments after the hole are gone");
        assert_eq!(p.append(batch(1, 5, 10)).await.unwrap().0.base_offset, end, "appends continue at the cut");
        for offset in (0..end).step_by(3) {
            assert_eq!(base_offset(&read(&p, offset, 1, true).await.unwrap()), offset);
        }
    });
}

#[test]
fn a_clean_shutdown_lets_the_next_start_trust_every_segment() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &ring).await;
        let written = fill(&p, 40).await;
        p.flush().await.unwrap();
        p.checkpoint(true).unwrap();
        drop(p);
        let recovery = std::fs::read_to_string(dir.path().join("recovery-point")).unwrap();
        assert_eq!(recovery, "120 clean");
        let p = open(dir.path(), &ring).await;
        assert_eq!(p.offsets().log_end_offset, 120);
        assert_eq!(&read(&p, 117, 1, true).await.unwrap(), &written[39].1);
        let recovery = std::fs::read_to_string(dir.path().join("recovery-point")).unwrap();
        assert_eq!(recovery, "120 dirty", "a later crash is not mistaken for a clean stop");
    });
}

#[test]
fn a_failed_write_discards_later_completed_writes_and_moves_the_epoch() {
    use sluice_storage::PartitionLog;
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
    let (mut a, mut b) = (batch(3, 1000, 50), batch(2, 1001, 50));
    let ra = log.reserve(&mut a, None).unwrap();
    let rb = log.reserve(&mut b, None).unwrap();
    assert_eq!((ra.info.base_offset, rb.info.base_offset, ra.epoch), (0, 3, rb.epoch));
    // B's write finishes first; it is not visible before A's.
    assert!(!log.complete(rb.ticket, true).unwrap());
    assert_eq!(log.visible_offset(), 0);
    assert!(log.reserve(&mut batch(1, 1002, 50), None).is_ok(), "appends continue while A is in flight");
    // A fails: everything reserved after the visible prefix is discarded.
    log.complete(ra.ticket, false).unwrap();
    log.complete(ra.ticket + 2, true).unwrap();
    assert_eq!(log.visible_offset(), 0);
    assert_eq!(log.next_offset(), 0, "offsets are handed out again from the last complete write");
    assert_ne!(log.epoch(), ra.epoch, "B's appender sees the epoch move and reports failure");
}

#[test]
fn a_follower_log_keeps_leader_offsets_truncates_and_tracks_epochs() {
    shard(|ring| async move {
        let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let config = small_segments();
        let leader = Partition::open(leader_dir.path(), config.clone(), ring.clone()).await.unwrap();
        leader.assign_leader_epoch(0).unwrap();
        let mut stored = fill(&leader, 10).await;
        leader.assign_leader_epoch(3).unwrap();
        stored.extend(fill_from(&leader, 10, 30).await);

        let follower = Partition::open(follower_dir.path(), config, ring.clone()).await.unwrap();
        for (i, (_, bytes)) in stored.iter().enumerate() {
            let mut b = bytes.clone();
            sluice_storage::set_leader_epoch(&mut b, if i < 10 { 0 } else { 3 });
            follower.append_replicated(b).await.unwrap();
        }
        assert_eq!(follower.offsets().log_end_offset, 60);
        assert_eq!(follower.latest_leader_epoch(), Some(3));
        assert_eq!(follower.end_offset_for_epoch(0), (0, 30), "epoch 0 ends where epoch 3 starts");
        assert_eq!(follower.end_offset_for_epoch(3), (3, 60));
        // A batch that starts below the log end is refused.
        assert!(matches!(
            follower.append_replicated(stored[2].1.clone()).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));

        // Readers can be held to the high watermark; whole batches only.
        let upto = |hw| follower.read(30, 1 << 20, true, hw);
        assert!(upto(30).await.unwrap().0.bytes.is_empty());
        let one = upto(31).await.unwrap().0.bytes;
        assert_eq!((base_offset(&one), one.len()), (30, stored[10].1.len()));

        // Truncating mid-batch cuts back to that batch's start, across segments.
        assert_eq!(follower.truncate_to(31, false).unwrap(), 30);
        assert_eq!(follower.latest_leader_epoch(), Some(0), "the epoch that started at 30 is gone");
        assert_eq!(follower.offsets().log_end_offset, 30);
        assert_eq!(read(&follower, 27, 1 << 20, true).await.unwrap(), stored[9].1);
        drop(follower);
        let follower = Partition::open(follower_dir.path(), small_segments(), ring.clone()).await.unwrap();
        assert_eq!(follower.offsets().log_end_offset, 30, "the truncation survives a restart");
        assert_eq!(follower.truncate_to(500, true).unwrap(), 500, "restarted empty at the leader's log start");
        assert_eq!(follower.offsets().log_start_offset, 500);
        assert!(matches!(read(&follower, 0, 10, true).await, Err(StorageError::OffsetOutOfRange { .. })));

        // The leader's log was cut inside a batch: the empty log restarts at
        // that batch's base and keeps it whole.
        assert!(follower.align_replicated(497, 499).is_err(), "wholly below the log start");
        let mut straddling = batch(3, 3000, 100);
        straddling[0..8].copy_from_slice(&498i64.to_be_bytes());
        follower.align_replicated(498, 500).unwrap();
        follower.append_replicated(straddling).await.unwrap();
        assert_eq!((follower.offsets().log_start_offset, follower.offsets().log_end_offset), (498, 501));
        assert!(
            matches!(follower.align_replicated(499, 501), Err(StorageError::OffsetOutOfRange { .. })),
            "a log holding records never restarts"
        );
    });
}

#[test]
fn a_follower_copies_a_log_with_gaps_keeps_segments_contiguous_and_truncates_exactly() {
    shard(|ring| async move {
        let dir = tempfile::tempdir().unwrap();
        let follower = Partition::open(dir.path(), small_segments(), ring.clone()).await.unwrap();
        // 3-record batches every 10 offsets, as a compacted leader serves them.
        for i in 0..12i64 {
            let mut b = batch(3, 1000 + i, 300);
            b[0..8].copy_from_slice(&(i * 10).to_be_bytes());
            follower.append_replicated(b).await.unwrap();
        }
        assert_eq!(follower.offsets().log_end_offset, 113);
        let segments: Vec<i64> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().unwrap().strip_suffix(".log")?.parse().ok())
            .collect();
        assert!(segments.len() > 2, "small segments rolled: {segments:?}");
        drop(follower);
        let follower = Partition::open(dir.path(), small_segments(), ring.clone()).await.unwrap();
        assert_eq!(follower.offsets().log_end_offset, 113, "every segment kept across a restart");
        assert_eq!(
            base_offset(&read(&follower, 45, 1 << 20, true).await.unwrap()),
            50,
            "a read in a gap starts after it"
        );

        // Truncating into a gap ends the log after the last batch below it.
        assert_eq!(follower.truncate_to(57, false).unwrap(), 53);
        assert_eq!(follower.offsets().log_end_offset, 53);
        drop(follower);
        let follower = Partition::open(dir.path(), small_segments(), ring.clone()).await.unwrap();
        assert_eq!(follower.offsets().log_end_offset, 53, "the truncation survives a restart");
        let mut b = batch(3, 2000, 300);
        b[0..8].copy_from_slice(&60i64.to_be_bytes());
        follower.append_replicated(b).await.unwrap();
        assert_eq!(follower.offsets().log_end_offset, 63);
    });
}

/// Appends `batches` more 3-record batches to a log ending at `start`.
async fn fill_from(p: &Partition, batches: i32, start: i64) -> Vec<(i64, Vec<u8>)> {
    let mut written = Vec::new();
    for i in 0..batches {
        let mut b = batch(3, 5000 + i64::from(i), 100);
        let (info, _) = p.append(b.clone()).await.unwrap();
        assert_eq!(info.base_offset, start + i64::from(i) * 3);
        b[0..8].copy_from_slice(&info.base_offset.to_be_bytes());
        written.push((info.base_offset, b));
    }
    written
}

/// `batch(count, ..)` from idempotent producer `producer_id`, epoch 0,
/// numbered from sequence `first_seq`.
fn producer_batch(producer_id: i64, first_seq: i32, count: i32) -> Vec<u8> {
    let mut b = batch(count, 1000, 100);
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&first_seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".producers"))
        .collect();
    names.sort();
    names
}

#[test]
fn producer_state_is_snapshotted_at_rolls_and_rebuilt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    shard(|ring| async move {
        let p = open(dir.path(), &ring).await;
        for i in 0..30 {
            let (info, _) = p.append(producer_batch(9, i * 3, 3)).await.unwrap();
            assert_eq!(info.base_offset, i64::from(i) * 3);
        }
        // A retry of the last batch: its original offsets, nothing written.
        let (dup, offsets) = p.append(producer_batch(9, 87, 3)).await.unwrap();
        assert_eq!((dup.base_offset, dup.last_offset, offsets.log_end_offset), (87, 89, 90));
        // Small segments rolled several times, each roll snapshotted.
        assert!(snapshot_files(dir.path()).len() >= 3, "{:?}", snapshot_files(dir.path()));
        drop(p); // no checkpoint: a crash

        let p = open(dir.path(), &ring).await;
        let (dup, _) = p.append(producer_batch(9, 87, 3)).await.unwrap();
        assert_eq!(dup.base_offset, 87, "recognised after the restart");
        assert!(matches!(p.append(producer_batch(9, 91, 1)).await, Err(StorageError::Sequence(_))));
        let (next, _) = p.append(producer_batch(9, 90, 1)).await.unwrap();
        assert_eq!(next.base_offset, 90);
    });
}

/// `producer_batch` with the transactional attribute set, at `epoch`.
fn txn_batch(producer_id: i64, epoch: i16, first_seq: i32, count: i32) -> Vec<u8> {
    let mut b = producer_batch(producer_id, first_seq, count);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A transaction marker (control batch) as a coordinator writes it.
fn marker(producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Vec<u8> {
    let mut record = vec![32u8, 0, 0, 0, 8]; // length 16, attributes, deltas, key length 4
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&i16::from(commit).to_be_bytes());
    record.push(12); // value length 6
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    record.push(0); // no headers
    let mut b = batch(1, 1000, 0);
    b.extend_from_slice(&record);
    let len = b.len() as i32 - 12;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&0x30i16.to_be_bytes());
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn transactions_bound_the_last_stable_offset_and_aborts_are_remembered_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    shard(|ring| async move {
        let p = open(dir.path(), &ring).await;
        p.append(txn_batch(5, 0, 0, 3)).await.unwrap(); // 0..=2, open
        p.append(batch(1, 1000, 10)).await.unwrap(); // 3
        p.append(txn_batch(6, 0, 0, 1)).await.unwrap(); // 4, open
        p.set_high_watermark(5);
        assert_eq!(p.offsets().last_stable_offset, 0);
        assert!(p.in_transaction(5) && p.in_transaction(6));
        // A non-transactional batch from a producer inside a transaction.
        let refused = p.append(producer_batch(6, 1, 1)).await;
        assert!(matches!(refused, Err(StorageError::Sequence(SequenceError::NotTransactional { .. }))), "{refused:?}");

        let (abort, _) = p.append(marker(5, 0, false, 3)).await.unwrap();
        assert_eq!(abort.base_offset, 5);
        assert!(!p.in_transaction(5));
        // Decided but not replicated yet: still unstable.
        assert_eq!(p.offsets().last_stable_offset, 0);
        p.set_high_watermark(6);
        assert_eq!(p.offsets().last_stable_offset, 4, "producer 6 is still open");
        p.append(marker(6, 0, true, 3)).await.unwrap(); // 6
        p.set_high_watermark(7);
        assert_eq!(p.offsets().last_stable_offset, 7);
        let aborted = p.aborted_between(0, 7);
        assert_eq!(
            aborted.iter().map(|a| (a.producer_id, a.first_offset, a.last_offset)).collect::<Vec<_>>(),
            [(5, 0, 5)]
        );
        assert!(p.aborted_between(6, 7).is_empty());
        // Markers from an older producer epoch or coordinator are refused; a
        // newer producer epoch (a coordinator fencing it) is taken.
        let stale = p.append(marker(6, -1, true, 3)).await;
        assert!(matches!(stale, Err(StorageError::Sequence(SequenceError::StaleEpoch { .. }))), "{stale:?}");
        let fenced = p.append(marker(6, 0, true, 2)).await;
        assert!(matches!(fenced, Err(StorageError::Sequence(SequenceError::CoordinatorFenced { .. }))), "{fenced:?}");
        p.append(txn_batch(7, 0, 0, 2)).await.unwrap(); // 7..=8, left open
        drop(p); // a crash: rebuilt from the log

        let p = open(dir.path(), &ring).await;
        assert_eq!(p.aborted_between(0, 9).len(), 1);
        assert!(p.in_transaction(7) && !p.in_transaction(5));
        p.set_high_watermark(9);
        assert_eq!(p.offsets().last_stable_offset, 7);
        p.checkpoint(true).unwrap();
        drop(p); // and from the snapshot, the aborts from the segment's .txnindex
        let index = dir.path().join(format!("{:020}.txnindex", 0));
        assert_eq!(std::fs::metadata(&index).unwrap().len(), 34, "one entry, Kafka's size");

        let p = open(dir.path(), &ring).await;
        assert_eq!(p.aborted_between(0, 9).len(), 1);
        assert!(p.in_transaction(7));
        // Producer 6 committed; its next transaction goes on in sequence.
        let (next, _) = p.append(txn_batch(6, 0, 1, 1)).await.unwrap();
        assert_eq!(next.base_offset, 9);
        assert!(p.in_transaction(6));
    });
}

#[test]
fn a_restarted_log_keeps_no_transaction_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    shard(|ring| async move {
        let p = open(dir.path(), &ring).await;
        p.append(txn_batch(5, 0, 0, 2)).await.unwrap(); // open, never ended here
        p.checkpoint(false).unwrap(); // snapshot with it open
                                      // A follower far behind restarts its log at the leader's start.
        assert_eq!(p.truncate_to(100, true).unwrap(), 100);
        p.set_high_watermark(100);
        assert!(!p.in_transaction(5));
        assert_eq!(p.offsets().last_stable_offset, 100);
        drop(p);
        let p = open(dir.path(), &ring).await;
        assert!(!p.in_transaction(5), "no snapshot of the old log survives");
    });
}

#[test]
fn a_transactional_write_delayed_past_its_transactions_end_is_not_admitted() {
    let dir = tempfile::tempdir().unwrap();
    shard(|ring| async move {
        let p = open(dir.path(), &ring).await;
        // Verified with the coordinator, then the transaction ends (an abort
        // marker) before the batch arrives: it must not open a new one.
        let guard = p.begin_txn_verification(5, 0);
        assert!(guard.is_some());
        p.append(marker(5, 0, false, 0)).await.unwrap();
        assert!(!p.admit_transactional(5, guard));
        // A fresh verification admits once; an open transaction needs none.
        let guard = p.begin_txn_verification(5, 0);
        assert!(p.admit_transactional(5, guard));
        p.append(txn_batch(5, 0, 0, 1)).await.unwrap();
        assert_eq!(p.begin_txn_verification(5, 0), None);
        assert!(p.admit_transactional(5, None));
    });
}

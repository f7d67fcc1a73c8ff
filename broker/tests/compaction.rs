//! Log compaction on a partition, with the broker's record codec: the
//! latest record per key survives with its offset, tombstones last until
//! their delete horizon, readers during a pass see a whole log, a follower
//! copies the compacted log (gaps included), and it all survives reopening.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_broker::runtime::compaction::KafkaRecords;
use sluice_broker::txn::markers::Marker;
use sluice_storage::{Compaction, LogConfig, Partition, RecordCodec, Ring};

fn shard<F: std::future::Future<Output = ()>>(f: impl FnOnce(Rc<Ring>) -> F) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async move { f(Ring::new().unwrap()).await });
}

const DELETE_RETENTION_MS: i64 = 60_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        retention_ms: -1,
        compaction: Some(Compaction {
            min_cleanable_dirty_ratio: 0.5,
            min_lag_ms: 0,
            max_lag_ms: i64::MAX,
            delete_retention_ms: DELETE_RETENTION_MS,
        }),
        ..LogConfig::default()
    }
}

/// One batch of (key, value) records, `None` values being tombstones.
fn batch(records: &[(String, Option<String>)], codec: Compression) -> Vec<u8> {
    encoded(records, codec, None)
}

/// The same, transactional for producer 7 (epoch 0) from sequence `first_seq`.
fn transactional(records: &[(String, Option<String>)], first_seq: i32) -> Vec<u8> {
    encoded(records, Compression::None, Some(first_seq))
}

fn encoded(records: &[(String, Option<String>)], codec: Compression, txn_seq: Option<i32>) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: txn_seq.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: if txn_seq.is_some() { 7 } else { -1 },
            producer_epoch: if txn_seq.is_some() { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch where offset - sequence changes.
            sequence: txn_seq.unwrap_or(0) + i as i32,
            timestamp: 1_000 + i as i64,
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression: codec })
        .unwrap();
    buf.to_vec()
}

/// Every record from the log start, as (offset, key, value).
async fn read_all(p: &Partition) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = p.offsets().log_start_offset;
    let end = p.offsets().log_end_offset;
    while offset < end {
        let (read, _) = p.read(offset, 1 << 20, true, i64::MAX).await.unwrap();
        assert!(!read.bytes.is_empty(), "nothing readable at {offset} below the end {end}");
        // Batches may be empty now: move on by their headers.
        let next = last_batch_end(&read.bytes);
        let mut bytes = Bytes::from(read.bytes);
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for r in set.records {
                let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((r.offset, text(r.key).unwrap(), text(r.value)));
            }
        }
        offset = next;
    }
    out
}

fn last_batch_end(bytes: &[u8]) -> i64 {
    sluice_storage::end_of_batches(bytes).expect("a read holds whole batches")
}

/// 50 keys written 40 times each (batches of 10, mixed codecs), then
/// tombstones for keys 0-4; returns each key's last value (None: deleted).
async fn fill(p: &Partition) -> BTreeMap<String, Option<String>> {
    let mut latest = BTreeMap::new();
    let codecs = [Compression::None, Compression::Lz4, Compression::Zstd, Compression::Gzip, Compression::Snappy];
    let mut pending = Vec::new();
    for round in 0..40 {
        for k in 0..50 {
            let (key, value) = (format!("key-{k}"), Some(format!("v{round}-{k}")));
            latest.insert(key.clone(), value.clone());
            pending.push((key, value));
            if pending.len() == 10 {
                p.append(batch(&pending, codecs[round % codecs.len()])).await.unwrap();
                pending.clear();
            }
        }
    }
    let tombstones: Vec<_> = (0..5).map(|k| (format!("key-{k}"), None)).collect();
    for (k, v) in &tombstones {
        latest.insert(k.clone(), v.clone());
    }
    p.append(batch(&tombstones, Compression::None)).await.unwrap();
    // Something after them, so their segment is closed and cleanable.
    for i in 0..40 {
        p.append(batch(&[(format!("tail-{i}"), Some("x".repeat(200)))], Compression::None)).await.unwrap();
        latest.insert(format!("tail-{i}"), Some("x".repeat(200)));
    }
    let end = p.offsets().log_end_offset;
    p.set_high_watermark(end);
    latest
}

fn assert_compacted(
    records: &[(i64, String, Option<String>)],
    latest: &BTreeMap<String, Option<String>>,
    closed_below: i64,
) {
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "offsets strictly increase");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (offset, key, _) in records.iter().filter(|(o, _, _)| *o < closed_below) {
        *seen.entry(key.as_str()).or_default() += 1;
        assert!(seen[key.as_str()] == 1, "key {key} appears twice in the cleaned part (again at {offset})");
    }
    let last: BTreeMap<&str, &Option<String>> = records.iter().map(|(_, k, v)| (k.as_str(), v)).collect();
    for (key, value) in latest {
        match (value, last.get(key.as_str())) {
            (Some(v), Some(Some(got))) => assert_eq!(got, v, "latest value of {key}"),
            (None, Some(None)) | (None, None) => {}
            (want, got) => panic!("{key}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    shard(|ring| async move {
        let p = Partition::open(dir.path(), config(), ring.clone()).await.unwrap();
        let latest = fill(&p).await;
        let before = read_all(&p).await;
        let end = p.offsets().log_end_offset;
        let size_before = p.size_bytes();
        let codec: Arc<dyn RecordCodec> = Arc::new(KafkaRecords);

        // Readers in the middle of a pass see the old or the new log, whole.
        let (stats, during) = tokio::join!(p.clean(codec.clone(), 10_000, Arc::default()), read_all(&p));
        assert_eq!(during.len(), before.len());
        let stats = stats.unwrap().expect("a pass was due");
        assert!(stats.segments_rewritten > 0 && stats.bytes_after < stats.bytes_before, "{stats:?}");
        assert!(p.size_bytes() < size_before);

        let after = read_all(&p).await;
        let closed_below = *p_segment_bases(dir.path()).last().unwrap();
        assert_compacted(&after, &latest, closed_below);
        for (offset, key, value) in &after {
            let original = before.iter().find(|(o, _, _)| o == offset).expect("offsets are never reassigned");
            assert_eq!((&original.1, &original.2), (key, value));
        }
        assert!(after.iter().any(|(_, k, v)| k == "key-0" && v.is_none()), "a tombstone stays until its horizon");
        assert_eq!(p.offsets().log_end_offset, end);
        assert!(p.clean(codec.clone(), 10_000, Arc::default()).await.unwrap().is_none(), "nothing dirty: no pass");

        // Past the delete horizon the tombstones go (and the pass is due by it alone).
        let later = 10_000 + DELETE_RETENTION_MS + 1;
        p.clean(codec.clone(), later, Arc::default()).await.unwrap().expect("the horizon makes a pass due");
        let gone = read_all(&p).await;
        assert!(!gone.iter().any(|(_, k, _)| k == "key-0"), "tombstones removed after delete.retention.ms");
        assert_compacted(&gone, &latest, closed_below);

        // A follower copies the compacted log, gaps and empty batches included.
        let follower_dir = tempfile::tempdir().unwrap();
        let follower = Partition::open(follower_dir.path(), config(), ring.clone()).await.unwrap();
        let mut offset = p.offsets().log_start_offset;
        while offset < end {
            let (read, _) = p.read(offset, 1 << 16, true, i64::MAX).await.unwrap();
            let mut pos = 0;
            while pos + 61 <= read.bytes.len() {
                let len = 12 + i32::from_be_bytes(read.bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
                follower.append_replicated(read.bytes[pos..pos + len].to_vec()).await.unwrap();
                pos += len;
            }
            offset = last_batch_end(&read.bytes);
        }
        assert_eq!(follower.offsets().log_end_offset, end);
        follower.set_high_watermark(end);
        assert_eq!(read_all(&follower).await, gone);

        // Everything holds after reopening.
        drop(p);
        let p = Partition::open(dir.path(), config(), ring.clone()).await.unwrap();
        assert_eq!(p.offsets().log_end_offset, end);
        p.set_high_watermark(end);
        assert_eq!(read_all(&p).await, gone);
        // And appends go on at the same end.
        let info = p.append(batch(&[("key-1".into(), Some("new".into()))], Compression::None)).await.unwrap().0;
        assert_eq!(info.base_offset, end);
    });
}

/// Plain records overwriting keys a and b, then filler rolling the segment.
async fn plain(p: &Partition, round: i32) {
    let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    let recs: Vec<_> = (0..10).map(|i| kv(if i % 2 == 0 { "a" } else { "b" }, &format!("plain-{round}-{i}"))).collect();
    p.append(batch(&recs, Compression::None)).await.unwrap();
    for j in 0..6 {
        let filler: Vec<_> = (0..5).map(|i| kv(&format!("f{round}-{j}-{i}"), &"x".repeat(300))).collect();
        p.append(batch(&filler, Compression::None)).await.unwrap();
    }
    let end = p.offsets().log_end_offset;
    p.set_high_watermark(end);
}

fn marker(commit: bool) -> Vec<u8> {
    let m = Marker { producer_id: 7, producer_epoch: 0, coordinator_epoch: 0, commit };
    sluice_broker::txn::markers::control_batch(m)
}

/// Every batch header from the log start: (base offset, is control).
async fn batches(p: &Partition) -> Vec<(i64, bool)> {
    let mut out = Vec::new();
    let mut offset = p.offsets().log_start_offset;
    while offset < p.offsets().log_end_offset {
        let (read, _) = p.read(offset, 1 << 20, true, i64::MAX).await.unwrap();
        let mut pos = 0;
        while pos + 61 <= read.bytes.len() {
            let h = &read.bytes[pos..];
            let base = i64::from_be_bytes(h[0..8].try_into().unwrap());
            out.push((base, i16::from_be_bytes([h[21], h[22]]) & 0x20 != 0));
            pos += 12 + i32::from_be_bytes(h[8..12].try_into().unwrap()) as usize;
        }
        offset = last_batch_end(&read.bytes);
    }
    out
}

#[test]
fn aborted_data_goes_and_a_marker_goes_once_its_transaction_has_no_data_left() {
    let dir = tempfile::tempdir().unwrap();
    shard(|ring| async move {
        let p = Partition::open(dir.path(), config(), ring.clone()).await.unwrap();
        let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        // A committed transaction later overwritten, then an aborted one.
        p.append(transactional(&[kv("a", "committed"), kv("b", "committed")], 0)).await.unwrap();
        let commit = p.append(marker(true)).await.unwrap().0.base_offset;
        p.append(transactional(&[kv("a", "aborted"), kv("b", "aborted")], 2)).await.unwrap();
        let abort = p.append(marker(false)).await.unwrap().0.base_offset;
        plain(&p, 0).await;
        let codec: Arc<dyn RecordCodec> = Arc::new(KafkaRecords);
        let values =
            |rs: Vec<(i64, String, Option<String>)>| -> Vec<String> { rs.into_iter().filter_map(|r| r.2).collect() };

        p.clean(codec.clone(), 10_000, Arc::default()).await.unwrap().expect("a pass");
        let after = values(read_all(&p).await);
        assert!(!after.iter().any(|v| v == "aborted" || v == "committed"), "{after:?}");
        let controls: Vec<i64> = batches(&p).await.into_iter().filter(|(_, c)| *c).map(|(o, _)| o).collect();
        assert_eq!(controls, vec![commit, abort], "markers stay while their transactions' data was there to see");

        // The next passes find the committed transaction empty: its marker
        // gets a horizon, then goes once the horizon passes. The aborted
        // transaction's batch stays (empty: the producer's last), and so does its marker.
        plain(&p, 1).await;
        p.clean(codec.clone(), 20_000, Arc::default()).await.unwrap().expect("a pass");
        let later = 20_000 + DELETE_RETENTION_MS + 1;
        p.clean(codec.clone(), later, Arc::default()).await.unwrap().expect("the horizon makes a pass due");
        let controls: Vec<i64> = batches(&p).await.into_iter().filter(|(_, c)| *c).map(|(o, _)| o).collect();
        assert_eq!(controls, vec![abort]);
        let end = p.offsets().log_end_offset;
        assert_eq!(p.offsets().last_stable_offset, end, "nothing looks open");
        drop(p);
        let p = Partition::open(dir.path(), config(), ring.clone()).await.unwrap();
        p.set_high_watermark(end);
        assert_eq!(p.offsets().last_stable_offset, end, "nor after a restart");
    });
}

fn p_segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().unwrap().strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    bases
}

#[test]
fn an_unfinished_pass_leaves_the_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    shard(|ring| async move {
        let p = Partition::open(dir.path(), config(), ring.clone()).await.unwrap();
        fill(&p).await;
        let before = read_all(&p).await;
        let base = p_segment_bases(dir.path())[0];
        drop(p);
        // A crash mid-pass: a half-written copy beside the segment.
        std::fs::write(dir.path().join(format!("{base:020}.log.cleaned")), b"half a batch").unwrap();
        let p = Partition::open(dir.path(), config(), ring.clone()).await.unwrap();
        let end = p.offsets().log_end_offset;
        p.set_high_watermark(end);
        assert_eq!(read_all(&p).await, before);
        assert!(!dir.path().join(format!("{base:020}.log.cleaned")).exists(), "leftovers are removed");
    });
}

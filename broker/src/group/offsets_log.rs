//! Committed offsets as records of `__consumer_offsets`, laid out as Kafka
//! lays them out (OffsetCommitKey v1, OffsetCommitValue v3; a null value is
//! a tombstone), written as ordinary RecordBatch v2 through the
//! `kafka-protocol` crate's encoder and replayed with its decoder. The crate
//! has no schema for these two internal records, so their fields are
//! written here. Offsets committed inside a transaction (TxnOffsetCommit)
//! are transactional batches of the producer; the transaction's marker,
//! written to this partition too, decides whether they count.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use super::state::Committed;
use crate::internal_records::{encode, record};

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

/// What replaying `__consumer_offsets` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    Offset(OffsetRecord),
    /// Committed inside producer `producer_id`'s open transaction.
    TxnOffset {
        producer_id: i64,
        record: OffsetRecord,
    },
    /// The end of that transaction.
    Marker {
        producer_id: i64,
        commit: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetRecord {
    Commit { group: String, topic: String, partition: i32, committed: Committed },
    Tombstone { group: String, topic: String, partition: i32 },
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(String::new());
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    String::from_utf8(buf.split_to(len).to_vec()).ok()
}

fn key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut k = BytesMut::new();
    k.put_i16(KEY_VERSION);
    put_string(&mut k, group);
    put_string(&mut k, topic);
    k.put_i32(partition);
    k.freeze()
}

fn value(c: &Committed) -> Bytes {
    let mut v = BytesMut::new();
    v.put_i16(VALUE_VERSION);
    v.put_i64(c.offset);
    v.put_i32(c.leader_epoch);
    put_string(&mut v, c.metadata.as_deref().unwrap_or(""));
    v.put_i64(c.commit_timestamp);
    v.freeze()
}

/// One batch holding `entries` as offset-commit records.
pub fn encode_offset_commit(group: &str, entries: &[(String, i32, Committed)], now_ms: i64) -> Vec<u8> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (topic, partition, c))| record(i, now_ms, key(group, topic, *partition), Some(value(c))))
        .collect();
    encode(&records)
}

/// One transactional batch of offset commits by producer `producer_id`
/// (TxnOffsetCommit). It carries no sequence: like Kafka's coordinator
/// writes, it is not sequence-checked.
pub fn encode_txn_offset_commit(
    group: &str,
    entries: &[(String, i32, Committed)],
    now_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
) -> Vec<u8> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (topic, partition, c))| Record {
            transactional: true,
            producer_id,
            producer_epoch,
            ..record(i, now_ms, key(group, topic, *partition), Some(value(c)))
        })
        .collect();
    let mut batch = encode(&records);
    sluice_protocol::batch::clear_sequence(&mut batch);
    batch
}

/// One batch of tombstones removing `entries`' committed offsets.
pub fn encode_offset_tombstone(group: &str, entries: &[(String, i32)], now_ms: i64) -> Vec<u8> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (topic, partition))| record(i, now_ms, key(group, topic, *partition), None))
        .collect();
    encode(&records)
}

/// The records in a run of stored batches, and the offset after the last
/// whole batch; anything unreadable (including a partial trailing batch)
/// ends the run.
pub fn decode_batch(bytes: Bytes) -> (Vec<Replayed>, Option<i64>) {
    let mut buf = bytes;
    let mut out = Vec::new();
    let mut next = None;
    while buf.remaining() >= 61 {
        let size = 12 + i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]).max(0) as usize;
        if buf.remaining() < size {
            break;
        }
        let base = i64::from_be_bytes([buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7]]);
        let last_delta = i32::from_be_bytes([buf[23], buf[24], buf[25], buf[26]]);
        let mut one = buf.split_to(size);
        let Ok(set) = RecordBatchDecoder::decode(&mut one) else { break };
        for r in set.records {
            let producer_id = r.producer_id;
            if r.control {
                // ControlRecordType key: version, then type (1 COMMIT, 0 ABORT).
                if let Some(kind) = r.key.as_ref().and_then(|k| k.get(2..4)) {
                    let commit = i16::from_be_bytes([kind[0], kind[1]]) == 1;
                    out.push(Replayed::Marker { producer_id, commit });
                }
            } else if r.transactional {
                out.extend(parse_record(r).map(|record| Replayed::TxnOffset { producer_id, record }));
            } else {
                out.extend(parse_record(r).map(Replayed::Offset));
            }
        }
        next = Some(base + i64::from(last_delta) + 1);
    }
    (out, next)
}

fn parse_record(r: Record) -> Option<OffsetRecord> {
    let mut k = r.key?;
    if k.remaining() < 2 || k.get_i16() > KEY_VERSION {
        return None; // group metadata records (version 2) and newer keys
    }
    let (group, topic) = (get_string(&mut k)?, get_string(&mut k)?);
    if k.remaining() < 4 {
        return None;
    }
    let partition = k.get_i32();
    let Some(mut v) = r.value else {
        return Some(OffsetRecord::Tombstone { group, topic, partition });
    };
    if v.remaining() < 2 + 8 {
        return None;
    }
    let version = v.get_i16();
    let offset = v.get_i64();
    let leader_epoch = if version >= 3 && v.remaining() >= 4 { v.get_i32() } else { -1 };
    let metadata = get_string(&mut v)?;
    let commit_timestamp = if v.remaining() >= 8 { v.get_i64() } else { -1 };
    let committed = Committed { offset, leader_epoch, metadata: Some(metadata), commit_timestamp };
    Some(OffsetRecord::Commit { group, topic, partition, committed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_and_tombstones_round_trip() {
        let c = Committed { offset: 42, leader_epoch: 3, metadata: Some("m".into()), commit_timestamp: 99 };
        let mut bytes = encode_offset_commit("g", &[("t".into(), 1, c.clone()), ("u".into(), 0, c.clone())], 5);
        bytes.extend(encode_offset_tombstone("g", &[("t".into(), 1)], 6));
        let (got, next) = decode_batch(Bytes::from(bytes));
        assert_eq!(next, Some(1), "both batches start at offset 0 until stored");
        assert_eq!(
            got,
            vec![
                Replayed::Offset(OffsetRecord::Commit {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 1,
                    committed: c.clone()
                }),
                Replayed::Offset(OffsetRecord::Commit {
                    group: "g".into(),
                    topic: "u".into(),
                    partition: 0,
                    committed: c.clone()
                }),
                Replayed::Offset(OffsetRecord::Tombstone { group: "g".into(), topic: "t".into(), partition: 1 }),
            ]
        );
        let txn = encode_txn_offset_commit("g", &[("t".into(), 2, c.clone())], 7, 42, 3);
        assert_eq!(sluice_storage::StoredBatch::parse(&txn).map(|b| (b.producer_id, b.base_sequence)), Some((42, -1)));
        let (got, _) = decode_batch(Bytes::from(txn));
        let record = OffsetRecord::Commit { group: "g".into(), topic: "t".into(), partition: 2, committed: c };
        assert_eq!(got, vec![Replayed::TxnOffset { producer_id: 42, record }]);
    }
}

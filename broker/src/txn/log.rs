//! Transaction state as records of `__transaction_state`, laid out as
//! Kafka lays them out: key TransactionLogKey v0 (the transactional id),
//! value TransactionLogValue v0 (producer id and epoch, timeout, status,
//! partitions, timestamps); a null value removes an expired id. The
//! `kafka-protocol` crate has no schema for these internal records, so
//! their fields are written here; batches go through its encoder.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;

use super::state::{TxnMetadata, TxnState};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

fn put_string(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    if buf.remaining() < len {
        return None;
    }
    String::from_utf8(buf.split_to(len).to_vec()).ok()
}

fn value(meta: &TxnMetadata) -> Bytes {
    let mut v = BytesMut::new();
    v.put_i16(VALUE_VERSION);
    v.put_i64(meta.producer_id);
    v.put_i16(meta.producer_epoch);
    v.put_i32(meta.timeout_ms);
    v.put_i8(meta.state.code());
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &meta.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    v.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_string(&mut v, topic);
        v.put_i32(partitions.len() as i32);
        partitions.iter().for_each(|p| v.put_i32(*p));
    }
    v.put_i64(meta.last_update_ms);
    v.put_i64(meta.start_ms);
    v.freeze()
}

/// One batch holding the transaction's new state (`None`: a tombstone).
pub fn encode(transactional_id: &str, meta: Option<&TxnMetadata>, now_ms: i64) -> Vec<u8> {
    let mut key = BytesMut::new();
    key.put_i16(KEY_VERSION);
    put_string(&mut key, transactional_id);
    let record = crate::internal_records::record(0, now_ms, key.freeze(), meta.map(value));
    crate::internal_records::encode(&[record])
}

fn decode_value(mut v: Bytes) -> Option<TxnMetadata> {
    if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let _version = v.get_i16();
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_code(v.get_i8())?;
    let mut partitions = BTreeSet::new();
    let topics = v.get_i32();
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut v)?;
        if v.remaining() < 4 {
            return None;
        }
        let count = v.get_i32();
        for _ in 0..count.max(0) {
            if v.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Some(TxnMetadata {
        producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

/// The records in a run of stored batches, in order: (transactional id,
/// its state or `None` if removed), and the offset after the last whole
/// batch. Anything unreadable (including a partial last batch) ends the run.
pub fn decode(bytes: Bytes) -> (Vec<(String, Option<TxnMetadata>)>, Option<i64>) {
    let mut buf = bytes;
    let mut out = Vec::new();
    let mut next = None;
    while let Some(header) = sluice_storage::StoredBatch::parse(&buf) {
        let size = header.size as usize;
        if buf.remaining() < size {
            break;
        }
        let mut one = buf.split_to(size);
        let Ok(set) = RecordBatchDecoder::decode(&mut one) else { break };
        for r in set.records {
            let Some(mut key) = r.key else { continue };
            if key.remaining() < 2 || key.get_i16() != KEY_VERSION {
                continue;
            }
            let Some(id) = get_string(&mut key) else { continue };
            match r.value {
                None => out.push((id, None)),
                Some(v) => {
                    if let Some(meta) = decode_value(v) {
                        out.push((id, Some(meta)));
                    }
                }
            }
        }
        next = Some(header.next_offset());
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        let meta = TxnMetadata {
            producer_id: 42,
            producer_epoch: 3,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into(),
            start_ms: 10,
            last_update_ms: 20,
        };
        let mut bytes = encode("tx-1", Some(&meta), 5);
        bytes.extend(encode("tx-2", None, 6));
        let (got, next) = decode(Bytes::from(bytes));
        assert_eq!(got, vec![("tx-1".to_string(), Some(meta)), ("tx-2".to_string(), None)]);
        assert_eq!(next, Some(1));
    }
}

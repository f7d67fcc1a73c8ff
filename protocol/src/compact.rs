//! Record-level rewriting for log compaction: the keys of a stored batch's
//! records, and the same batch keeping only some of them. As Kafka's
//! cleaner does, a rewritten batch keeps its first and last offsets (so
//! producer sequences and segment ends stay put), its codec, producer
//! fields and attributes; retained records are copied byte for byte. With
//! a delete horizon (KIP-534) the horizon becomes the base timestamp and
//! the records' timestamp deltas are rebased on it.

use std::io::Read;

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{put_varint, read_varint, BatchError, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::decompress;

const CRC_START: usize = 21;
/// KIP-534: the base timestamp holds the time after which tombstones and
/// transaction markers in this batch may be removed.
const DELETE_HORIZON_BIT: i16 = 0x40;
const COMPRESSION_BITS: i16 = 0x07;
const LOG_APPEND_TIME_BIT: i16 = 0x08;

/// One record's place in the decompressed body.
#[derive(Debug, Clone)]
struct Span {
    /// The whole record, length prefix included.
    start: usize,
    end: usize,
    /// Where the timestamp delta's varint starts and ends.
    ts_start: usize,
    ts_end: usize,
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<(usize, usize)>,
    tombstone: bool,
}

/// A stored batch's records, decompressed.
pub struct BatchRecords {
    header: BatchHeader,
    raw_header: [u8; HEADER_LEN],
    body: Vec<u8>,
    spans: Vec<Span>,
}

impl BatchRecords {
    /// Reads a whole stored batch (as written to the log), refusing one
    /// whose records take more than `max_body` bytes decompressed.
    pub fn decode(batch: &[u8], max_body: usize) -> Result<Self, BatchError> {
        let header =
            BatchHeader::read(batch).ok_or_else(|| BatchError::Invalid("batch shorter than its header".into()))?;
        let size = LOG_OVERHEAD + header.batch_length.max(0) as usize;
        let payload = batch.get(HEADER_LEN..size).ok_or_else(|| BatchError::Invalid("batch cut short".into()))?;
        let mut body = Vec::new();
        decompress::reader(header.compression(), payload)
            .and_then(|r| r.take(max_body as u64 + 1).read_to_end(&mut body))
            .map_err(|e| BatchError::Corrupt(format!("cannot decompress records: {e}")))?;
        if body.len() > max_body {
            return Err(BatchError::Invalid(format!("records larger than {max_body} bytes decompressed")));
        }
        // Each record takes at least 7 bytes: a count beyond that is a lie.
        let mut spans = Vec::with_capacity((header.records_count.max(0) as usize).min(body.len() / 7));
        let mut pos = 0;
        for _ in 0..header.records_count.max(0) {
            let span = read_span(&body, pos).ok_or_else(|| BatchError::Invalid("malformed record".into()))?;
            pos = span.end;
            spans.push(span);
        }
        let mut raw_header = [0u8; HEADER_LEN];
        raw_header.copy_from_slice(&batch[..HEADER_LEN]);
        Ok(Self { header, raw_header, body, spans })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn offset(&self, i: usize) -> i64 {
        self.header.base_offset + self.spans[i].offset_delta
    }

    pub fn key(&self, i: usize) -> Option<&[u8]> {
        self.spans[i].key.map(|(s, e)| &self.body[s..e])
    }

    /// The record has a null value: a delete marker for its key.
    pub fn is_tombstone(&self, i: usize) -> bool {
        self.spans[i].tombstone
    }

    /// The delete horizon this batch already carries (KIP-534), if any.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.header.attributes & DELETE_HORIZON_BIT != 0).then_some(self.header.base_timestamp)
    }

    /// The batch with only the records `keep` selects (by index), its
    /// offsets, codec and producer fields unchanged, and `delete_horizon`
    /// recorded when given.
    pub fn rebuild(&self, keep: impl Fn(usize) -> bool, delete_horizon: Option<i64>) -> Result<Vec<u8>, BatchError> {
        let base_timestamp = delete_horizon.unwrap_or(self.header.base_timestamp);
        let mut records = Vec::with_capacity(self.body.len());
        let mut count = 0i32;
        let mut max_timestamp = None::<i64>;
        for span in self.spans.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, s)| s) {
            count += 1;
            let absolute = self.header.base_timestamp.saturating_add(span.timestamp_delta);
            max_timestamp = Some(max_timestamp.map_or(absolute, |m| m.max(absolute)));
            if base_timestamp == self.header.base_timestamp {
                records.extend_from_slice(&self.body[span.start..span.end]);
                continue;
            }
            let mut inner = vec![self.body[span.ts_start - 1]]; // attributes
            put_varint(&mut inner, absolute.saturating_sub(base_timestamp));
            inner.extend_from_slice(&self.body[span.ts_end..span.end]);
            put_varint(&mut records, inner.len() as i64);
            records.extend_from_slice(&inner);
        }
        let mut out = BytesMut::with_capacity(HEADER_LEN + records.len());
        out.put_slice(&self.raw_header);
        let mut attributes = self.header.attributes;
        if count == 0 {
            // An empty batch has no payload to compress (as Kafka writes one).
            attributes &= !COMPRESSION_BITS;
        } else {
            compress(self.header.compression(), &records, &mut out)?;
        }
        if delete_horizon.is_some() {
            attributes |= DELETE_HORIZON_BIT;
        }
        let batch_length = (out.len() - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&batch_length.to_be_bytes());
        out[21..23].copy_from_slice(&attributes.to_be_bytes());
        out[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
        // CreateTime: the largest timestamp kept (LogAppendTime keeps the append time).
        if let Some(max) = max_timestamp.filter(|_| self.header.attributes & LOG_APPEND_TIME_BIT == 0) {
            out[35..43].copy_from_slice(&max.to_be_bytes());
        }
        out[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(out.to_vec())
    }
}

fn compress(codec: u8, records: &[u8], out: &mut BytesMut) -> Result<(), BatchError> {
    let write = |buf: &mut BytesMut| {
        buf.put_slice(records);
        Ok(())
    };
    let done = match codec {
        0 => {
            out.put_slice(records);
            Ok(())
        }
        1 => Gzip::compress(out, write),
        2 => Snappy::compress(out, write),
        3 => Lz4::compress(out, write),
        4 => Zstd::compress(out, write),
        other => return Err(BatchError::Corrupt(format!("unknown compression codec {other}"))),
    };
    done.map_err(|e| BatchError::Corrupt(format!("cannot compress records: {e}")))
}

/// Frames the record starting at `pos`; `None` if it is malformed.
fn read_span(body: &[u8], pos: usize) -> Option<Span> {
    // Reads a varint at `*at` (within `limit`), moving `*at` past it.
    let varint = |at: &mut usize, limit: usize| -> Option<i64> {
        let mut r = body.get(*at..limit)?;
        let before = r.len();
        let v = read_varint(&mut r).ok()?;
        *at += before - r.len();
        Some(v)
    };
    let mut at = pos;
    let len = varint(&mut at, body.len())?;
    let end = at.checked_add(usize::try_from(len).ok()?).filter(|&e| e <= body.len())?;
    at += 1; // attributes
    let ts_start = at;
    let timestamp_delta = varint(&mut at, end)?;
    let ts_end = at;
    let offset_delta = varint(&mut at, end)?;
    let key = match varint(&mut at, end)? {
        -1 => None,
        n if n >= 0 => {
            let start = at;
            at = start.checked_add(n as usize).filter(|&s| s <= end)?;
            Some((start, at))
        }
        _ => return None,
    };
    let tombstone = varint(&mut at, end)? == -1;
    Some(Span { start: pos, end, ts_start, ts_end, timestamp_delta, offset_delta, key, tombstone })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;

    fn batch(codec: Compression, records: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 3,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: 100 + i as i64,
                sequence: 10 + i as i32,
                timestamp: 5_000 + i as i64,
                key: k.map(|k| bytes::Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| bytes::Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression: codec })
            .unwrap();
        buf.to_vec()
    }

    #[test]
    fn keeps_chosen_records_with_offsets_codec_and_sequence_unchanged() {
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b =
                batch(codec, &[(Some("a"), Some("1")), (Some("b"), None), (Some("a"), Some("2")), (None, Some("x"))]);
            assert!(BatchRecords::decode(&b, 8).is_err(), "over the size limit");
            let decoded = BatchRecords::decode(&b, 1 << 20).unwrap();
            assert_eq!(decoded.len(), 4);
            assert_eq!((decoded.offset(0), decoded.offset(3)), (100, 103));
            assert_eq!(decoded.key(1), Some(&b"b"[..]));
            assert!(decoded.is_tombstone(1) && !decoded.is_tombstone(2));
            assert_eq!(decoded.key(3), None);

            let rebuilt = decoded.rebuild(|i| i == 1 || i == 2, None).unwrap();
            let h = BatchHeader::read(&rebuilt).unwrap();
            assert_eq!((h.base_offset, h.last_offset_delta, h.records_count), (100, 3, 2), "{codec:?}");
            assert_eq!((h.base_sequence, h.producer_id, h.compression()), (10, 7, codec as u8));
            assert_eq!(crc32c::crc32c(&rebuilt[CRC_START..]), h.crc);
            let set = RecordBatchDecoder::decode(&mut bytes::Bytes::from(rebuilt)).unwrap();
            let got: Vec<(i64, i64, Option<bytes::Bytes>)> =
                set.records.iter().map(|r| (r.offset, r.timestamp, r.value.clone())).collect();
            assert_eq!(got, vec![(101, 5_001, None), (102, 5_002, Some(bytes::Bytes::from_static(b"2")))]);
            assert_eq!(h.max_timestamp, 5_002, "the largest timestamp kept");
        }
    }

    #[test]
    fn a_delete_horizon_rebases_timestamps_and_an_empty_batch_keeps_its_offsets() {
        let b = batch(Compression::None, &[(Some("a"), None), (Some("b"), Some("v"))]);
        let decoded = BatchRecords::decode(&b, 1 << 20).unwrap();
        assert_eq!(decoded.delete_horizon(), None);
        let rebuilt = decoded.rebuild(|_| true, Some(90_000)).unwrap();
        let again = BatchRecords::decode(&rebuilt, 1 << 20).unwrap();
        assert_eq!(again.delete_horizon(), Some(90_000));
        let set = RecordBatchDecoder::decode(&mut bytes::Bytes::from(rebuilt)).unwrap();
        let times: Vec<i64> = set.records.iter().map(|r| r.timestamp).collect();
        assert_eq!(times, vec![5_000, 5_001], "record timestamps survive the rebase");

        let empty = decoded.rebuild(|_| false, None).unwrap();
        let h = BatchHeader::read(&empty).unwrap();
        assert_eq!((h.base_offset, h.last_offset_delta, h.records_count), (100, 1, 0));
        assert_eq!(empty.len(), HEADER_LEN);
    }
}

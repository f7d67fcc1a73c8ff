//! RecordBatch v2 (magic 2): a view of the 61-byte header and the checks a
//! Kafka broker applies to a produced batch before it is appended. Batches
//! are stored as the client sent them; only `baseOffset` (and, for
//! LogAppendTime, the timestamp fields and CRC) are ever patched.

use std::io::{self, Read};

use kafka_protocol::ResponseError;

use crate::decompress;

pub const HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The CRC covers everything from the attributes field to the end.
const CRC_START: usize = 21;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

pub const COMPRESSION_ZSTD: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header fields; `buf` must hold at least [`HEADER_LEN`] bytes.
    pub fn read(buf: &[u8]) -> Option<Self> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let i16_at = |o: usize| i16::from_be_bytes([buf[o], buf[o + 1]]);
        let i32_at = |o: usize| i32::from_be_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
        let i64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[o..o + 8]);
            i64::from_be_bytes(b)
        };
        Some(Self {
            base_offset: i64_at(0),
            batch_length: i32_at(8),
            partition_leader_epoch: i32_at(12),
            magic: buf[16] as i8,
            crc: i32_at(17) as u32,
            attributes: i16_at(21),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(43),
            producer_epoch: i16_at(51),
            base_sequence: i32_at(53),
            records_count: i32_at(57),
        })
    }

    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    /// Total bytes of the batch on the wire and on disk.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }
}

/// Why a produced batch was refused, with the Kafka error it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    UnsupportedCompression(String),
}

impl BatchError {
    pub fn error_code(&self) -> i16 {
        match self {
            BatchError::Corrupt(_) => ResponseError::CorruptMessage.code(),
            BatchError::Invalid(_) => ResponseError::InvalidRecord.code(),
            BatchError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType.code(),
        }
    }
}

/// Validates the records of one partition in a Produce request (v3+): exactly
/// one well-formed magic-2 batch, CRC-32C intact, offsets and count
/// consistent, records framed correctly when uncompressed. Mirrors the
/// checks and error codes of Kafka's ProduceRequest and LogValidator.
pub fn validate_produced(records: &[u8], produce_version: i16) -> Result<Validated, BatchError> {
    let invalid = |m: &str| Err(BatchError::Invalid(m.to_string()));
    let corrupt = |m: String| Err(BatchError::Corrupt(m));
    if records.len() < LOG_OVERHEAD {
        return invalid("produce request must contain exactly one record batch per partition");
    }
    let batch_length = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
    if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return corrupt(format!("record batch size {batch_length} is smaller than the minimum batch overhead"));
    }
    let size = LOG_OVERHEAD + batch_length as usize;
    if records.len() < size {
        return invalid("produce request must contain exactly one complete record batch per partition");
    }
    if records.len() > size {
        return invalid("produce request may contain only one record batch per partition");
    }
    let Some(h) = BatchHeader::read(records) else {
        return corrupt("record batch shorter than its header".into());
    };
    match h.magic {
        2 => {}
        0 | 1 => return invalid("produce requests v3+ may only contain record batches with magic 2"),
        m => return corrupt(format!("record batch has unknown magic {m}")),
    }
    let crc = crc32c::crc32c(&records[CRC_START..size]);
    if crc != h.crc {
        return corrupt(format!("record batch CRC mismatch: stored {:#010x}, computed {crc:#010x}", h.crc));
    }
    if h.compression() > COMPRESSION_ZSTD {
        return corrupt(format!("unknown compression codec {}", h.compression()));
    }
    if h.compression() == COMPRESSION_ZSTD && produce_version < 7 {
        return Err(BatchError::UnsupportedCompression("zstd compression requires produce request v7 or later".into()));
    }
    if h.last_offset_delta < 0 || h.records_count <= 0 || h.last_offset_delta as i64 + 1 != h.records_count as i64 {
        return invalid("record count does not match the batch's offset range");
    }
    if h.is_control() {
        return invalid("clients may not produce control batches");
    }
    if h.is_transactional() && h.producer_id < 0 {
        return invalid("transactional batch without a producer id");
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return invalid("batch with a producer id but no sequence number");
    }
    let payload = &records[HEADER_LEN..size];
    let mut body = decompress::reader(h.compression(), payload)
        .map_err(|e| BatchError::Corrupt(format!("cannot decompress records: {e}")))?;
    let walked = walk_records(&mut body, h.records_count, h.base_timestamp)?;
    Ok(Validated { header: h, has_null_key: walked.null_key, timestamps: walked.timestamps })
}

/// A produced batch that passed validation.
#[derive(Debug, Clone, Copy)]
pub struct Validated {
    pub header: BatchHeader,
    /// Some record has no key (compacted topics refuse those).
    pub has_null_key: bool,
    /// The smallest and largest record timestamp (records without one,
    /// -1, left out as Kafka's timestamp checks leave them).
    pub timestamps: Option<(i64, i64)>,
}

/// What walking a batch's records learned.
struct Walked {
    null_key: bool,
    /// The smallest and largest record timestamp.
    timestamps: Option<(i64, i64)>,
}

/// Rewrites a validated batch for `LogAppendTime`: sets the timestamp-type
/// attribute and `maxTimestamp`, then the CRC that covers them (as Kafka does).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    if batch.len() < HEADER_LEN {
        return;
    }
    let attrs = i16::from_be_bytes([batch[21], batch[22]]) | TIMESTAMP_TYPE_BIT;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Marks a batch as carrying no sequence (base sequence -1), as a
/// coordinator's transactional writes do, and re-seals its CRC.
pub fn clear_sequence(batch: &mut [u8]) {
    if batch.len() < HEADER_LEN {
        return;
    }
    batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Reads every record of a (decompressed) batch body, as Kafka's validator
/// does: each must be framed correctly (length, attributes, timestamp and
/// offset deltas, key, value, headers), offsets must run 0, 1, 2, ..., and
/// nothing may follow the last record. Codec failures are CORRUPT_MESSAGE,
/// malformed records INVALID_RECORD.
fn walk_records(body: &mut dyn Read, count: i32, base_timestamp: i64) -> Result<Walked, BatchError> {
    let mut r = io::BufReader::with_capacity(64 * 1024, body);
    let mut null_key = false;
    let mut timestamps: Option<(i64, i64)> = None;
    for index in 0..i64::from(count) {
        let len = read_varint(&mut r).map_err(|e| record_error(index, e))?;
        if len < 0 {
            return Err(BatchError::Invalid(format!("record {index} has a negative length")));
        }
        let mut rec = (&mut r).take(len as u64);
        let mut check = |rec: &mut io::Take<&mut io::BufReader<&mut dyn Read>>| -> io::Result<Option<&'static str>> {
            let mut attributes = [0u8; 1];
            rec.read_exact(&mut attributes)?;
            let ts = base_timestamp.saturating_add(read_varint(rec)?);
            if ts != -1 {
                timestamps = Some(timestamps.map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))));
            }
            if read_varint(rec)? != index {
                return Ok(Some("record offsets within the batch are not consecutive"));
            }
            let key_len = read_varint(rec)?;
            null_key |= key_len == -1;
            let key_ok = key_len == -1 || (key_len >= 0 && skip(rec, key_len as u64)?);
            if !key_ok || !skip_nullable(rec)? {
                return Ok(Some("bad key or value length"));
            }
            let headers = read_varint(rec)?;
            if headers < 0 {
                return Ok(Some("negative header count"));
            }
            for _ in 0..headers {
                let key = read_varint(rec)?;
                if key < 0 || !skip(rec, key as u64)? || !skip_nullable(rec)? {
                    return Ok(Some("bad header"));
                }
            }
            Ok((rec.limit() != 0).then_some("trailing bytes inside record"))
        };
        match check(&mut rec) {
            Ok(None) => {}
            Ok(Some(reason)) => return Err(BatchError::Invalid(format!("malformed record {index}: {reason}"))),
            Err(e) => return Err(record_error(index, e)),
        }
    }
    match r.read(&mut [0u8; 1]) {
        Ok(0) => Ok(Walked { null_key, timestamps }),
        Ok(_) => Err(BatchError::Invalid("bytes after the last record".into())),
        Err(e) => Err(record_error(i64::from(count), e)),
    }
}

/// A record that ends early is malformed; anything else the codec reports
/// means the compressed data is corrupt.
fn record_error(index: i64, e: io::Error) -> BatchError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => BatchError::Invalid(format!("malformed record {index}: runs past the batch")),
        _ => BatchError::Corrupt(format!("cannot decompress records: {e}")),
    }
}

/// Zig-zag varint as used inside records (up to 64 bits).
pub(crate) fn read_varint(r: &mut impl Read) -> io::Result<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        raw |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "varint longer than 10 bytes"))
}

/// Appends a zig-zag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Skips exactly `n` bytes; false if the input ends first.
fn skip(r: &mut impl Read, n: u64) -> io::Result<bool> {
    Ok(io::copy(&mut r.take(n), &mut io::sink())? == n)
}

/// Skips a varint-length byte field where -1 means null.
fn skip_nullable(r: &mut impl Read) -> io::Result<bool> {
    match read_varint(r)? {
        -1 => Ok(true),
        n if n < 0 => Ok(false),
        n => skip(r, n as u64),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an uncompressed batch with `n` records of value `v<i>`.
    pub fn batch(n: i32) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..n {
            let mut rec = vec![0u8];
            put_varint(&mut rec, i as i64); // timestamp delta
            put_varint(&mut rec, i as i64); // offset delta
            put_varint(&mut rec, -1); // null key
            let value = format!("v{i}");
            put_varint(&mut rec, value.len() as i64);
            rec.extend_from_slice(value.as_bytes());
            put_varint(&mut rec, 0); // no headers
            put_varint(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b[8..12].copy_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(n - 1).to_be_bytes());
        b[27..35].copy_from_slice(&1000i64.to_be_bytes());
        b[35..43].copy_from_slice(&(1000i64 + n as i64 - 1).to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[57..61].copy_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&body);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn accepts_a_well_formed_batch() {
        let b = batch(3);
        let v = validate_produced(&b, 9).unwrap();
        let h = v.header;
        assert_eq!((h.records_count, h.last_offset_delta, h.max_timestamp), (3, 2, 1002));
        assert!(v.has_null_key);
    }

    #[test]
    fn flipped_bit_is_corrupt_message() {
        let mut b = batch(2);
        let last = b.len() - 1;
        b[last] ^= 1;
        let err = validate_produced(&b, 9).unwrap_err();
        assert_eq!(err.error_code(), ResponseError::CorruptMessage.code());
    }

    #[test]
    fn structural_errors_map_to_kafka_codes() {
        let b = batch(2);
        let code = |r: &[u8]| validate_produced(r, 9).unwrap_err().error_code();
        let invalid = ResponseError::InvalidRecord.code();
        assert_eq!(code(&[]), invalid);
        assert_eq!(code(&b[..b.len() - 1]), invalid, "truncated batch");
        let mut two = b.clone();
        two.extend_from_slice(&b);
        assert_eq!(code(&two), invalid, "two batches");
        let mut old = b.clone();
        old[16] = 1;
        assert_eq!(code(&old), invalid, "magic 1");
        let mut tiny = b.clone();
        tiny[8..12].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(code(&tiny), ResponseError::CorruptMessage.code());
    }

    #[test]
    fn count_mismatch_is_invalid_record() {
        let mut b = batch(2);
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate_produced(&b, 9).unwrap_err().error_code(), ResponseError::InvalidRecord.code());
    }

    #[test]
    fn garbled_record_framing_is_invalid_record_even_with_good_crc() {
        let mut b = batch(2);
        b[HEADER_LEN] = 0x7e; // first record claims a huge length
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate_produced(&b, 9).unwrap_err().error_code(), ResponseError::InvalidRecord.code());
    }

    /// A real batch in `compression`, encoded by the kafka-protocol crate.
    fn compressed(compression: kafka_protocol::records::Compression, n: usize) -> Vec<u8> {
        use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1000 + i as i64,
                key: Some(bytes::Bytes::from(format!("k{i}"))),
                value: Some(bytes::Bytes::from(vec![b'v'; 100])),
                headers: [(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(bytes::Bytes::from_static(b"x")),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).unwrap();
        buf.to_vec()
    }

    fn refresh_crc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn compressed_batches_are_validated_in_every_codec() {
        use kafka_protocol::records::Compression::*;
        for codec in [None, Gzip, Snappy, Lz4, Zstd] {
            let b = compressed(codec, 50);
            let h = validate_produced(&b, 9).unwrap_or_else(|e| panic!("{codec:?}: {e}")).header;
            assert_eq!(h.records_count, 50);
            // Garble the compressed bytes but keep the CRC right: still refused.
            let mut bad = b.clone();
            let mid = HEADER_LEN + (bad.len() - HEADER_LEN) / 2;
            bad[mid..mid + 8].copy_from_slice(&[0xff; 8]);
            refresh_crc(&mut bad);
            let err = validate_produced(&bad, 9).expect_err(&format!("{codec:?} garbled"));
            assert!(
                [ResponseError::CorruptMessage.code(), ResponseError::InvalidRecord.code()].contains(&err.error_code()),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn a_snappy_block_claiming_a_huge_size_is_refused_without_allocating_it() {
        let mut b = compressed(kafka_protocol::records::Compression::None, 1);
        b.truncate(HEADER_LEN);
        // A raw snappy stream whose header says 2 GiB.
        b.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08, 0x00]);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[22] |= 2; // snappy
        refresh_crc(&mut b);
        assert_eq!(validate_produced(&b, 9).unwrap_err().error_code(), ResponseError::CorruptMessage.code());
    }

    #[test]
    fn zstd_needs_produce_v7() {
        let b = compressed(kafka_protocol::records::Compression::Zstd, 3);
        assert_eq!(
            validate_produced(&b, 6).unwrap_err().error_code(),
            ResponseError::UnsupportedCompressionType.code()
        );
        assert!(validate_produced(&b, 7).is_ok());
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let mut b = batch(2);
        set_log_append_time(&mut b, 99_000);
        let h = validate_produced(&b, 9).unwrap().header;
        assert_eq!(h.max_timestamp, 99_000);
        assert_ne!(h.attributes & TIMESTAMP_TYPE_BIT, 0);
    }
}

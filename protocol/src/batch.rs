//! RecordBatch v2 (magic 2): a view of the 61-byte header and the checks a
//! Kafka broker applies to a produced batch before it is appended. Batches
//! are stored as the client sent them; only `baseOffset` (and, for
//! LogAppendTime, the timestamp fields and CRC) are ever patched.

use kafka_protocol::ResponseError;

pub const HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The CRC covers everything from the attributes field to the end.
const CRC_START: usize = 21;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

pub const COMPRESSION_NONE: u8 = 0;
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
pub fn validate_produced(records: &[u8], produce_version: i16) -> Result<BatchHeader, BatchError> {
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
    if h.compression() == COMPRESSION_NONE {
        for (expected_delta, rec) in Records::new(&records[HEADER_LEN..size], h.records_count).enumerate() {
            let rec = rec.map_err(|e| BatchError::Invalid(e.to_string()))?;
            if rec.offset_delta != expected_delta as i64 {
                return invalid("record offsets within the batch are not consecutive");
            }
        }
    }
    Ok(h)
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

/// One record's position fields, as read from an uncompressed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    pub offset_delta: i64,
    pub timestamp_delta: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed record {index}: {reason}")]
pub struct RecordError {
    pub index: i32,
    pub reason: &'static str,
}

/// Iterates the records of an uncompressed batch body (the bytes after the
/// header), checking each record's framing, key, value and headers.
pub struct Records<'a> {
    buf: &'a [u8],
    remaining: i32,
    index: i32,
}

impl<'a> Records<'a> {
    pub fn new(body: &'a [u8], count: i32) -> Self {
        Self { buf: body, remaining: count, index: 0 }
    }

    fn next_record(&mut self) -> Result<RecordPosition, &'static str> {
        let len = read_varint(&mut self.buf).ok_or("bad length")?;
        if len < 0 || len as usize > self.buf.len() {
            return Err("length runs past the batch");
        }
        let (mut rec, rest) = self.buf.split_at(len as usize);
        self.buf = rest;
        rec = rec.get(1..).ok_or("missing attributes")?;
        let timestamp_delta = read_varint(&mut rec).ok_or("bad timestamp delta")?;
        let offset_delta = read_varint(&mut rec).ok_or("bad offset delta")?;
        skip_nullable_bytes(&mut rec).ok_or("bad key")?;
        skip_nullable_bytes(&mut rec).ok_or("bad value")?;
        let headers = read_varint(&mut rec).ok_or("bad header count")?;
        if headers < 0 {
            return Err("negative header count");
        }
        for _ in 0..headers {
            let key_len = read_varint(&mut rec).ok_or("bad header key")?;
            if key_len < 0 || key_len as usize > rec.len() {
                return Err("bad header key");
            }
            rec = &rec[key_len as usize..];
            skip_nullable_bytes(&mut rec).ok_or("bad header value")?;
        }
        if !rec.is_empty() {
            return Err("trailing bytes inside record");
        }
        Ok(RecordPosition { offset_delta, timestamp_delta })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<RecordPosition, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            if self.buf.is_empty() || self.index < 0 {
                return None;
            }
            self.index = -1;
            return Some(Err(RecordError { index: self.index, reason: "bytes after the last record" }));
        }
        self.remaining -= 1;
        let index = self.index;
        self.index += 1;
        Some(self.next_record().map_err(|reason| {
            self.remaining = 0;
            self.buf = &[];
            RecordError { index, reason }
        }))
    }
}

/// Zig-zag varint as used inside records (up to 64 bits).
fn read_varint(buf: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

fn skip_nullable_bytes(buf: &mut &[u8]) -> Option<()> {
    let len = read_varint(buf)?;
    if len < -1 || len > buf.len() as i64 {
        return None;
    }
    if len > 0 {
        *buf = &buf[len as usize..];
    }
    Some(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
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
        let h = validate_produced(&b, 9).unwrap();
        assert_eq!((h.records_count, h.last_offset_delta, h.max_timestamp), (3, 2, 1002));
        let recs: Vec<_> = Records::new(&b[HEADER_LEN..], 3).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs[2], RecordPosition { offset_delta: 2, timestamp_delta: 2 });
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

    #[test]
    fn zstd_needs_produce_v7() {
        let mut b = batch(1);
        b[22] |= COMPRESSION_ZSTD;
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
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
        let h = validate_produced(&b, 9).unwrap();
        assert_eq!(h.max_timestamp, 99_000);
        assert_ne!(h.attributes & TIMESTAMP_TYPE_BIT, 0);
    }
}

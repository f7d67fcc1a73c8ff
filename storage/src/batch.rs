//! The on-disk view of a RecordBatch v2: just enough of the header to frame
//! batches, locate offsets and timestamps, and detect a torn or corrupt
//! write during recovery.

pub const BATCH_HEADER_LEN: usize = 61;
const LOG_OVERHEAD: usize = 12;
const CRC_START: usize = 21;

/// Header fields of one stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    pub base_offset: i64,
    /// Whole batch size in bytes, header included.
    pub size: u32,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    /// The epoch of the leader that appended it (not covered by the CRC).
    pub leader_epoch: i32,
    /// -1 unless an idempotent or transactional producer wrote it.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Bit 4: part of a transaction; bit 5: a control batch.
    pub attributes: i16,
    /// What a transaction marker (control batch) says, when the bytes
    /// parsed held its record (a header-only read leaves it `None`).
    pub marker: Option<TxnMarker>,
}

const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// A transaction marker: the control record ending a producer's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub commit: bool,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
}

impl StoredBatch {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    /// Reads a header; `None` if the bytes cannot be the start of a batch.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        if buf.len() < BATCH_HEADER_LEN || buf[16] != 2 {
            return None;
        }
        let batch_length = i32::from_be_bytes(buf[8..12].try_into().ok()?);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return None;
        }
        let last_offset_delta = i32::from_be_bytes(buf[23..27].try_into().ok()?);
        if last_offset_delta < 0 {
            return None;
        }
        let base_offset = i64::from_be_bytes(buf[0..8].try_into().ok()?);
        // baseOffset is not covered by the CRC: refuse values whose offsets
        // cannot exist rather than overflow on them.
        if base_offset < 0 || base_offset.checked_add(i64::from(last_offset_delta) + 1).is_none() {
            return None;
        }
        let attributes = i16::from_be_bytes(buf[21..23].try_into().ok()?);
        Some(Self {
            base_offset,
            size: (LOG_OVERHEAD as u32).checked_add(batch_length as u32)?,
            last_offset_delta,
            max_timestamp: i64::from_be_bytes(buf[35..43].try_into().ok()?),
            leader_epoch: i32::from_be_bytes(buf[12..16].try_into().ok()?),
            producer_id: i64::from_be_bytes(buf[43..51].try_into().ok()?),
            producer_epoch: i16::from_be_bytes(buf[51..53].try_into().ok()?),
            base_sequence: i32::from_be_bytes(buf[53..57].try_into().ok()?),
            attributes,
            marker: if attributes & CONTROL != 0 { parse_marker(&buf[BATCH_HEADER_LEN..]) } else { None },
        })
    }

    /// True if `whole` (exactly this batch's bytes) carries a valid CRC-32C.
    pub fn crc_ok(whole: &[u8]) -> bool {
        if whole.len() < BATCH_HEADER_LEN {
            return false;
        }
        let stored = u32::from_be_bytes([whole[17], whole[18], whole[19], whole[20]]);
        crc32c::crc32c(&whole[CRC_START..]) == stored
    }
}

/// The offset after the last batch (whole or cut short) in `bytes`, a
/// run of batches as a read returns them; `None` if it holds none.
pub fn end_of_batches(bytes: &[u8]) -> Option<i64> {
    let mut at = 0usize;
    let mut end = None;
    while let Some(batch) = bytes.get(at..).and_then(StoredBatch::parse) {
        end = Some(batch.next_offset());
        at += batch.size as usize;
    }
    end
}

/// Stamps the appending leader's epoch into a batch (not covered by the CRC).
pub fn set_leader_epoch(batch: &mut [u8], epoch: i32) {
    if batch.len() >= 16 {
        batch[12..16].copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Sets the base offset of a batch in place (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[0..8].copy_from_slice(&offset.to_be_bytes());
}

/// The marker in a control batch's first record (`records`: the bytes after
/// the batch header). Its key is a ControlRecordType (version, then type: 0
/// ABORT, 1 COMMIT); its value an EndTransactionMarker (version, then the
/// coordinator epoch). `None` if the bytes are cut short or hold another
/// control type.
fn parse_marker(records: &[u8]) -> Option<TxnMarker> {
    let mut r = records;
    varint(&mut r)?; // record length
    r = r.get(1..)?; // record attributes
    varint(&mut r)?; // timestamp delta
    varint(&mut r)?; // offset delta
    let key_len = usize::try_from(varint(&mut r)?).ok()?;
    let key = r.get(..key_len)?;
    let commit = match i16::from_be_bytes(key.get(2..4)?.try_into().ok()?) {
        0 => false,
        1 => true,
        _ => return None,
    };
    r = &r[key_len..];
    varint(&mut r)?; // value length
    let coordinator_epoch = i32::from_be_bytes(r.get(2..6)?.try_into().ok()?);
    Some(TxnMarker { commit, coordinator_epoch })
}

/// Reads one zigzag varint (as record fields are encoded), advancing `buf`.
fn varint(buf: &mut &[u8]) -> Option<i64> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

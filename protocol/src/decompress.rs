//! Streaming decompression of a batch's records for validation, in every
//! codec Kafka uses (gzip, snappy with Kafka's xerial framing or raw, lz4
//! frames, zstd). Memory stays bounded whatever the input claims: data is
//! decoded a block at a time and the total is capped, so a compression bomb
//! costs bounded work and is refused.

use std::io::{self, Read};

/// The most decompressed bytes one batch may expand to.
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;
/// The largest single snappy block accepted (xerial writes 32 KiB blocks).
const MAX_SNAPPY_BLOCK: usize = 64 << 20;
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// A reader over the decompressed records of a batch body.
pub fn reader<'a>(codec: u8, payload: &'a [u8]) -> io::Result<Box<dyn Read + 'a>> {
    let inner: Box<dyn Read + 'a> = match codec {
        0 => Box::new(payload),
        1 => Box::new(flate2::read::GzDecoder::new(payload)),
        2 if payload.starts_with(XERIAL_MAGIC) => {
            let blocks = payload.get(XERIAL_HEADER_LEN..).unwrap_or_default();
            Box::new(XerialSnappy { input: blocks, block: Vec::new(), pos: 0 })
        }
        2 => Box::new(io::Cursor::new(snappy_block(payload)?)),
        3 => Box::new(lz4::Decoder::new(payload)?),
        4 => Box::new(zstd::stream::read::Decoder::new(payload)?),
        other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown codec {other}"))),
    };
    Ok(Box::new(Capped { inner, left: MAX_DECOMPRESSED_BYTES }))
}

fn snappy_block(block: &[u8]) -> io::Result<Vec<u8>> {
    let invalid = |e: snap::Error| io::Error::new(io::ErrorKind::InvalidData, e);
    let len = snap::raw::decompress_len(block).map_err(invalid)?;
    if len > MAX_SNAPPY_BLOCK {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "snappy block too large"));
    }
    snap::raw::Decoder::new().decompress_vec(block).map_err(invalid)
}

/// Kafka's (xerial) snappy framing: a 16-byte header, then blocks of a
/// 4-byte big-endian length and a raw snappy block.
struct XerialSnappy<'a> {
    input: &'a [u8],
    block: Vec<u8>,
    pos: usize,
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if self.input.is_empty() {
                return Ok(0);
            }
            let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "truncated snappy block");
            let len_bytes: [u8; 4] = self.input.get(..4).ok_or_else(short)?.try_into().map_err(|_| short())?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let block = self.input.get(4..4 + len).ok_or_else(short)?;
            self.input = &self.input[4 + len..];
            self.block = snappy_block(block)?;
            self.pos = 0;
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Fails once more than the cap has been read.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "records decompress to more than 1 GiB"))?;
        Ok(n)
    }
}

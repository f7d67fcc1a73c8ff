//! Size-prefixed framing: every Kafka request and response is a 4-byte
//! big-endian length followed by that many bytes.

use bytes::{Buf, BytesMut};

/// Kafka's `socket.request.max.bytes` default (100 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// The smallest request body: api key (2), api version (2), correlation id (4).
pub const MIN_REQUEST_BYTES: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    TooLarge { size: i64, max: usize },
    #[error("frame size {0} is smaller than a request header")]
    TooSmall(i64),
}

/// Takes one complete frame body off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed. The declared size is
/// checked before anything is reserved, so a hostile length cannot make us
/// allocate; the buffer only grows as bytes actually arrive.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i64::from(i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
    if size < MIN_REQUEST_BYTES as i64 {
        return Err(FrameError::TooSmall(size));
    }
    if size > max as i64 {
        return Err(FrameError::TooLarge { size, max });
    }
    let size = size as usize;
    if buf.len() < 4 + size {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(body.len() as i32);
        b.put_slice(body);
        b
    }

    #[test]
    fn waits_for_a_whole_frame() {
        let full = framed(&[7u8; 20]);
        for cut in 0..full.len() {
            let mut partial = BytesMut::from(&full[..cut]);
            assert_eq!(split_frame(&mut partial, 1024), Ok(None), "cut at {cut}");
        }
        let mut buf = full.clone();
        buf.put_slice(&[1, 2]); // start of the next frame stays behind
        let body = split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(&body[..], &[7u8; 20]);
        assert_eq!(&buf[..], &[1, 2]);
    }

    #[test]
    fn rejects_oversized_and_negative_sizes_before_buffering() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(split_frame(&mut buf, 1024), Err(FrameError::TooLarge { .. })));
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(split_frame(&mut buf, 1024), Err(FrameError::TooSmall(-2)));
        let mut buf = framed(&[1, 2, 3]);
        assert_eq!(split_frame(&mut buf, 1024), Err(FrameError::TooSmall(3)));
    }
}

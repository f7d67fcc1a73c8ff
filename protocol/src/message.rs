//! Request headers in, typed `kafka-protocol` messages out, and framed
//! responses back. Decoding never trusts the peer: short or garbled input is
//! an error value, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion};

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode {what} v{version}: {reason}")]
pub struct EncodeError {
    pub what: &'static str,
    pub version: i16,
    pub reason: String,
}

/// A request whose header has been read; the body is still raw bytes,
/// decoded once the handler for `api_key` is chosen.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

impl Request {
    /// Reads the header of one frame body (see [`crate::frame::split_frame`]).
    pub fn parse(frame: Bytes) -> Result<Self, RequestError> {
        let mut body = frame;
        if body.len() < crate::frame::MIN_REQUEST_BYTES {
            return Err(malformed("request header", "frame too short"));
        }
        let key = i16::from_be_bytes([body[0], body[1]]);
        let api_key = ApiKey::try_from(key).map_err(|_| RequestError::UnknownApiKey(key))?;
        let header = guarded("request header", || decode_request_header_from_buffer(&mut body))?;
        Ok(Self { api_key, header, body })
    }

    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    /// Decodes the body as `T` at the header's version.
    pub fn decode<T: Decodable>(&self, what: &'static str) -> Result<T, RequestError> {
        let mut body = self.body.clone();
        let version = self.version();
        guarded(what, || T::decode(&mut body, version))
    }
}

fn malformed(what: &'static str, reason: impl ToString) -> RequestError {
    RequestError::Malformed { what, reason: reason.to_string() }
}

/// Runs a `kafka-protocol` decoder, turning both its errors and any panic
/// inside it into [`RequestError::Malformed`].
fn guarded<T, E: std::fmt::Display>(what: &'static str, f: impl FnOnce() -> Result<T, E>) -> Result<T, RequestError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(malformed(what, e)),
        Err(_) => Err(malformed(what, "decoder panicked")),
    }
}

/// Encodes a complete response frame: size prefix, response header at the
/// version `T` prescribes for `version`, then the body.
pub fn encode_response<T: Encodable + HeaderVersion>(
    what: &'static str,
    correlation_id: i32,
    version: i16,
    body: &T,
) -> Result<Bytes, EncodeError> {
    let err = |reason: String| EncodeError { what, version, reason };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, T::header_version(version)).map_err(|e| err(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| err(e.to_string()))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| err("response over 2 GiB".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Encodes a complete request frame (size prefix, header, body) for the
/// broker's own outgoing requests, such as a follower's fetches.
pub fn encode_request<T: kafka_protocol::protocol::Request>(
    what: &'static str,
    correlation_id: i32,
    client_id: &str,
    version: i16,
    body: &T,
) -> Result<Bytes, EncodeError> {
    let err = |reason: String| EncodeError { what, version, reason };
    let api_key = ApiKey::try_from(T::KEY).map_err(|_| err(format!("unknown API key {}", T::KEY)))?;
    let header = RequestHeader::default()
        .with_request_api_key(T::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, api_key.request_header_version(version)).map_err(|e| err(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| err(e.to_string()))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| err("request over 2 GiB".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame body (after the size prefix): its correlation
/// id and the typed response. Malformed input is an error, never a panic.
pub fn decode_response<T: Decodable + HeaderVersion>(
    what: &'static str,
    mut frame: Bytes,
    version: i16,
) -> Result<(i32, T), RequestError> {
    let header = guarded(what, || ResponseHeader::decode(&mut frame, T::header_version(version)))?;
    let body = guarded(what, || T::decode(&mut frame, version))?;
    Ok((header.correlation_id, body))
}

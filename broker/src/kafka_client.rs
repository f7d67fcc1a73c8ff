//! A minimal Kafka client connection: for the broker's own requests to
//! other brokers (a follower's Fetch to its leader, transaction markers)
//! and for the admin CLI. One request in flight at a time, every step
//! under a timeout.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::protocol::Request;
use sluice_protocol::message::{decode_response, encode_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a peer broker.
const MAX_RESPONSE: usize = 128 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: timed out")]
    Timeout { addr: String },
    #[error("{addr}: bad response: {reason}")]
    Protocol { addr: String, reason: String },
}

pub struct KafkaConnection {
    addr: String,
    client_id: String,
    stream: TcpStream,
    correlation: i32,
}

impl KafkaConnection {
    pub async fn connect(addr: &str, client_id: String, timeout: Duration) -> Result<Self, ClientError> {
        let connected = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let stream = match connected {
            Err(_) => return Err(ClientError::Timeout { addr: addr.to_string() }),
            Ok(Err(source)) => return Err(ClientError::Io { addr: addr.to_string(), source }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(Self { addr: addr.to_string(), client_id, stream, correlation: 0 })
    }

    /// Sends `request` at `version` and waits up to `timeout` for its answer.
    pub async fn call<R: Request>(
        &mut self,
        what: &'static str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        self.correlation = self.correlation.wrapping_add(1);
        let protocol = |reason: String| ClientError::Protocol { addr: self.addr.clone(), reason };
        let frame = encode_request(what, self.correlation, &self.client_id, version, request)
            .map_err(|e| protocol(e.to_string()))?;
        let body = match tokio::time::timeout(timeout, self.exchange(frame)).await {
            Err(_) => return Err(ClientError::Timeout { addr: self.addr.clone() }),
            Ok(Err(source)) => return Err(ClientError::Io { addr: self.addr.clone(), source }),
            Ok(Ok(body)) => body,
        };
        let (correlation, response) = decode_response::<R::Response>(what, body, version)
            .map_err(|e| ClientError::Protocol { addr: self.addr.clone(), reason: e.to_string() })?;
        if correlation != self.correlation {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                reason: format!("correlation id {correlation}, expected {}", self.correlation),
            });
        }
        Ok(response)
    }

    async fn exchange(&mut self, frame: Bytes) -> std::io::Result<Bytes> {
        self.stream.write_all(&frame).await?;
        let len = self.stream.read_u32().await? as usize;
        if len > MAX_RESPONSE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("response of {len} bytes")));
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }
}

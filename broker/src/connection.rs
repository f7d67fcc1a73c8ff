//! One client connection: read size-prefixed frames and answer them one at
//! a time, in order, as Kafka does per connection. Any framing or decoding
//! failure closes only this connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sluice_protocol::frame::split_frame;
use sluice_protocol::message::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::broker::Broker;
use crate::handlers;
use crate::server::Shutdown;

pub async fn serve(broker: Arc<Broker>, mut stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
    let _ = stream.set_nodelay(true);
    let max = broker.config.max_request_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        match split_frame(&mut buf, max) {
            Ok(Some(frame)) => {
                match handle_frame(&broker, frame.freeze(), &shutdown, peer).await {
                    Ok(Some(response)) => {
                        if let Err(e) = stream.write_all(&response).await {
                            tracing::debug!(%peer, error = %e, "client went away mid-response");
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "closing connection");
                        return;
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        }
        if shutdown.is_set() {
            return;
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) => {
                    if !buf.is_empty() {
                        tracing::warn!(%peer, pending_bytes = buf.len(), "connection closed mid-request");
                    }
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    return;
                }
            },
            _ = shutdown.wait() => return,
        }
    }
}

async fn handle_frame(
    broker: &Arc<Broker>,
    frame: Bytes,
    shutdown: &Shutdown,
    peer: SocketAddr,
) -> Result<Option<Bytes>, handlers::HandleError> {
    let request = Request::parse(frame)?;
    tracing::trace!(api = ?request.api_key, version = request.version(), correlation_id = request.header.correlation_id, "request");
    handlers::dispatch(broker, request, shutdown, peer).await
}

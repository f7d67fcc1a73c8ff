//! One client connection: read size-prefixed frames and answer them in
//! order, as Kafka does per connection. Produce requests are pipelined:
//! once one's appends are queued (its place in each log settled) the next
//! request is read while it waits for durability or replication, and
//! answers are still written in request order. Any other request first
//! waits for the answers before it, so it sees the connection as Kafka's
//! one-at-a-time processing would. Any framing or decoding failure closes
//! only this connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use sluice_protocol::frame::split_frame;
use sluice_protocol::message::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::broker::Broker;
use crate::handlers::{self, LaterReply, Reply};
use crate::runtime::shutdown::Shutdown;

/// Produce requests a connection may have waiting for their answers; past
/// this the connection stops reading (TCP back-pressure on the client).
const MAX_PIPELINED: usize = 64;

/// Why a connection ends: already logged where it happened.
struct Closed;

enum Event {
    Answered(Reply),
    Read(std::io::Result<usize>),
    Shutdown,
}

/// The oldest answer, once ready; `None` at once if nothing is waiting.
/// Cancel-safe: the answer stays queued until it is taken.
async fn next_answer(waiting: &mut VecDeque<LaterReply>) -> Option<Reply> {
    let reply = waiting.front_mut()?.await;
    waiting.pop_front();
    Some(reply)
}

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
    let _ = stream.set_nodelay(true);
    let mut conn = Connection { broker, stream, peer, shutdown, waiting: VecDeque::new() };
    let _ = conn.run().await;
}

struct Connection {
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
    /// Answers still to come, oldest first.
    waiting: VecDeque<LaterReply>,
}

impl Connection {
    async fn run(&mut self) -> Result<(), Closed> {
        let max = self.broker.config.max_request_bytes;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            while self.waiting.len() < MAX_PIPELINED {
                match split_frame(&mut buf, max) {
                    Ok(Some(frame)) => self.handle(frame.freeze()).await?,
                    Ok(None) => break,
                    Err(e) => {
                        // Answer what came before it, as one-at-a-time processing would.
                        self.drain().await?;
                        tracing::warn!(peer = %self.peer, error = %e, "closing connection: bad frame");
                        return Err(Closed);
                    }
                }
            }
            if self.shutdown.is_set() {
                // Stop reading; answer what was already taken in.
                return self.drain().await;
            }
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            let can_read = self.waiting.len() < MAX_PIPELINED;
            let event = {
                let Connection { waiting, stream, shutdown, .. } = &mut *self;
                tokio::select! {
                    Some(reply) = next_answer(waiting) => Event::Answered(reply),
                    read = stream.read_buf(&mut buf), if can_read => Event::Read(read),
                    _ = shutdown.wait() => Event::Shutdown,
                }
            };
            match event {
                Event::Answered(reply) => self.write(reply).await?,
                Event::Read(Ok(0)) => {
                    if !buf.is_empty() {
                        tracing::warn!(peer = %self.peer, pending_bytes = buf.len(), "connection closed mid-request");
                    }
                    // A half-closed client may still read its answers.
                    return self.drain().await;
                }
                Event::Read(Ok(_)) | Event::Shutdown => {}
                Event::Read(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "read failed");
                    return Err(Closed);
                }
            }
        }
    }

    async fn handle(&mut self, frame: Bytes) -> Result<(), Closed> {
        let request = match Request::parse(frame) {
            Ok(r) => r,
            Err(e) => {
                self.drain().await?;
                return self.write(Err(e.into())).await;
            }
        };
        tracing::trace!(api = ?request.api_key, version = request.version(), correlation_id = request.header.correlation_id, "request");
        if request.api_key == ApiKey::Produce {
            match handlers::start_produce(&self.broker, request).await {
                Ok(later) => self.waiting.push_back(later),
                Err(e) => {
                    self.drain().await?;
                    return self.write(Err(e)).await;
                }
            }
            return Ok(());
        }
        self.drain().await?;
        let reply = handlers::dispatch(&self.broker, request, &self.shutdown, self.peer).await;
        self.write(reply).await
    }

    /// Writes every answer still to come, in order.
    async fn drain(&mut self) -> Result<(), Closed> {
        while let Some(later) = self.waiting.pop_front() {
            let reply = later.await;
            self.write(reply).await?;
        }
        Ok(())
    }

    async fn write(&mut self, reply: Reply) -> Result<(), Closed> {
        match reply {
            Ok(Some(response)) => self.stream.write_all(&response).await.map_err(|e| {
                tracing::debug!(peer = %self.peer, error = %e, "client went away mid-response");
                Closed
            }),
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "closing connection");
                Err(Closed)
            }
        }
    }
}

//! The network front end: accept loop, one task per connection reading
//! size-prefixed frames and answering them in order, periodic flushing, and
//! graceful shutdown (stop accepting, finish in-flight requests, fsync).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use sluice_protocol::frame::split_frame;
use sluice_protocol::message::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::Config;
use crate::handlers;

/// How often unflushed appends are fdatasynced in the background. Acked
/// data is already in the page cache, so a killed process loses nothing;
/// this bounds what a power loss could take.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A cloneable view of the broker-wide shutdown flag.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let advertised_port = if config.advertised_port == 0 { bound.port() } else { config.advertised_port };
    let data_dir = config.data_dir.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(config, advertised_port))
        .await
        .context("start-up task failed")?
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let broker = Arc::new(broker);
    tracing::info!(
        listen = %bound,
        advertised = %format!("{}:{}", broker.config.advertised_host, broker.advertised_port),
        data_dir = %broker.config.data_dir.display(),
        cluster_id = broker.cluster_id(),
        "sluice broker started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = Shutdown(stop_rx);
    let flusher = tokio::spawn(flush_periodically(broker.clone(), shutdown.clone()));
    let mut connections = JoinSet::new();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(broker.clone(), stream, peer, shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    tracing::info!(connections = connections.len(), "shutting down: finishing in-flight requests");
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("some connections did not finish in time");
    }
    let _ = flusher.await;
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.flush_all()).await.context("final flush task failed")?;
    tracing::info!("sluice broker stopped");
    Ok(())
}

async fn flush_periodically(broker: Arc<Broker>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
            _ = shutdown.wait() => return,
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.flush_all()).await;
    }
}

/// Reads frames and answers them one at a time, in order, as Kafka does per
/// connection. Any framing or decoding failure closes only this connection.
async fn serve_connection(broker: Arc<Broker>, mut stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
    let _ = stream.set_nodelay(true);
    let max = broker.config.max_request_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        match split_frame(&mut buf, max) {
            Ok(Some(frame)) => {
                match handle_frame(&broker, frame.freeze(), &shutdown).await {
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
) -> Result<Option<Bytes>, handlers::HandleError> {
    let request = Request::parse(frame)?;
    tracing::trace!(api = ?request.api_key, version = request.version(), correlation_id = request.header.correlation_id, "request");
    handlers::dispatch(broker, request, shutdown).await
}

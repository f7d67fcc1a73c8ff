//! One shard's thread: its runtime and state, the periodic tasks it runs,
//! its listener's connections, and its part of an orderly stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Barrier};
use tokio::task::JoinSet;

use super::tasks::{expire_offsets_periodically, expire_transactions_periodically};
use crate::broker::Broker;
use crate::replication::isr::shrink_isrs_periodically;
use crate::runtime::housekeeping::{enforce_retention_periodically, expire_sessions_periodically, flush_periodically};
use crate::runtime::shard::{pin_to_core, Flush, JobQueue, ShardContext};
use crate::runtime::shutdown::Shutdown;

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ShardThread {
    pub id: usize,
    pub broker: Arc<Broker>,
    pub queue: JobQueue,
    pub listener: std::net::TcpListener,
    pub shutdown: Shutdown,
    /// Every shard waits here after draining its connections, so no shard
    /// stops serving jobs while another still has requests that need it.
    pub drained: Arc<Barrier>,
    pub ready: std::sync::mpsc::Sender<Result<(), String>>,
    /// Set once the broker has joined the cluster and opened its replicas.
    pub serve: watch::Receiver<bool>,
}

impl ShardThread {
    pub fn run(self) {
        pin_to_core(self.id);
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = self.ready.send(Err(format!("shard {}: cannot start its runtime: {e}", self.id)));
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.serve());
    }

    async fn serve(self) {
        let ShardThread { id, broker, queue, listener, shutdown, drained, ready, mut serve } = self;
        let ctx = match ShardContext::new(id, broker.config.groups) {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = ready.send(Err(format!("shard {id}: cannot create its io_uring instance: {e}")));
                return;
            }
        };
        ctx.install();
        let jobs = tokio::task::spawn_local(queue.serve(ctx.clone()));
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("shard {id}: cannot use its listener: {e}")));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        tokio::select! {
            _ = serve.wait_for(|s| *s) => {}
            _ = shutdown.wait() => {}
        }
        let isr = tokio::task::spawn_local(shrink_isrs_periodically(broker.clone(), ctx.clone()));
        let flusher = tokio::task::spawn_local(flush_periodically(ctx.clone(), shutdown.clone()));
        let sessions = tokio::task::spawn_local(expire_sessions_periodically(ctx.clone(), shutdown.clone()));
        let offsets =
            tokio::task::spawn_local(expire_offsets_periodically(broker.clone(), ctx.clone(), shutdown.clone()));
        let txns =
            tokio::task::spawn_local(expire_transactions_periodically(broker.clone(), ctx.clone(), shutdown.clone()));
        let retention = tokio::task::spawn_local(enforce_retention_periodically(
            ctx.clone(),
            broker.config.retention_check_interval,
            shutdown.clone(),
        ));
        let cleaner = tokio::task::spawn_local(crate::runtime::compaction::clean_periodically(
            ctx.clone(),
            broker.config.log_cleaner_backoff,
            shutdown.clone(),
        ));
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn_local(crate::connection::serve(broker.clone(), stream, peer, shutdown.clone()));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(shard = id, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = shutdown.wait() => break,
            }
        }
        drop(listener);
        let finished = tokio::time::timeout(DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} });
        if finished.await.is_err() {
            tracing::warn!(shard = id, "some connections did not finish in time");
        }
        drained.wait().await;
        let _ = flusher.await;
        let _ = retention.await;
        let _ = cleaner.await;
        let _ = sessions.await;
        let _ = offsets.await;
        let _ = txns.await;
        let _ = isr.await;
        ctx.flush(Flush::CleanStop).await;
        jobs.abort();
    }
}

//! Start-up and shutdown: bind one `SO_REUSEPORT` listener per shard, join
//! the metadata quorum (on a small control runtime that also runs raft),
//! start the shard threads, register with the controller, open this
//! broker's replicas as the metadata says, then serve. On SIGTERM/Ctrl-C:
//! hand leadership away, stop accepting, finish in-flight requests on every
//! shard, fsync, exit.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Barrier};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::Config;
use crate::replication::isr::shrink_isrs_periodically;
use crate::replication::reconcile::{follow_metadata, reconcile};
use crate::runtime::shard::{pin_to_core, Flush, JobQueue, ShardContext, ShardSet};
use crate::runtime::shutdown::Shutdown;
use sluice_raft::{MetadataQuorum, QuorumConfig, QuorumError};

/// How often each shard fdatasyncs its partitions in the background. Acked
/// data is already in the page cache, so a killed process loses nothing;
/// this bounds what a power loss could take.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often each partition's recovery point is written, bounding what a
/// restart after a crash must re-check (Kafka: 60 s).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const LISTEN_BACKLOG: i32 = 1024;

/// Runs the broker until a signal stops it.
pub fn run(config: Config) -> anyhow::Result<()> {
    let shard_count = config.shards;
    let listeners = bind_listeners(config.listen, shard_count)?;
    let bound = listeners[0].local_addr().context("reading the bound address")?;
    let advertised_port = if config.advertised_port == 0 { bound.port() } else { config.advertised_port };
    let data_dir = config.data_dir.clone();
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-control")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let quorum = control
        .block_on(MetadataQuorum::start(QuorumConfig {
            node_id: config.node_id as u64,
            dir: data_dir.join("meta"),
            listen: config.raft_listen,
            voters: config.voters.clone(),
            session_timeout: config.broker_session_timeout,
        }))
        .map_err(|e| {
            let what = match e {
                QuorumError::Db { .. } | QuorumError::Storage(_) => {
                    format!("cannot open data directory {}", data_dir.display())
                }
                _ => "cannot join the metadata quorum".to_string(),
            };
            anyhow::Error::new(e).context(what)
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (shards, queues) = ShardSet::new(shard_count);
    let broker = Broker::open(
        config,
        advertised_port,
        shards,
        quorum.clone(),
        control.handle().clone(),
        Shutdown::new(stop_rx.clone()),
    )
    .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let broker = Arc::new(broker);
    let (serve_tx, serve_rx) = watch::channel(false);

    let drained = Arc::new(Barrier::new(shard_count));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut threads = Vec::with_capacity(shard_count);
    for (id, (queue, listener)) in queues.into_iter().zip(listeners).enumerate() {
        let shard = ShardThread {
            id,
            broker: broker.clone(),
            queue,
            listener,
            shutdown: Shutdown::new(stop_rx.clone()),
            drained: drained.clone(),
            ready: ready_tx.clone(),
            serve: serve_rx.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("sluice-shard-{id}"))
            .spawn(move || shard.run())
            .context("starting a shard thread")?;
        threads.push(handle);
    }
    drop(ready_tx);

    let mut startup_error = None;
    for _ in 0..shard_count {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                startup_error.get_or_insert(e);
            }
            Err(_) => {
                startup_error.get_or_insert("a shard thread died during start-up".into());
                break;
            }
        }
    }
    // Heartbeats start before registering, so the controller never sees a
    // registered broker that has not been heard from.
    let heartbeats = control.spawn(quorum.clone().send_heartbeats(broker.node_id()));
    if startup_error.is_none() {
        let joined = control.block_on(async {
            tokio::select! {
                joined = join_cluster(&broker) => joined,
                _ = wait_for_signal() => Err(anyhow::anyhow!("stopped before joining the cluster")),
            }
        });
        if let Err(e) = joined {
            startup_error = Some(format!("{e:#}"));
        }
    }
    if let Some(e) = startup_error {
        heartbeats.abort();
        let _ = stop_tx.send(true);
        threads.into_iter().for_each(|t| drop(t.join()));
        control.block_on(quorum.shutdown());
        return Err(anyhow::anyhow!(e)).with_context(|| format!("cannot start node {}", broker.node_id()));
    }
    control.spawn(follow_metadata(broker.clone()));
    let _ = serve_tx.send(true);
    tracing::info!(
        listen = %bound,
        advertised = %format!("{}:{}", broker.config.advertised_host, broker.advertised_port),
        data_dir = %broker.config.data_dir.display(),
        shards = shard_count,
        cluster_id = broker.cluster_id(),
        node_id = broker.node_id(),
        "sluice broker started"
    );

    control.block_on(wait_for_signal())?;
    heartbeats.abort();
    control.block_on(hand_over_leadership(&broker));
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    for t in threads {
        if t.join().is_err() {
            tracing::error!("a shard thread panicked during shutdown");
        }
    }
    control.block_on(quorum.shutdown());
    tracing::info!("sluice broker stopped");
    Ok(())
}

/// Pins this node's storage id, registers with the controller and opens
/// this broker's replicas as the
/// metadata (caught up through the registration) says.
async fn join_cluster(broker: &Arc<Broker>) -> anyhow::Result<()> {
    broker.quorum.pin_storage_id().await.context("cannot join the metadata quorum")?;
    broker.register().await.context("cannot register with the controller")?;
    let view = broker.quorum.current();
    reconcile(broker, &view).await;
    Ok(())
}

/// Kafka's controlled shutdown: with other brokers alive, fence this one
/// first so its partitions get new leaders before it stops serving.
async fn hand_over_leadership(broker: &Broker) {
    let others = broker.metadata().live_brokers().any(|b| b.id != broker.node_id());
    if !others {
        return;
    }
    let fence = sluice_raft::Command::FenceBroker { id: broker.node_id() };
    match tokio::time::timeout(Duration::from_secs(5), broker.quorum.propose(fence)).await {
        Ok(Ok(_)) => tracing::info!("leadership handed over"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not hand over leadership"),
        Err(_) => tracing::warn!("timed out handing over leadership"),
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// One listener per shard on the same address; the kernel spreads incoming
/// connections across them. Port 0 is resolved by the first bind.
fn bind_listeners(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)
            .context("creating a listening socket")?;
        socket.set_reuse_address(true).context("setting SO_REUSEADDR")?;
        socket.set_reuse_port(true).context("setting SO_REUSEPORT")?;
        socket.set_nonblocking(true).context("making the listener non-blocking")?;
        socket.bind(&addr.into()).with_context(|| format!("cannot listen on {addr}"))?;
        socket.listen(LISTEN_BACKLOG).with_context(|| format!("cannot listen on {addr}"))?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr().context("reading the bound address")?;
        listeners.push(listener);
    }
    Ok(listeners)
}

struct ShardThread {
    id: usize,
    broker: Arc<Broker>,
    queue: JobQueue,
    listener: std::net::TcpListener,
    shutdown: Shutdown,
    /// Every shard waits here after draining its connections, so no shard
    /// stops serving jobs while another still has requests that need it.
    drained: Arc<Barrier>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    /// Set once the broker has joined the cluster and opened its replicas.
    serve: watch::Receiver<bool>,
}

impl ShardThread {
    fn run(self) {
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

async fn flush_periodically(ctx: Rc<ShardContext>, shutdown: Shutdown) {
    let mut last_checkpoint = tokio::time::Instant::now();
    while shutdown.tick(FLUSH_INTERVAL).await {
        let checkpoint = last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        if checkpoint {
            last_checkpoint = tokio::time::Instant::now();
        }
        ctx.flush(if checkpoint { Flush::Checkpoint } else { Flush::Only }).await;
    }
}

async fn enforce_retention_periodically(ctx: Rc<ShardContext>, every: Duration, shutdown: Shutdown) {
    while shutdown.tick(every).await {
        let now = crate::now_ms();
        for (_, partition) in ctx.all() {
            partition.log.enforce_retention(now);
        }
    }
}

/// How often each shard looks for group members whose session expired.
const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(250);

async fn expire_sessions_periodically(ctx: Rc<ShardContext>, shutdown: Shutdown) {
    while shutdown.tick(SESSION_CHECK_INTERVAL).await {
        ctx.coordinator.expire_sessions();
    }
}

/// How often each shard looks for transactions past their timeout (Kafka
/// checks every 10 s; a shorter period only makes aborts more punctual).
const TXN_TIMEOUT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

async fn expire_transactions_periodically(broker: Arc<Broker>, ctx: Rc<ShardContext>, shutdown: Shutdown) {
    while shutdown.tick(TXN_TIMEOUT_CHECK_INTERVAL).await {
        crate::txn::driver::expire(&broker, &ctx).await;
    }
}

/// Kafka's `offsets.retention.check.interval.ms` default.
const OFFSETS_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(600);

async fn expire_offsets_periodically(broker: Arc<Broker>, ctx: Rc<ShardContext>, shutdown: Shutdown) {
    while shutdown.tick(OFFSETS_RETENTION_CHECK_INTERVAL).await {
        let now = crate::now_ms();
        let Some(topic) = broker.topic(crate::group::OFFSETS_TOPIC) else { continue };
        for (group, expired) in ctx.coordinator.expired_offsets(now) {
            let Some(replica) = topic.tp(crate::group::partition_for(&group)).and_then(|tp| ctx.replica(&tp)) else {
                continue;
            };
            let tombstones = crate::group::encode_offset_tombstone(&group, &expired, now);
            match replica.append_group_record(tombstones).await {
                Ok(_) => ctx.coordinator.forget(&group, &expired),
                Err(e) => tracing::warn!(%group, error = ?e, "could not expire committed offsets"),
            }
        }
    }
}

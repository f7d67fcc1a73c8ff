//! Start-up and shutdown: bind one `SO_REUSEPORT` listener per shard, join
//! the metadata quorum (on a small control runtime that also runs raft),
//! start the shard threads, register with the controller, open this
//! broker's replicas as the metadata says, then serve. On SIGTERM/Ctrl-C:
//! hand leadership away, stop accepting, finish in-flight requests on every
//! shard, fsync, exit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Barrier};

mod listeners;
mod shard_thread;
mod tasks;

use listeners::bind_listeners;
use shard_thread::ShardThread;

use crate::broker::Broker;
use crate::config::Config;
use crate::replication::reconcile::{follow_metadata, reconcile};
use crate::runtime::shard::ShardSet;
use crate::runtime::shutdown::Shutdown;
use sluice_raft::{MetadataQuorum, QuorumConfig, QuorumError};

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

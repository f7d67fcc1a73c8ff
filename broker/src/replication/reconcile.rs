//! Applying the controller's decisions to this broker: for every metadata
//! version, each shard opens the replicas newly assigned to it, closes and
//! deletes the ones no longer assigned, and gives each its role (leader or
//! follower of whom, in which epoch). A new `__consumer_offsets` leader
//! loads its groups; a former one drops them. Followers get a fetcher per
//! leader broker.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use sluice_raft::{MetadataView, PartitionState};
use sluice_storage::{LogConfig, Partition};
use tokio::sync::Notify;
use uuid::Uuid;

use super::replica::{Replica, Role, Transition};
use crate::broker::Broker;
use crate::data_dir::partition_dir;
use crate::group::OFFSETS_TOPIC;
use crate::replication::replica::TopicPartition;
use crate::runtime::shard::ShardContext;
use crate::txn::TXN_TOPIC;

/// One replica this broker hosts, as the metadata describes it.
struct ReplicaSpec {
    tp: TopicPartition,
    topic: String,
    index: i32,
    state: PartitionState,
    log_config: LogConfig,
    /// The topic's min.insync.replicas (the transaction coordinator's writes need it).
    min_isr: usize,
    progress: Arc<Notify>,
}

/// Reconciles every applied metadata version until the broker stops.
pub async fn follow_metadata(broker: Arc<Broker>) {
    let mut versions = broker.quorum.subscribe();
    loop {
        tokio::select! {
            changed = versions.changed() => if changed.is_err() { return },
            _ = broker.shutdown.wait() => return,
        }
        let view = versions.borrow_and_update().clone();
        reconcile(&broker, &view).await;
    }
}

/// Makes this broker's replicas match `view`.
pub async fn reconcile(broker: &Arc<Broker>, view: &MetadataView) {
    broker.refresh_topics(&view.metadata);
    let me = broker.node_id();
    let mut per_shard: Vec<Vec<ReplicaSpec>> = (0..broker.shards.len()).map(|_| Vec::new()).collect();
    for topic in broker.topics() {
        for (index, state) in topic.meta.partitions.iter().enumerate() {
            if !state.replicas.contains(&me) {
                continue;
            }
            let tp = (topic.meta.id, index as i32);
            let Some(progress) = topic.appended(index as i32).cloned() else { continue };
            per_shard[broker.shards.owner(&tp)].push(ReplicaSpec {
                tp,
                topic: topic.meta.name.clone(),
                index: index as i32,
                state: state.clone(),
                log_config: topic.settings.log_config(broker.config.fsync),
                min_isr: topic.settings.min_insync_replicas,
                progress,
            });
        }
    }
    // Two phases: every shard first drops the replicas it no longer hosts,
    // then opens the new ones, so a deleted topic's directory is gone
    // before a new topic of the same name (perhaps on another shard) opens it.
    let mut removing = Vec::new();
    for (shard, specs) in per_shard.iter().enumerate() {
        let wanted: HashSet<TopicPartition> = specs.iter().map(|s| s.tp).collect();
        match broker.shards.spawn_on(shard, move |ctx| async move { remove_unwanted(&ctx, &wanted).await }).await {
            Ok(done) => removing.push(done),
            Err(e) => tracing::warn!(shard, error = %e, "cannot apply metadata on a stopping shard"),
        }
    }
    for done in removing {
        let _ = done.await;
    }
    let mut applying = Vec::new();
    for (shard, specs) in per_shard.into_iter().enumerate() {
        let b = broker.clone();
        match broker.shards.spawn_on(shard, move |ctx| async move { apply_on_shard(&b, &ctx, specs).await }).await {
            Ok(done) => applying.push(done),
            Err(e) => tracing::warn!(shard, error = %e, "cannot apply metadata on a stopping shard"),
        }
    }
    for done in applying {
        let _ = done.await;
    }
    broker.mark_reconciled(view.applied_index);
}

/// Closes and deletes this shard's replicas that are not `wanted`.
async fn remove_unwanted(ctx: &ShardContext, wanted: &HashSet<TopicPartition>) {
    for (tp, replica) in ctx.all() {
        if wanted.contains(&tp) {
            continue;
        }
        ctx.remove(&tp);
        replica.close();
        if replica.topic == OFFSETS_TOPIC {
            ctx.coordinator.unload_partition(replica.index);
        }
        if replica.topic == TXN_TOPIC {
            ctx.transactions.unload_partition(replica.index);
        }
        if let Err(e) = replica.log.delete().await {
            tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "could not remove partition files");
        }
        tracing::info!(topic = %replica.topic, partition = replica.index, "removed replica");
    }
}

/// Opens this shard's newly assigned replicas and gives each its role.
async fn apply_on_shard(broker: &Arc<Broker>, ctx: &Rc<ShardContext>, specs: Vec<ReplicaSpec>) {
    let me = broker.node_id();
    let mut leaders = BTreeSet::new();
    for spec in specs {
        if spec.topic == TXN_TOPIC {
            // Config changes reach the coordinator's writes at once.
            ctx.transactions.min_isr.set(spec.min_isr);
        }
        let replica = match ctx.replica(&spec.tp) {
            Some(r) => {
                r.log.set_config(spec.log_config);
                r
            }
            None => {
                let dir = partition_dir(&broker.config.data_dir, &spec.topic, spec.index);
                if let Err(e) = claim_partition_dir(&dir, spec.tp.0) {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot claim partition directory");
                    continue;
                }
                match Partition::open(&dir, spec.log_config, ctx.ring.clone()).await {
                    Ok(log) => {
                        let r = Rc::new(Replica::new(spec.topic.clone(), spec.index, Rc::new(log), spec.progress));
                        ctx.insert(spec.tp, r.clone());
                        r
                    }
                    Err(e) => {
                        tracing::error!(topic = %spec.topic, partition = spec.index, error = %e, "cannot open partition");
                        continue;
                    }
                }
            }
        };
        // Coordinator partitions load in the background: a big log must
        // not hold up the metadata (leaders, ISRs, topics) behind it.
        match replica.apply_state(me, &spec.state) {
            Ok(Transition::BecameLeader) if spec.topic == OFFSETS_TOPIC => {
                ctx.coordinator.unload_partition(spec.index);
                ctx.coordinator.loading.set(spec.index, true);
                let (ctx, replica) = (ctx.clone(), replica.clone());
                tokio::task::spawn_local(async move {
                    let epoch = replica.leader_epoch();
                    if load_groups(&ctx, &replica, epoch).await {
                        ctx.coordinator.loading.set(replica.index, false);
                    }
                });
            }
            Ok(Transition::LostLeadership) if spec.topic == OFFSETS_TOPIC => {
                ctx.coordinator.unload_partition(spec.index);
                ctx.coordinator.loading.set(spec.index, false);
            }
            Ok(Transition::BecameLeader) if spec.topic == TXN_TOPIC => {
                ctx.transactions.unload_partition(spec.index);
                ctx.transactions.loading.set(spec.index, true);
                let (broker, ctx, replica) = (broker.clone(), ctx.clone(), replica.clone());
                tokio::task::spawn_local(async move {
                    let epoch = replica.leader_epoch();
                    if crate::txn::driver::load(&broker, &ctx, &replica, epoch).await {
                        ctx.transactions.loading.set(replica.index, false);
                    }
                });
            }
            Ok(Transition::LostLeadership) if spec.topic == TXN_TOPIC => {
                ctx.transactions.unload_partition(spec.index);
                ctx.transactions.loading.set(spec.index, false);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(topic = %spec.topic, partition = spec.index, error = %e, "cannot take up role"),
        }
        if let Role::Follower { leader, .. } = replica.role() {
            leaders.insert(leader);
        }
    }
    for leader in leaders {
        if ctx.fetchers.borrow_mut().insert(leader) {
            tokio::task::spawn_local(super::fetcher::follow(broker.clone(), ctx.clone(), leader));
        }
    }
}

/// Partition directories are named by topic name, as Kafka names them, so
/// each records its topic's id (`partition.metadata`, as in Kafka): a
/// directory left by a deleted topic of the same name is wiped, never
/// read as this topic's log.
fn claim_partition_dir(dir: &Path, topic_id: Uuid) -> std::io::Result<()> {
    let path = dir.join("partition.metadata");
    let line = format!("topic_id: {topic_id}");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.lines().any(|l| l.trim() == line) => return Ok(()),
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "removing the log of a deleted topic with the same name");
            std::fs::remove_dir_all(dir)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Written whole or not at all: a torn file would read as another topic's.
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("partition.metadata.tmp");
    std::fs::write(&tmp, format!("version: 0\n{line}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Replays a `__consumer_offsets` partition this shard leads in
/// `leader_epoch` into its coordinator, so committed offsets survive
/// restarts and failovers. Whether it loaded whole while still leading.
async fn load_groups(ctx: &ShardContext, replica: &Replica, leader_epoch: i32) -> bool {
    let replayed = replica.replay(leader_epoch, |bytes| {
        let (records, next) = crate::group::decode_batch(bytes);
        records.into_iter().for_each(|r| ctx.coordinator.replay(replica.index, r));
        next
    });
    match replayed.await {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(partition = replica.index, error = %e, "cannot load committed offsets");
            false
        }
    }
}

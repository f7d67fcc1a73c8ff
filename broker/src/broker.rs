//! The broker's shared state: its seat in the metadata quorum and the topic
//! registry derived from the applied metadata (settings, and per partition
//! the signal long-polling fetches wait on). Partition replicas live on
//! their owner shards (`runtime/shard.rs`); `replication::reconcile`
//! opens, closes and re-roles them whenever the metadata changes. Topic
//! creation and deletion are proposals to the controller, answered once
//! this broker has applied them.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sluice_raft::{
    ApplyError, ClusterMetadata, Command, Election, MetadataQuorum, QuorumError, Reply, TopicMetadata,
    PRODUCER_ID_BLOCK,
};
use sluice_storage::StorageError;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::config::Config;
use crate::data_dir::{load_incarnation, remove_orphan_partition_dirs};
use crate::error::CoordinatorRouteError;
use crate::group::{partition_for, Coordinator, OFFSETS_PARTITIONS, OFFSETS_TOPIC};
use crate::replication::replica::Replica;
use crate::replication::replica::TopicPartition;
use crate::runtime::shard::{ShardContext, ShardError, ShardSet};
use crate::runtime::shutdown::Shutdown;
use crate::topic_config::TopicSettings;
use crate::txn::{TXN_PARTITIONS, TXN_TOPIC};

/// Names Kafka treats as internal topics.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];
/// Kafka's offsets.topic.replication.factor and
/// transaction.state.log.replication.factor (fewer when fewer brokers live).
const INTERNAL_REPLICATION_FACTOR: i16 = 3;
/// Kafka's transaction.state.log.min.isr.
const TXN_MIN_ISR: i16 = 2;
/// Kafka's offsets.topic.segment.bytes (and the transaction log's).
pub(crate) const INTERNAL_SEGMENT_BYTES: i32 = 100 * 1024 * 1024;
/// How long a topic change waits for this broker to open its replicas.
const RECONCILE_WAIT: Duration = Duration::from_secs(10);

pub struct Topic {
    pub meta: TopicMetadata,
    pub settings: TopicSettings,
    /// Fired after every append to partition i, on whichever shard, so
    /// long-polling fetches anywhere wake at once instead of sleeping.
    appended: Vec<Arc<Notify>>,
}

impl Topic {
    fn new(meta: TopicMetadata, previous: Option<&Topic>) -> Self {
        let settings = TopicSettings::from_overrides(&meta.configs);
        let reuse = previous.filter(|p| p.meta.id == meta.id);
        let appended = (0..meta.partition_count() as usize)
            .map(|i| reuse.and_then(|p| p.appended.get(i).cloned()).unwrap_or_else(|| Arc::new(Notify::new())))
            .collect();
        Self { meta, settings, appended }
    }

    /// The partition's address, if the topic has that partition.
    pub fn tp(&self, index: i32) -> Option<TopicPartition> {
        (0..self.meta.partition_count()).contains(&index).then_some((self.meta.id, index))
    }

    pub fn appended(&self, index: i32) -> Option<&Arc<Notify>> {
        usize::try_from(index).ok().and_then(|i| self.appended.get(i))
    }

    pub fn is_internal(&self) -> bool {
        INTERNAL_TOPICS.contains(&self.meta.name.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    #[error(transparent)]
    Refused(#[from] ApplyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Shard(#[from] ShardError),
}

/// This broker's producer-id blocks: the one in use and the next one.
#[derive(Default)]
struct ProducerIds {
    current: std::ops::Range<i64>,
    next: Option<std::ops::Range<i64>>,
    fetching: bool,
}

pub struct Broker {
    pub config: Config,
    /// Port clients are told to use (the bound port when configured as 0).
    pub advertised_port: u16,
    pub shards: ShardSet,
    pub quorum: Arc<MetadataQuorum>,
    pub shutdown: Shutdown,
    /// Runs quorum work (proposals) for callers on shard threads.
    control: tokio::runtime::Handle,
    /// Identifies this data directory across restarts; a new one means the
    /// old logs are gone.
    incarnation: Uuid,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// The metadata index whose replicas this broker has opened and roled.
    reconciled: watch::Sender<u64>,
    /// Producer ids this broker may still hand out (blocks from the quorum).
    producer_ids: tokio::sync::Mutex<ProducerIds>,
}

impl Broker {
    pub fn open(
        config: Config,
        advertised_port: u16,
        shards: ShardSet,
        quorum: Arc<MetadataQuorum>,
        control: tokio::runtime::Handle,
        shutdown: Shutdown,
    ) -> Result<Self, BrokerError> {
        let incarnation = load_incarnation(&config.data_dir)?;
        let broker = Self {
            config,
            advertised_port,
            shards,
            quorum,
            shutdown,
            control,
            incarnation,
            topics: RwLock::new(HashMap::new()),
            reconciled: watch::channel(0).0,
            producer_ids: tokio::sync::Mutex::new(ProducerIds::default()),
        };
        let metadata = broker.metadata();
        broker.refresh_topics(&metadata);
        remove_orphan_partition_dirs(&broker.config.data_dir, broker.config.node_id, &metadata);
        Ok(broker)
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// This broker's epoch (KIP-903), once the metadata holds its
    /// registration from this data directory.
    pub fn registered_epoch(&self) -> Option<i64> {
        let metadata = self.metadata();
        let me = metadata.brokers.get(&self.config.node_id)?;
        (me.incarnation == self.incarnation).then_some(me.epoch)
    }

    /// The latest applied cluster metadata.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.quorum.current().metadata
    }

    pub fn cluster_id(&self) -> String {
        self.metadata().cluster_id.clone()
    }

    /// "host:port" of a registered broker.
    pub fn broker_address(&self, id: i32) -> Option<String> {
        self.metadata().brokers.get(&id).map(|b| format!("{}:{}", b.host, b.port))
    }

    /// Registers this broker with the controller (naming the cluster if
    /// it has no name yet), retrying until a controller answers or the
    /// broker is stopped.
    pub async fn register(&self) -> Result<(), BrokerError> {
        if self.metadata().cluster_id.is_empty() {
            // The first name committed wins; later ones are ignored.
            self.propose_patiently(Command::InitCluster { cluster_id: sluice_raft::new_cluster_id() }).await?;
        }
        self.propose_patiently(Command::RegisterBroker {
            id: self.config.node_id,
            host: self.config.advertised_host.clone(),
            port: self.advertised_port,
            rack: self.config.rack.clone(),
            incarnation: self.incarnation,
        })
        .await
    }

    async fn propose_patiently(&self, command: Command) -> Result<(), BrokerError> {
        loop {
            match self.quorum.propose(command.clone()).await {
                Ok((outcome, _)) => return outcome.map(|_| ()).map_err(BrokerError::Refused),
                Err(QuorumError::NoController) if !self.shutdown.is_set() => {
                    tracing::info!("waiting for the metadata quorum to elect a controller");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs a metadata change on the control runtime; the handle gives
    /// its outcome to a shard thread that wants it.
    pub fn propose_with_answer(
        self: &Arc<Self>,
        command: Command,
    ) -> tokio::task::JoinHandle<Result<(sluice_raft::Outcome, u64), QuorumError>> {
        let broker = self.clone();
        self.control.spawn(async move { broker.quorum.propose(command).await })
    }

    /// Runs a metadata change from a shard thread without waiting for it.
    pub fn propose_in_background(self: &Arc<Self>, command: Command) {
        let broker = self.clone();
        self.control.spawn(async move {
            match broker.quorum.propose(command.clone()).await {
                Ok((Ok(_), _)) => {}
                Ok((Err(e), _)) => tracing::info!(?command, error = %e, "metadata change refused"),
                Err(e) => tracing::warn!(?command, error = %e, "metadata change failed"),
            }
        });
    }

    /// `__consumer_offsets`, created on first use (as Kafka does when a
    /// client first looks for a group coordinator).
    pub async fn offsets_topic(&self) -> Result<Arc<Topic>, BrokerError> {
        self.internal_topic(OFFSETS_TOPIC, OFFSETS_PARTITIONS, 1).await
    }

    /// `__transaction_state`, created on first use (a client looking for a
    /// transaction coordinator).
    pub async fn txn_topic(&self) -> Result<Arc<Topic>, BrokerError> {
        self.internal_topic(TXN_TOPIC, TXN_PARTITIONS, TXN_MIN_ISR).await
    }

    /// Creates an internal topic: compacted in 100 MiB segments (Kafka's
    /// offsets.topic.segment.bytes and transaction.state.log.segment.bytes),
    /// replicated up to three times, `min.insync.replicas` up to `min_isr`
    /// (never above its replication).
    async fn internal_topic(&self, name: &str, partitions: i32, min_isr: i16) -> Result<Arc<Topic>, BrokerError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        let live = self.metadata().live_brokers().count() as i16;
        let rf = INTERNAL_REPLICATION_FACTOR.min(live).max(1);
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), INTERNAL_SEGMENT_BYTES.to_string()),
            ("min.insync.replicas".to_string(), min_isr.min(rf).to_string()),
        ]);
        match self.create_topic(name, partitions, rf, Vec::new(), configs).await {
            Ok(t) => Ok(t),
            Err(BrokerError::Refused(ApplyError::TopicExists(_))) => {
                self.topic(name).ok_or(BrokerError::Shard(ShardError::Stopped(usize::MAX)))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `f` on the shard coordinating `group`, with that shard's
    /// coordinator and its `__consumer_offsets` replica, which this broker
    /// must lead.
    pub async fn with_coordinator<R, F, Fut>(&self, group: &str, f: F) -> Result<R, CoordinatorRouteError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Coordinator>, Rc<Replica>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
    {
        let topic = self.offsets_topic().await;
        self.on_internal_leader(
            topic,
            partition_for(group),
            |ctx, p| ctx.coordinator.loading.contains(p),
            |ctx, replica| f(ctx.coordinator.clone(), replica),
        )
        .await
    }

    /// Runs `f` on the shard coordinating transactional id `id`, with that
    /// shard's context and its `__transaction_state` replica, which this
    /// broker must lead.
    pub async fn with_txn_coordinator<R, F, Fut>(&self, id: &str, f: F) -> Result<R, CoordinatorRouteError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardContext>, Rc<Replica>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
    {
        let topic = self.txn_topic().await;
        let partition = crate::txn::partition_for(id);
        self.on_internal_leader(topic, partition, |ctx, p| ctx.transactions.loading.contains(p), f).await
    }

    /// Runs `f` on the owner shard of an internal topic's partition, if
    /// this broker leads it and has loaded it.
    async fn on_internal_leader<R, F, Fut>(
        &self,
        topic: Result<Arc<Topic>, BrokerError>,
        partition: i32,
        loading: fn(&ShardContext, i32) -> bool,
        f: F,
    ) -> Result<R, CoordinatorRouteError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardContext>, Rc<Replica>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
    {
        let topic = topic.map_err(|e| {
            tracing::warn!(error = %e, "cannot create an internal topic");
            CoordinatorRouteError::NotReady
        })?;
        let tp = topic.tp(partition).ok_or(CoordinatorRouteError::Moved)?;
        let started = self
            .shards
            .spawn_on(self.shards.owner(&tp), move |ctx| async move {
                let Some(replica) = ctx.replica(&tp).filter(|r| r.is_leader()) else {
                    return Err(CoordinatorRouteError::Moved);
                };
                if loading(&ctx, tp.1) {
                    return Err(CoordinatorRouteError::Loading);
                }
                Ok(f(ctx, replica).await)
            })
            .await
            .map_err(|_| CoordinatorRouteError::NotReady)?;
        started.await.map_err(|_| CoordinatorRouteError::NotReady)?
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        topics.values().find(|t| t.meta.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        all
    }

    /// Rebuilds the topic registry from `metadata`, keeping each surviving
    /// partition's append signal.
    pub fn refresh_topics(&self, metadata: &ClusterMetadata) {
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        let next: HashMap<String, Arc<Topic>> = metadata
            .topics
            .values()
            .map(|m| (m.name.clone(), Arc::new(Topic::new(m.clone(), topics.get(&m.name).map(|t| t.as_ref())))))
            .collect();
        for (name, old) in topics.iter() {
            if next.get(name).is_none_or(|t| t.meta.id != old.meta.id) {
                old.appended.iter().for_each(|n| n.notify_waiters());
            }
        }
        *topics = next;
    }

    /// Records that replicas match the metadata at `index`.
    pub fn mark_reconciled(&self, index: u64) {
        self.reconciled.send_replace(index);
    }

    async fn wait_reconciled(&self, index: u64) {
        let mut rx = self.reconciled.subscribe();
        let _ = tokio::time::timeout(RECONCILE_WAIT, rx.wait_for(|&i| i >= index)).await;
    }

    /// Creates a topic whose name and configs the caller has validated;
    /// answers once this broker has applied it and opened its replicas.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let command = Command::CreateTopic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            assignments,
            configs,
        };
        let (outcome, index) = self.quorum.propose(command).await?;
        outcome?;
        self.wait_reconciled(index).await;
        tracing::info!(topic = name, partitions, replication_factor, "created topic");
        self.topic(name).ok_or(BrokerError::Refused(ApplyError::UnknownTopic(name.to_string())))
    }

    /// Runs leader elections (see [`Command::ElectLeaders`]); answers once
    /// this broker has applied them.
    pub async fn elect_leaders(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    ) -> Result<Vec<(String, i32, Election)>, BrokerError> {
        let (outcome, index) = self.quorum.propose(Command::ElectLeaders { partitions, unclean }).await?;
        let Reply::Elections(results) = outcome? else { return Ok(Vec::new()) };
        self.wait_reconciled(index).await;
        let elected = results.iter().filter(|(_, _, e)| *e == Election::Elected).count();
        tracing::info!(elected, unclean, "leader elections");
        Ok(results)
    }

    /// Starts or cancels reassignments (see [`Command::ReassignPartitions`]);
    /// answers once this broker has applied them.
    pub async fn reassign_partitions(
        &self,
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<Vec<(String, i32, Option<ApplyError>)>, BrokerError> {
        let (outcome, index) = self.quorum.propose(Command::ReassignPartitions { partitions }).await?;
        let Reply::Reassignments(results) = outcome? else { return Ok(Vec::new()) };
        self.wait_reconciled(index).await;
        tracing::info!(?results, "partition reassignments");
        Ok(results)
    }

    /// Changes a topic's config overrides (see [`Command::AlterTopicConfigs`]);
    /// answers once this broker's replicas follow them.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        replace: bool,
        changes: BTreeMap<String, Option<String>>,
        expected: BTreeMap<String, Option<String>>,
    ) -> Result<(), BrokerError> {
        let command = Command::AlterTopicConfigs { name: name.to_string(), replace, changes, expected };
        let (outcome, index) = self.quorum.propose(command).await?;
        // Refused or not, this broker's view catches up first (a caller
        // retrying a stale change recomputes it from there).
        self.wait_reconciled(index).await;
        outcome?;
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// Grows a topic to `count` partitions; answers once this broker has
    /// applied it and opened its new replicas.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Vec<Vec<i32>>,
    ) -> Result<TopicMetadata, BrokerError> {
        let command = Command::CreatePartitions { name: name.to_string(), count, assignments };
        let (outcome, index) = self.quorum.propose(command).await?;
        let Reply::Topic(meta) = outcome? else {
            return Err(BrokerError::Refused(ApplyError::UnknownTopic(name.to_string())));
        };
        self.wait_reconciled(index).await;
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(meta)
    }

    /// A producer id never handed out before, by any broker: taken from
    /// this broker's block (Kafka's AllocateProducerIds). The next block is
    /// requested in the background once 90% of the current one is used, as
    /// Kafka does, so InitProducerId rarely waits on the quorum.
    pub async fn new_producer_id(self: &Arc<Self>) -> Result<i64, BrokerError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.current.is_empty() {
            ids.current = match ids.next.take() {
                Some(block) => block,
                None => self.allocate_producer_ids().await?,
            };
        }
        let id = ids.current.start;
        ids.current.start += 1;
        if (ids.current.end - ids.current.start) < PRODUCER_ID_BLOCK / 10 && ids.next.is_none() && !ids.fetching {
            ids.fetching = true;
            let broker = self.clone();
            self.control.spawn(async move {
                let block = broker.allocate_producer_ids().await;
                let mut ids = broker.producer_ids.lock().await;
                ids.fetching = false;
                match block {
                    Ok(block) => ids.next = Some(block),
                    // Fetched on demand when the current block runs out.
                    Err(e) => tracing::info!(error = %e, "cannot prefetch producer ids"),
                }
            });
        }
        Ok(id)
    }

    async fn allocate_producer_ids(&self) -> Result<std::ops::Range<i64>, BrokerError> {
        let command = Command::AllocateProducerIds { broker: self.config.node_id };
        let (outcome, _) = self.quorum.propose(command).await?;
        let Reply::ProducerIds { first } = outcome? else {
            return Err(BrokerError::Refused(ApplyError::ProducerIdsExhausted));
        };
        Ok(first..first + PRODUCER_ID_BLOCK)
    }

    /// Deletes a topic: from metadata first, then every broker drops its logs.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicMetadata, BrokerError> {
        let (outcome, index) = self.quorum.propose(Command::DeleteTopic { name: name.to_string() }).await?;
        let Reply::Topic(meta) = outcome? else {
            return Err(BrokerError::Refused(ApplyError::UnknownTopic(name.to_string())));
        };
        self.wait_reconciled(index).await;
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }
}

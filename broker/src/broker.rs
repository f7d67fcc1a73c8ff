//! The broker's shared state: cluster metadata and the topic registry
//! (settings, and per partition the signal long-polling fetches wait on).
//! Partition logs themselves live on their owner shards (`shard.rs`);
//! topic creation and deletion here coordinate the metadata store with
//! those shards so that metadata and logs on disk never disagree for long.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};

use sluice_raft::{MetadataError, MetadataStore, TopicMetadata};
use sluice_storage::{Partition, StorageError};
use tokio::sync::Notify;

use crate::config::Config;
use crate::group::{partition_for, Coordinator, OFFSETS_PARTITIONS, OFFSETS_TOPIC};
use crate::shard::{ShardContext, ShardError, ShardSet, TopicPartition};
use crate::topic_config::TopicSettings;

/// Names Kafka treats as internal topics.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

pub struct Topic {
    pub meta: TopicMetadata,
    pub settings: TopicSettings,
    /// Fired after every append to partition i, on whichever shard, so
    /// long-polling fetches anywhere wake at once instead of sleeping.
    appended: Vec<Arc<Notify>>,
}

impl Topic {
    fn new(meta: TopicMetadata) -> Self {
        let settings = TopicSettings::from_overrides(&meta.configs);
        let appended = (0..meta.partitions).map(|_| Arc::new(Notify::new())).collect();
        Self { meta, settings, appended }
    }

    /// The partition's address, if the topic has that partition.
    pub fn tp(&self, index: i32) -> Option<TopicPartition> {
        (0..self.meta.partitions).contains(&index).then_some((self.meta.id, index))
    }

    pub fn appended(&self, index: i32) -> Option<&Arc<Notify>> {
        usize::try_from(index).ok().and_then(|i| self.appended.get(i))
    }

    pub fn is_internal(&self) -> bool {
        INTERNAL_TOPICS.contains(&self.meta.name.as_str())
    }
}

/// Why a group request could not reach its coordinator.
#[derive(Debug, thiserror::Error)]
pub enum GroupRouteError {
    /// `__consumer_offsets` could not be created or its shard is stopping.
    #[error("the group coordinator is not available")]
    NotReady,
    /// The partition is not on this broker (it was deleted meanwhile).
    #[error("this broker does not coordinate the group")]
    Moved,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Shard(#[from] ShardError),
}

pub struct Broker {
    pub config: Config,
    /// Port clients are told to use (the bound port when configured as 0).
    pub advertised_port: u16,
    pub shards: ShardSet,
    cluster_id: String,
    store: Mutex<MetadataStore>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

impl Broker {
    /// Loads metadata; each shard then opens its own partitions with
    /// [`Broker::open_local_partitions`].
    pub fn open(config: Config, advertised_port: u16, shards: ShardSet) -> Result<Self, BrokerError> {
        let store = MetadataStore::open(&config.data_dir.join("meta"))?;
        let topics: HashMap<_, _> =
            store.state().topics.values().map(|m| (m.name.clone(), Arc::new(Topic::new(m.clone())))).collect();
        remove_orphan_partition_dirs(&config.data_dir, &topics);
        Ok(Self {
            config,
            advertised_port,
            shards,
            cluster_id: store.state().cluster_id.clone(),
            store: Mutex::new(store),
            topics: RwLock::new(topics),
        })
    }

    /// Opens (recovering) every partition `ctx`'s shard owns.
    pub async fn open_local_partitions(&self, ctx: &Rc<ShardContext>) -> Result<(), BrokerError> {
        for topic in self.topics() {
            for p in 0..topic.meta.partitions {
                let tp = (topic.meta.id, p);
                if self.shards.owner(&tp) == ctx.id {
                    let dir = partition_dir(&self.config.data_dir, &topic.meta.name, p);
                    let config = topic.settings.log_config(self.config.fsync);
                    ctx.insert(tp, Partition::open(&dir, config, ctx.ring.clone()).await?);
                }
            }
        }
        Ok(())
    }

    /// `__consumer_offsets`, created on first use (as Kafka does when a
    /// client first looks for a group coordinator).
    pub async fn offsets_topic(&self) -> Result<Arc<Topic>, BrokerError> {
        if let Some(t) = self.topic(OFFSETS_TOPIC) {
            return Ok(t);
        }
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        match self.create_topic(OFFSETS_TOPIC, OFFSETS_PARTITIONS, configs).await {
            Ok(t) => Ok(t),
            Err(BrokerError::Metadata(MetadataError::TopicExists(_))) => {
                self.topic(OFFSETS_TOPIC).ok_or(BrokerError::Shard(ShardError::Stopped(usize::MAX)))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `f` on the shard coordinating `group`, with that shard's
    /// coordinator and its `__consumer_offsets` partition.
    pub async fn with_coordinator<R, F, Fut>(&self, group: &str, f: F) -> Result<R, GroupRouteError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Coordinator>, Rc<Partition>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
    {
        let topic = self.offsets_topic().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
            GroupRouteError::NotReady
        })?;
        let tp = topic.tp(partition_for(group)).ok_or(GroupRouteError::Moved)?;
        let started = self
            .shards
            .spawn_on(self.shards.owner(&tp), move |ctx| async move {
                let partition = ctx.partition(&tp)?;
                Some(f(ctx.coordinator.clone(), partition).await)
            })
            .await
            .map_err(|_| GroupRouteError::NotReady)?;
        started.await.map_err(|_| GroupRouteError::NotReady)?.ok_or(GroupRouteError::Moved)
    }

    /// Replays the `__consumer_offsets` partitions this shard owns into its
    /// coordinator, so committed offsets survive restarts.
    pub async fn load_groups(&self, ctx: &Rc<ShardContext>) -> Result<(), BrokerError> {
        let Some(topic) = self.topic(OFFSETS_TOPIC) else { return Ok(()) };
        for p in 0..topic.meta.partitions {
            let Some(tp) = topic.tp(p) else { continue };
            let Some(partition) = ctx.partition(&tp) else { continue };
            let mut offset = partition.offsets().log_start_offset;
            while offset < partition.offsets().high_watermark {
                let (read, _) = partition.read(offset, 1 << 20, true).await?;
                let (records, next) = crate::group::decode_batch(bytes::Bytes::from(read.bytes));
                records.into_iter().for_each(|r| ctx.coordinator.replay(r));
                match next {
                    Some(next) if next > offset => offset = next,
                    _ => break,
                }
            }
        }
        Ok(())
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        topics.values().find(|t| t.meta.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        all
    }

    /// Creates a topic whose name and configs the caller has validated.
    /// The metadata change is durable before any partition exists; if a
    /// partition cannot be created the whole topic is rolled back.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let meta = self.store.lock().unwrap_or_else(|p| p.into_inner()).create_topic(name, partitions, configs)?;
        let topic = Arc::new(Topic::new(meta));
        let mut opening = Vec::new();
        for p in 0..partitions {
            let tp = (topic.meta.id, p);
            let dir = partition_dir(&self.config.data_dir, name, p);
            let config = topic.settings.log_config(self.config.fsync);
            let owner = self.shards.owner(&tp);
            let started = self
                .shards
                .spawn_on(owner, move |ctx| async move {
                    ctx.insert(tp, Partition::open(&dir, config, ctx.ring.clone()).await?);
                    Ok::<_, BrokerError>(())
                })
                .await;
            opening.push((owner, started));
        }
        let mut failure = None;
        for (owner, started) in opening {
            let outcome = match started {
                Ok(rx) => rx.await.unwrap_or(Err(ShardError::Stopped(owner).into())),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = outcome {
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            if let Err(undo) = self.store.lock().unwrap_or_else(|p| p.into_inner()).delete_topic(name) {
                tracing::error!(topic = name, error = %undo, "could not roll back a failed topic creation");
            }
            self.close_partitions(&topic).await;
            return Err(e);
        }
        self.topics.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: first from metadata (durably), then its logs.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicMetadata, BrokerError> {
        let meta = self.store.lock().unwrap_or_else(|p| p.into_inner()).delete_topic(name)?;
        let removed = self.topics.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        if let Some(topic) = removed {
            topic.appended.iter().for_each(|n| n.notify_waiters());
            self.close_partitions(&topic).await;
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }

    /// Closes a topic's partitions on their shards and removes their files.
    async fn close_partitions(&self, topic: &Topic) {
        for p in 0..topic.meta.partitions {
            let tp = (topic.meta.id, p);
            let closed = self
                .shards
                .run_on(self.shards.owner(&tp), move |ctx| async move {
                    match ctx.remove(&tp) {
                        Some(partition) => partition.delete().await,
                        None => Ok(()),
                    }
                })
                .await;
            let failed = match closed {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = failed {
                tracing::warn!(topic = %topic.meta.name, partition = p, error, "could not remove partition files");
            }
        }
        remove_partition_dirs(&self.config.data_dir, &topic.meta.name, topic.meta.partitions);
    }
}

/// fdatasyncs every partition this shard owns; with `checkpoint`, then
/// records each one's recovery point (`Some(true)`: a clean stop).
pub async fn flush_local(ctx: &ShardContext, checkpoint: Option<bool>) {
    for ((topic, partition), p) in ctx.all() {
        let mut outcome = p.flush().await;
        if let (Ok(()), Some(clean)) = (&outcome, checkpoint) {
            outcome = p.checkpoint(clean);
        }
        if let Err(e) = outcome {
            tracing::error!(%topic, partition, error = %e, "flush failed");
        }
    }
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn remove_partition_dirs(data_dir: &Path, topic: &str, partitions: i32) {
    for p in 0..partitions {
        let dir = partition_dir(data_dir, topic, p);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition; it is removed at next start");
            }
            _ => {}
        }
    }
}

/// Removes partition directories left behind by a deletion that crashed
/// between the metadata change and the file removal.
fn remove_orphan_partition_dirs(data_dir: &Path, topics: &HashMap<String, Arc<Topic>>) {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let Some((topic, partition)) = name.rsplit_once('-') else { continue };
        let Ok(partition) = partition.parse::<i32>() else { continue };
        if !entry.path().is_dir() || sluice_raft::validate_topic_name(topic).is_err() {
            continue;
        }
        let known = topics.get(topic).is_some_and(|t| partition < t.meta.partitions);
        if !known {
            tracing::warn!(dir = %entry.path().display(), "removing partition directory of a deleted topic");
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove orphan partition");
            }
        }
    }
}

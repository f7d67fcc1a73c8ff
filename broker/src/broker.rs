//! The broker's shared state: cluster metadata, and for every topic its
//! resolved settings and partition logs. Start-up recovery happens here
//! (`Broker::open`), as do topic creation and deletion, so that the
//! metadata store and the logs on disk never disagree for long.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use sluice_raft::{MetadataError, MetadataStore, TopicMetadata};
use sluice_storage::{PartitionLog, StorageError};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::Config;
use crate::topic_config::TopicSettings;

/// Names Kafka treats as internal topics.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// One partition: its log, and a notification fired after every append so
/// long-polling fetches wake at once instead of sleeping.
pub struct Partition {
    log: Mutex<PartitionLog>,
    pub appended: Notify,
}

impl Partition {
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        // A panic while holding the lock cannot leave a half-written batch
        // visible (segments cut failed writes back), so keep serving.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Topic {
    pub meta: TopicMetadata,
    pub settings: TopicSettings,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }

    pub fn is_internal(&self) -> bool {
        INTERNAL_TOPICS.contains(&self.meta.name.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct Broker {
    pub config: Config,
    /// Port clients are told to use (the bound port when configured as 0).
    pub advertised_port: u16,
    cluster_id: String,
    store: Mutex<MetadataStore>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

impl Broker {
    /// Loads metadata and recovers every partition log under the data dir.
    pub fn open(config: Config, advertised_port: u16) -> Result<Self, BrokerError> {
        let store = MetadataStore::open(&config.data_dir.join("meta"))?;
        let mut topics = HashMap::new();
        for meta in store.state().topics.values() {
            let topic = open_topic(&config.data_dir, meta.clone())?;
            topics.insert(meta.name.clone(), Arc::new(topic));
        }
        remove_orphan_partition_dirs(&config.data_dir, &topics);
        Ok(Self {
            config,
            advertised_port,
            cluster_id: store.state().cluster_id.clone(),
            store: Mutex::new(store),
            topics: RwLock::new(topics),
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
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

    /// Creates a topic whose name and configs the caller has validated.
    /// The metadata change is durable before any partition exists.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let meta = store.create_topic(name, partitions, configs)?;
        let topic = match open_topic(&self.config.data_dir, meta) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                // Undo the metadata change so the topic does not half-exist.
                if let Err(undo) = store.delete_topic(name) {
                    tracing::error!(topic = name, error = %undo, "could not roll back a failed topic creation");
                }
                remove_partition_dirs(&self.config.data_dir, name, partitions);
                return Err(e);
            }
        };
        self.topics.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: first from metadata (durably), then its logs.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata, BrokerError> {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let meta = store.delete_topic(name)?;
        let removed = self.topics.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        if let Some(topic) = removed {
            for p in &topic.partitions {
                p.appended.notify_waiters();
            }
        }
        remove_partition_dirs(&self.config.data_dir, name, meta.partitions);
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }

    /// fdatasyncs every partition's active segment.
    pub fn flush_all(&self) {
        for topic in self.topics() {
            for (i, p) in topic.partitions.iter().enumerate() {
                if let Err(e) = p.log().flush() {
                    tracing::error!(topic = %topic.meta.name, partition = i, error = %e, "flush failed");
                }
            }
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

fn open_topic(data_dir: &Path, meta: TopicMetadata) -> Result<Topic, BrokerError> {
    let settings = TopicSettings::from_overrides(&meta.configs);
    let partitions = (0..meta.partitions)
        .map(|p| {
            let log = PartitionLog::open(&partition_dir(data_dir, &meta.name, p), settings.log_config())?;
            Ok(Arc::new(Partition { log: Mutex::new(log), appended: Notify::new() }))
        })
        .collect::<Result<_, StorageError>>()?;
    Ok(Topic { meta, settings, partitions })
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

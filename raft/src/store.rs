//! Durable single-node metadata store: the whole `ClusterMetadata` as one
//! JSON snapshot, replaced atomically (write temp, fsync, rename, fsync dir)
//! on every change, so a crash leaves either the old or the new state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::model::{ClusterMetadata, TopicMetadata};

const FILE_NAME: &str = "cluster-metadata.json";

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata file {path} is unreadable: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub struct MetadataStore {
    dir: PathBuf,
    state: ClusterMetadata,
}

impl MetadataStore {
    /// Loads the metadata in `dir`, or starts a new cluster with a fresh id.
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| MetadataError::Io { op, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create metadata dir", dir))?;
        let path = dir.join(FILE_NAME);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| MetadataError::Corrupt { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = ClusterMetadata { cluster_id: new_cluster_id(), topics: BTreeMap::new() };
                let store = Self { dir: dir.to_owned(), state };
                store.persist(&store.state)?;
                return Ok(store);
            }
            Err(e) => return Err(io("read metadata", &path)(e)),
        };
        Ok(Self { dir: dir.to_owned(), state })
    }

    pub fn state(&self) -> &ClusterMetadata {
        &self.state
    }

    /// Creates a topic; the name must already be validated.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMetadata, MetadataError> {
        if self.state.topics.contains_key(name) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        let topic = TopicMetadata { name: name.to_string(), id: Uuid::new_v4(), partitions, configs };
        let mut next = self.state.clone();
        next.topics.insert(name.to_string(), topic.clone());
        self.persist(&next)?;
        self.state = next;
        Ok(topic)
    }

    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMetadata, MetadataError> {
        let mut next = self.state.clone();
        let topic = next.topics.remove(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.persist(&next)?;
        self.state = next;
        Ok(topic)
    }

    fn persist(&self, state: &ClusterMetadata) -> Result<(), MetadataError> {
        let path = self.dir.join(FILE_NAME);
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| MetadataError::Io { op, path, source }
        };
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|source| MetadataError::Corrupt { path: path.clone(), source })?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
            f.write_all(&bytes).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("fsync", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("fsync", &self.dir))
    }
}

/// A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 0x3f) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_survive_reopen_and_ids_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::open(dir.path()).unwrap();
        let cluster_id = store.state().cluster_id.clone();
        assert_eq!(cluster_id.len(), 22);
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        let t = store.create_topic("a", 3, configs).unwrap();
        store.create_topic("b", 1, BTreeMap::new()).unwrap();
        assert!(matches!(store.create_topic("a", 1, BTreeMap::new()), Err(MetadataError::TopicExists(_))));
        store.delete_topic("b").unwrap();
        assert!(matches!(store.delete_topic("b"), Err(MetadataError::UnknownTopic(_))));

        let reopened = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(reopened.state().cluster_id, cluster_id);
        assert_eq!(reopened.state().topics.len(), 1);
        assert_eq!(reopened.state().topics["a"], t);
        assert_eq!(reopened.state().topic_by_id(t.id).unwrap().name, "a");
    }
}

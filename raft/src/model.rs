//! Cluster metadata as plain data: what every broker agrees on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// "No leader" in Kafka's metadata answers.
pub const NO_LEADER: i32 = -1;

/// One partition's replication state, as the controller decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// In-sync replicas: the leader and the followers caught up with it.
    pub isr: Vec<i32>,
    /// The serving replica, or [`NO_LEADER`] when no ISR member is alive.
    pub leader: i32,
    /// Bumped on every leader change; fences stale leaders and followers.
    pub leader_epoch: i32,
    /// Bumped on every change (ISR or leader), so a leader's ISR change
    /// based on an older state is refused.
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): replicas being added (in
    /// `replicas` already, catching up) and replicas to drop once every
    /// target replica is in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionState {
    pub fn new(replicas: Vec<i32>, leader: i32) -> Self {
        let isr = replicas.clone();
        Self { replicas, isr, leader, leader_epoch: 0, partition_epoch: 0, adding: Vec::new(), removing: Vec::new() }
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas a reassignment ends with (all of them when none runs).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing.contains(r)).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionState>,
    /// Per-topic overrides of broker defaults (`cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
}

impl TopicMetadata {
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    pub fn partition(&self, index: i32) -> Option<&PartitionState> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }

    /// Whether the topic's override allows electing a replica outside the ISR.
    pub fn unclean_election(&self) -> bool {
        self.configs.get("unclean.leader.election.enable").is_some_and(|v| v == "true")
    }
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Identifies the broker's data directory: a broker coming back with a
    /// different one lost its logs and is no longer in any ISR.
    pub incarnation: Uuid,
    /// Bumped by every registration (Kafka's broker epoch): fetches and ISR
    /// changes carry it, so a broker's earlier incarnation is told apart.
    #[serde(default)]
    pub epoch: i64,
    /// Fenced brokers missed their heartbeats: they lead nothing and are
    /// not in any ISR until they are heard from again.
    pub fenced: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Empty until the first controller names the cluster.
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicMetadata>,
    /// The first producer id not yet handed out in a block: ids are
    /// allocated here, in blocks, so they never repeat across restarts or
    /// brokers (Kafka's AllocateProducerIds).
    #[serde(default)]
    pub next_producer_id: i64,
    /// Each raft node's storage id, pinned by `ClaimVoterStorage` and
    /// dropped when the node leaves the membership.
    #[serde(default)]
    pub voter_storage: BTreeMap<u64, Uuid>,
}

impl ClusterMetadata {
    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicMetadata> {
        self.topics.values().find(|t| t.id == id)
    }

    /// Brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn is_live(&self, broker: i32) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name cannot be '.' or '..'")]
    Dots,
    #[error("topic name is {0} characters long, over the limit of 249")]
    TooLong(usize),
    #[error("topic name '{0}' contains characters other than ASCII alphanumerics, '.', '_' and '-'")]
    BadCharacter(String),
}

/// Kafka's topic name rules (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > 249 {
        return Err(TopicNameError::TooLong(name.len()));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(TopicNameError::BadCharacter(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert!(matches!(validate_topic_name(&"a".repeat(250)), Err(TopicNameError::TooLong(250))));
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(matches!(validate_topic_name("a/b"), Err(TopicNameError::BadCharacter(_))));
        assert!(matches!(validate_topic_name("ü"), Err(TopicNameError::BadCharacter(_))));
    }
}

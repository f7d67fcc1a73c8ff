//! Why the state machine refuses a command: each reason maps to one Kafka
//! error code where the broker answers a client.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a command was refused; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    /// The proposer's view of the partition is stale.
    #[error("leader epoch or partition epoch is stale")]
    FencedLeaderEpoch,
    #[error("{0}")]
    InvalidIsr(String),
    /// An ISR joiner's broker epoch is not its current registration's.
    #[error("broker {0} registered again since the leader saw it fetch")]
    IneligibleReplica(i32),
    #[error("raft node {node} has storage id {known}")]
    StorageMismatch { node: u64, known: Uuid },
    #[error("every producer id has been handed out")]
    ProducerIdsExhausted,
    #[error("no reassignment is in progress for the partition")]
    NoReassignmentInProgress,
    #[error("the partition does not exist")]
    UnknownPartition,
    #[error("config {0} changed while the change was computed")]
    ConfigChanged(String),
}

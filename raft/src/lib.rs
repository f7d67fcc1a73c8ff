//! The metadata quorum: one openraft group whose log and state machine live
//! in RocksDB, holding the cluster metadata every broker agrees on —
//! brokers and their liveness, topics, partition replicas, leaders, leader
//! epochs and ISRs, topic configs. Changes are [`Command`]s; the state
//! machine applies them deterministically on every node.

mod apply;
mod assign;
mod command;
mod election;
mod error;
mod model;
mod network;
mod quorum;
mod storage;

pub use command::{Command, Election, Outcome, Reply, MAX_PARTITIONS, PRODUCER_ID_BLOCK};
pub use error::ApplyError;
pub use model::{
    validate_topic_name, BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata, TopicNameError, NO_LEADER,
};
pub use network::{VoterChange, VoterChangeError, Voters};
pub use quorum::{new_cluster_id, MetadataQuorum, QuorumConfig, QuorumError};
pub use storage::MetadataView;

openraft::declare_raft_types!(
    /// The quorum's raft types: metadata commands in, outcomes out.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

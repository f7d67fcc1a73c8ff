//! The metadata changes the quorum agrees on ([`Command`]) and what
//! applying one answers. How each changes the metadata is in `apply.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApplyError;
use crate::model::{PartitionState, TopicMetadata};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Names the cluster; only the first one counts.
    InitCluster {
        cluster_id: String,
    },
    RegisterBroker {
        id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        incarnation: Uuid,
    },
    /// The controller stopped hearing from a broker.
    FenceBroker {
        id: i32,
    },
    /// A fenced broker is heard from again.
    UnfenceBroker {
        id: i32,
    },
    /// Replicas are placed by [`crate::assign`] unless `assignments` (one
    /// replica list per partition) says where.
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows a topic to `count` partitions, placed like new topics' unless
    /// `assignments` (one replica list per new partition) says where.
    CreatePartitions {
        name: String,
        count: i32,
        assignments: Vec<Vec<i32>>,
    },
    /// A partition leader shrinks or expands its ISR.
    AlterIsr {
        topic: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
        /// The broker epoch each joining member fetched with (KIP-903): a
        /// joiner registered again since is another incarnation, whose
        /// log the leader has not seen. Missing in entries written before.
        #[serde(default)]
        joiner_epochs: BTreeMap<i32, i64>,
    },
    /// A broker needs producer ids: hands it the next block.
    AllocateProducerIds {
        broker: i32,
    },
    /// ElectLeaders: makes each partition's preferred replica (the first)
    /// its leader, or with `unclean` gives leaderless partitions any live
    /// replica. `None`: every partition.
    ElectLeaders {
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    },
    /// AlterPartitionReassignments (KIP-455): moves each partition to the
    /// target replicas (`None` cancels its reassignment). New replicas join
    /// first; the old ones leave once every target replica is in the ISR.
    ReassignPartitions {
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    },
    /// Changes a topic's config overrides: with `replace` the overrides
    /// become exactly `changes` (AlterConfigs), else each name is set or,
    /// with `None`, removed (IncrementalAlterConfigs). Values are validated
    /// by the proposer.
    AlterTopicConfigs {
        name: String,
        replace: bool,
        changes: BTreeMap<String, Option<String>>,
        /// Overrides the changes were computed from (APPEND/SUBTRACT): if
        /// any differs now, the command is refused and the proposer retries.
        #[serde(default)]
        expected: BTreeMap<String, Option<String>>,
    },
    /// Pins the storage id (KIP-853's directory id) of raft node `node`: a
    /// node started on another data directory is not that voter. The node
    /// claims its own on first start (refused if another is pinned);
    /// AddRaftVoter, an operator's decision, claims with `replace`.
    ClaimVoterStorage {
        node: u64,
        storage: Uuid,
        replace: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    Topic(TopicMetadata),
    Partition(PartitionState),
    /// Producer ids `first..first + PRODUCER_ID_BLOCK` belong to the broker.
    ProducerIds {
        first: i64,
    },
    /// Each partition ElectLeaders asked about, and what happened.
    Elections(Vec<(String, i32, Election)>),
    /// Each partition of a ReassignPartitions, and whether it was refused.
    Reassignments(Vec<(String, i32, Option<ApplyError>)>),
}

/// One partition's leader election, as Kafka reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    Elected,
    /// The preferred replica already leads (or, unclean, a leader exists).
    NotNeeded,
    /// The preferred replica is fenced or out of the ISR.
    PreferredNotAvailable,
    /// No live replica may lead.
    EligibleNotAvailable,
    UnknownPartition,
}

/// Producer ids per allocation, as Kafka's controller hands them out.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

pub type Outcome = Result<Reply, ApplyError>;

/// Most partitions one topic may have (every node allocates them on apply).
pub const MAX_PARTITIONS: i32 = 100_000;

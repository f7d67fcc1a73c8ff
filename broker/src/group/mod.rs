//! The group coordinator: Kafka's classic rebalance protocol. Every group
//! belongs to one partition of `__consumer_offsets` (Kafka's hash of the
//! group id), and its state lives on the shard that owns that partition,
//! so a group is only ever touched by one thread and needs no lock.
//! Committed offsets are appended to that partition before they are
//! acknowledged and are replayed from it at start-up.

mod coordinator;
mod offsets_log;
mod state;

pub use coordinator::{
    kafka_partition, partition_for, Coordinator, Loading, OffsetEntry, MAX_METADATA_BYTES, OFFSETS_PARTITIONS,
    OFFSETS_TOPIC,
};
pub use offsets_log::{
    decode_batch, encode_offset_commit, encode_offset_tombstone, encode_txn_offset_commit, OffsetRecord, Replayed,
};
pub use state::{Committed, Group, GroupState, JoinOutcome, JoinRequest, MemberSnapshot, SyncOutcome};

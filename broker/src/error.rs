//! The broker's error types that cross modules, and their mapping onto
//! Kafka error codes: one place for "which code does a client get".

use kafka_protocol::ResponseError;
use sluice_storage::StorageError;

/// Why an append could not be confirmed as committed.
#[derive(Debug)]
pub enum CommitError {
    Kafka(ResponseError),
    Storage(StorageError),
}

/// Why a group or transaction request could not reach its coordinator.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorRouteError {
    /// The internal topic could not be created or its shard is stopping.
    #[error("the group coordinator is not available")]
    NotReady,
    /// This broker does not lead the group's `__consumer_offsets` partition.
    #[error("this broker does not coordinate the group")]
    Moved,
    /// It just became the leader and is still replaying the partition.
    #[error("the group coordinator is loading")]
    Loading,
}

/// Kafka error codes, by name, for handlers.
pub mod code {
    use kafka_protocol::ResponseError as E;
    pub const NONE: i16 = 0;
    pub fn of(e: E) -> i16 {
        e.code()
    }
}

/// The error a group request gets when its `__consumer_offsets` write
/// fails, as Kafka's group coordinator maps them.
pub fn commit_error(e: &CommitError) -> i16 {
    use kafka_protocol::ResponseError as E;
    code::of(match e {
        CommitError::Kafka(E::NotLeaderOrFollower) | CommitError::Storage(_) => E::NotCoordinator,
        CommitError::Kafka(
            E::NotEnoughReplicas | E::NotEnoughReplicasAfterAppend | E::RequestTimedOut | E::UnknownTopicOrPartition,
        ) => E::CoordinatorNotAvailable,
        CommitError::Kafka(_) => E::UnknownServerError,
    })
}

/// The error a group request gets when it cannot reach its coordinator.
pub fn route_error(e: &CoordinatorRouteError) -> i16 {
    use kafka_protocol::ResponseError as E;
    match e {
        CoordinatorRouteError::NotReady => code::of(E::CoordinatorNotAvailable),
        CoordinatorRouteError::Moved => code::of(E::NotCoordinator),
        CoordinatorRouteError::Loading => code::of(E::CoordinatorLoadInProgress),
    }
}

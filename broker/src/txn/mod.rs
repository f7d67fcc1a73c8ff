//! The transaction coordinator (Kafka's TransactionCoordinator). Every
//! transactional id belongs to one partition of `__transaction_state`
//! (Kafka's hash of the id); its state lives on the shard that owns that
//! partition, which must lead it, so a transaction is only ever touched by
//! one thread. Each state change is written to that partition (acks=all)
//! before it takes effect and is replayed from it when a broker becomes
//! the partition's leader, which then finishes any transaction it finds
//! half-way through committing or aborting.
//!
//! The state machine is Kafka's: Empty → Ongoing (partitions added) →
//! PrepareCommit/PrepareAbort (EndTxn, a timeout, or a fencing re-init)
//! → markers written to every partition → CompleteCommit/CompleteAbort.

pub mod coordinator;
pub mod driver;
mod log;
pub mod markers;
mod state;

pub use log::{decode, encode};
pub use state::{
    partition_for, TxnCoordinator, TxnMetadata, TxnState, ID_EXPIRATION_MS, MAX_TIMEOUT_MS, TXN_PARTITIONS, TXN_TOPIC,
};

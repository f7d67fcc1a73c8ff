//! The sluice broker: configuration, shared state, the network front end
//! and one handler module per Kafka API family.

pub mod broker;
mod broker_configs;
pub mod cli;
pub mod config;
pub mod connection;
mod data_dir;
pub mod error;
pub mod group;
pub mod handlers;
mod internal_records;
pub mod kafka_client;
pub mod replication;
pub mod runtime;
pub mod server;
pub mod topic_config;
pub mod txn;

/// Wall-clock milliseconds since the Unix epoch, as Kafka timestamps count.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

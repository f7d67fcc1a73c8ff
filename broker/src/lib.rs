//! The sluice broker: configuration, shared state, the network front end
//! and one handler module per Kafka API family.

pub mod broker;
pub mod config;
pub mod connection;
pub mod group;
pub mod handlers;
pub mod server;
pub mod shard;
pub mod topic_config;

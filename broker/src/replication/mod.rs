//! Partition replication the Kafka way: the controller (raft) decides each
//! partition's replicas, leader, leader epoch and ISR; every broker applies
//! that to its local replicas (`reconcile`); followers fetch from leaders
//! (`fetcher`) after truncating to where their logs agree; leaders move the
//! high watermark (`replica`) and propose ISR changes (`isr`).

mod fetcher;
pub mod isr;
pub mod reconcile;
pub mod replica;

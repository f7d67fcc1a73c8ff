//! Partition replication the Kafka way: the controller (raft) decides each
//! partition's replicas, leader, leader epoch and ISR; every broker applies
//! that to its local replicas (`reconcile`); followers fetch from leaders
//! (`fetcher`) after truncating to where their logs agree; leaders move the
//! high watermark and propose ISR changes (`replica`).

mod fetcher;
mod reconcile;
mod replica;

use std::rc::Rc;
use std::sync::Arc;

pub(crate) use reconcile::replay_log;
pub use reconcile::{follow_metadata, reconcile};
pub use replica::{CommitError, Replica, Replicas, Role};

use crate::broker::Broker;
use crate::shard::ShardContext;

/// Leaders on this shard drop followers that have not caught up within
/// `replica.lag.time.max.ms` from the ISR; checked at half that period.
pub async fn shrink_isrs_periodically(broker: Arc<Broker>, ctx: Rc<ShardContext>) {
    let max_lag = broker.config.replica_lag_time_max;
    let me = broker.node_id();
    while broker.shutdown.tick(max_lag / 2).await {
        for ((topic, _), replica) in ctx.all() {
            if let Some(isr) = replica.shrunk_isr(me, max_lag) {
                tracing::warn!(topic = %replica.topic, partition = replica.index, ?isr, "follower fell behind: shrinking the ISR");
                if let Some(command) = replica.isr_change(me, topic, isr) {
                    broker.propose_in_background(command);
                }
            }
        }
    }
}

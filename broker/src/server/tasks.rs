//! The periodic work of each shard that goes through the broker: aborting
//! transactions past their timeout, and expiring committed offsets.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::runtime::shard::ShardContext;
use crate::runtime::shutdown::Shutdown;

/// How often each shard looks for transactions past their timeout (Kafka
/// checks every 10 s; a shorter period only makes aborts more punctual).
const TXN_TIMEOUT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub async fn expire_transactions_periodically(broker: Arc<Broker>, ctx: Rc<ShardContext>, shutdown: Shutdown) {
    while shutdown.tick(TXN_TIMEOUT_CHECK_INTERVAL).await {
        crate::txn::driver::expire(&broker, &ctx).await;
    }
}

/// Kafka's `offsets.retention.check.interval.ms` default.
const OFFSETS_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(600);

pub async fn expire_offsets_periodically(broker: Arc<Broker>, ctx: Rc<ShardContext>, shutdown: Shutdown) {
    while shutdown.tick(OFFSETS_RETENTION_CHECK_INTERVAL).await {
        let now = crate::now_ms();
        let Some(topic) = broker.topic(crate::group::OFFSETS_TOPIC) else { continue };
        for (group, expired) in ctx.coordinator.expired_offsets(now) {
            let Some(replica) = topic.tp(crate::group::partition_for(&group)).and_then(|tp| ctx.replica(&tp)) else {
                continue;
            };
            let tombstones = crate::group::encode_offset_tombstone(&group, &expired, now);
            match replica.append_group_record(tombstones).await {
                Ok(_) => ctx.coordinator.forget(&group, &expired),
                Err(e) => tracing::warn!(%group, error = ?e, "could not expire committed offsets"),
            }
        }
    }
}

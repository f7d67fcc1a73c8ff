//! A leader's ISR changes: shrinking the ISR of followers that fell behind,
//! and proposing a change to the controller with its answer handed back to
//! the replica.

use std::rc::Rc;
use std::sync::Arc;

use sluice_raft::{ApplyError, Command};

use super::replica::{IsrAnswer, Replica};
use crate::broker::Broker;
use crate::runtime::shard::ShardContext;

/// Leaders on this shard drop followers that have not caught up within
/// `replica.lag.time.max.ms` from the ISR; checked at half that period
/// (which also resends an ISR change left unanswered).
pub async fn shrink_isrs_periodically(broker: Arc<Broker>, ctx: Rc<ShardContext>) {
    let max_lag = broker.config.replica_lag_time_max;
    let me = broker.node_id();
    while broker.shutdown.tick(max_lag / 2).await {
        for ((topic, _), replica) in ctx.all() {
            if let Some(isr) = replica.shrunk_isr(me, max_lag) {
                tracing::warn!(topic = %replica.topic, partition = replica.index, ?isr, "follower fell behind: shrinking the ISR");
                propose_isr_change(&broker, &replica, topic, isr);
            }
        }
    }
}

/// Sends a leader's ISR change to the controller and hands the answer back
/// to the replica, which keeps counting the proposed members for the high
/// watermark until it knows the outcome.
pub fn propose_isr_change(broker: &Arc<Broker>, replica: &Rc<Replica>, topic: uuid::Uuid, isr: Vec<i32>) {
    let Some(command) = replica.isr_change(broker.node_id(), topic, isr.clone()) else { return };
    let Command::AlterIsr { partition_epoch, .. } = command else { return };
    let answer = broker.propose_with_answer(command);
    let replica = replica.clone();
    tokio::task::spawn_local(async move {
        let answer = match answer.await {
            Ok(Ok((Ok(_), _))) => IsrAnswer::Decided,
            Ok(Ok((Err(ApplyError::FencedLeaderEpoch | ApplyError::UnknownTopic(_)), _))) => IsrAnswer::Decided,
            Ok(Ok((Err(e), _))) => {
                tracing::info!(topic = %replica.topic, partition = replica.index, error = %e, "ISR change refused");
                IsrAnswer::Refused
            }
            Ok(Err(e)) => {
                tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "ISR change not answered");
                IsrAnswer::Unknown
            }
            Err(_) => IsrAnswer::Unknown,
        };
        replica.isr_change_answered(partition_epoch, &isr, answer);
    });
}

//! What moves transactions along on a coordinator shard: writing each
//! state change to `__transaction_state` before it takes effect, writing
//! the markers of a prepared transaction and completing it, aborting
//! transactions past their timeout, and loading a partition this shard
//! has just become the leader of (resuming what it finds half done).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::markers::{self, Marker};
use super::{TxnCoordinator, TxnMetadata};
use crate::broker::Broker;
use crate::error::CommitError;
use crate::replication::replica::Replica;
use crate::runtime::shard::ShardContext;

/// How long a state change may wait for replication (Kafka's
/// transaction.state.log write uses the request timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes `next` as the new state of `id` and installs it once it is
/// committed. Fails with CONCURRENT_TRANSACTIONS if another change to `id`
/// is being written.
pub async fn persist(
    coord: &TxnCoordinator,
    replica: &Replica,
    id: &str,
    next: TxnMetadata,
) -> Result<(), ResponseError> {
    if !coord.begin_change(id) {
        return Err(ResponseError::ConcurrentTransactions);
    }
    let batch = super::encode(id, Some(&next), crate::now_ms());
    let written = replica.append_committed(batch, coord.min_isr.get().max(1), WRITE_TIMEOUT).await;
    coord.end_change(id);
    match written {
        // Leadership lost meanwhile: the next leader replays the log, and
        // this shard no longer holds the partition's transactions.
        Ok(_) if !replica.is_leader() => Err(ResponseError::NotCoordinator),
        Ok(_) => {
            coord.put(id, next);
            Ok(())
        }
        Err(e) => Err(append_error(&e)),
    }
}

/// The error a transaction request gets when its state cannot be written,
/// as Kafka's coordinator maps them.
fn append_error(e: &CommitError) -> ResponseError {
    match e {
        CommitError::Kafka(ResponseError::NotLeaderOrFollower) | CommitError::Storage(_) => {
            ResponseError::NotCoordinator
        }
        CommitError::Kafka(_) => ResponseError::CoordinatorNotAvailable,
    }
}

/// Writes the markers of a prepared transaction, then its completion,
/// in the background: the client was answered once the decision was
/// written. Stops if this shard stops coordinating the transaction.
pub fn complete_in_background(broker: Arc<Broker>, ctx: Rc<ShardContext>, replica: Rc<Replica>, id: String) {
    tokio::task::spawn_local(async move {
        let epoch = replica.leader_epoch();
        let still = markers::still_leads(&replica, epoch);
        let Some(prepared) = ctx.transactions.get(&id).filter(|m| m.state.is_preparing()) else { return };
        let marker = Marker {
            producer_id: prepared.producer_id,
            producer_epoch: prepared.producer_epoch,
            coordinator_epoch: epoch,
            commit: prepared.state == super::TxnState::PrepareCommit,
        };
        if !markers::deliver(&broker, marker, &prepared.partitions, &still).await {
            return;
        }
        let mut backoff = Duration::from_millis(50);
        while still() && !broker.shutdown.is_set() {
            match persist(&ctx.transactions, &replica, &id, prepared.completed(crate::now_ms())).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(transactional_id = %id, error = %e, "cannot complete the transaction yet"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    });
}

/// Replays a `__transaction_state` partition this shard leads in
/// `leader_epoch`, then finishes every transaction it left prepared but not
/// completed. Whether it loaded whole while still leading.
pub async fn load(broker: &Arc<Broker>, ctx: &Rc<ShardContext>, replica: &Rc<Replica>, leader_epoch: i32) -> bool {
    let replayed = replica.replay(leader_epoch, |bytes| {
        let (records, next) = super::decode(bytes);
        records.into_iter().for_each(|(id, meta)| ctx.transactions.replay(id, meta));
        next
    });
    match replayed.await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::error!(partition = replica.index, error = %e, "cannot load transaction state");
            return false;
        }
    }
    for (id, meta) in ctx.transactions.all() {
        if super::partition_for(&id) == replica.index && meta.state.is_preparing() {
            complete_in_background(broker.clone(), ctx.clone(), replica.clone(), id);
        }
    }
    true
}

/// Aborts transactions open longer than their timeout, fencing their
/// producer (Kafka's transaction expiration), and forgets ids unused for
/// `transactional.id.expiration.ms`.
pub async fn expire(broker: &Arc<Broker>, ctx: &Rc<ShardContext>) {
    let now = crate::now_ms();
    let Some(topic) = broker.topic(super::TXN_TOPIC) else { return };
    let ids: Vec<String> = ctx.transactions.all().into_iter().map(|(id, _)| id).collect();
    for id in ids {
        let Some(replica) = topic.tp(super::partition_for(&id)).and_then(|tp| ctx.replica(&tp)) else { continue };
        if !replica.is_leader() || ctx.transactions.loading.contains(replica.index) {
            continue;
        }
        // The state as it is now (earlier iterations awaited writes, and
        // requests for this id ran meanwhile): nothing awaits between this
        // read and the change being marked in flight.
        let Some(meta) = ctx.transactions.get(&id) else { continue };
        if meta.timed_out(now) {
            tracing::info!(transactional_id = %id, producer_id = meta.producer_id, "aborting a timed-out transaction");
            if persist(&ctx.transactions, &replica, &id, meta.fence_and_abort(now)).await.is_ok() {
                complete_in_background(broker.clone(), ctx.clone(), replica, id);
            }
        } else if !meta.state.is_preparing()
            && meta.state != super::TxnState::Ongoing
            && now - meta.last_update_ms > super::ID_EXPIRATION_MS
            && ctx.transactions.begin_change(&id)
        {
            let tombstone = super::encode(&id, None, now);
            let written = replica.append_group_record(tombstone).await;
            ctx.transactions.end_change(&id);
            if written.is_ok() {
                ctx.transactions.remove(&id);
            }
        }
    }
}

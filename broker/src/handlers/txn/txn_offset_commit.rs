//! TxnOffsetCommit: offsets written inside the producer's transaction.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::{encode_txn_offset_commit, OFFSETS_TOPIC};
use crate::txn::coordinator::verify_produce;

/// TxnOffsetCommit: offsets written to `__consumer_offsets` inside the
/// producer's transaction; they count once it commits.
pub async fn handle(broker: &Arc<Broker>, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let planned = crate::handlers::group::offset_commit::plan_commit(
        broker,
        req.topics.iter().map(|t| {
            let parts = t.partitions.iter().map(|p| {
                (p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata.as_ref())
            });
            (&t.name, parts.collect())
        }),
    );
    let to_write = crate::handlers::group::offset_commit::entries_to_write(&planned);
    let group_id = req.group_id.to_string();
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
    let (generation, producer_id, producer_epoch) = (req.generation_id, req.producer_id.0, req.producer_epoch);
    // KIP-890: the group's offsets partition must be in the producer's
    // transaction (AddOffsetsToTxn), or no marker would ever settle these.
    let offsets_partition = crate::group::partition_for(&group_id);
    let txn_id = req.transactional_id.to_string();
    let verified = verify_produce(broker, Some(&txn_id), producer_id, producer_epoch, OFFSETS_TOPIC, offsets_partition);
    let outcome = match verified.await {
        Err(e) => Ok(code::of(e)),
        Ok(()) => {
            broker
                .with_coordinator(&group_id.clone(), move |coord, offsets| async move {
                    // Member and generation are checked only when the
                    // producer sent them (KIP-447, v3+), as Kafka does.
                    if generation >= 0 || !member_id.is_empty() {
                        let Some(group) = coord.get(&group_id) else { return code::of(E::IllegalGeneration) };
                        let check = group.borrow().check_commit(&member_id, instance_id.as_deref(), generation);
                        if check != 0 {
                            return check;
                        }
                    }
                    if to_write.is_empty() {
                        return code::NONE;
                    }
                    let now = crate::now_ms();
                    let batch = encode_txn_offset_commit(&group_id, &to_write, now, producer_id, producer_epoch);
                    coord.add_txn_offsets(producer_id, &group_id, to_write.clone());
                    match offsets.append_group_record(batch).await {
                        Ok(_) => code::NONE,
                        Err(e) => {
                            tracing::warn!(group = %group_id, error = ?e, "writing transactional offsets failed");
                            coord.discard_txn_offsets(producer_id, &group_id, &to_write);
                            match e {
                                crate::error::CommitError::Kafka(E::InvalidProducerEpoch) => {
                                    code::of(E::ProducerFenced)
                                }
                                e => crate::error::commit_error(&e),
                            }
                        }
                    }
                })
                .await
        }
    };
    let group_error = outcome.unwrap_or_else(|e| route_error(&e));
    let topics = planned
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, entry)| {
                    let error = entry.err().unwrap_or(group_error);
                    TxnOffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(error)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

//! OffsetCommit: offsets written to `__consumer_offsets` before they are
//! acknowledged; the checks before the write are shared with
//! TxnOffsetCommit.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::{encode_offset_commit, Committed, OffsetEntry, MAX_METADATA_BYTES};

pub async fn handle(broker: &Arc<Broker>, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let planned = plan_commit(
        broker,
        req.topics.iter().map(|t| {
            let parts = t.partitions.iter().map(|p| {
                (p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata.as_ref())
            });
            (&t.name, parts.collect())
        }),
    );
    let group_id = req.group_id.to_string();
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
    let generation = req.generation_id_or_member_epoch;
    let to_write = entries_to_write(&planned);
    let outcome = broker
        .with_coordinator(&group_id.clone(), move |coord, offsets| async move {
            let group = match coord.get(&group_id) {
                Some(g) => g,
                // Only a consumer outside group management (generation -1)
                // may create a group by committing, as in Kafka.
                None if generation < 0 => coord.get_or_create(&group_id),
                None if version >= 9 => return code::of(E::GroupIdNotFound),
                None => return code::of(E::IllegalGeneration),
            };
            let check = group.borrow().check_commit(&member_id, instance_id.as_deref(), generation);
            if check != 0 {
                return check;
            }
            if to_write.is_empty() {
                return 0;
            }
            let batch = encode_offset_commit(&group_id, &to_write, crate::now_ms());
            if let Err(e) = offsets.append_group_record(batch).await {
                tracing::warn!(group = %group_id, error = ?e, "writing committed offsets failed");
                return crate::error::commit_error(&e);
            }
            let mut g = group.borrow_mut();
            for (topic, partition, c) in to_write {
                g.offsets.insert((topic, partition), c);
            }
            0
        })
        .await;
    let group_error = outcome.unwrap_or_else(|e| route_error(&e));
    let topics = planned
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, entry)| {
                    let error = match entry {
                        Ok(_) => group_error,
                        Err(code) => code,
                    };
                    OffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(error)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Per partition of a commit: the entry to write, or an error decided up front.
pub(crate) type PlannedTopic = (TopicName, Vec<(i32, Result<Committed, i16>)>);

/// A partition's commit as requested: (partition, offset, leader epoch, metadata).
type Requested<'a> = (i32, i64, i32, Option<&'a StrBytes>);

/// Checks each requested commit (OffsetCommit, TxnOffsetCommit) as Kafka
/// does before writing: the partition must exist, the metadata fit.
pub(crate) fn plan_commit<'a>(
    broker: &Broker,
    topics: impl Iterator<Item = (&'a TopicName, Vec<Requested<'a>>)>,
) -> Vec<PlannedTopic> {
    let now = crate::now_ms();
    topics
        .map(|(name, parts)| {
            let topic = broker.topic(name);
            let parts = parts
                .into_iter()
                .map(|(partition, offset, leader_epoch, metadata)| {
                    let entry = if topic.as_ref().and_then(|topic| topic.tp(partition)).is_none() {
                        Err(code::of(E::UnknownTopicOrPartition))
                    } else if metadata.is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
                        Err(code::of(E::OffsetMetadataTooLarge))
                    } else {
                        let metadata = metadata.map(|m| m.to_string());
                        Ok(Committed { offset, leader_epoch, metadata, commit_timestamp: now })
                    };
                    (partition, entry)
                })
                .collect();
            (name.clone(), parts)
        })
        .collect()
}

/// The commits that passed [`plan_commit`]'s checks.
pub(crate) fn entries_to_write(planned: &[PlannedTopic]) -> Vec<OffsetEntry> {
    planned
        .iter()
        .flat_map(|(name, parts)| {
            parts.iter().filter_map(move |(p, e)| e.clone().ok().map(|c| (name.to_string(), *p, c)))
        })
        .collect()
}

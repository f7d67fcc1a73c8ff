//! Committed offsets: OffsetCommit (durable in `__consumer_offsets` before
//! it is acknowledged), OffsetFetch (one group, or many from v8), and
//! OffsetDelete. All run on the group's coordinator shard.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::{
    encode_offset_commit, encode_offset_tombstone, Committed, GroupState, OffsetEntry, MAX_METADATA_BYTES,
};

pub async fn commit(broker: &Arc<Broker>, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
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

/// (topic, partitions) asked for; `None` means every committed offset.
type Wanted = Option<Vec<(String, Vec<i32>)>>;
/// (partition, offset, leader epoch, metadata, error) as OffsetFetch reports it.
type FoundOffset = (i32, i64, i32, Option<String>, i16);
/// Per topic, the offsets found.
type Found = Vec<(String, Vec<FoundOffset>)>;
/// Per partition of a commit: the entry to write, or an error decided up front.
pub(super) type PlannedTopic = (TopicName, Vec<(i32, Result<Committed, i16>)>);
/// A partition's commit as requested: (partition, offset, leader epoch, metadata).
type Requested<'a> = (i32, i64, i32, Option<&'a StrBytes>);

/// Checks each requested commit (OffsetCommit, TxnOffsetCommit) as Kafka
/// does before writing: the partition must exist, the metadata fit.
pub(super) fn plan_commit<'a>(
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
pub(super) fn entries_to_write(planned: &[PlannedTopic]) -> Vec<OffsetEntry> {
    planned
        .iter()
        .flat_map(|(name, parts)| {
            parts.iter().filter_map(move |(p, e)| e.clone().ok().map(|c| (name.to_string(), *p, c)))
        })
        .collect()
}

/// A group's committed offsets. With `require_stable` (KIP-447), an offset
/// an open transaction is about to replace is not answered:
/// UNSTABLE_OFFSET_COMMIT, and the client asks again.
async fn fetch_group(
    broker: &Arc<Broker>,
    group_id: String,
    wanted: Wanted,
    require_stable: bool,
) -> Result<Found, i16> {
    broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            let group = coord.get(&group_id);
            let lookup = |topic: &str, p: i32| {
                if require_stable && coord.has_pending_txn_offset(&group_id, topic, p) {
                    return (p, -1, -1, Some(String::new()), code::of(E::UnstableOffsetCommit));
                }
                group
                    .as_ref()
                    .and_then(|g| g.borrow().offsets.get(&(topic.to_string(), p)).cloned())
                    .map_or((p, -1, -1, Some(String::new()), code::NONE), |c| {
                        (p, c.offset, c.leader_epoch, c.metadata, code::NONE)
                    })
            };
            match wanted {
                Some(topics) => topics
                    .into_iter()
                    .map(|(t, parts)| {
                        let found = parts.iter().map(|&p| lookup(&t, p)).collect();
                        (t, found)
                    })
                    .collect(),
                None => {
                    let mut by_topic: std::collections::BTreeMap<String, Vec<FoundOffset>> = Default::default();
                    if let Some(g) = &group {
                        for (t, p) in g.borrow().offsets.keys() {
                            by_topic.entry(t.clone()).or_default().push(lookup(t, *p));
                        }
                    }
                    by_topic
                        .into_iter()
                        .map(|(t, mut ps)| {
                            ps.sort_by_key(|e| e.0);
                            (t, ps)
                        })
                        .collect()
                }
            }
        })
        .await
        .map_err(|e| route_error(&e))
}

pub async fn fetch(broker: &Arc<Broker>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let s = |v: Option<String>| v.map(StrBytes::from_string);
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let wanted = g
                .topics
                .as_ref()
                .map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
            let base = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match fetch_group(broker, g.group_id.to_string(), wanted, req.require_stable).await {
                Ok(found) => base.with_topics(
                    found
                        .into_iter()
                        .map(|(t, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(t)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, o, e, m, error)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(e)
                                                .with_metadata(s(m))
                                                .with_error_code(error)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
                Err(code) => base.with_error_code(code),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted =
        req.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
    match fetch_group(broker, req.group_id.to_string(), wanted, version >= 7 && req.require_stable).await {
        Ok(found) => {
            let topics = found
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, o, e, m, error)| {
                                let r = OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                                    .with_metadata(s(m))
                                    .with_error_code(error);
                                if version >= 5 {
                                    r.with_committed_leader_epoch(e)
                                } else {
                                    r
                                }
                            })
                            .collect(),
                    )
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
        Err(code) => {
            let resp = OffsetFetchResponse::default();
            if version >= 2 {
                resp.with_error_code(code)
            } else {
                resp
            }
        }
    }
}

pub async fn delete(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = req.group_id.to_string();
    let asked: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions.iter().map(|p| p.partition_index).collect()))
        .collect();
    let request = asked.clone();
    let outcome = broker
        .with_coordinator(&group_id.clone(), move |coord, offsets| async move {
            let Some(group) = coord.get(&group_id) else { return Err(code::of(E::GroupIdNotFound)) };
            if group.borrow().state != GroupState::Empty {
                // Subscriptions are opaque to the broker, so a group with
                // members may be consuming any topic: refuse, as Kafka does
                // for subscribed topics.
                return Ok(request
                    .iter()
                    .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, code::of(E::GroupSubscribedToTopic))).collect()))
                    .collect::<Vec<(String, Vec<(i32, i16)>)>>());
            }
            let doomed: Vec<(String, i32)> = request
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .filter(|k| group.borrow().offsets.contains_key(k))
                .collect();
            if !doomed.is_empty() {
                if offsets
                    .append_group_record(encode_offset_tombstone(&group_id, &doomed, crate::now_ms()))
                    .await
                    .is_err()
                {
                    return Err(code::of(E::KafkaStorageError));
                }
                let mut g = group.borrow_mut();
                for k in &doomed {
                    g.offsets.remove(k);
                }
            }
            Ok(request.iter().map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, 0)).collect())).collect())
        })
        .await
        .unwrap_or_else(|e| Err(route_error(&e)));
    match outcome {
        Err(code) => OffsetDeleteResponse::default().with_error_code(code),
        Ok(per_topic) => OffsetDeleteResponse::default().with_topics(
            per_topic
                .into_iter()
                .map(|(t, ps)| {
                    let known = broker.topic(&t);
                    OffsetDeleteResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(
                        ps.into_iter()
                            .map(|(p, e)| {
                                let e = if known.as_ref().and_then(|k| k.tp(p)).is_none() {
                                    code::of(E::UnknownTopicOrPartition)
                                } else {
                                    e
                                };
                                OffsetDeleteResponsePartition::default().with_partition_index(p).with_error_code(e)
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

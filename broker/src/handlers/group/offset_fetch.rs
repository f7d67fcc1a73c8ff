//! OffsetFetch: one group's committed offsets, or many groups' from v8.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};

/// (topic, partitions) asked for; `None` means every committed offset.
type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// (partition, offset, leader epoch, metadata, error) as OffsetFetch reports it.
type FoundOffset = (i32, i64, i32, Option<String>, i16);

/// Per topic, the offsets found.
type Found = Vec<(String, Vec<FoundOffset>)>;

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

pub async fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
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

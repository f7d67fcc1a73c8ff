//! OffsetDelete: a group's committed offsets for partitions it no longer
//! consumes.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::{encode_offset_tombstone, GroupState};

pub async fn handle(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
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

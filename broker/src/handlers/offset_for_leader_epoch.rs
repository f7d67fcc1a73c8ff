//! OffsetForLeaderEpoch: where a leader epoch's data ends in the leader's
//! log (the start of the next epoch, or the log end for the current one).
//! Followers ask it before fetching in a new epoch to find where their log
//! diverged; clients (KIP-320) ask it after a leader change to detect
//! truncation. Served by the partition's leader only.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::error::code;

pub async fn handle(broker: &Arc<Broker>, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.topic);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let result =
                EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
            let Some(tp) = topic.as_ref().and_then(|t| t.tp(p.partition)) else {
                partitions.push(result.with_error_code(code::of(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let (requested, client_epoch) = (p.leader_epoch, p.current_leader_epoch);
            let answer = broker
                .shards
                .run_on_partition(tp, move |replica| async move {
                    replica.check_leader(client_epoch)?;
                    Ok(replica.log.end_offset_for_epoch(requested))
                })
                .await;
            partitions.push(match answer {
                Ok(Ok((epoch, end))) => result.with_leader_epoch(epoch).with_end_offset(end),
                Ok(Err(e)) => result.with_error_code(code::of(e)),
                Err(e) => result.with_error_code(code::of(e.kafka_error())),
            });
        }
        topics.push(OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions));
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

//! DescribeProducers (KIP-664): the idempotent producers a partition's
//! leader remembers — id, epoch, last sequence and timestamp — for
//! operators looking for stuck or zombie producers. Served by the leader
//! only; no producer here is transactional yet, so coordinator epoch and
//! transaction start offset are -1.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::error::code;

pub async fn handle(broker: &Arc<Broker>, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for index in t.partition_indexes {
            let result = PartitionResponse::default().with_partition_index(index);
            let Some(tp) = topic.as_ref().and_then(|t| t.tp(index)) else {
                partitions.push(result.with_error_code(code::of(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let answer = broker
                .shards
                .run_on_partition(tp, |replica| async move {
                    replica.check_leader(-1)?;
                    Ok(replica.log.active_producers())
                })
                .await;
            partitions.push(match answer {
                Ok(Ok(producers)) => result.with_active_producers(
                    producers
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.epoch))
                                .with_last_sequence(p.last.last_seq)
                                .with_last_timestamp(p.last.max_timestamp)
                                .with_coordinator_epoch(p.coordinator_epoch)
                                .with_current_txn_start_offset(p.txn_first_offset.unwrap_or(-1))
                        })
                        .collect(),
                ),
                Ok(Err(e)) => result.with_error_code(code::of(e)),
                Err(e) => result.with_error_code(code::of(e.kafka_error())),
            });
        }
        topics.push(TopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    DescribeProducersResponse::default().with_topics(topics)
}

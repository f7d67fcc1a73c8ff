//! DeleteRecords: moves a partition's log start offset forward (deleting
//! whole segments below it) and answers the new low watermark.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;
use sluice_storage::StorageError;

use crate::broker::Broker;
use crate::error::code;

pub async fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let result =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
            let fail = |e: ResponseError| result.clone().with_error_code(code::of(e));
            let Some((topic, tp)) = topic.as_ref().and_then(|t| Some((t, t.tp(p.partition_index)?))) else {
                partitions.push(fail(ResponseError::UnknownTopicOrPartition));
                continue;
            };
            if !topic.settings.delete_policy {
                partitions.push(fail(ResponseError::PolicyViolation));
                continue;
            }
            let offset = p.offset;
            let done = broker
                .shards
                .run_on_partition(tp, move |replica| async move {
                    match replica.check_leader(-1) {
                        Ok(()) => Some(replica.log.delete_records(offset).await),
                        Err(_) => None,
                    }
                })
                .await;
            partitions.push(match done {
                Ok(None) => fail(ResponseError::NotLeaderOrFollower),
                Ok(Some(Ok(low))) => result.with_low_watermark(low),
                Ok(Some(Err(StorageError::OffsetOutOfRange { .. }))) => fail(ResponseError::OffsetOutOfRange),
                Ok(Some(Err(e))) => {
                    tracing::error!(topic = %t.name.0, partition = p.partition_index, error = %e, "delete records failed");
                    fail(ResponseError::KafkaStorageError)
                }
                Err(e) => fail(e.kafka_error()),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

//! Produce: validate each partition's batch as Kafka does, append it with
//! offsets assigned by patching `baseOffset`, and wake waiting fetches.
//! A one-node broker is the whole ISR, so acks=1 and acks=-1 both answer
//! once the batch is in the log.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_protocol::batch::{set_log_append_time, validate_produced};

use super::code;
use crate::broker::{Broker, Partition, Topic};

pub fn handle(broker: &Arc<Broker>, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks_valid = matches!(req.acks, -1..=1);
    let responses = req
        .topic_data
        .into_iter()
        .map(|data| {
            let (topic, missing) = if version >= 13 {
                (broker.topic_by_id(data.topic_id), ResponseError::UnknownTopicId)
            } else {
                (broker.topic(&data.name), ResponseError::UnknownTopicOrPartition)
            };
            let partition_responses = data
                .partition_data
                .into_iter()
                .map(|pd| {
                    let failed = |e: ResponseError| failure(pd.index, code::of(e), None);
                    if !acks_valid {
                        return failed(ResponseError::InvalidRequiredAcks);
                    }
                    let Some(topic) = &topic else { return failed(missing) };
                    if topic.is_internal() {
                        return failed(ResponseError::InvalidTopicException);
                    }
                    match topic.partition(pd.index) {
                        Some(p) => append(topic, p, pd.index, pd.records.unwrap_or_default(), version),
                        None => failed(ResponseError::UnknownTopicOrPartition),
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(data.name)
                .with_topic_id(data.topic_id)
                .with_partition_responses(partition_responses)
        })
        .collect();
    (req.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn failure(index: i32, error_code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error_code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

fn append(topic: &Topic, partition: &Partition, index: i32, records: Bytes, version: i16) -> PartitionProduceResponse {
    let header = match validate_produced(&records, version) {
        Ok(h) => h,
        Err(e) => return failure(index, e.error_code(), Some(e.to_string())),
    };
    if header.size() > topic.settings.max_message_bytes {
        let msg =
            format!("batch of {} bytes exceeds max.message.bytes {}", header.size(), topic.settings.max_message_bytes);
        return failure(index, code::of(ResponseError::MessageTooLarge), Some(msg));
    }
    let mut bytes = records.to_vec();
    let append_time = if topic.settings.log_append_time {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        set_log_append_time(&mut bytes, now);
        now
    } else {
        -1
    };
    let result = {
        let mut log = partition.log();
        log.append(&mut bytes).map(|info| (info, log.log_start_offset()))
    };
    match result {
        Ok((info, log_start_offset)) => {
            partition.appended.notify_waiters();
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(append_time)
                .with_log_start_offset(log_start_offset)
        }
        Err(e) => {
            tracing::error!(topic = %topic.meta.name, partition = index, error = %e, "append failed");
            failure(index, code::of(ResponseError::KafkaStorageError), Some(e.to_string()))
        }
    }
}

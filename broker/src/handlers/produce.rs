//! Produce: validate each partition's batch as Kafka does on the shard that
//! received the request, then append it on the partition's owner shard —
//! which must lead the partition — where offsets are assigned by patching
//! `baseOffset` and the leader epoch is stamped; wake waiting fetches and
//! followers. acks=1 answers once the batch is in the leader's log; acks=-1
//! refuses up front when the ISR is below `min.insync.replicas` and answers
//! once the high watermark passes the batch (every ISR member has it).
//! All partitions of a request are appended concurrently. A transactional
//! batch for a partition where its producer has no transaction open yet is
//! first checked with the transaction coordinator (KIP-890).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_protocol::batch::{set_log_append_time, validate_produced};
use sluice_storage::{AppendInfo, LogOffsets};
use uuid::Uuid;

use crate::broker::{Broker, Topic};
use crate::error::code;
use crate::error::CommitError;
use crate::replication::replica::{Acks, Append};
use crate::runtime::shard::{Pending, ShardError};
use crate::topic_config::TopicSettings;

/// A partition's answer: decided already, or waiting on its owner shard.
enum Slot {
    Done(PartitionProduceResponse),
    Appending { index: i32, append_time: i64, pending: Pending<Result<(AppendInfo, LogOffsets), CommitError>> },
}

/// A produce request whose appends are started: each partition's batch is
/// queued on its owner shard, so its place in the log is settled even though
/// the answer may still wait for durability or replication.
pub struct Started {
    acks: i16,
    topics: Vec<(TopicName, Uuid, Vec<Slot>)>,
}

/// Validates every partition's batch and queues its append. Requests
/// started one after another on a connection append in that order.
pub async fn start(broker: &Arc<Broker>, req: ProduceRequest, version: i16) -> Started {
    let acks_valid = matches!(req.acks, -1..=1);
    let transactional_id = req.transactional_id.as_ref().map(|id| id.to_string());
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for data in req.topic_data {
        let (topic, missing) = if version >= 13 {
            (broker.topic_by_id(data.topic_id), ResponseError::UnknownTopicId)
        } else {
            (broker.topic(&data.name), ResponseError::UnknownTopicOrPartition)
        };
        let mut slots = Vec::with_capacity(data.partition_data.len());
        for pd in data.partition_data {
            let failed = |e: ResponseError| Slot::Done(failure(pd.index, code::of(e), None));
            slots.push(match &topic {
                _ if !acks_valid => failed(ResponseError::InvalidRequiredAcks),
                None => failed(missing),
                Some(t) if t.is_internal() => failed(ResponseError::InvalidTopicException),
                Some(t) => {
                    let records = pd.records.unwrap_or_default();
                    let request = Req {
                        version,
                        acks: req.acks,
                        timeout_ms: req.timeout_ms,
                        transactional_id: transactional_id.as_deref(),
                    };
                    start_append(broker, t, pd.index, records, request).await
                }
            });
        }
        topics.push((data.name, data.topic_id, slots));
    }
    Started { acks: req.acks, topics }
}

impl Started {
    /// Waits for every partition's outcome; `None` for acks=0.
    pub async fn finish(self) -> Option<ProduceResponse> {
        let mut responses = Vec::with_capacity(self.topics.len());
        for (name, topic_id, slots) in self.topics {
            let mut partition_responses = Vec::with_capacity(slots.len());
            for slot in slots {
                partition_responses.push(match slot {
                    Slot::Done(r) => r,
                    Slot::Appending { index, append_time, pending } => {
                        finish_append(index, append_time, pending.result().await)
                    }
                });
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(partition_responses),
            );
        }
        (self.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
    }
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

/// What a partition's append needs to know of its request.
#[derive(Clone, Copy)]
struct Req<'a> {
    version: i16,
    acks: i16,
    timeout_ms: i32,
    transactional_id: Option<&'a str>,
}

/// KIP-937: CreateTime timestamps must lie within
/// `message.timestamp.before.max.ms` before and `message.timestamp.after.max.ms`
/// after the broker's clock.
fn check_timestamps((oldest, newest): (i64, i64), settings: &TopicSettings, now: i64) -> Result<(), String> {
    let earliest = now.saturating_sub(settings.timestamp_before_max_ms);
    let latest = now.saturating_add(settings.timestamp_after_max_ms);
    match [oldest, newest].into_iter().find(|ts| !(earliest..=latest).contains(ts)) {
        Some(ts) => Err(format!(
            "Timestamp {ts} of message is out of range. The timestamp should be within [{earliest}, {latest}]"
        )),
        None => Ok(()),
    }
}

async fn start_append(broker: &Arc<Broker>, topic: &Topic, index: i32, records: Bytes, req: Req<'_>) -> Slot {
    let Req { version, acks, timeout_ms, transactional_id } = req;
    let Some(tp) = topic.tp(index) else {
        return Slot::Done(failure(index, code::of(ResponseError::UnknownTopicOrPartition), None));
    };
    let (header, has_null_key, timestamps) = match validate_produced(&records, version) {
        Ok(v) => (v.header, v.has_null_key, v.timestamps),
        Err(e) => return Slot::Done(failure(index, e.error_code(), Some(e.to_string()))),
    };
    // KIP-890: a transactional batch that would open a transaction on this
    // partition is checked with the coordinator first, under a guard the
    // append must still hold (a marker in between voids it).
    let mut txn_guard = None;
    if header.is_transactional() {
        let producer_id = header.producer_id;
        let now = crate::now_ms();
        let guard =
            broker.shards.run_on_partition(tp, move |r| async move { r.log.begin_txn_verification(producer_id, now) });
        txn_guard = match guard.await {
            Ok(guard) => guard,
            Err(e) => return Slot::Done(shard_failure(index, e)),
        };
        if txn_guard.is_some() {
            let name = &topic.meta.name;
            let verified = crate::txn::coordinator::verify_produce(
                broker,
                transactional_id,
                producer_id,
                header.producer_epoch,
                name,
                index,
            );
            if let Err(e) = verified.await {
                let msg = "the partition is not part of the producer's transaction";
                let msg = (e == ResponseError::InvalidTxnState).then(|| msg.to_string());
                return Slot::Done(failure(index, code::of(e), msg));
            }
        }
    }
    if header.size() > topic.settings.max_message_bytes {
        let msg =
            format!("batch of {} bytes exceeds max.message.bytes {}", header.size(), topic.settings.max_message_bytes);
        return Slot::Done(failure(index, code::of(ResponseError::MessageTooLarge), Some(msg)));
    }
    // After the size check, as Kafka's record validation comes after it.
    if has_null_key && topic.settings.compact_policy {
        let name = &topic.meta.name;
        let msg = format!("Compacted topic cannot accept message without key in topic partition {name}-{index}.");
        return Slot::Done(failure(index, code::of(ResponseError::InvalidRecord), Some(msg)));
    }
    if let (false, Some(range)) = (topic.settings.log_append_time, timestamps) {
        if let Err(msg) = check_timestamps(range, &topic.settings, crate::now_ms()) {
            return Slot::Done(failure(index, code::of(ResponseError::InvalidTimestamp), Some(msg)));
        }
    }
    let mut bytes = records.to_vec();
    let append_time = if topic.settings.log_append_time {
        let now = crate::now_ms();
        set_log_append_time(&mut bytes, now);
        now
    } else {
        -1
    };
    let budget = match broker.shards.reserve_bytes(broker.shards.owner(&tp), bytes.len()).await {
        Ok(permit) => permit,
        Err(e) => return Slot::Done(shard_failure(index, e)),
    };
    let min_isr = topic.settings.min_insync_replicas;
    let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
    let (transactional, producer_id) = (header.is_transactional(), header.producer_id);
    let started = broker
        .shards
        .spawn_on_partition(tp, move |replica| async move {
            let acks = if acks == -1 { Acks::All { min_isr, timeout } } else { Acks::Leader };
            let transaction = transactional.then_some((producer_id, txn_guard));
            replica.append(Append { batch: bytes, acks, transaction, budget: Some(budget) }).await
        })
        .await;
    match started {
        Ok(pending) => Slot::Appending { index, append_time, pending },
        Err(e) => Slot::Done(shard_failure(index, e)),
    }
}

fn finish_append(
    index: i32,
    append_time: i64,
    result: Result<Result<(AppendInfo, LogOffsets), CommitError>, ShardError>,
) -> PartitionProduceResponse {
    match result {
        Ok(Ok((info, offsets))) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(info.base_offset)
            // A retry answered from the log keeps the original's append time.
            .with_log_append_time_ms(if append_time >= 0 { info.duplicate_of.unwrap_or(append_time) } else { -1 })
            .with_log_start_offset(offsets.log_start_offset),
        Ok(Err(CommitError::Storage(e))) => {
            tracing::error!(partition = index, error = %e, "append failed");
            failure(index, code::of(ResponseError::KafkaStorageError), Some(e.to_string()))
        }
        Ok(Err(CommitError::Kafka(e))) => failure(index, code::of(e), None),
        Err(e) => shard_failure(index, e),
    }
}

/// The partition vanished (deleted meanwhile) or its shard is stopping.
fn shard_failure(index: i32, e: ShardError) -> PartitionProduceResponse {
    failure(index, code::of(e.kafka_error()), Some(e.to_string()))
}

//! ListOffsets: earliest, latest, by timestamp (via the time index, then the
//! exact record inside the batch found), and max timestamp. read_committed
//! requests see only offsets below the last stable offset.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use sluice_storage::{Partition, StorageError};

use crate::broker::Broker;
use crate::error::code;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let resp = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            let Some(tp) = topic.as_ref().and_then(|t| t.tp(p.partition_index)) else {
                partitions.push(resp.with_error_code(code::of(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let (target, client_epoch) = (p.timestamp, p.current_leader_epoch);
            let found = broker
                .shards
                .run_on_partition(tp, move |replica| async move {
                    replica.check_leader(client_epoch).map_err(Lookup::Kafka)?;
                    let found = lookup(&replica.log, target, read_committed).await.map_err(Lookup::Storage)?;
                    // A new leader whose high watermark has not yet reached
                    // the start of its epoch may know less than its
                    // predecessor told clients: as Kafka, it does not answer
                    // the latest offset, nor a lookup that finds nothing below it.
                    let beyond_readable =
                        target != EARLIEST && target != EARLIEST_LOCAL && (target == LATEST || found.is_none());
                    if beyond_readable && replica.high_watermark_behind_epoch_start() {
                        let lagging = if version >= 5 {
                            ResponseError::OffsetNotAvailable
                        } else {
                            ResponseError::LeaderNotAvailable
                        };
                        return Err(Lookup::Kafka(lagging));
                    }
                    Ok((found, replica.leader_epoch()))
                })
                .await;
            partitions.push(match found {
                Ok(Ok((Some((timestamp, offset)), epoch))) => {
                    // leader_epoch exists from v4 and may not be set before.
                    let epoch = if version >= 4 { epoch } else { -1 };
                    resp.with_timestamp(timestamp).with_offset(offset).with_leader_epoch(epoch)
                }
                Ok(Ok((None, _))) => resp,
                Ok(Err(Lookup::Kafka(e))) => resp.with_error_code(code::of(e)),
                Ok(Err(Lookup::Storage(e))) => {
                    tracing::error!(topic = %t.name.0, partition = p.partition_index, error = %e, "offset lookup failed");
                    resp.with_error_code(code::of(ResponseError::KafkaStorageError))
                }
                Err(e) => resp.with_error_code(code::of(e.kafka_error())),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

enum Lookup {
    Kafka(ResponseError),
    Storage(StorageError),
}

/// (timestamp, offset) for a ListOffsets target; `None` when no record
/// qualifies. Records at or past `readable` are not answered.
async fn lookup(log: &Partition, target: i64, read_committed: bool) -> Result<Option<(i64, i64)>, StorageError> {
    let offsets = log.offsets();
    let readable = if read_committed { offsets.last_stable_offset } else { offsets.high_watermark };
    Ok(match target {
        LATEST => Some((-1, readable)),
        EARLIEST | EARLIEST_LOCAL => Some((-1, offsets.log_start_offset)),
        LATEST_TIERED => None, // no tiered storage: Kafka answers offset -1
        MAX_TIMESTAMP => log.find_max_timestamp().await?.and_then(|batch| {
            let max = batch_max_timestamp(&batch)?;
            first_record(batch, |ts| ts == max)
        }),
        t => log.find_by_timestamp(t).await?.and_then(|batch| first_record(batch, |ts| ts >= t)),
    }
    // A batch straddling the log start (after DeleteRecords) must not
    // answer an offset below it; records past the high watermark are not
    // committed yet (nor, for read_committed, past the last stable offset)
    // and are not answered at all.
    .map(|(ts, offset)| (ts, offset.max(offsets.log_start_offset)))
    .filter(|&(ts, offset)| ts == -1 || offset < readable))
}

fn batch_max_timestamp(batch: &[u8]) -> Option<i64> {
    sluice_protocol::batch::BatchHeader::read(batch).map(|h| h.max_timestamp)
}

/// The first record of `batch` whose timestamp satisfies `pred`, as
/// (timestamp, offset). Compressed batches are decompressed to find it.
fn first_record(batch: Vec<u8>, pred: impl Fn(i64) -> bool) -> Option<(i64, i64)> {
    let header = sluice_protocol::batch::BatchHeader::read(&batch)?;
    let fallback = (header.max_timestamp, header.base_offset);
    if header.is_log_append_time() {
        // Every record of a LogAppendTime batch carries the batch's time.
        return Some(fallback);
    }
    let mut buf = Bytes::from(batch);
    let Ok(set) = RecordBatchDecoder::decode(&mut buf) else {
        // Unreadable records: the batch's own max timestamp still holds.
        return Some(fallback);
    };
    set.records.iter().find(|r| pred(r.timestamp)).map(|r| (r.timestamp, r.offset)).or(Some(fallback))
}

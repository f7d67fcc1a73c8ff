//! Fetch: read each requested partition from its offset, honouring the
//! request's `max_bytes`, each partition's `partition_max_bytes` and
//! `min_bytes`; long-poll until enough data arrives, `max_wait_ms` passes or
//! the broker shuts down, woken by appends rather than by polling.
//! Each partition is read on its owner shard, which must lead it.
//! Consumers read up to the high watermark (read_committed ones up to the
//! last stable offset, with the aborted transactions in what they read, so
//! they can drop those records); a follower's fetch (a
//! `replica_id` of 0 or more) reads up to the log end and reports the
//! follower's progress, which moves the high watermark and the ISR.
//! Fetch sessions (KIP-227) are not kept: every response says session 0,
//! which clients treat as "send full requests", exactly as Kafka does when
//! its session cache is full.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use sluice_storage::{AbortedTxn, StorageError};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::broker::{Broker, Topic};
use crate::error::code;
use crate::replication::replica::Replica;
use crate::runtime::shutdown::Shutdown;

/// Kafka's READ_COMMITTED isolation level.
const READ_COMMITTED: i8 = 1;
/// Kafka's broker-side `fetch.max.bytes` default: the most one response
/// carries, whatever the client asks for.
const FETCH_MAX_BYTES: i64 = 57_671_680;

pub async fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16, shutdown: &Shutdown) -> FetchResponse {
    if req.session_id != 0 || req.session_epoch > 0 {
        return FetchResponse::default().with_error_code(code::of(ResponseError::FetchSessionIdNotFound));
    }
    let topics: Vec<(Option<Arc<Topic>>, &FetchTopic)> = req
        .topics
        .iter()
        .map(|t| (if version >= 13 { broker.topic_by_id(t.topic_id) } else { broker.topic(&t.topic) }, t))
        .collect();
    let watched: Vec<Arc<Notify>> = topics
        .iter()
        .filter_map(|(topic, t)| topic.as_ref().map(|topic| (topic, t)))
        .flat_map(|(topic, t)| t.partitions.iter().filter_map(|p| topic.appended(p.partition).cloned()))
        .collect();
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // From v15 a follower also says which registration of it is fetching (KIP-903).
    let (replica_id, broker_epoch) = if version >= 15 {
        (req.replica_state.replica_id.0, req.replica_state.replica_epoch)
    } else {
        (req.replica_id.0, -1)
    };
    let follower = (replica_id >= 0).then_some(Follower { id: replica_id, broker_epoch });
    loop {
        // Register interest before reading so an append between the read
        // and the wait still wakes us.
        let mut wakers: Vec<_> = watched.iter().map(|n| Box::pin(n.notified())).collect();
        for w in &mut wakers {
            w.as_mut().enable();
        }
        let (responses, bytes, any_error) = read_once(broker, &topics, &req, version, follower).await;
        if bytes >= i64::from(req.min_bytes) || any_error || Instant::now() >= deadline || shutdown.is_set() {
            return FetchResponse::default().with_responses(responses);
        }
        let any_append = std::future::poll_fn(|cx| {
            if wakers.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            _ = any_append => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait() => {}
        }
    }
}

/// What reading one partition on its shard gave.
enum Read {
    Refused(ResponseError),
    Done { offsets: sluice_storage::LogOffsets, read: Option<Result<Vec<u8>, StorageError>>, aborted: Vec<AbortedTxn> },
}

async fn read_once(
    broker: &Arc<Broker>,
    topics: &[(Option<Arc<Topic>>, &FetchTopic)],
    req: &FetchRequest,
    version: i16,
    follower: Option<Follower>,
) -> (Vec<FetchableTopicResponse>, i64, bool) {
    let mut remaining = if req.max_bytes > 0 { i64::from(req.max_bytes).min(FETCH_MAX_BYTES) } else { FETCH_MAX_BYTES };
    let mut total = 0i64;
    let mut any_error = false;
    let mut first_data = true;
    let read_committed = req.isolation_level == READ_COMMITTED;
    let missing = if version >= 13 { ResponseError::UnknownTopicId } else { ResponseError::UnknownTopicOrPartition };
    let mut responses = Vec::with_capacity(topics.len());
    for (topic, t) in topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for fp in &t.partitions {
            let base = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(read_committed.then(Vec::new))
                .with_records(Some(Bytes::new()));
            let Some(topic) = topic else {
                any_error = true;
                partitions.push(base.with_error_code(code::of(missing)));
                continue;
            };
            let Some(tp) = topic.tp(fp.partition) else {
                any_error = true;
                partitions.push(base.with_error_code(code::of(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let limit = i64::from(fp.partition_max_bytes.max(0)).min(remaining).max(0) as usize;
            // Until some partition returns data, the first batch is returned
            // whole even past the limits (KIP-74); after that the budget is hard.
            let (min_one, client_epoch) = (first_data, fp.current_leader_epoch);
            let position = Position { offset: fp.fetch_offset, last_fetched_epoch: fp.last_fetched_epoch };
            let reader = match follower {
                Some(f) => Reader::Follower(f),
                None if read_committed => Reader::ReadCommitted,
                None => Reader::Consumer,
            };
            let owner = broker.clone();
            let read = broker
                .shards
                .run_on_partition(tp, move |replica| async move {
                    read_partition(&owner, &replica, reader, position, limit, min_one, client_epoch).await
                })
                .await;
            let (offsets, read, aborted) = match read {
                Ok(Read::Done { offsets, read, aborted }) => (offsets, read, aborted),
                Ok(Read::Refused(e)) => {
                    any_error = true;
                    partitions.push(base.with_error_code(code::of(e)));
                    continue;
                }
                Err(e) => {
                    any_error = true;
                    partitions.push(base.with_error_code(code::of(e.kafka_error())));
                    continue;
                }
            };
            let base = base
                .with_high_watermark(offsets.high_watermark)
                .with_last_stable_offset(offsets.last_stable_offset)
                .with_log_start_offset(offsets.log_start_offset)
                .with_aborted_transactions(read_committed.then(|| {
                    aborted
                        .iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect()
                }));
            partitions.push(match read {
                None => base,
                Some(Ok(bytes)) => {
                    let n = bytes.len() as i64;
                    if n > 0 {
                        first_data = false;
                        remaining -= n;
                        total += n;
                    }
                    base.with_records(Some(Bytes::from(bytes)))
                }
                Some(Err(StorageError::OffsetOutOfRange { .. })) => {
                    any_error = true;
                    base.with_error_code(code::of(ResponseError::OffsetOutOfRange))
                }
                Some(Err(e)) => {
                    tracing::error!(topic = %topic.meta.name, partition = fp.partition, error = %e, "read failed");
                    any_error = true;
                    base.with_error_code(code::of(ResponseError::KafkaStorageError))
                }
            });
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    (responses, total, any_error)
}

/// A fetching replica: its broker id and broker epoch (-1: not sent).
#[derive(Clone, Copy)]
struct Follower {
    id: i32,
    broker_epoch: i64,
}

/// Who is fetching, which decides how far it may read.
#[derive(Clone, Copy)]
enum Reader {
    Follower(Follower),
    Consumer,
    ReadCommitted,
}

/// Where a fetcher reads from, and the epoch of the data it has there.
#[derive(Clone, Copy)]
struct Position {
    offset: i64,
    last_fetched_epoch: i32,
}

/// Reads one partition on its owner shard: consumers up to the high
/// watermark (read_committed ones to the last stable offset), a follower up
/// to the log end, recording its progress.
async fn read_partition(
    broker: &Arc<Broker>,
    replica: &Rc<Replica>,
    reader: Reader,
    position: Position,
    limit: usize,
    min_one: bool,
    client_epoch: i32,
) -> Read {
    if let Err(e) = replica.check_leader(client_epoch) {
        return Read::Refused(e);
    }
    if let Reader::Follower(Follower { id, broker_epoch }) = reader {
        let registered = broker.metadata().brokers.get(&id).map(|b| b.epoch);
        if broker_epoch >= 0 && registered.is_some_and(|e| e > broker_epoch) {
            // An earlier incarnation of that broker, registered again since.
            return Read::Refused(ResponseError::NotLeaderOrFollower);
        }
        if !replica.has_follower(id) {
            // Not a replica: it reads nothing, least of all past the HW.
            // Kafka answers UNKNOWN_LEADER_EPOCH (it may be a replica being
            // added that this leader has not heard of yet) or, to a fetch
            // naming no epoch, NOT_LEADER_OR_FOLLOWER.
            return Read::Refused(if client_epoch >= 0 {
                ResponseError::UnknownLeaderEpoch
            } else {
                ResponseError::NotLeaderOrFollower
            });
        }
    }
    let offset = position.offset;
    let upto = match reader {
        Reader::Follower(_) if diverged(replica, position) => {
            // The follower's log does not match ours: it must truncate
            // (via OffsetForLeaderEpoch) before its progress counts.
            return Read::Done {
                offsets: replica.log.offsets(),
                read: Some(Err(StorageError::OffsetOutOfRange { offset, start: 0, end: 0 })),
                aborted: Vec::new(),
            };
        }
        Reader::Follower(Follower { id, broker_epoch }) => {
            let metadata = broker.metadata();
            let registration = metadata.brokers.get(&id).filter(|b| !b.fenced).map(|b| b.epoch);
            if let Some(isr) = replica.record_follower_fetch(id, offset, broker_epoch, registration) {
                tracing::info!(topic = %replica.topic, partition = replica.index, ?isr, "follower caught up: expanding the ISR");
                if let Some(topic) = broker.topic(&replica.topic) {
                    crate::replication::isr::propose_isr_change(broker, replica, topic.meta.id, isr);
                }
            }
            i64::MAX
        }
        Reader::Consumer => replica.log.offsets().high_watermark,
        Reader::ReadCommitted => replica.log.offsets().last_stable_offset,
    };
    let read = if limit == 0 && !min_one {
        None
    } else {
        Some(replica.log.read(offset, limit, min_one, upto).await.map(|(r, _)| r.bytes))
    };
    let aborted = match (&read, reader) {
        (Some(Ok(bytes)), Reader::ReadCommitted) => match sluice_storage::end_of_batches(bytes) {
            Some(end) => replica.log.aborted_between(offset, end),
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    Read::Done { offsets: replica.log.offsets(), read, aborted }
}

/// Whether a follower's position cannot be on our log: past its end, or
/// its last batch's epoch ends earlier here (KIP-320's divergence check).
fn diverged(replica: &Replica, position: Position) -> bool {
    if position.offset > replica.log.offsets().log_end_offset {
        return true;
    }
    if position.last_fetched_epoch < 0 || position.offset <= replica.log.offsets().log_start_offset {
        return false;
    }
    let (epoch, end) = replica.log.end_offset_for_epoch(position.last_fetched_epoch);
    epoch != position.last_fetched_epoch || end < position.offset
}

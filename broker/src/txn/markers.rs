//! Transaction markers: the control batch (COMMIT or ABORT) a coordinator
//! has written to every partition of a finished transaction, the append
//! of one on a partition this broker leads (WriteTxnMarkers, or the
//! coordinator's own partitions), and the delivery loop that retries until
//! every partition has its marker, as Kafka's marker channel does.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::error::CommitError;
use crate::kafka_client::KafkaConnection;
use crate::replication::replica::Replica;
use crate::runtime::shard::ShardContext;

/// How long one marker write may wait for replication, and how long a
/// coordinator waits for a WriteTxnMarkers answer (longer: the leader
/// answers within its own limit).
const APPEND_TIMEOUT: Duration = Duration::from_secs(15);
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a marker says and who it is for.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

/// The control batch: one record whose key is ControlRecordType (version
/// 0, type 1 COMMIT / 0 ABORT) and whose value is EndTransactionMarker
/// (version 0, coordinator epoch).
pub fn control_batch(m: Marker) -> Vec<u8> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(i16::from(m.commit));
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(m.coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        sequence: -1,
        ..crate::internal_records::record(0, crate::now_ms(), key.freeze(), Some(value.freeze()))
    };
    crate::internal_records::encode(&[record])
}

/// Appends a marker to a partition this shard leads (acks=all), then, for
/// `__consumer_offsets`, settles the transaction's pending offset commits.
pub async fn append_local(
    ctx: &ShardContext,
    replica: &Replica,
    marker: Marker,
    min_isr: usize,
) -> Result<(), ResponseError> {
    let appended = replica.append_committed(control_batch(marker), min_isr, APPEND_TIMEOUT).await;
    match appended {
        Ok(_) => {
            if replica.topic == crate::group::OFFSETS_TOPIC {
                ctx.coordinator.complete_txn(replica.index, marker.producer_id, marker.commit);
            }
            Ok(())
        }
        Err(CommitError::Kafka(e)) => Err(e),
        Err(CommitError::Storage(e)) => {
            tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "cannot write a marker");
            Err(ResponseError::KafkaStorageError)
        }
    }
}

/// Appends `marker` to partition `index` of `topic` on this broker.
pub async fn append_on_broker(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    marker: Marker,
) -> Result<(), ResponseError> {
    let topic = broker.topic(topic).ok_or(ResponseError::UnknownTopicOrPartition)?;
    let tp = topic.tp(index).ok_or(ResponseError::UnknownTopicOrPartition)?;
    let min_isr = topic.settings.min_insync_replicas;
    let done = broker
        .shards
        .run_on(broker.shards.owner(&tp), move |ctx| async move {
            let replica = ctx.replica(&tp).ok_or(ResponseError::NotLeaderOrFollower)?;
            append_local(&ctx, &replica, marker, min_isr).await
        })
        .await;
    done.unwrap_or_else(|e| Err(e.kafka_error()))
}

/// Whether an error ends the attempt for good: the partition is gone, or
/// the marker can never be written (a newer coordinator or producer epoch
/// is there already, so the transaction was settled by someone else).
fn is_final(e: ResponseError) -> bool {
    !matches!(
        e,
        ResponseError::NotLeaderOrFollower
            | ResponseError::NotEnoughReplicas
            | ResponseError::NotEnoughReplicasAfterAppend
            | ResponseError::RequestTimedOut
            | ResponseError::KafkaStorageError
            | ResponseError::UnknownServerError
    )
}

/// Writes `marker` to every partition in `partitions`, retrying (with
/// backoff, following leadership changes) until each has it or is gone.
/// Gives up, returning false, once `still_coordinator` says this broker no
/// longer coordinates the transaction: the next coordinator resumes it.
pub async fn deliver(
    broker: &Arc<Broker>,
    marker: Marker,
    partitions: &BTreeSet<(String, i32)>,
    still_coordinator: impl Fn() -> bool,
) -> bool {
    let mut remaining: Vec<(String, i32)> = partitions.iter().cloned().collect();
    let mut backoff = Duration::from_millis(20);
    loop {
        if !still_coordinator() || broker.shutdown.is_set() {
            return false;
        }
        let metadata = broker.metadata();
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, index) in remaining {
            // A deleted topic needs no marker.
            if let Some(p) = metadata.topics.get(&topic).and_then(|t| t.partition(index)) {
                by_leader.entry(p.leader).or_default().push((topic, index));
            }
        }
        remaining = Vec::new();
        for (leader, parts) in by_leader {
            let failed = if leader == broker.node_id() {
                let mut failed = Vec::new();
                for (topic, index) in parts {
                    match append_on_broker(broker, &topic, index, marker).await {
                        Err(e) if !is_final(e) => failed.push((topic, index)),
                        Err(e) => tracing::warn!(%topic, index, error = %e, "marker not written"),
                        Ok(()) => {}
                    }
                }
                failed
            } else if leader < 0 {
                parts // leaderless for now
            } else {
                send_remote(broker, leader, marker, parts).await
            };
            remaining.extend(failed);
        }
        if remaining.is_empty() {
            return true;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// WriteTxnMarkers to another broker; returns the partitions to retry.
async fn send_remote(
    broker: &Arc<Broker>,
    leader: i32,
    marker: Marker,
    parts: Vec<(String, i32)>,
) -> Vec<(String, i32)> {
    let Some(addr) = broker.broker_address(leader) else { return parts };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in &parts {
        topics.entry(topic).or_default().push(*index);
    }
    let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.producer_epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, indexes)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partition_indexes(indexes)
                })
                .collect(),
        )]);
    let client_id = format!("sluice-txn-coordinator-{}", broker.node_id());
    let answer = async {
        let mut conn = KafkaConnection::connect(&addr, client_id, MARKER_TIMEOUT).await?;
        conn.call("WriteTxnMarkers", &request, 1, MARKER_TIMEOUT).await
    };
    let response = match answer.await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(leader, error = %e, "cannot send transaction markers");
            return parts;
        }
    };
    let mut failed = Vec::new();
    for result in response.markers.iter().flat_map(|m| &m.topics) {
        for p in &result.partitions {
            match ResponseError::try_from_code(p.error_code) {
                Some(e) if !is_final(e) => failed.push((result.name.to_string(), p.partition_index)),
                Some(e) => tracing::warn!(topic = %result.name.0, p.partition_index, error = %e, "marker not written"),
                None => {}
            }
        }
    }
    failed
}

/// Whether this replica is the leader it was in `epoch`: the coordinator
/// still coordinates what it loaded then.
pub fn still_leads(replica: &Rc<Replica>, epoch: i32) -> impl Fn() -> bool {
    let replica = replica.clone();
    move || replica.is_leader() && replica.leader_epoch() == epoch
}

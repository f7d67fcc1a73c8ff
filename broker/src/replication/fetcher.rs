//! A follower's replica fetcher: one task per (shard, leader broker) that
//! fetches every partition this shard follows on that leader in one Fetch
//! request (Kafka's `replica_id` set to our broker id), appends what comes
//! back with the leader's offsets, and takes up the leader's high
//! watermark. Before fetching in a new leader epoch, each replica asks the
//! leader (OffsetForLeaderEpoch) where its latest epoch ends there and
//! truncates whatever the leader does not have.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_storage::{StoredBatch, BATCH_HEADER_LEN};
use uuid::Uuid;

use super::replica::{Replica, Role};
use crate::broker::Broker;
use crate::kafka_client::{ClientError, KafkaConnection};
use crate::runtime::shard::ShardContext;

/// v15: the request names this broker's registration (KIP-903); topics go by id.
const FETCH_VERSION: i16 = 15;
const OFFSET_FOR_EPOCH_VERSION: i16 = 3;
/// Kafka's replica.fetch.wait.max.ms.
const FETCH_MAX_WAIT_MS: i32 = 500;
/// Kafka's replica.fetch.max.bytes (per partition) and replica.fetch.response.max.bytes.
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed connection or request before trying again.
const RETRY: Duration = Duration::from_millis(500);

/// Follows `leader` for every replica of this shard that follows it; ends
/// when there are none left (the reconciler starts a new one when needed).
pub async fn follow(broker: Arc<Broker>, ctx: Rc<ShardContext>, leader: i32) {
    let mut conn: Option<KafkaConnection> = None;
    // Partitions the leader refused, left out of requests for a while so
    // they do not cut every other partition's long poll short.
    let mut paused: HashMap<(String, i32), Instant> = HashMap::new();
    loop {
        let followed = following(&ctx, leader);
        if followed.is_empty() || broker.shutdown.is_set() {
            break;
        }
        if conn.is_none() {
            let Some(addr) = broker.broker_address(leader) else {
                if !broker.shutdown.tick(RETRY).await {
                    break;
                }
                continue;
            };
            let client_id = format!("sluice-replica-{}", broker.node_id());
            match KafkaConnection::connect(&addr, client_id, CALL_TIMEOUT).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "cannot reach leader");
                    if !broker.shutdown.tick(RETRY).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut outcome = truncate_diverged(&broker, leader, c, &followed).await;
        if outcome.is_ok() {
            outcome = fetch_once(&broker, leader, c, &followed, &mut paused).await;
        }
        if let Err(e) = outcome {
            tracing::info!(leader, error = %e, "replica fetch failed; reconnecting");
            conn = None;
            if !broker.shutdown.tick(RETRY).await {
                break;
            }
        }
    }
    ctx.fetchers.borrow_mut().remove(&leader);
}

/// This shard's replicas following `leader`, keyed by (topic name, partition).
fn following(ctx: &ShardContext, leader: i32) -> HashMap<(String, i32), Rc<Replica>> {
    ctx.all()
        .into_iter()
        .filter(|(_, r)| matches!(r.role(), Role::Follower { leader: l, .. } if l == leader))
        .map(|(_, r)| ((r.topic.clone(), r.index), r))
        .collect()
}

/// Grouped by topic, as both request types want.
fn by_topic<'a, T>(
    replicas: impl Iterator<Item = &'a Rc<Replica>>,
    mut each: impl FnMut(&Replica) -> Option<T>,
) -> Vec<(String, Vec<T>)> {
    let mut topics: HashMap<String, Vec<T>> = HashMap::new();
    for r in replicas {
        if let Some(item) = each(r) {
            topics.entry(r.topic.clone()).or_default().push(item);
        }
    }
    topics.into_iter().collect()
}

/// For replicas that start following in a new epoch: asks the leader where
/// our latest epoch ends on its side and cuts our log there.
async fn truncate_diverged(
    broker: &Broker,
    leader: i32,
    conn: &mut KafkaConnection,
    followed: &HashMap<(String, i32), Rc<Replica>>,
) -> Result<(), ClientError> {
    let mut pending: Vec<&Rc<Replica>> =
        followed.values().filter(|r| matches!(r.role(), Role::Follower { needs_truncation: true, .. })).collect();
    // Without any epoch (old data or an empty log) there is nothing to ask:
    // keep what was committed, as Kafka does.
    pending.retain(|r| {
        if r.log.latest_leader_epoch().is_some() {
            return true;
        }
        let hw = r.log.offsets().high_watermark;
        match r.log.truncate_to(hw, false) {
            Ok(_) => r.truncated(),
            Err(e) => tracing::warn!(topic = %r.topic, partition = r.index, error = %e, "truncation failed"),
        }
        false
    });
    if pending.is_empty() {
        return Ok(());
    }
    let asked: HashMap<(String, i32), i32> =
        pending.iter().map(|r| ((r.topic.clone(), r.index), r.leader_epoch())).collect();
    let topics = by_topic(pending.iter().copied(), |r| {
        Some(
            OffsetForLeaderPartition::default()
                .with_partition(r.index)
                .with_current_leader_epoch(r.leader_epoch())
                .with_leader_epoch(r.log.latest_leader_epoch()?),
        )
    });
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(broker.node_id())).with_topics(
        topics
            .into_iter()
            .map(|(t, parts)| {
                OffsetForLeaderTopic::default().with_topic(TopicName(StrBytes::from_string(t))).with_partitions(parts)
            })
            .collect(),
    );
    let response = conn.call("OffsetForLeaderEpoch", &request, OFFSET_FOR_EPOCH_VERSION, CALL_TIMEOUT).await?;
    for topic in response.topics {
        for p in topic.partitions {
            let key = (topic.topic.0.to_string(), p.partition);
            let (Some(replica), Some(&epoch)) = (followed.get(&key), asked.get(&key)) else { continue };
            if !replica.follows(leader, epoch) {
                continue; // its role changed while we asked
            }
            if p.error_code != 0 {
                tracing::debug!(topic = %replica.topic, partition = p.partition, code = p.error_code, "leader cannot answer epochs yet");
                continue;
            }
            // Kafka's rule: cut to where the leader's answer and our own
            // epochs agree; when we lack the leader's epoch, cut to our end
            // of the epoch before it and ask again with what remains.
            let offsets = replica.log.offsets();
            let (target, settled) = if p.end_offset < 0 {
                // The leader knows no such epoch: keep only what was committed.
                (offsets.high_watermark, true)
            } else {
                let (ours, our_end) = replica.log.end_offset_for_epoch(p.leader_epoch);
                if ours == p.leader_epoch {
                    (p.end_offset.min(our_end), true)
                } else if ours >= 0 {
                    (p.end_offset.min(our_end), false)
                } else {
                    (p.end_offset.min(offsets.log_end_offset), true)
                }
            };
            if let Err(e) = replica.log.truncate_to(target.max(0), false) {
                tracing::warn!(topic = %replica.topic, partition = p.partition, error = %e, "truncation failed");
                continue;
            }
            if settled {
                replica.truncated();
            }
        }
    }
    Ok(())
}

/// One Fetch round for every replica ready to fetch.
async fn fetch_once(
    broker: &Broker,
    leader: i32,
    conn: &mut KafkaConnection,
    followed: &HashMap<(String, i32), Rc<Replica>>,
    paused: &mut HashMap<(String, i32), Instant>,
) -> Result<(), ClientError> {
    let Some(broker_epoch) = broker.registered_epoch() else {
        // Not registered in this incarnation yet: a fetch now would speak
        // for an earlier one.
        broker.shutdown.tick(RETRY).await;
        return Ok(());
    };
    let now = Instant::now();
    paused.retain(|_, until| *until > now);
    let mut sent: HashMap<(String, i32), i32> = HashMap::new();
    let topics = by_topic(followed.values(), |r| {
        let Role::Follower { leader_epoch, needs_truncation: false, .. } = r.role() else { return None };
        let key = (r.topic.clone(), r.index);
        if paused.contains_key(&key) {
            return None;
        }
        sent.insert(key, leader_epoch);
        let offsets = r.log.offsets();
        Some(
            FetchPartition::default()
                .with_partition(r.index)
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(offsets.log_end_offset)
                .with_last_fetched_epoch(r.log.latest_leader_epoch().unwrap_or(-1))
                .with_log_start_offset(offsets.log_start_offset)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        )
    });
    if topics.is_empty() {
        // Everyone waits for truncation answers or a pause: do not spin.
        broker.shutdown.tick(Duration::from_millis(100)).await;
        return Ok(());
    }
    let mut names: HashMap<Uuid, String> = HashMap::new();
    let topics = topics
        .into_iter()
        .filter_map(|(name, parts)| {
            let id = broker.topic(&name)?.meta.id;
            names.insert(id, name);
            Some(FetchTopic::default().with_topic_id(id).with_partitions(parts))
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default().with_replica_id(BrokerId(broker.node_id())).with_replica_epoch(broker_epoch),
        )
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_session_epoch(-1)
        .with_topics(topics);
    let response = conn.call("Fetch", &request, FETCH_VERSION, CALL_TIMEOUT).await?;
    if response.error_code != 0 {
        tracing::debug!(leader, code = response.error_code, "replica fetch refused");
        broker.shutdown.tick(RETRY).await;
        return Ok(());
    }
    for topic in response.responses {
        let Some(name) = names.get(&topic.topic_id) else { continue };
        for p in topic.partitions {
            let key = (name.clone(), p.partition_index);
            let (Some(replica), Some(&epoch)) = (followed.get(&key), sent.get(&key)) else { continue };
            if !replica.follows(leader, epoch) {
                continue; // it became leader (or follows another) meanwhile
            }
            match ResponseError::try_from_code(p.error_code) {
                None => {
                    let records = p.records.unwrap_or_default();
                    if let Err(e) = append_fetched(replica, &records).await {
                        tracing::warn!(topic = %replica.topic, partition = p.partition_index, error = %e, "cannot append fetched data");
                        replica.mark_needs_truncation();
                    }
                    replica.follow_high_watermark(p.high_watermark);
                    replica.follow_log_start(p.log_start_offset);
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    let ours = replica.log.offsets();
                    if ours.log_end_offset < p.log_start_offset {
                        // All we have lies before the leader's log: start over there.
                        if let Err(e) = replica.log.truncate_to(p.log_start_offset, true) {
                            tracing::warn!(topic = %replica.topic, error = %e, "cannot restart the log");
                        }
                    } else {
                        replica.mark_needs_truncation();
                    }
                }
                Some(e) => {
                    // The leader's metadata and ours disagree for now.
                    tracing::debug!(topic = %replica.topic, partition = p.partition_index, error = ?e, "replica fetch refused");
                    paused.insert(key, Instant::now() + RETRY);
                }
            }
        }
    }
    Ok(())
}

/// Appends the whole batches in `records` (a response may end mid-batch),
/// in order; each keeps the offsets the leader gave it. Nothing is appended
/// unless every batch is intact, in order and fits this log's end: a batch
/// refused while the ones after it are accepted would leave a hole.
async fn append_fetched(replica: &Rc<Replica>, records: &[u8]) -> Result<(), sluice_storage::StorageError> {
    let mut at = 0usize;
    let mut batches = Vec::new();
    while at + BATCH_HEADER_LEN <= records.len() {
        let Some(batch) = StoredBatch::parse(&records[at..]) else { break };
        let end = at + batch.size as usize;
        if end > records.len() {
            break;
        }
        if !StoredBatch::crc_ok(&records[at..end]) {
            return Err(sluice_storage::StorageError::InvalidBatch("fetched batch fails its CRC"));
        }
        if batches.last().is_some_and(|(prev, _): &(StoredBatch, _)| batch.base_offset <= prev.last_offset()) {
            return Err(sluice_storage::StorageError::InvalidBatch("fetched batches out of offset order"));
        }
        batches.push((batch, &records[at..end]));
        at = end;
    }
    let Some((first, _)) = batches.first() else { return Ok(()) };
    replica.log.align_replicated(first.base_offset, first.last_offset())?;
    let mut appends = Vec::new();
    for (_, bytes) in batches {
        let bytes = bytes.to_vec();
        let log = replica.log.clone();
        // Started in order, so offsets are reserved in order; the appends
        // then share fsyncs (group commit).
        appends.push(tokio::task::spawn_local(async move { log.append_replicated(bytes).await }));
    }
    let mut outcome = Ok(());
    for append in appends {
        match append.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => outcome = outcome.and(Err(e)),
            Err(_) => outcome = outcome.and(Err(sluice_storage::StorageError::Unavailable("append task failed"))),
        }
    }
    outcome
}

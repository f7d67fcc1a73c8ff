//! The transaction APIs. Producers talk to their transaction coordinator
//! (InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn) and to the group coordinator
//! (TxnOffsetCommit); brokers to partition leaders (WriteTxnMarkers) and
//! to coordinators (AddPartitionsToTxn v4 verify-only, KIP-890);
//! operators list and describe transactions. The state machine lives in
//! `crate::txn`, the coordinator's side of InitProducerId and
//! AddPartitionsToTxn in `crate::txn::coordinator`; every change is
//! written before it is answered.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::{encode_txn_offset_commit, OFFSETS_TOPIC};
use crate::runtime::shard::ShardContext;
use crate::txn::coordinator::{add_to_txn, routed, verify_produce};
use crate::txn::driver::{complete_in_background, persist};
use crate::txn::markers::{self, Marker};
use crate::txn::{TxnMetadata, TxnState};

/// Before KIP-588 (these request versions) clients know a fenced producer
/// only as INVALID_PRODUCER_EPOCH.
fn fenced_for(version: i16, first_version_knowing_fenced: i16, e: E) -> E {
    if e == E::ProducerFenced && version < first_version_knowing_fenced {
        E::InvalidProducerEpoch
    } else {
        e
    }
}

pub async fn add_partitions(
    broker: &Arc<Broker>,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let result = add_one(
            broker,
            req.v3_and_below_transactional_id.to_string(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            req.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(result);
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in req.transactions {
        let topics = add_one(
            broker,
            t.transactional_id.to_string(),
            t.producer_id.0,
            t.producer_epoch,
            t.topics,
            t.verify_only,
            version,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default().with_transactional_id(t.transactional_id).with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// One transaction's AddPartitionsToTxn: unknown partitions fail alone
/// (the rest OPERATION_NOT_ATTEMPTED), as Kafka checks them first.
async fn add_one(
    broker: &Arc<Broker>,
    id: String,
    producer_id: i64,
    producer_epoch: i16,
    topics: Vec<AddPartitionsToTxnTopic>,
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let known = |t: &AddPartitionsToTxnTopic, p: i32| {
        broker.topic(&t.name).and_then(|topic| topic.tp(p)).is_some() && t.name.0.as_str() != crate::txn::TXN_TOPIC
    };
    let all_known = topics.iter().all(|t| t.partitions.iter().all(|&p| known(t, p)));
    let outcome = if all_known {
        let wanted = topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p))).collect();
        add_to_txn(broker, id, producer_id, producer_epoch, wanted, verify_only).await.err()
    } else {
        None
    };
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|&p| {
                    let error = match (all_known, known(t, p), outcome) {
                        (false, false, _) => code::of(E::UnknownTopicOrPartition),
                        (false, true, _) => code::of(E::OperationNotAttempted),
                        (true, _, Some(e)) => code::of(fenced_for(version, 2, e)),
                        (true, _, None) => code::NONE,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(error)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(results)
        })
        .collect()
}

pub async fn add_offsets(broker: &Arc<Broker>, req: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
    let error = match broker.offsets_topic().await {
        Err(_) => E::CoordinatorNotAvailable,
        Ok(_) => {
            let partition = (OFFSETS_TOPIC.to_string(), crate::group::partition_for(&req.group_id));
            let added = add_to_txn(
                broker,
                req.transactional_id.to_string(),
                req.producer_id.0,
                req.producer_epoch,
                vec![partition],
                false,
            )
            .await;
            match added {
                Ok(()) => return AddOffsetsToTxnResponse::default(),
                Err(e) => fenced_for(version, 2, e),
            }
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code::of(error))
}

pub async fn end_txn(broker: &Arc<Broker>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = req.transactional_id.to_string();
    let (producer_id, producer_epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let owner = broker.clone();
    let outcome = broker
        .with_txn_coordinator(&id.clone(), move |ctx, replica| async move {
            let meta = ctx.transactions.get(&id).ok_or(E::InvalidProducerIdMapping)?;
            meta.check_producer(producer_id, producer_epoch)?;
            if let Some(prepared) = meta.end(commit, crate::now_ms())? {
                persist(&ctx.transactions, &replica, &id, prepared).await?;
                complete_in_background(owner, ctx, replica, id);
            }
            Ok(())
        })
        .await;
    match routed(outcome) {
        Ok(()) => EndTxnResponse::default(),
        Err(e) => EndTxnResponse::default().with_error_code(code::of(fenced_for(version, 2, e))),
    }
}

/// WriteTxnMarkers (from a transaction coordinator): each marker to each
/// partition this broker leads, all at once (each may wait for replication).
pub async fn write_markers(broker: &Arc<Broker>, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut writes = tokio::task::JoinSet::new();
    for (m_index, m) in req.markers.iter().enumerate() {
        let marker = Marker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            commit: m.transaction_result,
        };
        for (t_index, t) in m.topics.iter().enumerate() {
            for (p_index, &p) in t.partition_indexes.iter().enumerate() {
                let (broker, topic) = (broker.clone(), t.name.to_string());
                writes.spawn_local(async move {
                    let written = markers::append_on_broker(&broker, &topic, p, marker).await;
                    ((m_index, t_index, p_index), written.err().map_or(code::NONE, code::of))
                });
            }
        }
    }
    let mut errors = std::collections::HashMap::new();
    while let Some(done) = writes.join_next().await {
        if let Ok((at, error)) = done {
            errors.insert(at, error);
        }
    }
    let results = req
        .markers
        .into_iter()
        .enumerate()
        .map(|(m_index, m)| {
            let topics = m
                .topics
                .into_iter()
                .enumerate()
                .map(|(t_index, t)| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .enumerate()
                        .map(|(p_index, &p)| {
                            let error = errors.get(&(m_index, t_index, p_index)).copied();
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(error.unwrap_or(code::of(E::UnknownServerError)))
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(results)
}

/// TxnOffsetCommit: offsets written to `__consumer_offsets` inside the
/// producer's transaction; they count once it commits.
pub async fn txn_offset_commit(broker: &Arc<Broker>, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let planned = super::offsets::plan_commit(
        broker,
        req.topics.iter().map(|t| {
            let parts = t.partitions.iter().map(|p| {
                (p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata.as_ref())
            });
            (&t.name, parts.collect())
        }),
    );
    let to_write = super::offsets::entries_to_write(&planned);
    let group_id = req.group_id.to_string();
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
    let (generation, producer_id, producer_epoch) = (req.generation_id, req.producer_id.0, req.producer_epoch);
    // KIP-890: the group's offsets partition must be in the producer's
    // transaction (AddOffsetsToTxn), or no marker would ever settle these.
    let offsets_partition = crate::group::partition_for(&group_id);
    let txn_id = req.transactional_id.to_string();
    let verified = verify_produce(broker, Some(&txn_id), producer_id, producer_epoch, OFFSETS_TOPIC, offsets_partition);
    let outcome = match verified.await {
        Err(e) => Ok(code::of(e)),
        Ok(()) => {
            broker
                .with_coordinator(&group_id.clone(), move |coord, offsets| async move {
                    // Member and generation are checked only when the
                    // producer sent them (KIP-447, v3+), as Kafka does.
                    if generation >= 0 || !member_id.is_empty() {
                        let Some(group) = coord.get(&group_id) else { return code::of(E::IllegalGeneration) };
                        let check = group.borrow().check_commit(&member_id, instance_id.as_deref(), generation);
                        if check != 0 {
                            return check;
                        }
                    }
                    if to_write.is_empty() {
                        return code::NONE;
                    }
                    let now = crate::now_ms();
                    let batch = encode_txn_offset_commit(&group_id, &to_write, now, producer_id, producer_epoch);
                    coord.add_txn_offsets(producer_id, &group_id, to_write.clone());
                    match offsets.append_group_record(batch).await {
                        Ok(_) => code::NONE,
                        Err(e) => {
                            tracing::warn!(group = %group_id, error = ?e, "writing transactional offsets failed");
                            coord.discard_txn_offsets(producer_id, &group_id, &to_write);
                            match e {
                                crate::error::CommitError::Kafka(E::InvalidProducerEpoch) => {
                                    code::of(E::ProducerFenced)
                                }
                                e => crate::error::commit_error(&e),
                            }
                        }
                    }
                })
                .await
        }
    };
    let group_error = outcome.unwrap_or_else(|e| route_error(&e));
    let topics = planned
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, entry)| {
                    let error = entry.err().unwrap_or(group_error);
                    TxnOffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(error)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

fn described(id: StrBytes, m: &TxnMetadata) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, p) in &m.partitions {
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*p),
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    TransactionState::default()
        .with_transactional_id(TransactionalId(id))
        .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        .with_transaction_timeout_ms(m.timeout_ms)
        .with_transaction_start_time_ms(if m.state == TxnState::Ongoing { m.start_ms } else { -1 })
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_topics(topics)
}

pub async fn describe(broker: &Arc<Broker>, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let name = id.0.to_string();
        let outcome = broker
            .with_txn_coordinator(&name.clone(), move |ctx, _| async move {
                ctx.transactions.get(&name).ok_or(E::TransactionalIdNotFound)
            })
            .await;
        states.push(match routed(outcome) {
            Ok(m) => described(id.0, &m),
            Err(e) => TransactionState::default().with_transactional_id(id).with_error_code(code::of(e)),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions: the transactions this broker coordinates, filtered
/// by state, producer id and (v1) running longer than a duration.
pub async fn list(broker: &Arc<Broker>, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let known = |s: &StrBytes| (0..8).filter_map(TxnState::from_code).any(|state| state.name() == s.as_str());
    let unknown: Vec<StrBytes> = req.state_filters.iter().filter(|s| !known(s)).cloned().collect();
    let now = crate::now_ms();
    let mut listed = Vec::new();
    for shard in 0..broker.shards.len() {
        let all = broker.shards.run_on(shard, |ctx| async move { led_transactions(&ctx) }).await.unwrap_or_default();
        for (id, m) in all {
            let state_ok =
                req.state_filters.is_empty() || req.state_filters.iter().any(|s| s.as_str() == m.state.name());
            let producer_ok =
                req.producer_id_filters.is_empty() || req.producer_id_filters.contains(&ProducerId(m.producer_id));
            let duration_ok =
                req.duration_filter < 0 || (m.state == TxnState::Ongoing && now - m.start_ms >= req.duration_filter);
            if state_ok && producer_ok && duration_ok {
                listed.push(
                    ListedTransaction::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(m.state.name())),
                );
            }
        }
    }
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(listed)
}

/// The transactions a shard coordinates (of partitions it has loaded).
fn led_transactions(ctx: &Rc<ShardContext>) -> Vec<(String, TxnMetadata)> {
    ctx.transactions
        .all()
        .into_iter()
        .filter(|(id, _)| !ctx.transactions.loading.contains(crate::txn::partition_for(id)))
        .collect()
}

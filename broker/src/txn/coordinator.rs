//! The transaction coordinator's side of the requests that change a
//! transaction (Kafka's TransactionCoordinator): InitProducerId with a
//! transactional id, adding partitions, and KIP-890's verification of a
//! transactional produce, locally or at the coordinating broker. Each runs
//! on the shard that leads the transactional id's `__transaction_state`
//! partition, and every change is written there before it is answered.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use super::driver::{complete_in_background, persist};
use super::{TxnMetadata, TxnState, MAX_TIMEOUT_MS};
use crate::broker::Broker;
use crate::error::{code, route_error, CoordinatorRouteError};

/// A coordinator's answer, or the error its routing failed with.
pub fn routed<T>(outcome: Result<Result<T, E>, CoordinatorRouteError>) -> Result<T, E> {
    match outcome {
        Ok(r) => r,
        Err(e) => Err(E::try_from_code(route_error(&e)).unwrap_or(E::CoordinatorNotAvailable)),
    }
}

/// InitProducerId with a transactional id: a new producer id (epoch 0)
/// the first time, the next epoch after (fencing older instances). An
/// open transaction is aborted first (CONCURRENT_TRANSACTIONS meanwhile:
/// the client retries). Returns (producer id, epoch).
pub async fn init_transactional(
    broker: &Arc<Broker>,
    id: String,
    timeout_ms: i32,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<(i64, i16), E> {
    if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(E::InvalidTransactionTimeout);
    }
    let owner = broker.clone();
    let outcome = broker
        .with_txn_coordinator(&id.clone(), move |ctx, replica| async move {
            let now = crate::now_ms();
            let coord = &ctx.transactions;
            let current = coord.get(&id);
            let (next_id, next_epoch, last_epoch) = match &current {
                None => (new_producer_id(&owner).await?, 0, -1),
                Some(m) => {
                    // KIP-360: a producer naming its id must name this one.
                    if producer_id >= 0 && producer_id != m.producer_id {
                        return Err(E::ProducerFenced);
                    }
                    if m.state.is_preparing() {
                        return Err(E::ConcurrentTransactions);
                    }
                    if m.state == TxnState::Ongoing {
                        // Abort first; the client retries and gets the
                        // epoch after this fencing one.
                        persist(coord, &replica, &id, m.fence_and_abort(now)).await?;
                        complete_in_background(owner, ctx.clone(), replica, id);
                        return Err(E::ConcurrentTransactions);
                    }
                    let expected = (producer_id >= 0).then_some(producer_epoch);
                    if m.producer_epoch >= i16::MAX - 1 && expected.is_none_or(|e| e == m.producer_epoch) {
                        (new_producer_id(&owner).await?, 0, -1) // epochs exhausted
                    } else {
                        match expected {
                            None => (m.producer_id, m.producer_epoch + 1, -1),
                            Some(e) if e == m.producer_epoch => (m.producer_id, e + 1, e),
                            // A retry whose answer was lost: the same epoch again.
                            Some(e) if e == m.last_producer_epoch => (m.producer_id, m.producer_epoch, e),
                            Some(_) => return Err(E::ProducerFenced),
                        }
                    }
                }
            };
            let next = TxnMetadata {
                producer_id: next_id,
                producer_epoch: next_epoch,
                last_producer_epoch: last_epoch,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
            };
            // Allocating an id awaited the quorum: another request for this
            // id may have changed it meanwhile.
            if coord.get(&id) != current {
                return Err(E::ConcurrentTransactions);
            }
            persist(coord, &replica, &id, next).await?;
            Ok((next_id, next_epoch))
        })
        .await;
    routed(outcome)
}

async fn new_producer_id(broker: &Arc<Broker>) -> Result<i64, E> {
    broker.new_producer_id().await.map_err(|e| {
        tracing::info!(error = %e, "cannot allocate producer ids yet");
        E::CoordinatorLoadInProgress
    })
}

/// Adds partitions to (or with `verify_only`, checks them against) a
/// transaction on its coordinator.
pub async fn add_to_txn(
    broker: &Arc<Broker>,
    id: String,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Vec<(String, i32)>,
    verify_only: bool,
) -> Result<(), E> {
    let outcome = broker
        .with_txn_coordinator(&id.clone(), move |ctx, replica| async move {
            let coord = &ctx.transactions;
            let meta = coord.get(&id).ok_or(E::InvalidProducerIdMapping)?;
            meta.check_producer(producer_id, producer_epoch)?;
            if verify_only {
                let open = meta.state == TxnState::Ongoing;
                return match open && partitions.iter().all(|p| meta.partitions.contains(p)) {
                    true => Ok(()),
                    false => Err(E::InvalidTxnState),
                };
            }
            match meta.add_partitions(partitions, crate::now_ms())? {
                Some(next) => persist(coord, &replica, &id, next).await,
                None => Ok(()),
            }
        })
        .await;
    routed(outcome)
}

/// KIP-890: whether the coordinator has `topic`/`partition` in the
/// producer's open transaction (asked before a transactional batch opens a
/// transaction on a partition). Returns the error to answer.
pub async fn verify_produce(
    broker: &Arc<Broker>,
    transactional_id: Option<&str>,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), E> {
    let Some(id) = transactional_id.filter(|id| !id.is_empty()) else { return Err(E::InvalidTxnState) };
    let wanted = vec![(topic.to_string(), partition)];
    let mut verified = add_to_txn(broker, id.to_string(), producer_id, producer_epoch, wanted, true).await;
    if verified == Err(E::NotCoordinator) {
        verified = verify_remotely(broker, id, producer_id, producer_epoch, topic, partition).await;
    }
    verified.map_err(|e| match e {
        // Retriable for every client version, as Kafka maps them.
        E::NotCoordinator | E::CoordinatorNotAvailable | E::CoordinatorLoadInProgress | E::ConcurrentTransactions => {
            E::NotEnoughReplicas
        }
        E::ProducerFenced => E::InvalidProducerEpoch,
        _ => E::InvalidTxnState,
    })
}

/// AddPartitionsToTxn v4 with verify_only to the broker coordinating `id`.
async fn verify_remotely(
    broker: &Arc<Broker>,
    id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), E> {
    let coordinator = broker
        .topic(crate::txn::TXN_TOPIC)
        .and_then(|t| t.meta.partition(crate::txn::partition_for(id)).map(|p| p.leader))
        .filter(|&leader| leader >= 0 && leader != broker.node_id())
        .and_then(|leader| broker.broker_address(leader))
        .ok_or(E::CoordinatorNotAvailable)?;
    let request =
        AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])])]);
    let timeout = std::time::Duration::from_secs(5);
    let client_id = format!("sluice-broker-{}", broker.node_id());
    let response = async {
        let mut conn = crate::kafka_client::KafkaConnection::connect(&coordinator, client_id, timeout).await?;
        conn.call("AddPartitionsToTxn", &request, 4, timeout).await
    }
    .await
    .map_err(|_| E::CoordinatorNotAvailable)?;
    let error = response
        .results_by_transaction
        .iter()
        .flat_map(|t| &t.topic_results)
        .flat_map(|t| &t.results_by_partition)
        .map(|p| p.partition_error_code)
        .find(|&c| c != code::NONE)
        .or(Some(response.error_code).filter(|&c| c != code::NONE));
    match error.map(|c| E::try_from_code(c).unwrap_or(E::UnknownServerError)) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

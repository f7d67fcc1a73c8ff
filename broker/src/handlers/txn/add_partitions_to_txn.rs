//! AddPartitionsToTxn: partitions join a producer's transaction (v4:
//! several transactions, and KIP-890's verify-only check from brokers).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::fenced_for;
use crate::broker::Broker;
use crate::error::code;
use crate::txn::coordinator::add_to_txn;

pub async fn handle(broker: &Arc<Broker>, req: AddPartitionsToTxnRequest, version: i16) -> AddPartitionsToTxnResponse {
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

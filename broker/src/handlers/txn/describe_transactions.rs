//! DescribeTransactions: each transactional id's state on its coordinator.

use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::code;
use crate::txn::coordinator::routed;
use crate::txn::{TxnMetadata, TxnState};

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

pub async fn handle(broker: &Arc<Broker>, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
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

//! ListTransactions: the transactions this broker coordinates.

use std::sync::Arc;

use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::led_transactions;
use crate::broker::Broker;
use crate::txn::TxnState;

/// ListTransactions: the transactions this broker coordinates, filtered
/// by state, producer id and (v1) running longer than a duration.
pub async fn handle(broker: &Arc<Broker>, req: ListTransactionsRequest) -> ListTransactionsResponse {
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

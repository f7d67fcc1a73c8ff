//! WriteTxnMarkers (from a transaction coordinator): commit or abort
//! markers to the partitions this broker leads.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::code;
use crate::txn::markers::{self, Marker};

/// WriteTxnMarkers (from a transaction coordinator): each marker to each
/// partition this broker leads, all at once (each may wait for replication).
pub async fn handle(broker: &Arc<Broker>, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
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

//! FindCoordinator: the broker leading the `__consumer_offsets` (group)
//! or `__transaction_state` (transactional id) partition of each key.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

use super::s;
use crate::broker::Broker;
use crate::error::code;

const GROUP_KEY: i8 = 0;

const TRANSACTION_KEY: i8 = 1;

pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 { req.coordinator_keys.clone() } else { vec![req.key.clone()] };
    // The coordinator of a group (transactional id) is the leader of its
    // partition of `__consumer_offsets` (`__transaction_state`).
    let internal = match req.key_type {
        GROUP_KEY => broker.offsets_topic().await.ok(),
        TRANSACTION_KEY => broker.txn_topic().await.ok(),
        _ => None,
    };
    let metadata = broker.metadata();
    let coordinator = |key: &str| {
        let index = match req.key_type {
            TRANSACTION_KEY => crate::txn::partition_for(key),
            _ => crate::group::partition_for(key),
        };
        let partition = internal.as_ref()?.meta.partition(index)?;
        metadata.brokers.get(&partition.leader).filter(|b| !b.fenced)
    };
    let entries: Vec<CoordinatorEntry> = keys
        .into_iter()
        .map(|key| {
            let entry = CoordinatorEntry::default().with_key(key.clone()).with_node_id(BrokerId(-1)).with_port(-1);
            let error = match (req.key_type, coordinator(&key)) {
                (GROUP_KEY | TRANSACTION_KEY, Some(b)) => {
                    return entry.with_node_id(BrokerId(b.id)).with_host(s(&b.host)).with_port(i32::from(b.port))
                }
                (GROUP_KEY | TRANSACTION_KEY, None) => E::CoordinatorNotAvailable,
                // Share groups (KIP-932) and unknown key types.
                _ => E::InvalidRequest,
            };
            entry.with_error_code(code::of(error)).with_error_message(Some(s(&error.to_string())))
        })
        .collect();
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(entries);
    }
    let first = entries.into_iter().next().unwrap_or_default();
    let resp = FindCoordinatorResponse::default()
        .with_error_code(first.error_code)
        .with_node_id(first.node_id)
        .with_host(first.host)
        .with_port(first.port);
    if version >= 1 {
        resp.with_error_message(first.error_message)
    } else {
        resp
    }
}

//! The transaction APIs. Producers talk to their transaction coordinator
//! (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn; InitProducerId is in
//! `init_producer_id.rs`) and to the group coordinator (TxnOffsetCommit);
//! brokers to partition leaders (WriteTxnMarkers) and to coordinators
//! (AddPartitionsToTxn v4 verify-only, KIP-890); operators list and describe
//! transactions. The state machine lives in `crate::txn`, the coordinator's
//! side in `crate::txn::coordinator`; every change is written before it is
//! answered. What several of the APIs use is here.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod describe_transactions;
pub mod end_txn;
pub mod list_transactions;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use std::rc::Rc;

use kafka_protocol::ResponseError as E;

use crate::runtime::shard::ShardContext;
use crate::txn::TxnMetadata;

/// Before KIP-588 (these request versions) clients know a fenced producer
/// only as INVALID_PRODUCER_EPOCH.
fn fenced_for(version: i16, first_version_knowing_fenced: i16, e: E) -> E {
    if e == E::ProducerFenced && version < first_version_knowing_fenced {
        E::InvalidProducerEpoch
    } else {
        e
    }
}

/// The transactions a shard coordinates (of partitions it has loaded).
fn led_transactions(ctx: &Rc<ShardContext>) -> Vec<(String, TxnMetadata)> {
    ctx.transactions
        .all()
        .into_iter()
        .filter(|(id, _)| !ctx.transactions.loading.contains(crate::txn::partition_for(id)))
        .collect()
}

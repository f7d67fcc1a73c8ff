//! AddOffsetsToTxn: a group's `__consumer_offsets` partition joins the
//! transaction, so TxnOffsetCommit may follow.

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::fenced_for;
use crate::broker::Broker;
use crate::error::code;
use crate::group::OFFSETS_TOPIC;
use crate::txn::coordinator::add_to_txn;

pub async fn handle(broker: &Arc<Broker>, req: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
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

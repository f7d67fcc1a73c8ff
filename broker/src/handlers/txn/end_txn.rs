//! EndTxn: commit or abort; the markers are written in the background.

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::fenced_for;
use crate::broker::Broker;
use crate::error::code;
use crate::txn::coordinator::routed;
use crate::txn::driver::{complete_in_background, persist};

pub async fn handle(broker: &Arc<Broker>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
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

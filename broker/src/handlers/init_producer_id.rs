//! InitProducerId for idempotent producers: a producer id no broker has
//! handed out before (blocks come from the metadata quorum, so ids never
//! repeat across brokers or restarts), epoch 0. As in Kafka, a request
//! without a transactional id always gets a fresh id, also when it names
//! its current id and epoch (KIP-360's recovery after UNKNOWN_PRODUCER_ID
//! or an expired sequence). With a transactional id the transaction
//! coordinator answers (`txn::coordinator::init_transactional`).

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use sluice_raft::ApplyError;

use crate::broker::{Broker, BrokerError};
use crate::error::code;

pub async fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code::of(e))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = req.transactional_id {
        // Empty, or too long for __transaction_state's int16-sized string.
        if id.is_empty() || id.len() > i16::MAX as usize {
            return failed(ResponseError::InvalidRequest);
        }
        let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
        return match crate::txn::coordinator::init_transactional(
            broker,
            id.to_string(),
            req.transaction_timeout_ms,
            pid,
            epoch,
        )
        .await
        {
            Ok((id, epoch)) => {
                InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
            }
            // KIP-588: PRODUCER_FENCED from v4; older clients know INVALID_PRODUCER_EPOCH.
            Err(ResponseError::ProducerFenced) if version < 4 => failed(ResponseError::InvalidProducerEpoch),
            Err(e) => failed(e),
        };
    }
    match broker.new_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(BrokerError::Refused(ApplyError::ProducerIdsExhausted)) => failed(ResponseError::UnknownServerError),
        // No controller reachable right now: retriable, as Kafka answers
        // while its producer id block is not yet available.
        Err(e) => {
            tracing::info!(error = %e, "cannot allocate producer ids yet");
            failed(ResponseError::CoordinatorLoadInProgress)
        }
    }
}

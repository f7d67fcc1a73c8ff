//! InitProducerId for idempotent producers: a producer id no broker has
//! handed out before (blocks come from the metadata quorum, so ids never
//! repeat across brokers or restarts), epoch 0. As in Kafka, a request
//! without a transactional id always gets a fresh id, also when it names
//! its current id and epoch (KIP-360's recovery after UNKNOWN_PRODUCER_ID
//! or an expired sequence). Transactional ids need a transaction
//! coordinator, which this broker does not run yet: they get
//! COORDINATOR_NOT_AVAILABLE, as FindCoordinator answers for them.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use sluice_raft::ApplyError;

use super::code;
use crate::broker::{Broker, BrokerError};

pub async fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code::of(e))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.is_some() {
        return failed(ResponseError::CoordinatorNotAvailable);
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

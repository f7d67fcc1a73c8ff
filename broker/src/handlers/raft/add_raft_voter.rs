//! AddRaftVoter: the controller checks the new node answers with the
//! given storage id, catches it up as a learner, then makes it a voter.

use std::sync::Arc;

use kafka_protocol::messages::{AddRaftVoterRequest, AddRaftVoterResponse};
use kafka_protocol::ResponseError;
use sluice_raft::VoterChange;

use super::{check, failed, given, outcome};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let (code, message) = match check(broker, req.cluster_id.as_ref(), req.voter_id) {
        Err(failure) => failure,
        Ok(node) => match req.listeners.first() {
            None => failed(ResponseError::InvalidRequest, "no listener given for the new voter".into()),
            Some(l) => {
                let change = VoterChange::Add {
                    node,
                    addr: format!("{}:{}", l.host, l.port),
                    storage: given(req.voter_directory_id),
                    timeout_ms: u64::try_from(req.timeout_ms).unwrap_or(0),
                };
                outcome(broker.quorum.change_voters(change).await)
            }
        },
    };
    AddRaftVoterResponse::default().with_error_code(code).with_error_message(message)
}

//! RemoveRaftVoter: a voter leaves the metadata quorum.

use std::sync::Arc;

use kafka_protocol::messages::{RemoveRaftVoterRequest, RemoveRaftVoterResponse};
use sluice_raft::VoterChange;

use super::{check, given, outcome};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let (code, message) = match check(broker, req.cluster_id.as_ref(), req.voter_id) {
        Err(failure) => failure,
        Ok(node) => {
            let change = VoterChange::Remove { node, storage: given(req.voter_directory_id) };
            outcome(broker.quorum.change_voters(change).await)
        }
    };
    RemoveRaftVoterResponse::default().with_error_code(code).with_error_message(message)
}

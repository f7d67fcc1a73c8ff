//! AddRaftVoter and RemoveRaftVoter (KIP-853): dynamic membership of the
//! metadata quorum. A voter is a node id and a storage id (Kafka's
//! directory id); the controller checks the new node answers with that
//! storage id, catches it up as a learner, then makes it a voter, through
//! openraft's joint-consensus change. Any broker takes the request and
//! hands it to the controller, as Kafka's brokers forward it.

use std::sync::Arc;

use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::{VoterChange, VoterChangeError};
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::code;

pub async fn add(broker: &Arc<Broker>, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
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

pub async fn remove(broker: &Arc<Broker>, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let (code, message) = match check(broker, req.cluster_id.as_ref(), req.voter_id) {
        Err(failure) => failure,
        Ok(node) => {
            let change = VoterChange::Remove { node, storage: given(req.voter_directory_id) };
            outcome(broker.quorum.change_voters(change).await)
        }
    };
    RemoveRaftVoterResponse::default().with_error_code(code).with_error_message(message)
}

/// An error code and its message, as both responses carry them.
type Answer = (i16, Option<StrBytes>);

fn failed(error: ResponseError, message: String) -> Answer {
    (code::of(error), Some(StrBytes::from_string(message)))
}

/// The request's cluster id (if any) must be ours, and this node must run
/// a raft network: a node started alone (no --voters) cannot take peers.
fn check(broker: &Broker, cluster_id: Option<&StrBytes>, voter: i32) -> Result<u64, Answer> {
    if let Some(id) = cluster_id.filter(|id| id.as_str() != broker.cluster_id()) {
        return Err(failed(ResponseError::InconsistentClusterId, format!("cluster id {id} is not this cluster's")));
    }
    if !broker.quorum.networked() {
        let why = "this node runs alone, without a raft network (--voters): its quorum cannot change";
        return Err(failed(ResponseError::UnsupportedVersion, why.into()));
    }
    u64::try_from(voter).map_err(|_| failed(ResponseError::InvalidRequest, format!("voter id {voter} is negative")))
}

/// The nil uuid means "any": the storage id the node itself reports.
fn given(id: Uuid) -> Option<Uuid> {
    (!id.is_nil()).then_some(id)
}

fn outcome(result: Result<(), VoterChangeError>) -> Answer {
    let Err(e) = result else {
        return (code::NONE, None);
    };
    let error = match e {
        VoterChangeError::DuplicateVoter(_) => ResponseError::DuplicateVoter,
        VoterChangeError::VoterNotFound(_) => ResponseError::VoterNotFound,
        VoterChangeError::InvalidRequest(_) => ResponseError::InvalidRequest,
        VoterChangeError::TimedOut(_) => ResponseError::RequestTimedOut,
    };
    failed(error, e.to_string())
}

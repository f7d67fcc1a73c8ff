//! Dynamic membership of the metadata quorum (KIP-853): AddRaftVoter and
//! RemoveRaftVoter. What both answers share is here.

pub mod add_raft_voter;
pub mod remove_raft_voter;

use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::VoterChangeError;
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::code;

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

//! AlterPartitionReassignments (KIP-455): moving partitions to other
//! brokers through the metadata quorum. New replicas copy the log as
//! followers; once all are in the ISR the old ones are dropped (and
//! leadership moves off them).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::ApplyError;

use crate::broker::Broker;
use crate::error::code;

pub async fn handle(
    broker: &Arc<Broker>,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let metadata = broker.metadata();
    let mut outcomes: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    let mut proposed: BTreeMap<(String, i32), Option<Vec<i32>>> = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            let key = (t.name.to_string(), p.partition_index);
            let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current = metadata.topics.get(t.name.as_str()).and_then(|m| m.partition(p.partition_index));
            if let (Some(target), Some(current), false) = (&target, current, req.allow_replication_factor_change) {
                let original = current.replicas.iter().filter(|r| !current.adding.contains(r)).count();
                if target.len() != original {
                    let msg = format!("The replication factor is changed from {original} to {}", target.len());
                    outcomes.insert(key, Err((ResponseError::InvalidReplicationFactor, msg)));
                    continue;
                }
            }
            if current.is_none() {
                // Answered here, so the quorum's log only holds real partitions.
                let msg = format!("Unable to find partition {}-{}.", key.0, key.1);
                outcomes.insert(key, Err((ResponseError::UnknownTopicOrPartition, msg)));
                continue;
            }
            proposed.insert(key.clone(), target);
            outcomes.insert(key, Ok(()));
        }
    }
    let proposed: Vec<_> = proposed.into_iter().map(|((t, p), target)| (t, p, target)).collect();
    let applied = if proposed.is_empty() { Ok(Vec::new()) } else { broker.reassign_partitions(proposed).await };
    match applied {
        Ok(results) => {
            for (topic, index, refused) in results {
                let outcome = match refused {
                    None => Ok(()),
                    Some(e @ ApplyError::NoReassignmentInProgress) => {
                        Err((ResponseError::NoReassignmentInProgress, e.to_string()))
                    }
                    Some(e @ ApplyError::InvalidReplicaAssignment(_)) => {
                        Err((ResponseError::InvalidReplicaAssignment, e.to_string()))
                    }
                    Some(ApplyError::UnknownPartition) => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Unable to find partition {topic}-{index}."),
                    )),
                    Some(e) => Err((ResponseError::UnknownServerError, e.to_string())),
                };
                outcomes.insert((topic, index), outcome);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "reassignment failed");
            let msg = e.to_string();
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(code::of(ResponseError::RequestTimedOut))
                .with_error_message(Some(StrBytes::from_string(msg)))
                .with_allow_replication_factor_change(req.allow_replication_factor_change);
        }
    }
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, index), outcome) in outcomes {
        let r = ReassignablePartitionResponse::default().with_partition_index(index);
        let r = match outcome {
            Ok(()) => r,
            Err((e, msg)) => r.with_error_code(code::of(e)).with_error_message(Some(StrBytes::from_string(msg))),
        };
        by_topic.entry(topic).or_default().push(r);
    }
    let responses = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            ReassignableTopicResponse::default()
                .with_name(StrBytes::from_string(name).into())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

type Outcome = Result<(), (ResponseError, String)>;

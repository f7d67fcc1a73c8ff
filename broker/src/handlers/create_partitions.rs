//! CreatePartitions: grows topics (never shrinks them) through the
//! metadata quorum, with replicas placed like a new topic's or as the
//! request assigns them; validate_only checks without changing anything.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::ApplyError;

use crate::broker::{Broker, BrokerError};
use crate::error::code;

pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let outcome = if seen[t.name.as_str()] > 1 {
            Err((ResponseError::InvalidRequest, format!("Duplicate topic in request: {}", t.name.as_str())))
        } else {
            grow(broker, t, req.validate_only).await
        };
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => result,
            Err((e, msg)) => result.with_error_code(code::of(e)).with_error_message(Some(StrBytes::from_string(msg))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(broker: &Broker, t: &CreatePartitionsTopic, validate_only: bool) -> Result<(), (ResponseError, String)> {
    let name = t.name.as_str();
    let Some(topic) = broker.topic(name) else {
        return Err((ResponseError::UnknownTopicOrPartition, format!("Topic '{name}' does not exist.")));
    };
    let current = topic.meta.partition_count();
    if t.count <= current {
        let msg = format!("Topic currently has {current} partitions, which is higher than the requested {}.", t.count);
        return Err((ResponseError::InvalidPartitions, msg));
    }
    let assignments: Vec<Vec<i32>> =
        t.assignments.iter().flatten().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect();
    if t.assignments.is_some() && assignments.len() != (t.count - current) as usize {
        let msg = format!(
            "Increasing the number of partitions by {} but {} assignments provided.",
            t.count - current,
            assignments.len()
        );
        return Err((ResponseError::InvalidReplicaAssignment, msg));
    }
    if validate_only {
        return Ok(());
    }
    match broker.create_partitions(name, t.count, assignments).await {
        Ok(_) => Ok(()),
        Err(BrokerError::Refused(e @ ApplyError::InvalidPartitions(_))) => {
            Err((ResponseError::InvalidPartitions, e.to_string()))
        }
        Err(BrokerError::Refused(
            e @ (ApplyError::InvalidReplicaAssignment(_) | ApplyError::InvalidReplicationFactor(_)),
        )) => Err((ResponseError::InvalidReplicaAssignment, e.to_string())),
        Err(BrokerError::Refused(ApplyError::UnknownTopic(_))) => {
            Err((ResponseError::UnknownTopicOrPartition, format!("Topic '{name}' does not exist.")))
        }
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "adding partitions failed");
            Err((ResponseError::RequestTimedOut, e.to_string()))
        }
    }
}

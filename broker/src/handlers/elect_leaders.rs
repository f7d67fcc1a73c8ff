//! ElectLeaders (KIP-460): preferred elections move each partition's
//! leadership back to its first replica; unclean ones give leaderless
//! partitions any live replica. Decided by the metadata quorum; answered
//! once this broker has applied it. A request naming no partitions covers
//! all and reports only those where something was done or failed, as Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::Election;

use crate::broker::Broker;
use crate::error::code;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(broker: &Arc<Broker>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    if req.election_type != PREFERRED && req.election_type != UNCLEAN {
        return ElectLeadersResponse::default().with_error_code(code::of(ResponseError::InvalidRequest));
    }
    let all = req.topic_partitions.is_none();
    let partitions: Option<Vec<(String, i32)>> = req.topic_partitions.map(|ts| {
        let mut ps: Vec<(String, i32)> =
            ts.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.to_string(), p))).collect();
        ps.sort();
        ps.dedup();
        ps
    });
    // Partitions the metadata does not have are answered here, so the
    // quorum's log only ever holds real ones.
    let metadata = broker.metadata();
    let exists = |(t, p): &(String, i32)| metadata.topics.get(t).is_some_and(|m| m.partition(*p).is_some());
    let unknown: Vec<(String, i32, Election)> = partitions
        .iter()
        .flatten()
        .filter(|tp| !exists(tp))
        .map(|(t, p)| (t.clone(), *p, Election::UnknownPartition))
        .collect();
    let partitions = partitions.map(|ps| ps.into_iter().filter(|tp| exists(tp)).collect::<Vec<_>>());
    let elected = match partitions.as_ref().filter(|ps| ps.is_empty()) {
        Some(_) => Ok(Vec::new()),
        None => broker.elect_leaders(partitions.clone(), req.election_type == UNCLEAN).await,
    };
    let outcome = match elected {
        Ok(mut results) => {
            results.extend(unknown);
            results
        }
        Err(e) => {
            tracing::warn!(error = %e, "leader election failed");
            let failed =
                partitions.unwrap_or_default().into_iter().map(|(t, p)| (t, p, Err(ResponseError::RequestTimedOut)));
            return respond(failed.collect()).with_error_code(if all {
                code::of(ResponseError::RequestTimedOut)
            } else {
                0
            });
        }
    };
    let results = outcome
        .into_iter()
        .filter(|(_, _, e)| !(all && *e == Election::NotNeeded))
        .map(|(t, p, e)| {
            let result = match e {
                Election::Elected => Ok(()),
                Election::NotNeeded => Err(ResponseError::ElectionNotNeeded),
                Election::PreferredNotAvailable => Err(ResponseError::PreferredLeaderNotAvailable),
                Election::EligibleNotAvailable => Err(ResponseError::EligibleLeadersNotAvailable),
                Election::UnknownPartition => Err(ResponseError::UnknownTopicOrPartition),
            };
            (t, p, result)
        })
        .collect();
    respond(results)
}

fn respond(results: Vec<(String, i32, Result<(), ResponseError>)>) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, result) in results {
        let r = PartitionResult::default().with_partition_id(partition);
        let r = match result {
            Ok(()) => r,
            Err(e) => r.with_error_code(code::of(e)).with_error_message(Some(StrBytes::from_string(e.to_string()))),
        };
        by_topic.entry(topic).or_default().push(r);
    }
    let results = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

//! CreateTopics: Kafka's validation (names, duplicates, partition count,
//! replication factor, manual assignments, configs), `validate_only`, and
//! the created topic's id and effective configs in the answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::ApplyError;

use crate::broker::{Broker, BrokerError};
use crate::config::MAX_PARTITIONS_PER_REQUEST;
use crate::error::code;
use crate::topic_config;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        topics.push(if seen[t.name.as_str()] > 1 {
            let msg = format!("Create topics request contains multiple entries for topic {}", t.name.as_str());
            fail(result, ResponseError::InvalidRequest, msg)
        } else {
            match create_one(broker, t, req.validate_only).await {
                Ok(done) => describe(result, done, version),
                Err((e, msg)) => fail(result, e, msg),
            }
        });
    }
    CreateTopicsResponse::default().with_topics(topics)
}

struct Created {
    id: uuid::Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
}

async fn create_one(
    broker: &Broker,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<Created, (ResponseError, String)> {
    let name = t.name.as_str();
    sluice_raft::validate_topic_name(name).map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
    if broker.topic(name).is_some() {
        return Err((ResponseError::TopicAlreadyExists, format!("Topic '{name}' already exists.")));
    }
    let assignments: Vec<Vec<i32>> = t.assignments.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect();
    let partitions = if t.assignments.is_empty() {
        match t.num_partitions {
            -1 => broker.config.num_partitions,
            n if (1..=MAX_PARTITIONS_PER_REQUEST).contains(&n) => n,
            n if n > MAX_PARTITIONS_PER_REQUEST => {
                let msg =
                    format!("Number of partitions {n} is over the limit of {MAX_PARTITIONS_PER_REQUEST} per request.");
                return Err((ResponseError::InvalidPartitions, msg));
            }
            n => {
                return Err((
                    ResponseError::InvalidPartitions,
                    format!("Number of partitions must be larger than 0, got {n}."),
                ))
            }
        }
    } else {
        check_assignments(broker, t)?
    };
    let live = broker.metadata().live_brokers().count();
    let replication_factor = match (t.replication_factor, assignments.first()) {
        (_, Some(first)) => first.len() as i16,
        (-1, None) => broker.config.default_replication_factor,
        (rf, None) if rf < 1 => {
            let msg = format!("Replication factor must be larger than 0, got {rf}.");
            return Err((ResponseError::InvalidReplicationFactor, msg));
        }
        (rf, None) => rf,
    };
    if replication_factor as usize > live {
        let msg = format!("Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {live} broker(s) are registered.");
        return Err((ResponseError::InvalidReplicationFactor, msg));
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            let msg = format!("Null value not supported for topic configs: {}", c.name.as_str());
            return Err((ResponseError::InvalidRequest, msg));
        };
        topic_config::validate(&c.name, value).map_err(|msg| (ResponseError::InvalidConfig, msg))?;
        configs.insert(c.name.to_string(), topic_config::canonical(&c.name, value));
    }
    if validate_only {
        return Ok(Created { id: uuid::Uuid::nil(), partitions, replication_factor, configs });
    }
    match broker.create_topic(name, partitions, replication_factor, assignments, configs.clone()).await {
        Ok(topic) => Ok(Created { id: topic.meta.id, partitions, replication_factor, configs }),
        Err(BrokerError::Refused(ApplyError::TopicExists(_))) => {
            Err((ResponseError::TopicAlreadyExists, format!("Topic '{name}' already exists.")))
        }
        Err(BrokerError::Refused(e @ ApplyError::InvalidReplicationFactor(_))) => {
            Err((ResponseError::InvalidReplicationFactor, e.to_string()))
        }
        Err(BrokerError::Refused(e @ ApplyError::InvalidReplicaAssignment(_))) => {
            Err((ResponseError::InvalidReplicaAssignment, e.to_string()))
        }
        Err(BrokerError::Quorum(e)) => {
            tracing::warn!(topic = name, error = %e, "creating topic failed");
            Err((ResponseError::RequestTimedOut, e.to_string()))
        }
        Err(e) => {
            tracing::error!(topic = name, error = %e, "creating topic failed");
            Err((ResponseError::UnknownServerError, e.to_string()))
        }
    }
}

/// Manual assignments: only with num_partitions and replication_factor
/// left at -1, partitions numbered 0..n, each on distinct live brokers,
/// all with the same number of replicas.
fn check_assignments(broker: &Broker, t: &CreatableTopic) -> Result<i32, (ResponseError, String)> {
    if t.num_partitions != -1 || t.replication_factor != -1 {
        let msg = "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.";
        return Err((ResponseError::InvalidRequest, msg.to_string()));
    }
    if t.assignments.len() > MAX_PARTITIONS_PER_REQUEST as usize {
        let msg = format!("Number of partitions is over the limit of {MAX_PARTITIONS_PER_REQUEST} per request.");
        return Err((ResponseError::InvalidPartitions, msg));
    }
    let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
    indexes.sort_unstable();
    if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
        let msg = "Partitions should be a consecutive 0-based integer sequence".to_string();
        return Err((ResponseError::InvalidReplicaAssignment, msg));
    }
    let metadata = broker.metadata();
    let width = t.assignments.first().map_or(0, |a| a.broker_ids.len());
    for a in &t.assignments {
        let distinct: std::collections::BTreeSet<i32> = a.broker_ids.iter().map(|b| b.0).collect();
        if a.broker_ids.is_empty()
            || a.broker_ids.len() != width
            || distinct.len() != a.broker_ids.len()
            || distinct.iter().any(|&b| !metadata.is_live(b))
        {
            let msg = format!(
                "Replica assignment for partition {} names brokers that are not registered or repeats one",
                a.partition_index
            );
            return Err((ResponseError::InvalidReplicaAssignment, msg));
        }
    }
    Ok(t.assignments.len() as i32)
}

fn fail(result: CreatableTopicResult, e: ResponseError, msg: String) -> CreatableTopicResult {
    result
        .with_error_code(code::of(e))
        .with_error_message(Some(StrBytes::from_string(msg)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

fn describe(result: CreatableTopicResult, done: Created, version: i16) -> CreatableTopicResult {
    let configs = (version >= 5).then(|| {
        topic_config::effective(&done.configs)
            .map(|(def, value, overridden)| {
                CreatableTopicConfigs::default()
                    .with_name(StrBytes::from_static_str(def.name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_config_source(if overridden {
                        topic_config::SOURCE_TOPIC
                    } else {
                        topic_config::SOURCE_DEFAULT
                    })
            })
            .collect()
    });
    result
        .with_topic_id(done.id)
        .with_num_partitions(done.partitions)
        .with_replication_factor(done.replication_factor)
        .with_configs(configs)
}

//! Metadata: brokers, controller, and topics with their partitions, leaders
//! and topic ids; creates unknown topics when auto-creation is on.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{code, LEADER_EPOCH};
use crate::broker::{Broker, BrokerError, Topic};

pub async fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node = BrokerId(broker.config.node_id);
    let topics = match req.topics {
        // v0 has no null: an empty list asks for every topic.
        None => all_topics(broker),
        Some(list) if version == 0 && list.is_empty() => all_topics(broker),
        Some(list) => {
            // Before v4 a Metadata request always allowed auto-creation.
            let may_create = version < 4 || req.allow_auto_topic_creation;
            let mut topics = Vec::with_capacity(list.len());
            for t in list {
                topics.push(match t.name {
                    Some(name) => by_name(broker, name, may_create, node).await,
                    None => by_id(broker, t.topic_id, node),
                });
            }
            topics
        }
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(broker.config.advertised_host.clone()))
            .with_port(i32::from(broker.advertised_port))])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id().to_string())))
        .with_controller_id(node)
        .with_topics(topics)
}

fn all_topics(broker: &Broker) -> Vec<MetadataResponseTopic> {
    let node = BrokerId(broker.config.node_id);
    broker.topics().iter().map(|t| describe(t, node)).collect()
}

async fn by_name(broker: &Broker, name: TopicName, may_create: bool, node: BrokerId) -> MetadataResponseTopic {
    if let Some(t) = broker.topic(&name) {
        return describe(&t, node);
    }
    let error =
        |e: ResponseError| MetadataResponseTopic::default().with_name(Some(name.clone())).with_error_code(code::of(e));
    if sluice_raft::validate_topic_name(&name).is_err() {
        return error(ResponseError::InvalidTopicException);
    }
    if !(may_create && broker.config.auto_create_topics) {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    match broker.create_topic(&name, broker.config.num_partitions, BTreeMap::new()).await {
        Ok(t) => describe(&t, node),
        // Another request created it first: describe that one.
        Err(BrokerError::Metadata(sluice_raft::MetadataError::TopicExists(_))) => match broker.topic(&name) {
            Some(t) => describe(&t, node),
            None => error(ResponseError::LeaderNotAvailable),
        },
        Err(e) => {
            tracing::error!(topic = %name.0, error = %e, "auto-creating topic failed");
            error(ResponseError::UnknownServerError)
        }
    }
}

fn by_id(broker: &Broker, id: Uuid, node: BrokerId) -> MetadataResponseTopic {
    match broker.topic_by_id(id) {
        Some(t) => describe(&t, node),
        None => {
            MetadataResponseTopic::default().with_topic_id(id).with_error_code(code::of(ResponseError::UnknownTopicId))
        }
    }
}

fn describe(topic: &Topic, node: BrokerId) -> MetadataResponseTopic {
    let partitions = (0..topic.meta.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.meta.name.clone()))))
        .with_topic_id(topic.meta.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}

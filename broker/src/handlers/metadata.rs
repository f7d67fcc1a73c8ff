//! Metadata: live brokers, the controller, and topics with their
//! partitions — leader, leader epoch, replicas, ISR, offline replicas — as
//! the metadata quorum last told this broker; creates unknown topics when
//! auto-creation is on.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::error::code;
use sluice_raft::{ApplyError, ClusterMetadata, NO_LEADER};

use crate::broker::{Broker, BrokerError, Topic};

pub async fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
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
                    Some(name) => by_name(broker, name, may_create).await,
                    None => by_id(broker, t.topic_id),
                });
            }
            topics
        }
    };
    let metadata = broker.metadata();
    let controller = broker.quorum.controller().and_then(|c| i32::try_from(c).ok()).unwrap_or(-1);
    MetadataResponse::default()
        .with_brokers(live_brokers(&metadata))
        .with_cluster_id(Some(StrBytes::from_string(metadata.cluster_id.clone())))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
}

/// Registered, unfenced brokers (Kafka leaves fenced ones out).
pub fn live_brokers(metadata: &ClusterMetadata) -> Vec<MetadataResponseBroker> {
    metadata
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect()
}

fn all_topics(broker: &Broker) -> Vec<MetadataResponseTopic> {
    let metadata = broker.metadata();
    broker.topics().iter().map(|t| describe(t, &metadata)).collect()
}

async fn by_name(broker: &Broker, name: TopicName, may_create: bool) -> MetadataResponseTopic {
    if let Some(t) = broker.topic(&name) {
        return describe(&t, &broker.metadata());
    }
    let error =
        |e: ResponseError| MetadataResponseTopic::default().with_name(Some(name.clone())).with_error_code(code::of(e));
    if sluice_raft::validate_topic_name(&name).is_err() {
        return error(ResponseError::InvalidTopicException);
    }
    if !(may_create && broker.config.auto_create_topics) {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    let (partitions, rf) = (broker.config.num_partitions, broker.config.default_replication_factor);
    match broker.create_topic(&name, partitions, rf, Vec::new(), BTreeMap::new()).await {
        Ok(t) => describe(&t, &broker.metadata()),
        // Another request created it first: describe that one.
        Err(BrokerError::Refused(ApplyError::TopicExists(_))) => match broker.topic(&name) {
            Some(t) => describe(&t, &broker.metadata()),
            None => error(ResponseError::LeaderNotAvailable),
        },
        Err(BrokerError::Refused(ApplyError::InvalidReplicationFactor(_))) => {
            error(ResponseError::InvalidReplicationFactor)
        }
        Err(e) => {
            tracing::error!(topic = %name.0, error = %e, "auto-creating topic failed");
            error(ResponseError::LeaderNotAvailable)
        }
    }
}

fn by_id(broker: &Broker, id: Uuid) -> MetadataResponseTopic {
    match broker.topic_by_id(id) {
        Some(t) => describe(&t, &broker.metadata()),
        None => {
            MetadataResponseTopic::default().with_topic_id(id).with_error_code(code::of(ResponseError::UnknownTopicId))
        }
    }
}

fn describe(topic: &Topic, metadata: &ClusterMetadata) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    let partitions = topic
        .meta
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let offline: Vec<i32> = p.replicas.iter().copied().filter(|&r| !metadata.is_live(r)).collect();
            let error = if p.leader == NO_LEADER { code::of(ResponseError::LeaderNotAvailable) } else { code::NONE };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.meta.name.clone()))))
        .with_topic_id(topic.meta.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}

//! DeleteTopics: by name (v0-5) or by name or topic id (v6+).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::error::code;

pub async fn handle(broker: &Arc<Broker>, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n), uuid::Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        responses.push(delete_one(broker, name, id).await);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

async fn delete_one(broker: &Broker, name: Option<TopicName>, id: uuid::Uuid) -> DeletableTopicResult {
    let result = DeletableTopicResult::default().with_name(name.clone()).with_topic_id(id);
    let fail = |e: ResponseError| result.clone().with_error_code(code::of(e));
    let topic = match (&name, id.is_nil()) {
        (Some(_), false) => return fail(ResponseError::InvalidRequest),
        (Some(n), true) => broker.topic(n).ok_or(ResponseError::UnknownTopicOrPartition),
        (None, false) => broker.topic_by_id(id).ok_or(ResponseError::UnknownTopicId),
        (None, true) => return fail(ResponseError::InvalidRequest),
    };
    let topic = match topic {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let result =
        result.with_name(Some(TopicName(StrBytes::from_string(topic.meta.name.clone())))).with_topic_id(topic.meta.id);
    match broker.delete_topic(&topic.meta.name).await {
        Ok(_) => result,
        Err(e) => {
            tracing::error!(topic = %topic.meta.name, error = %e, "deleting topic failed");
            let code = match e {
                crate::broker::BrokerError::Refused(sluice_raft::ApplyError::UnknownTopic(_)) => {
                    ResponseError::UnknownTopicOrPartition
                }
                crate::broker::BrokerError::Quorum(_) => ResponseError::RequestTimedOut,
                _ => ResponseError::UnknownServerError,
            };
            result.with_error_code(code::of(code))
        }
    }
}

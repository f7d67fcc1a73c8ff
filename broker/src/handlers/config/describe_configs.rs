//! DescribeConfigs: a topic's or this broker's configs, with sources,
//! synonyms and documentation when asked.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{existing_topic, text, this_broker, unsupported_type, Failure, BROKER, TOPIC};
use crate::broker::Broker;
use crate::error::code;
use crate::{broker_configs, topic_config};

pub fn handle(broker: &Arc<Broker>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match describe_resource(broker, r, req.include_synonyms, req.include_documentation) {
                Ok(configs) => result.with_configs(configs),
                Err((e, msg)) => result.with_error_code(code::of(e)).with_error_message(Some(text(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_resource(
    broker: &Broker,
    r: &DescribeConfigsResource,
    synonyms: bool,
    docs: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    let wanted: Option<HashSet<&str>> = r.configuration_keys.as_ref().map(|ks| ks.iter().map(|k| k.as_str()).collect());
    let wanted = |name: &str| wanted.as_ref().is_none_or(|w| w.contains(name));
    let synonym = |name: &str, value: &str, source: i8| {
        DescribeConfigsSynonym::default().with_name(text(name)).with_value(Some(text(value))).with_source(source)
    };
    match r.resource_type {
        TOPIC => {
            let topic = existing_topic(broker, &r.resource_name)?;
            let configs = topic_config::effective(&topic.meta.configs)
                .filter(|(def, _, _)| wanted(def.name))
                .map(|(def, value, overridden)| {
                    let mut chain = Vec::new();
                    if overridden {
                        chain.push(synonym(def.name, &value, topic_config::SOURCE_TOPIC));
                    }
                    if let Some((name, default)) = def.broker_synonym {
                        chain.push(synonym(name, default, topic_config::SOURCE_DEFAULT));
                    }
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(def.name))
                        .with_value(Some(text(value)))
                        .with_config_source(if overridden {
                            topic_config::SOURCE_TOPIC
                        } else {
                            topic_config::SOURCE_DEFAULT
                        })
                        .with_synonyms(if synonyms { chain } else { Vec::new() })
                        .with_config_type(def.config_type())
                        .with_documentation(docs.then(|| StrBytes::from_static_str(def.doc)))
                })
                .collect();
            Ok(configs)
        }
        BROKER => {
            // The empty name is the cluster-wide dynamic default: none here.
            if !this_broker(broker, &r.resource_name)? {
                return Ok(Vec::new());
            }
            let configs = broker_configs::entries(&broker.config)
                .into_iter()
                .filter(|e| wanted(e.name))
                .map(|e| {
                    let chain = match (&e.value, synonyms) {
                        (Some(v), true) => vec![synonym(e.name, v, e.source)],
                        _ => Vec::new(),
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(e.name))
                        .with_value(e.value.map(text))
                        .with_read_only(true)
                        .with_config_source(e.source)
                        .with_synonyms(chain)
                        .with_config_type(e.config_type)
                        .with_documentation(docs.then(|| StrBytes::from_static_str(e.doc)))
                })
                .collect();
            Ok(configs)
        }
        other => Err(unsupported_type(other)),
    }
}

//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics
//! (overrides kept in the metadata quorum, taking effect on every broker
//! as it applies them) and brokers (described; this broker has no dynamic
//! configs, so altering one is refused as Kafka refuses a static config).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::ApplyError;

use crate::broker::{Broker, BrokerError};
use crate::error::code;
use crate::{broker_configs, topic_config};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

type Failure = (ResponseError, String);

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub fn describe(broker: &Arc<Broker>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
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

fn unsupported_type(resource_type: i8) -> Failure {
    (ResponseError::InvalidRequest, format!("Unsupported resource type: {resource_type}"))
}

fn existing_topic(broker: &Broker, name: &str) -> Result<Arc<crate::broker::Topic>, Failure> {
    sluice_raft::validate_topic_name(name).map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
    broker.topic(name).ok_or_else(|| (ResponseError::UnknownTopicOrPartition, format!("Topic {name} does not exist.")))
}

/// Whether a BROKER resource names this broker (`false`: the cluster default).
fn this_broker(broker: &Broker, name: &str) -> Result<bool, Failure> {
    if name.is_empty() {
        return Ok(false);
    }
    match name.parse::<i32>() {
        Ok(id) if id == broker.config.node_id => Ok(true),
        Ok(id) => Err((
            ResponseError::InvalidRequest,
            format!("Unexpected broker id, expected {} or empty string, but received {id}", broker.config.node_id),
        )),
        Err(_) => Err((ResponseError::InvalidRequest, format!("Broker id must be an integer, but it is: {name}"))),
    }
}

/// One resource's requested change, decoded from either API.
struct Change<'a> {
    resource_type: i8,
    name: &'a str,
    edit: Edit<'a>,
}

enum Edit<'a> {
    /// AlterConfigs: the overrides become exactly these.
    Replace(Result<BTreeMap<String, Option<String>>, Failure>),
    /// IncrementalAlterConfigs: (name, operation, value), resolved against
    /// the overrides current when applied.
    Patch(Vec<(&'a str, i8, Option<&'a str>)>),
}

/// Config changes to propose, and the overrides they were computed from.
type Resolved = (BTreeMap<String, Option<String>>, BTreeMap<String, Option<String>>);

/// How often a patch whose overrides changed while it was proposed is
/// computed again before the change is given up.
const PATCH_ATTEMPTS: usize = 5;

pub async fn alter(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let changes = req.resources.iter().map(|r| Change {
        resource_type: r.resource_type,
        name: r.resource_name.as_str(),
        edit: Edit::Replace(replacement(r.configs.iter().map(|c| (c.name.as_str(), c.value.as_deref())))),
    });
    let responses = apply_all(broker, changes.collect(), req.validate_only)
        .await
        .into_iter()
        .map(|(resource_type, name, outcome)| {
            let (error_code, error_message) = outcome_fields(outcome);
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource_type)
                .with_resource_name(name)
                .with_error_code(error_code)
                .with_error_message(error_message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let changes = req.resources.iter().map(|r| Change {
        resource_type: r.resource_type,
        name: r.resource_name.as_str(),
        edit: Edit::Patch(
            r.configs.iter().map(|c| (c.name.as_str(), c.config_operation, c.value.as_deref())).collect(),
        ),
    });
    let responses = apply_all(broker, changes.collect(), req.validate_only)
        .await
        .into_iter()
        .map(|(resource_type, name, outcome)| {
            let (error_code, error_message) = outcome_fields(outcome);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource_type)
                .with_resource_name(name)
                .with_error_code(error_code)
                .with_error_message(error_message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn outcome_fields(outcome: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((e, msg)) => (code::of(e), Some(text(msg))),
    }
}

/// AlterConfigs: every name once, with a valid value.
fn replacement<'a>(
    configs: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<BTreeMap<String, Option<String>>, Failure> {
    let mut out = BTreeMap::new();
    for (name, value) in configs {
        let Some(value) = value else {
            return Err((ResponseError::InvalidRequest, format!("Null value not supported for : {name}")));
        };
        if out.insert(name.to_string(), Some(value.to_string())).is_some() {
            return Err((ResponseError::InvalidRequest, format!("Error due to duplicate config keys: {name}")));
        }
    }
    Ok(out)
}

/// IncrementalAlterConfigs: each operation resolved against the topic's
/// current overrides into a value to set or an override to remove, with
/// the overrides APPEND and SUBTRACT read.
fn patch(current: &BTreeMap<String, String>, ops: &[(&str, i8, Option<&str>)]) -> Result<Resolved, Failure> {
    let mut out = BTreeMap::new();
    let mut read = BTreeMap::new();
    for &(name, op, value) in ops {
        if out.contains_key(name) {
            return Err((ResponseError::InvalidRequest, format!("Error due to duplicate config keys: {name}")));
        }
        let def = topic_config::definition(name);
        let resolved = match (op, value) {
            (DELETE, _) => None,
            (SET, Some(v)) => Some(v.to_string()),
            (APPEND | SUBTRACT, Some(v)) => {
                let Some(def) = def.filter(|d| d.is_list()) else {
                    let what = if op == APPEND { "append" } else { "subtract" };
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Config value {what} is not allowed for config key: {name}"),
                    ));
                };
                read.insert(name.to_string(), current.get(name).cloned());
                let now = current.get(name).map_or(def.default, String::as_str);
                let mut items: Vec<&str> = now.split(',').map(str::trim).filter(|i| !i.is_empty()).collect();
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    if op == APPEND && !items.contains(&item) {
                        items.push(item);
                    } else if op == SUBTRACT {
                        items.retain(|i| *i != item);
                    }
                }
                Some(items.join(","))
            }
            (SET | APPEND | SUBTRACT, None) => {
                return Err((ResponseError::InvalidRequest, format!("Null value not supported for : {name}")));
            }
            (other, _) => {
                return Err((ResponseError::InvalidRequest, format!("Unknown config operation {other} for {name}")));
            }
        };
        out.insert(name.to_string(), resolved);
    }
    Ok((out, read))
}

/// Validates and applies each resource's change; one result per resource,
/// in request order.
async fn apply_all(
    broker: &Arc<Broker>,
    changes: Vec<Change<'_>>,
    validate_only: bool,
) -> Vec<(i8, StrBytes, Result<(), Failure>)> {
    let mut seen: HashMap<(i8, &str), usize> = HashMap::new();
    for c in &changes {
        *seen.entry((c.resource_type, c.name)).or_default() += 1;
    }
    let mut results = Vec::with_capacity(changes.len());
    for c in changes {
        let outcome = if seen[&(c.resource_type, c.name)] > 1 {
            Err((ResponseError::InvalidRequest, "Each resource must appear at most once.".to_string()))
        } else {
            apply_one(broker, &c, validate_only).await
        };
        results.push((c.resource_type, text(c.name), outcome));
    }
    results
}

async fn apply_one(broker: &Arc<Broker>, c: &Change<'_>, validate_only: bool) -> Result<(), Failure> {
    let resolve = |current: &BTreeMap<String, String>| -> Result<(bool, Resolved), Failure> {
        match &c.edit {
            Edit::Replace(changes) => Ok((true, (changes.clone()?, BTreeMap::new()))),
            Edit::Patch(ops) => Ok((false, patch(current, ops)?)),
        }
    };
    match c.resource_type {
        TOPIC => {
            for attempt in 1..=PATCH_ATTEMPTS {
                let topic = existing_topic(broker, c.name)?;
                let (replace, (mut changes, expected)) = resolve(&topic.meta.configs)?;
                for (name, value) in changes.iter_mut() {
                    match value {
                        Some(v) => {
                            topic_config::validate(name, v).map_err(|msg| (ResponseError::InvalidConfig, msg))?;
                            *v = topic_config::canonical(name, v);
                        }
                        None if topic_config::definition(name).is_none() => {
                            return Err((ResponseError::InvalidConfig, format!("Unknown topic config name: {name}")));
                        }
                        None => {}
                    }
                }
                if validate_only {
                    return Ok(());
                }
                match broker.alter_topic_configs(c.name, replace, changes, expected).await {
                    Ok(()) => return Ok(()),
                    Err(BrokerError::Refused(ApplyError::ConfigChanged(_))) if attempt < PATCH_ATTEMPTS => continue,
                    Err(BrokerError::Refused(ApplyError::UnknownTopic(_))) => {
                        return Err((
                            ResponseError::UnknownTopicOrPartition,
                            format!("Topic {} does not exist.", c.name),
                        ))
                    }
                    Err(BrokerError::Quorum(e)) => return Err((ResponseError::RequestTimedOut, e.to_string())),
                    Err(e) => return Err((ResponseError::UnknownServerError, e.to_string())),
                }
            }
            Err((ResponseError::UnknownServerError, format!("the configs of {} kept changing", c.name)))
        }
        BROKER => {
            let (_, (changes, _)) = resolve(&BTreeMap::new())?;
            this_broker(broker, c.name)?;
            // Nothing is set dynamically, so removing a dynamic value is a
            // no-op (kafka-reassign-partitions clears throttle rates so).
            let names: Vec<&str> = changes.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.as_str()).collect();
            if names.is_empty() {
                return Ok(());
            }
            Err((
                ResponseError::InvalidConfig,
                format!("Cannot update these configs dynamically: {}", names.join(", ")),
            ))
        }
        other => Err(unsupported_type(other)),
    }
}

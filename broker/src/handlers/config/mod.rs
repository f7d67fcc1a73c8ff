//! Topic and broker configs: DescribeConfigs, AlterConfigs and
//! IncrementalAlterConfigs. Topic overrides are kept in the metadata
//! quorum and take effect on every broker as it applies them; this broker
//! has no dynamic broker configs, so altering one is refused as Kafka
//! refuses a static config. What the APIs share (resolving a resource,
//! validating and applying a change) is here.

pub mod alter_configs;
pub mod describe_configs;
pub mod incremental_alter_configs;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::ApplyError;

use crate::broker::{Broker, BrokerError};
use crate::error::code;
use crate::topic_config;

const TOPIC: i8 = 2;

const BROKER: i8 = 4;

type Failure = (ResponseError, String);

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
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

fn outcome_fields(outcome: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((e, msg)) => (code::of(e), Some(text(msg))),
    }
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

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

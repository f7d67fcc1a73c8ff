//! AlterConfigs: replaces every override of each resource.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::{apply_all, outcome_fields, Change, Edit, Failure};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
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

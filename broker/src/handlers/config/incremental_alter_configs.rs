//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT against each
//! resource's current overrides.

use std::sync::Arc;

use kafka_protocol::messages::{
    incremental_alter_configs_response, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::{apply_all, outcome_fields, Change, Edit};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
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

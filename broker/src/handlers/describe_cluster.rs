//! DescribeCluster (KIP-700): the cluster id, the controller and the
//! brokers, from the metadata quorum. Brokers serve the "brokers" endpoint
//! type only, as Kafka's do.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::error::code;

const ENDPOINT_BROKERS: i8 = 1;
/// Kafka's "operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;
/// With no authorizer every cluster operation is allowed: ALTER(4),
/// CREATE(7), DESCRIBE(8), CLUSTER_ACTION(9), DESCRIBE_CONFIGS(10),
/// ALTER_CONFIGS(11), IDEMPOTENT_WRITE(12), as Kafka reports them.
const CLUSTER_OPERATIONS: i32 = (1 << 4) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub fn handle(broker: &Arc<Broker>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    if req.endpoint_type != ENDPOINT_BROKERS {
        let e = ResponseError::UnsupportedEndpointType;
        return DescribeClusterResponse::default()
            .with_error_code(code::of(e))
            .with_error_message(Some(StrBytes::from_string(e.to_string())))
            .with_endpoint_type(req.endpoint_type);
    }
    let metadata = broker.metadata();
    let brokers = metadata
        .brokers
        .values()
        .filter(|b| req.include_fenced_brokers || !b.fenced)
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
                .with_is_fenced(b.fenced)
        })
        .collect();
    let controller = broker.quorum.controller().and_then(|c| i32::try_from(c).ok()).unwrap_or(-1);
    DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(metadata.cluster_id.clone()))
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_OMITTED
        })
}

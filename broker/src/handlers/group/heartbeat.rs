//! Heartbeat: a member stays alive and learns of a rebalance.

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use crate::broker::Broker;
use crate::error::{code, route_error};

pub async fn handle(broker: &Arc<Broker>, req: HeartbeatRequest) -> HeartbeatResponse {
    if req.group_id.is_empty() {
        return HeartbeatResponse::default().with_error_code(code::of(E::InvalidGroupId));
    }
    let group_id = req.group_id.to_string();
    let result = broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            match coord.get(&group_id) {
                Some(g) => {
                    g.borrow_mut().heartbeat(&req.member_id, req.group_instance_id.as_deref(), req.generation_id)
                }
                None => code::of(E::UnknownMemberId),
            }
        })
        .await;
    HeartbeatResponse::default().with_error_code(result.unwrap_or_else(|e| route_error(&e)))
}

//! SyncGroup: the leader hands out the assignment, members wait for theirs.

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::opt;
use crate::broker::Broker;
use crate::error::{code, route_error};

pub async fn handle(broker: &Arc<Broker>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    if req.group_id.is_empty() {
        return SyncGroupResponse::default().with_error_code(code::of(E::InvalidGroupId));
    }
    let group_id = req.group_id.to_string();
    let outcome = broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            let Some(group) = coord.get(&group_id) else {
                return crate::group::SyncOutcome { error: code::of(E::UnknownMemberId), ..Default::default() };
            };
            let assignments = req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
            let started = group.borrow_mut().sync(
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id,
                req.protocol_type.as_deref(),
                req.protocol_name.as_deref(),
                assignments,
            );
            match started {
                Ok(o) => o,
                Err(rx) => rx.await.unwrap_or_else(|_| crate::group::SyncOutcome {
                    error: code::of(E::UnknownMemberId),
                    ..Default::default()
                }),
            }
        })
        .await;
    match outcome {
        Ok(o) => {
            let resp = SyncGroupResponse::default().with_error_code(o.error).with_assignment(o.assignment);
            if version >= 5 {
                resp.with_protocol_type(opt(o.protocol_type)).with_protocol_name(opt(o.protocol_name))
            } else {
                resp
            }
        }
        Err(e) => SyncGroupResponse::default().with_error_code(route_error(&e)),
    }
}

//! LeaveGroup: members (v3+: several, by member or instance id) leave.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError as E;

use super::{opt, s};
use crate::broker::Broker;
use crate::error::{code, route_error};
use crate::group::Group;

pub async fn handle(broker: &Arc<Broker>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if req.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(code::of(E::InvalidGroupId));
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let group_id = req.group_id.to_string();
    let asked = leaving.clone();
    let results = broker
        .with_coordinator(&group_id.clone(), move |coord, _| async move {
            let Some(group) = coord.get(&group_id) else {
                return asked.iter().map(|_| code::of(E::UnknownMemberId)).collect::<Vec<_>>();
            };
            asked.iter().map(|(id, instance)| Group::leave(&group, &coord.config, id, instance.as_deref())).collect()
        })
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => return LeaveGroupResponse::default().with_error_code(route_error(&e)),
    };
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(results.first().copied().unwrap_or(0));
    }
    let members = leaving
        .into_iter()
        .zip(results)
        .map(|((id, instance), error)| {
            MemberResponse::default()
                .with_member_id(s(&id))
                .with_group_instance_id(opt(instance))
                .with_error_code(error)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
